"""A reproduction of tensorflow-compression's models/tfci.py (compress and
decompress), the reference reader and writer of the .tfci interop tests.

tfci.py is not part of the tensorflow-compression pip package, so its logic
is restated here from the tool (as summarised in reference/tfci.md): a
metagraph is read from `<metagraph_cache>/<MODEL>.metagraph` (no download
here), imported with `tf.compat.v1.wrap_function(import_meta_graph)`, and a
signature becomes a function with `prune`, its inputs and outputs in sorted
signature-key order. compress feeds the sender the PNG decoded with 3
channels and a batch axis added (uint8 [1, H, W, 3]) and packs its outputs
with `tfc.PackedTensors` and the model name; decompress unpacks a file with
the dtypes of the receiver's inputs, calls the receiver of the model named in
the file, takes axis 0 off the single output, rounds floats, saturate-casts
to uint8 and writes a PNG. Output paths default to INPUT.tfci / INPUT.png.
"""

import os

import tensorflow as tf
import tensorflow_compression as tfc


def instantiate_model_signature(metagraph_cache, model, signature):
  """The signature of `<metagraph_cache>/<model>.metagraph` as a function."""
  with open(os.path.join(metagraph_cache, model + ".metagraph"), "rb") as f:
    string = f.read()
  metagraph = tf.compat.v1.MetaGraphDef()
  metagraph.ParseFromString(string)
  wrapped = tf.compat.v1.wrap_function(
      lambda: tf.compat.v1.train.import_meta_graph(metagraph), [])
  graph = wrapped.graph
  sig = metagraph.signature_def[signature]
  inputs = [graph.as_graph_element(sig.inputs[k].name)
            for k in sorted(sig.inputs)]
  outputs = [graph.as_graph_element(sig.outputs[k].name)
             for k in sorted(sig.outputs)]
  return wrapped.prune(inputs, outputs)


def read_png(path):
  image = tf.image.decode_image(tf.io.read_file(path), channels=3)
  return tf.expand_dims(image, 0)


def write_png(path, image):
  image = tf.squeeze(image, 0)
  if image.dtype.is_floating:
    image = tf.round(image)
  if image.dtype != tf.uint8:
    image = tf.saturate_cast(image, tf.uint8)
  tf.io.write_file(path, tf.image.encode_png(image))


def compress(metagraph_cache, model, input_file, output_file=None):
  """`tfci.py --metagraph_cache DIR compress MODEL INPUT [OUTPUT]`."""
  output_file = output_file or input_file + ".tfci"
  sender = instantiate_model_signature(metagraph_cache, model, "sender")
  packed = tfc.PackedTensors()
  packed.model = model
  packed.pack(sender(read_png(input_file)))
  with open(output_file, "wb") as f:
    f.write(packed.string)
  return output_file


def decompress(metagraph_cache, input_file, output_file=None):
  """`tfci.py --metagraph_cache DIR decompress INPUT [OUTPUT]`."""
  output_file = output_file or input_file + ".png"
  with open(input_file, "rb") as f:
    packed = tfc.PackedTensors(f.read())
  receiver = instantiate_model_signature(metagraph_cache, packed.model,
                                         "receiver")
  tensors = packed.unpack([t.dtype for t in receiver.inputs])
  output_image, = receiver(*tensors)
  write_png(output_file, output_image)
  return output_file

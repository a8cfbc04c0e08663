"""Writing a model as a tfci-compatible MetaGraphDef.

The file has the layout of tensorflow-compression's published models (see
docs/pretrained.md): one frozen TF1 graph holding both halves, and two
signature_defs,
  "sender":   {"image": uint8 [H, W, 3]} -> {"tensor_00", "tensor_01", ...}
              (the model's `compress(image[None])` outputs, each rank 1)
  "receiver": {"tensor_00", ...} -> {"image": uint8 [H, W, 3]}
              (the model's `decompress(...)[0]`)
Keys sort in output order, which is how tfc's `tfci.py` orders the tensors of
a .tfci file. Variables are frozen to constants (tfci imports the graph
without a checkpoint). The result loads with `tfc_perception.pretrained.load`
and with tfc's own `tfci.py` (given the file in its metagraph cache).
"""

import os

import tensorflow as tf
import tensorflow_compression as tfc  # noqa: F401  registers the coder ops
from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow.python.framework import convert_to_constants  # pylint: disable=g-direct-tensorflow-import

from tfc_perception import _io

__all__ = ["export_metagraph"]


def _freeze(concrete):
  frozen = convert_to_constants.convert_variables_to_constants_v2(concrete)
  return (frozen.graph.as_graph_def(), [t.name for t in frozen.inputs],
          [t.name for t in frozen.outputs])


def _tensor_info(t):
  return meta_graph_pb2.TensorInfo(name=t.name, dtype=t.dtype.as_datatype_enum,
                                   tensor_shape=t.shape.as_proto())


def _signature(inputs, outputs):
  sig = meta_graph_pb2.SignatureDef(method_name="tfci")
  for k, t in inputs.items():
    sig.inputs[k].CopyFrom(_tensor_info(t))
  for k, t in outputs.items():
    sig.outputs[k].CopyFrom(_tensor_info(t))
  return sig


def _interface_codec(model, entropy_model):
  """compress/decompress from the model interface and a tfc entropy model,
  as in tfc's bmshj2018 example (for models whose own compress/decompress
  are eager-only)."""

  def compress(x):
    y = model.analysis(x)
    return entropy_model.compress(y), tf.shape(x)[1:-1], tf.shape(y)[1:-1]

  def decompress(strings, x_shape, y_shape):
    y_hat = entropy_model.decompress(strings, y_shape)
    x_hat = model.synthesis(y_hat)[:, :x_shape[0], :x_shape[1], :]
    return tf.cast(tf.round(tf.clip_by_value(
        tf.cast(x_hat, tf.float32), 0., 1.) * 255.), tf.uint8)

  return compress, decompress


def export_metagraph(model, path, entropy_model=None) -> str:
  """Exports `model` as a tfci MetaGraphDef file.

  Args:
    model: an object with the project's image-model interface, whose
      `compress(x)` takes uint8 [1, H, W, 3] and returns a tuple of tensors
      that are rank 1 for one image (bit strings [1], shapes [k]), and whose
      `decompress(*tensors)` returns uint8 [1, H, W, 3]. tfc-based models
      (range coding via tfc entropy models) satisfy this.
    path: output file (conventionally `<model name>.metagraph`; the file name
      is the model name tfci writes into .tfci files).
    entropy_model: optional tfc entropy model with range coding tables (e.g.
      `tfc.ContinuousBatchedEntropyModel(prior, coding_rank=3,
      compression=True)`). If given, the exported codec is built from
      `model.analysis` / `model.synthesis` and this entropy model (strings,
      image shape, latent shape; reconstruction round(clip(x_hat) * 255)),
      instead of the model's own compress/decompress - for models whose
      compress/decompress run eagerly only.

  Returns:
    `path`.

  Raises:
    ValueError: the model lacks compress/decompress or its outputs are not
      rank-1 tensors.
  """
  needed = ("analysis", "synthesis") if entropy_model is not None else (
      "compress", "decompress")
  for attr in needed:
    if not callable(getattr(model, attr, None)):
      raise ValueError(f"model must have a callable {attr}(); got "
                       f"{type(model).__name__}.")
  if entropy_model is not None:
    for attr in ("compress", "decompress"):
      if not callable(getattr(entropy_model, attr, None)):
        raise ValueError("entropy_model must be a tfc entropy model with "
                         "compress/decompress (compression=True).")
    compress, decompress = _interface_codec(model, entropy_model)
  else:
    compress, decompress = model.compress, model.decompress

  @tf.function
  def sender(image):
    out = compress(image[None])
    return tuple(out) if isinstance(out, (list, tuple)) else (out,)

  try:
    s_cf = sender.get_concrete_function(
        tf.TensorSpec([None, None, 3], tf.uint8, name="image"))
  except Exception as e:  # pylint: disable=broad-except  (any tracing error)
    raise ValueError(
        "the model's compress() could not be traced into a graph (it runs "
        f"eagerly only: {type(e).__name__}: {str(e).strip().splitlines()[-1]})"
        "; pass entropy_model= to export from analysis/synthesis instead."
    ) from e
  outs = tf.nest.flatten(s_cf.structured_outputs)
  for i, t in enumerate(outs):
    if t.shape.rank != 1:
      raise ValueError(f"compress output {i} has shape {t.shape}; a tfci "
                       "model's sender outputs must be rank 1 for one image.")

  @tf.function
  def receiver(*tensors):
    return decompress(*tensors)[0]

  try:
    r_cf = receiver.get_concrete_function(
        *[tf.TensorSpec([None] if t.dtype == tf.string else t.shape, t.dtype,
                        name=f"tensor_{i:02d}")
          for i, t in enumerate(outs)])
  except Exception as e:  # pylint: disable=broad-except  (any tracing error)
    raise ValueError(
        "the model's decompress() could not be traced into a graph (it runs "
        f"eagerly only: {type(e).__name__}: {str(e).strip().splitlines()[-1]})"
        "; pass entropy_model= to export from analysis/synthesis instead."
    ) from e
  if r_cf.structured_outputs.dtype != tf.uint8:
    raise ValueError("decompress must return uint8 images, got "
                     f"{r_cf.structured_outputs.dtype.name}.")

  s_gd, s_in, s_out = _freeze(s_cf)
  r_gd, r_in, r_out = _freeze(r_cf)
  graph = tf.Graph()
  with graph.as_default():
    tf.graph_util.import_graph_def(s_gd, name="sender")
    tf.graph_util.import_graph_def(r_gd, name="receiver")
  get = lambda prefix, n: graph.get_tensor_by_name(f"{prefix}/{n}")
  s_sig = _signature({"image": get("sender", s_in[0])},
                     {f"tensor_{i:02d}": get("sender", n)
                      for i, n in enumerate(s_out)})
  r_sig = _signature({f"tensor_{i:02d}": get("receiver", n)
                      for i, n in enumerate(r_in)},
                     {"image": get("receiver", r_out[0])})
  with graph.as_default():
    metagraph = tf.compat.v1.train.export_meta_graph(graph=graph)
  metagraph.signature_def["sender"].CopyFrom(s_sig)
  metagraph.signature_def["receiver"].CopyFrom(r_sig)
  _io.write_bytes(os.fspath(path), metagraph.SerializeToString())
  return path

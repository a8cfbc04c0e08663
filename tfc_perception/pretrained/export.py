"""Writing a codec as a tfci-compatible MetaGraphDef.

The file has the layout of tensorflow-compression's published models (see
docs/pretrained.md and reference/tfci.md): one frozen TF1 graph holding both
halves, and two signature_defs,
  "sender":   {"image": uint8 [N, H, W, 3]} -> {"tensor_00", "tensor_01", ...}
              (the model's traced compress outputs, each rank 1: for the
              project's image models strings [N], x_shape [2], y_shape [2])
  "receiver": {"tensor_00", ...} -> {"image": uint8 [N, H, W, 3]}
              (the model's traced decompress)
tfc's tfci.py feeds the sender a uint8 [1, H, W, 3] image and takes axis 0
off the receiver's output; keys sort in output order, which is how it orders
the tensors of a .tfci file. The project's codecs are finalized first, and
their tables and weights are frozen to constants (tfci imports the graph
without a checkpoint). The result loads with `tfc_perception.pretrained.load`
and with tfc's own `tfci.py` (given the file in its metagraph cache).

A metagraph is a program (its graph may contain any TensorFlow op, file
reads and writes included): load only metagraphs you trust.
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


def export_metagraph(model, path) -> str:
  """Exports a codec as a tfci MetaGraphDef file.

  Args:
    model: a project image codec (`FactorizedPrior`, `SoftQuantizedAutoencoder`:
      `finalize()` is called, then its `traced_compress` / `traced_decompress`
      are exported), or any object whose `compress(x)` takes uint8
      [N, H, W, 3] and returns rank-1 tensors (bit strings [N], shapes) and
      whose `decompress(*tensors)` returns uint8 [N, H, W, 3], traceable by
      `tf.function` (tfc-style models).
    path: output file, or an existing directory: then the file is
      `<directory>/<codec.tfci_name(model)>.metagraph`, the name bin/codec
      writes into its .tfci files, so that `tfci.py --metagraph_cache
      <directory> decompress file.tfci` finds it.

  Returns:
    The path written.

  Raises:
    ValueError: the model lacks compress/decompress, they cannot be traced,
      or their outputs are not rank-1 tensors.
  """
  for attr in ("compress", "decompress"):
    if not callable(getattr(model, attr, None)):
      raise ValueError(f"model must have a callable {attr}(); got "
                       f"{type(model).__name__}.")
  path = os.fspath(path)
  if os.path.isdir(path):
    from tfc_perception import codec  # pylint: disable=g-import-not-at-top
    path = os.path.join(path, codec.tfci_name(model) + ".metagraph")
  if callable(getattr(model, "finalize", None)):
    model.finalize()
  traced = getattr(model, "traced_compress", None)
  try:
    if traced is not None:
      s_cf = traced.get_concrete_function()
    else:
      s_cf = tf.function(model.compress).get_concrete_function(
          tf.TensorSpec([None, None, None, 3], tf.uint8, name="image"))
  except Exception as e:  # pylint: disable=broad-except  (any tracing error)
    raise ValueError(
        "the model's compress() could not be traced into a graph "
        f"({type(e).__name__}: {str(e).strip().splitlines()[-1]}).") from e
  outs = tf.nest.flatten(s_cf.structured_outputs)
  for i, t in enumerate(outs):
    if t.shape.rank != 1:
      raise ValueError(f"compress output {i} has shape {t.shape}; a tfci "
                       "model's sender outputs must be rank 1.")
  traced = getattr(model, "traced_decompress", None)
  try:
    if traced is not None:
      r_cf = traced.get_concrete_function()
    else:
      r_cf = tf.function(model.decompress).get_concrete_function(
          *[tf.TensorSpec([None] if t.dtype == tf.string else t.shape,
                          t.dtype, name=f"tensor_{i:02d}")
            for i, t in enumerate(outs)])
  except Exception as e:  # pylint: disable=broad-except  (any tracing error)
    raise ValueError(
        "the model's decompress() could not be traced into a graph "
        f"({type(e).__name__}: {str(e).strip().splitlines()[-1]}).") from e
  r_out = tf.nest.flatten(r_cf.structured_outputs)
  if len(r_out) != 1 or r_out[0].dtype != tf.uint8:
    raise ValueError("decompress must return one uint8 image batch, got "
                     f"{[t.dtype.name for t in r_out]}.")

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
  _io.write_bytes(path, metagraph.SerializeToString())
  return path

"""tensorflow-compression tfci models: MetaGraphDef loading, structural tensor
discovery, and .tfci bit-stream files.

tfc's pretrained models (the bmshj2018-factorized models used for the paper's
human-opinion and contrast results, Fig. 3 and Fig. 4 right / Fig. 16) are serialized
TF1 `MetaGraphDef`s with two signatures: "sender" (uint8 image -> bit strings
and shapes) and "receiver" (those tensors -> uint8 image). `TfciModel` imports
one under TF2 exactly like tfc's `tfci.py` (`tf.compat.v1.wrap_function` +
`import_meta_graph`, then `prune`) and exposes the project's model interface
(analysis / quantize / synthesis / call / reconstruct / compress /
decompress).

The internal tensors (latent y before quantisation, the quantised symbols,
the dequantised latent y_hat and the float reconstruction) are found by the
graph's structure, never by name; `discover_tensors` documents the algorithm
(also in docs/pretrained.md). The .tfci container is a tf.train.Example
written by `tfc.PackedTensors` (feature "MD" = model name, then one feature
per sender output, in sorted signature-key order), so files are interchangeable
with tfc's `tfci.py compress/decompress`.
"""

import collections
import dataclasses
import logging
import os
from typing import Dict, List, Optional, Sequence, Set

import numpy as np
import tensorflow as tf
import tensorflow_compression as tfc  # noqa: F401  registers the range coder ops

from tfc_perception import _io

__all__ = [
    "read_metagraph", "signature_tensors", "SignatureTensors",
    "discover_tensors", "DiscoveredTensors", "TfciModel",
    "write_tfci", "read_tfci",
]

_QUANTIZERS = ("Round", "Rint", "Floor")
_PASS_THROUGH = ("Identity", "Snapshot", "StopGradient")


def read_metagraph(path, source: Optional[str] = None):
  """Parses a tfci MetaGraphDef file and checks it has both signatures.

  Args:
    path: file path.
    source: where the bytes came from (URL), for the error message.

  Returns:
    A `tf.compat.v1.MetaGraphDef`.

  Raises:
    FileNotFoundError: `path` does not exist.
    ValueError: the file is not a serialized MetaGraphDef with "sender" and
      "receiver" signature_defs (e.g. an HTML error page or garbage).
  """
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise FileNotFoundError(f"no metagraph file at {path}")
  with open(path, "rb") as f:
    data = f.read()
  where = f"{path}" + (f" (from {source})" if source else "")
  metagraph = tf.compat.v1.MetaGraphDef()
  try:
    metagraph.ParseFromString(data)
  except Exception as e:  # google.protobuf.message.DecodeError and friends
    raise ValueError(f"{where} is not a tfci MetaGraphDef: protobuf parse "
                     f"failed ({type(e).__name__}: {e}); {len(data)} bytes, "
                     f"starting {data[:16]!r}.") from e
  missing = [s for s in ("sender", "receiver")
             if s not in metagraph.signature_def]
  if missing or not metagraph.graph_def.node:
    raise ValueError(
        f"{where} is not a tfci MetaGraphDef: it lacks "
        f"{'signature_def ' + ', '.join(missing) if missing else 'a graph'} "
        f"(has signatures {sorted(metagraph.signature_def)}, "
        f"{len(metagraph.graph_def.node)} graph nodes).")
  return metagraph


class _Graph:
  """Adjacency of a tf.Graph over data edges (control edges ignored)."""

  def __init__(self, graph):
    self.graph = graph
    self.consumers = collections.defaultdict(list)
    for op in graph.get_operations():
      for t in op.inputs:
        self.consumers[t.name].append(op)

  def ancestors(self, tensors) -> Dict[tf.Operation, int]:
    """BFS upstream: op -> distance (in ops) from the nearest root tensor."""
    depth = {}
    queue = collections.deque()
    for t in tensors:
      if t.op not in depth:
        depth[t.op] = 0
        queue.append(t.op)
    while queue:
      op = queue.popleft()
      for t in op.inputs:
        if t.op not in depth:
          depth[t.op] = depth[op] + 1
          queue.append(t.op)
    return depth

  def descendants(self, tensors) -> Set[tf.Operation]:
    """Ops reachable downstream of `tensors` (including their own ops)."""
    seen = set(t.op for t in tensors)
    queue = collections.deque(seen)
    while queue:
      op = queue.popleft()
      for out in op.outputs:
        for c in self.consumers[out.name]:
          if c not in seen:
            seen.add(c)
            queue.append(c)
    return seen


def _low_rank(t) -> bool:
  """True for tensors known to be scalars/vectors (shape arithmetic), which
  cannot be an image latent."""
  return t.shape.rank is not None and t.shape.rank < 3


def _static_value(t):
  try:
    v = tf.get_static_value(t)
  except Exception:  # pylint: disable=broad-except
    v = None
  if v is None and t.op.type == "Identity":
    return _static_value(t.op.inputs[0])
  return v


def _is_const_near(t, target, rtol=1e-3) -> bool:
  v = _static_value(t)
  if v is None:
    return False
  v = np.asarray(v, dtype=np.float64)
  return v.size >= 1 and bool(np.all(np.abs(v - target) <= rtol * abs(target)))


@dataclasses.dataclass
class DiscoveredTensors:
  """Graph tensors found by `discover_tensors` (names in the imported graph).

  Attributes:
    image: sender uint8 image input.
    image_float: float image in [0, 1] right after the uint8 -> float /255
      scaling (None if not found).
    sender_outputs / receiver_inputs: signature tensors in sorted key order.
    reconstruction_uint8: receiver uint8 output.
    latent: y, the float latent before quantisation (analysis output).
    symbols: sender-side integer symbols (rounded latent) fed to the coder.
    decoded_symbols: receiver-side integer symbols out of the decoder.
    latent_hat: dequantised latent y_hat (synthesis input).
    reconstruction: float reconstruction (synthesis output, nominal [0, 1],
      before scaling to [0, 255], rounding, clipping and cropping).
    reconstruction_scale: factor mapping `reconstruction` to [0, 1] (1, or
      1/255 for a graph that converts to uint8 without multiplying by 255).
  """
  image: str
  image_float: Optional[str]
  sender_outputs: List[str]
  receiver_inputs: List[str]
  reconstruction_uint8: str
  latent: str
  symbols: str
  decoded_symbols: str
  latent_hat: str
  reconstruction: str
  reconstruction_scale: float = 1.0

  def as_dict(self):
    return dataclasses.asdict(self)


@dataclasses.dataclass
class SignatureTensors:
  """The codec's signature tensors (enough for compress/decompress).

  Attributes:
    image: sender uint8 image input.
    sender_outputs / receiver_inputs: signature tensors in sorted key order
      (the order of the tensors in a .tfci file).
    reconstruction_uint8: receiver uint8 output.
  """
  image: str
  sender_outputs: List[str]
  receiver_inputs: List[str]
  reconstruction_uint8: str


def signature_tensors(graph, metagraph) -> SignatureTensors:
  """Validates the sender/receiver signatures and returns their tensors.

  Raises:
    ValueError: the sender does not have exactly one input, a uint8 image,
      or no string output; the receiver has no string input or not exactly
      one uint8 output.
  """
  s_in, s_out = _signature(graph, metagraph, "sender")
  r_in, r_out = _signature(graph, metagraph, "receiver")
  if len(s_in) != 1 or s_in[0].dtype != tf.uint8:
    raise ValueError(
        "sender signature must have exactly one input, a uint8 image; has "
        f"{[(t.name, t.dtype.name) for t in s_in]} (models with a rate "
        "parameter input are not supported).")
  if not any(t.dtype == tf.string for t in s_out):
    raise ValueError("sender signature has no tf.string output (bit strings); "
                     f"outputs: {[(t.name, t.dtype.name) for t in s_out]}.")
  outs = [t for t in r_out if t.dtype == tf.uint8]
  if len(outs) != 1:
    raise ValueError("receiver signature must have exactly one uint8 output; "
                     f"has {[(t.name, t.dtype.name) for t in r_out]}.")
  if not any(t.dtype == tf.string for t in r_in):
    raise ValueError("receiver signature has no tf.string input.")
  return SignatureTensors(s_in[0].name, [t.name for t in s_out],
                          [t.name for t in r_in], outs[0].name)


def _signature(graph, metagraph, key):
  sig = metagraph.signature_def[key]
  ins = [graph.as_graph_element(sig.inputs[k].name) for k in sorted(sig.inputs)]
  outs = [graph.as_graph_element(sig.outputs[k].name)
          for k in sorted(sig.outputs)]
  return ins, outs


def _shape_sources(tensors) -> Set[str]:
  """Tensors whose dynamic shape is exported (e.g. `tf.shape(y)[1:-1]`)."""
  found = set()
  for t in tensors:
    for _ in range(8):
      if t.op.type == "Shape":
        found.add(t.op.inputs[0].name)
        break
      if t.op.type in ("StridedSlice", "Slice", "Cast", "Identity", "Squeeze",
                       "Reshape") and t.op.inputs:
        t = t.op.inputs[0]
      else:
        break
  return found


def discover_tensors(graph, metagraph) -> DiscoveredTensors:
  """Finds the model's internal tensors by structure (op types, dtypes,
  signature wiring), never by name.

  Sender side (latent y):
    1. The image is the sender's only uint8 input; the bit strings are the
       sender's tf.string outputs.
    2. The quantiser is the rounding op (Round/Rint/Floor, not of known
       rank < 3, which would be shape arithmetic) that is both
       downstream of the image and upstream of the bit strings, nearest
       (fewest ops, breadth-first over data edges, through loops and
       TensorArray flows) to the strings.
    3. From the quantiser's input, walk upstream through offset ops
       (Identity, float Cast, Add/AddV2/Sub whose other operand does not
       depend on the image - the entropy model's median/offset) - e.g. tfc 1.x
       `floor(y + (0.5 - medians))`, tfc 2.x `round(y - offset)`. If a tensor
       on that walk is the argument of a `Shape` op exported as a sender
       output (`tf.shape(y)[1:-1]`), it is y; otherwise the walk's end is y.
    4. The sender symbols are the integer Cast of the quantiser output.
  Receiver side:
    5. From the uint8 output walk upstream through the "to pixels" ops: casts,
       Round/Floor, clipping (ClipByValue/Maximum/Minimum with constant
       bounds), one multiplication by a constant 255 or 255.5 (the latter
       is tf.image.convert_image_dtype), addition of 0.5 after that
       multiplication (rounding as floor/cast(v + 0.5)), and cropping
       (StridedSlice/Slice whose bounds depend on the receiver's shape
       inputs but not on the received strings - so a transposed
       convolution's internal crop is not crossed - or that drop the batch
       axis; Squeeze/ExpandDims). The first op that is none of these
       produced the float reconstruction.
    6. Among the reconstruction's ancestors downstream of the received
       strings, the integer -> float Cast (not of known rank < 3) farthest
       from the reconstruction is
       the dequantisation: its input is the decoded symbols; walking
       downstream through offset additions (+ medians/offset) gives y_hat.

  Args:
    graph: the imported graph (e.g. `wrap_function(...).graph`).
    metagraph: the MetaGraphDef (for the signature wiring).

  Returns:
    A `DiscoveredTensors`.

  Raises:
    ValueError: the graph does not have the expected structure (the message
      says which step failed).
  """
  g = _Graph(graph)
  sig = signature_tensors(graph, metagraph)
  s_out = [graph.as_graph_element(n) for n in sig.sender_outputs]
  r_in = [graph.as_graph_element(n) for n in sig.receiver_inputs]
  image = graph.as_graph_element(sig.image)
  strings = [t for t in s_out if t.dtype == tf.string]
  down_image = g.descendants([image])
  up_strings = g.ancestors(strings)
  quantizers = [op for op in up_strings
                if op.type in _QUANTIZERS and op in down_image
                and not _low_rank(op.outputs[0])]
  if not quantizers:
    raise ValueError("found no rounding op (Round/Rint/Floor) between the "
                     "sender's image input and its bit strings.")
  quant = min(quantizers, key=lambda op: (up_strings[op], op.name))

  # Step 3: walk from the quantiser input through offset ops.
  chain = [quant.inputs[0]]
  for _ in range(6):
    t = chain[-1]
    op = t.op
    nxt = None
    if op.type in _PASS_THROUGH or (
        op.type == "Cast" and op.inputs[0].dtype.is_floating):
      nxt = op.inputs[0]
    elif op.type in ("Add", "AddV2", "Sub"):
      dep = [i for i in op.inputs if i.op in down_image]
      if len(dep) == 1 and (op.type != "Sub" or dep[0] is op.inputs[0]):
        nxt = dep[0]
    if nxt is None or not nxt.dtype.is_floating:
      break
    chain.append(nxt)
  shaped = _shape_sources([t for t in s_out if t.dtype.is_integer])
  linked = [t for t in chain if t.name in shaped]
  latent = linked[0] if linked else chain[-1]
  if not latent.dtype.is_floating:
    raise ValueError(f"latent candidate {latent.name} is not float.")
  symbols = quant.outputs[0]
  for c in g.consumers[symbols.name]:
    if c.type == "Cast" and c.outputs[0].dtype.is_integer and c in up_strings:
      symbols = c.outputs[0]
      break

  # Float image after the /255 scaling (to feed float images exactly).
  image_float = None
  t = image
  for _ in range(6):
    cons = [c for c in g.consumers[t.name]
            if c.type not in ("Shape", "Size", "Rank") and c in up_strings]
    if len(cons) != 1:
      break
    c = cons[0]
    if c.type in ("Cast", "ExpandDims", "Identity", "Reshape") or (
        c.type == "StridedSlice" and c.get_attr("new_axis_mask")):
      t = c.outputs[0]
      continue
    if c.type in ("RealDiv", "Div", "Truediv") and _is_const_near(
        c.inputs[1], 255.0):
      image_float = c.outputs[0]
    elif c.type == "Mul" and any(
        i is not t and _is_const_near(i, 1 / 255) for i in c.inputs):
      image_float = c.outputs[0]
    break

  # Receiver side.
  out = graph.as_graph_element(sig.reconstruction_uint8)
  r_strings = [t for t in r_in if t.dtype == tf.string]
  down_strings = g.descendants(r_strings)
  down_inputs = g.descendants(r_in)
  t = out
  scale = None  # the constant ~255 crossed (pixel domain -> [0, 1] domain)
  for _ in range(32):
    op = t.op
    nxt = None
    if op.type in _PASS_THROUGH + ("Cast", "SaturateCast", "Round", "Rint",
                                   "Floor", "ClipByValue", "Squeeze",
                                   "ExpandDims"):
      nxt = op.inputs[0]
    elif op.type in ("Maximum", "Minimum", "Mul", "Add", "AddV2"):
      dep = [i for i in op.inputs if i.op in down_strings]
      other = [i for i in op.inputs if i.op not in down_inputs]
      if len(dep) == 1 and len(other) == 1:
        if op.type in ("Maximum", "Minimum"):
          nxt = dep[0]
        elif op.type == "Mul" and scale is None and _is_const_near(
            other[0], 255.5, rtol=0.004):  # 255 (round) or 255.5 (tf.image)
          nxt, scale = dep[0], float(np.mean(_static_value(other[0])))
        elif op.type in ("Add", "AddV2") and scale is None and (
            _is_const_near(other[0], .5)):  # rounding as floor/cast(v + .5)
          nxt = dep[0]
    elif op.type in ("StridedSlice", "Slice"):
      # Bounds from the received image shape (not from the decoded tensor's
      # own shape, as in a transposed convolution's internal crop).
      bounds_dynamic = any(
          i.op in down_inputs and i.op not in down_strings
          for i in op.inputs[1:])
      drops_axis = (op.type == "StridedSlice" and op.get_attr(
          "shrink_axis_mask") != 0)
      if bounds_dynamic or drops_axis:
        nxt = op.inputs[0]
    if nxt is None:
      break
    t = nxt
  reconstruction = t
  if scale is None:
    logging.warning("no multiplication by 255 before the uint8 output: "
                    "taking %s to be in [0, 255]", t.name)
  if not reconstruction.dtype.is_floating or reconstruction.op not in (
      down_strings):
    raise ValueError("could not find the float reconstruction before the "
                     f"uint8 conversion (stopped at {t.name}, op {t.op.type}).")
  up_rec = g.ancestors([reconstruction])
  casts = [op for op in up_rec if op.type == "Cast" and op in down_strings
           and op.inputs[0].dtype.is_integer
           and op.outputs[0].dtype.is_floating
           and not _low_rank(op.outputs[0])]
  if not casts:
    raise ValueError("found no integer -> float dequantisation (Cast) between "
                     "the received strings and the reconstruction.")
  cast = max(casts, key=lambda op: (up_rec[op], op.name))
  latent_hat = cast.outputs[0]
  for _ in range(4):
    cons = [c for c in g.consumers[latent_hat.name] if c in up_rec]
    if len(cons) != 1:
      break
    c = cons[0]
    if c.type in _PASS_THROUGH:
      latent_hat = c.outputs[0]
    elif c.type in ("Add", "AddV2", "Sub") and c.inputs[0] is latent_hat and (
        c.inputs[1].op not in down_inputs):
      latent_hat = c.outputs[0]
    elif c.type in ("Add", "AddV2") and c.inputs[0].op not in down_inputs:
      latent_hat = c.outputs[0]
    else:
      break
  return DiscoveredTensors(
      image=image.name,
      image_float=image_float.name if image_float is not None else None,
      sender_outputs=[t.name for t in s_out],
      receiver_inputs=[t.name for t in r_in],
      reconstruction_uint8=out.name, latent=latent.name, symbols=symbols.name,
      decoded_symbols=cast.inputs[0].name, latent_hat=latent_hat.name,
      reconstruction=reconstruction.name,
      reconstruction_scale=1.0 if scale is not None else 1 / 255.)


def _as_images(x, name="x"):
  """Validates an image batch: rank 4, 3 channels, uint8 or float."""
  if isinstance(x, (str, bytes)) or x is None:
    raise TypeError(f"{name} must be an image batch, got {type(x).__name__}.")
  x = tf.convert_to_tensor(x)
  if x.shape.rank != 4 or x.shape[-1] != 3:
    raise ValueError(f"{name} must be a batch of RGB images [N, H, W, 3]; got "
                     f"shape {x.shape}. Use x[None] for a single image.")
  if 0 in x.shape.as_list():
    raise ValueError(f"{name} has an empty dimension: {x.shape}.")
  if x.dtype != tf.uint8 and not x.dtype.is_floating:
    raise ValueError(f"{name} has dtype {x.dtype.name}; accepted: uint8 "
                     "([0, 255]) or float in [0, 1].")
  if x.dtype.is_floating:
    v = x.numpy()
    if not np.all(np.isfinite(v)) or v.min() < -0.5 or v.max() > 1.5:
      raise ValueError(f"{name} is float and must be finite and in [0, 1] "
                       f"(got range [{v.min()}, {v.max()}]); give uint8 "
                       "images for [0, 255].")
  return x


def _feed(x, tensor, image=False):
  """Adapts one example [1, ...] to the rank `tensor` expects. tfci graphs
  take rank-3 images; an image input of unknown rank is fed rank 3 like tfci
  does, any other tensor of unknown rank keeps its batch axis."""
  rank = tensor.shape.rank
  if rank == x.shape.rank - 1 or (rank is None and image):
    return x[0]
  return x


def _batched(t, rank):
  return t[None] if t.shape.rank == rank - 1 else t


class TfciModel:
  """A tensorflow-compression tfci MetaGraphDef with the project's model
  interface (`tfc_perception.models`).

  Images are processed one at a time (the published graphs take a single
  image); batches are looped over and stacked.

  Args:
    path: the `.metagraph` file.
    name: the model name written into .tfci files (tfc's tfci tool looks the
      model up by this name); default: the file name without `.metagraph`.
    distortion: the distortion the model was trained for ("mse", "msssim"),
      if known (from the registry).
    sha256: the file's hash, for `get_config`.

  Raises:
    FileNotFoundError, ValueError: unreadable metagraph or unexpected graph
      structure (see `discover_tensors`).
  """

  rate_unit = "bpp"

  def __init__(self, path, name: Optional[str] = None,
               distortion: Optional[str] = None,
               sha256: Optional[str] = None):
    path = os.fspath(path)
    self.metagraph = read_metagraph(path)
    model_name = name or os.path.basename(path)
    if model_name.endswith(".metagraph"):
      model_name = model_name[:-len(".metagraph")]
    self.model_name = model_name
    self.name = model_name
    self.path = os.path.abspath(path)
    self.distortion = distortion
    self.lmbda = None  # not published for tfc's pretrained models
    self.sha256 = sha256
    metagraph = self.metagraph
    try:
      self._wrapped = tf.compat.v1.wrap_function(
          lambda: tf.compat.v1.train.import_meta_graph(metagraph), [])
    except Exception as e:  # pylint: disable=broad-except
      raise ValueError(f"{path}: importing the MetaGraphDef failed: "
                       f"{type(e).__name__}: {e}") from e
    self.signatures = signature_tensors(self._wrapped.graph, metagraph)
    self._fns = {}
    try:
      self.tensors = discover_tensors(self._wrapped.graph, metagraph)
      self.discovery_error = None
    except ValueError as e:
      # The codec (compress/decompress/reconstruct) needs only the
      # signatures; analysis/quantize/synthesis/call report this error.
      self.tensors = None
      self.discovery_error = str(e)
      logging.warning("%s: internal tensors not found (%s); only compress/"
                      "decompress/reconstruct are available", model_name, e)

  def _internals(self) -> DiscoveredTensors:
    if self.tensors is None:
      raise ValueError(
          f"{self.model_name}: the latent/reconstruction tensors could not be "
          f"found in this graph ({self.discovery_error}); compress, "
          "decompress and reconstruct still work.")
    return self.tensors

  def _t(self, name):
    return self._wrapped.graph.as_graph_element(name)

  def _fn(self, key, feeds, fetches):
    if key not in self._fns:
      try:
        self._fns[key] = self._wrapped.prune(
            [self._t(n) for n in feeds], [self._t(n) for n in fetches])
      except Exception as e:  # pylint: disable=broad-except
        raise ValueError(
            f"{self.model_name}: cannot build the {key} function from "
            f"{feeds} to {fetches}: {type(e).__name__}: "
            f"{str(e).strip().splitlines()[0]}") from e
    return self._fns[key]

  # -- the model interface -------------------------------------------------

  def analysis(self, x):
    """Latent y (float, before quantisation) of images x [N, H, W, 3].

    Args:
      x: uint8 images, or float images in [0, 1].

    Returns:
      float32 [N, h, w, M].
    """
    x = _as_images(x)
    d = self._internals()
    if x.dtype == tf.uint8 or d.image_float is None:
      if x.dtype != tf.uint8:
        logging.warning("%s: no float image input found in the graph; "
                        "quantising the float image to uint8", self.model_name)
        x = tf.cast(tf.round(tf.clip_by_value(x, 0., 1.) * 255.), tf.uint8)
      fn, feed = self._fn("analysis", [d.image], [d.latent]), self._t(d.image)
    else:
      x = tf.cast(x, tf.float32)
      fn = self._fn("analysis_f", [d.image_float], [d.latent])
      feed = self._t(d.image_float)
    ys = [_batched(fn(_feed(x[i:i + 1], feed, image=True))[0], 4)
          for i in range(x.shape[0])]
    return tf.concat(ys, 0)

  def quantize(self, y, training=False):
    """Quantised latent y_hat, computed by the graph's own quantiser and
    dequantiser (e.g. round(y - median) + median); additive uniform noise in
    [-0.5, 0.5) if `training`."""
    y = tf.convert_to_tensor(y, tf.float32)
    if y.shape.rank != 4:
      raise ValueError(f"y must be a latent batch [N, h, w, M]; got {y.shape}.")
    if training:
      return y + tf.random.uniform(tf.shape(y), -.5, .5)
    d = self._internals()
    q = self._fn("quantize", [d.latent], [d.symbols])
    dq = self._fn("dequantize", [d.decoded_symbols], [d.latent_hat])
    out = []
    for i in range(y.shape[0]):
      s = q(_feed(y[i:i + 1], self._t(d.latent)))[0]
      s = _batched(s, 4)
      s = tf.cast(s, self._t(d.decoded_symbols).dtype)
      out.append(_batched(dq(_feed(s, self._t(d.decoded_symbols)))[0], 4))
    return tf.concat(out, 0)

  def synthesis(self, y_hat):
    """Float reconstruction (nominal [0, 1], not clipped) of y_hat, before
    cropping: spatial size is that of the latent times the model's stride."""
    y_hat = tf.convert_to_tensor(y_hat, tf.float32)
    if y_hat.shape.rank != 4:
      raise ValueError(f"y_hat must be [N, h, w, M]; got {y_hat.shape}.")
    d = self._internals()
    fn = self._fn("synthesis", [d.latent_hat], [d.reconstruction])
    feed = self._t(d.latent_hat)
    x_hat = tf.concat([_batched(fn(_feed(y_hat[i:i + 1], feed))[0], 4)
                       for i in range(y_hat.shape[0])], 0)
    if d.reconstruction_scale != 1.0:
      x_hat = x_hat * d.reconstruction_scale
    return x_hat

  def compress(self, x):
    """Range-codes images with the graph's sender.

    Args:
      x: uint8 images [N, H, W, 3] (float in [0, 1] is rounded to uint8).

    Returns:
      The sender outputs in sorted signature-key order. String outputs are
      concatenated over the batch (shape [N]); the other outputs (shapes) are
      shared by the batch.
    """
    x = _as_images(x)
    if x.dtype != tf.uint8:
      x = tf.cast(tf.round(tf.clip_by_value(x, 0., 1.) * 255.), tf.uint8)
    d = self.signatures
    fn = self._fn("sender", [d.image], d.sender_outputs)
    per = [fn(_feed(x[i:i + 1], self._t(d.image), image=True))
           for i in range(x.shape[0])]
    out = []
    for j, first in enumerate(per[0]):
      if first.dtype == tf.string:
        out.append(tf.concat([tf.reshape(p[j], [-1]) for p in per], 0))
      else:
        out.append(first)
    return tuple(out)

  def decompress(self, *tensors):
    """Decodes `compress` outputs to uint8 images [N, H, W, 3]."""
    d = self.signatures
    if len(tensors) != len(d.receiver_inputs):
      raise ValueError(f"{self.model_name} decompress takes "
                       f"{len(d.receiver_inputs)} tensors (the receiver inputs "
                       f"in sorted key order), got {len(tensors)}.")
    specs = [self._t(n) for n in d.receiver_inputs]
    tensors = [tf.convert_to_tensor(t, s.dtype) for t, s in zip(tensors, specs)]
    fn = self._fn("receiver", d.receiver_inputs, [d.reconstruction_uint8])
    counts = {int(t.shape[0]) for t, s in zip(tensors, specs)
              if s.dtype == tf.string}
    if len(counts) != 1:
      raise ValueError(f"string inputs disagree on the batch size: {counts}.")
    n = counts.pop()
    out = []
    for i in range(n):
      args = [t[i:i + 1] if s.dtype == tf.string else t
              for t, s in zip(tensors, specs)]
      out.append(_batched(fn(*args)[0], 4))
    return tf.concat(out, 0)

  def reconstruct(self, x):
    """uint8 reconstruction, identical to decompress(*compress(x))."""
    return self.decompress(*self.compress(x))

  def bits(self, compressed) -> tf.Tensor:
    """Actual coded size in bits per example of `compress` outputs [N]."""
    strings = [t for t in compressed if t.dtype == tf.string]
    return tf.add_n([tf.cast(tf.strings.length(s), tf.float32) * 8.
                     for s in strings])

  def __call__(self, x, training=False):
    """(x_hat, bits): float reconstruction cropped to x's size and the actual
    range-coded size of each example in bits (tfc's pretrained graphs carry
    no likelihood tensors, so the rate is measured, not estimated)."""
    x = _as_images(x)
    x_hat = self.synthesis(self.quantize(self.analysis(x), training=training))
    x_hat = x_hat[:, :x.shape[1], :x.shape[2], :]
    return x_hat, self.bits(self.compress(x))

  call = __call__

  def self_check(self, x=None) -> dict:
    """Checks that the discovered tensors agree with the graph's own codec:
    the pixels of synthesis(quantize(analysis(x))), cropped, scaled to
    [0, 255], clipped and rounded, must be within 1 of reconstruct(x) (1
    allows a graph that converts to uint8 differently, e.g. x * 255.5).

    Args:
      x: uint8 images [N, H, W, 3]; default: a seeded 64x64 test pattern.

    Returns:
      {"ok": bool, "max_abs_diff": int, "latent_shape": [...]}.

    Raises:
      ValueError: the internal tensors were not found.
    """
    if x is None:
      rng = np.random.RandomState(0)
      yy, xx = np.mgrid[0:64, 0:64] / 8.
      base = np.stack([np.sin(yy + c) * np.cos(xx + 2 * c) for c in range(3)],
                      -1)
      x = np.clip(128 + 90 * base + rng.normal(0, 8, base.shape), 0, 255)
      x = x.astype(np.uint8)[None]
    x = _as_images(x)
    y = self.analysis(x)
    x_hat = self.synthesis(self.quantize(y))[:, :x.shape[1], :x.shape[2], :]
    pixels = tf.clip_by_value(tf.round(x_hat * 255.), 0., 255.)
    diff = tf.abs(pixels - tf.cast(self.reconstruct(x), tf.float32))
    worst = int(tf.reduce_max(diff).numpy())
    return {"ok": worst <= 1, "max_abs_diff": worst,
            "latent_shape": y.shape.as_list()}

  def get_config(self):
    return {"name": self.model_name, "path": self.path, "sha256": self.sha256,
            "distortion": self.distortion, "format": "tfci-metagraph",
            "tensors": (dataclasses.asdict(self.tensors) if self.tensors
                        else {"error": self.discovery_error})}

  # -- .tfci files ---------------------------------------------------------

  def compress_to_file(self, x, path) -> int:
    """Compresses ONE image (uint8 [1, H, W, 3] or [H, W, 3]) to a .tfci file
    readable by tfc's `tfci.py decompress`. Returns the file size in bytes."""
    x = tf.convert_to_tensor(x)
    if x.shape.rank == 3:
      x = x[None]
    x = _as_images(x)
    if x.shape[0] != 1:
      raise ValueError(f"a .tfci file holds one image; got a batch of "
                       f"{x.shape[0]}.")
    return write_tfci(path, self.model_name, self.compress(x))

  def decompress_file(self, path):
    """Decodes a .tfci file made for this model -> uint8 [1, H, W, 3].

    Raises:
      ValueError: the file names another model (feature "MD").
    """
    specs = [self._t(n) for n in self.signatures.receiver_inputs]
    model, tensors = read_tfci(path, [s.dtype for s in specs])
    if model != self.model_name:
      raise ValueError(f"{path} was made by model {model!r}; this is "
                       f"{self.model_name!r}. Load that model instead.")
    return self.decompress(*tensors)


def write_tfci(path, model_name: str, tensors: Sequence) -> int:
  """Writes a .tfci file (tfc.PackedTensors: "MD" = model name, then the
  rank-1 tensors in order), atomically.

  Returns:
    The number of bytes written.

  Raises:
    ValueError: a tensor is not rank 1 or has an unsupported dtype.
  """
  if not isinstance(model_name, str) or not model_name:
    raise ValueError(f"model_name must be a non-empty string: {model_name!r}")
  tensors = [tf.convert_to_tensor(t) for t in tensors]
  for i, t in enumerate(tensors):
    if t.shape.rank != 1:
      raise ValueError(f".tfci tensors must be rank 1; tensor {i} has shape "
                       f"{t.shape} (one image per file).")
  packed = tfc.PackedTensors()
  packed.model = model_name
  packed.pack(tensors)
  data = packed.string
  _io.write_bytes(path, data)
  return len(data)


def read_tfci(path, dtypes: Optional[Sequence] = None):
  """Reads a .tfci file.

  Args:
    path: the file.
    dtypes: dtypes of the tensors to unpack (the receiver inputs); None
      returns only the model name and an empty list.

  Returns:
    (model name, list of tensors).

  Raises:
    FileNotFoundError, ValueError: missing or malformed file.
  """
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise FileNotFoundError(f"no .tfci file at {path}")
  with open(path, "rb") as f:
    data = f.read()
  try:
    packed = tfc.PackedTensors(data)
    model = packed.model
  except Exception as e:  # pylint: disable=broad-except
    raise ValueError(f"{path} is not a .tfci file (tf.train.Example with a "
                     f"model name feature 'MD'): {type(e).__name__}: {e}") from e
  tensors = packed.unpack(list(dtypes)) if dtypes is not None else []
  return model, tensors

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

The internal tensors (the float image, the latent y before quantisation,
the dequantised latent y_hat and the float reconstruction) are found by the
graph's structure, never by name (`discover_tensors` documents the
algorithm, also in docs/pretrained.md), or named by the user where the
structure defeats discovery (`tensors.py`); they are checked once against
the graph's own codec (`TfciModel.self_check`, remembered by `checks.py`).
The .tfci container is a tf.train.Example written by `tfc.PackedTensors`
(feature "MD" = model name, then one feature per sender output, in sorted
signature-key order), so files are interchangeable with tfc's
`tfci.py compress/decompress`.
"""

import dataclasses
import logging
import os
from typing import Dict, List, Optional, Sequence, Set

import numpy as np
import tensorflow as tf
import tensorflow_compression as tfc  # noqa: F401  registers the range coder ops

from tfc_perception import _io
from tfc_perception.pretrained import checks
from tfc_perception.pretrained import downloader
from tfc_perception.pretrained import tensors as tensors_lib
from tfc_perception.pretrained.tensors import Graph
from tfc_perception import _validation

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


class _DropSaverNotice(logging.Filter):
  """Drops import_meta_graph's "Saver not created because there are no
  variables" notice: tfci graphs are frozen, so it is always true and says
  nothing (it was logged twice on every load)."""

  def filter(self, record):
    return "Saver not created" not in record.getMessage()


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
  """The graph tensors a `TfciModel` uses (names in the imported graph).

  Attributes:
    image: sender uint8 image input.
    sender_outputs / receiver_inputs: signature tensors in sorted key order.
    reconstruction_uint8: receiver uint8 output.
    image_float: role "image": float image in [0, 1] right after the
      uint8 -> float /255 scaling (None if not found).
    latent: role "latent": y, the float latent before quantisation.
    latent_hat: role "latent_hat": dequantised latent y_hat (synthesis
      input).
    reconstruction: role "reconstruction": float reconstruction (synthesis
      output, before scaling to [0, 255], rounding, clipping and cropping).
    reconstruction_scale: factor mapping `reconstruction` to [0, 1] (1, or
      1/255 for a graph that converts to uint8 without multiplying by 255).
    sources: role -> "discovered", "given" (tensors=) or "registry".
    errors: role -> why discovery found nothing (roles not found).
  """
  image: str
  sender_outputs: List[str]
  receiver_inputs: List[str]
  reconstruction_uint8: str
  image_float: Optional[str] = None
  latent: Optional[str] = None
  latent_hat: Optional[str] = None
  reconstruction: Optional[str] = None
  reconstruction_scale: float = 1.0
  sources: Dict[str, str] = dataclasses.field(default_factory=dict)
  errors: Dict[str, str] = dataclasses.field(default_factory=dict)

  def roles(self) -> Dict[str, Optional[str]]:
    """{role: tensor name or None} for `tensors.ROLES`."""
    return {"image": self.image_float, "latent": self.latent,
            "latent_hat": self.latent_hat,
            "reconstruction": self.reconstruction}

  def missing(self) -> List[str]:
    """The required roles (latent, latent_hat, reconstruction) not known."""
    roles = self.roles()
    return [r for r in tensors_lib.REQUIRED_ROLES if roles[r] is None]

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


def _find_latent(g: Graph, sig: SignatureTensors):
  """Steps 1-3: the latent y, upstream of the quantiser nearest to the
  sender's bit strings."""
  s_out = [g.tensor(n) for n in sig.sender_outputs]
  image = g.tensor(sig.image)
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
  return latent


def _find_image_float(g: Graph, sig: SignatureTensors):
  """Step 4: the float image in [0, 1] after the graph's /255 (or None)."""
  s_out = [g.tensor(n) for n in sig.sender_outputs]
  up_strings = g.ancestors([t for t in s_out if t.dtype == tf.string])
  t = g.tensor(sig.image)
  for _ in range(6):
    cons = [c for c in g.consumers[t.name]
            if c.type not in ("Shape", "Size", "Rank") and c in up_strings]
    if len(cons) != 1:
      return None
    c = cons[0]
    if c.type in ("Cast", "ExpandDims", "Identity", "Reshape") or (
        c.type == "StridedSlice" and c.get_attr("new_axis_mask")):
      t = c.outputs[0]
      continue
    if c.type in ("RealDiv", "Div", "Truediv") and _is_const_near(
        c.inputs[1], 255.0):
      return c.outputs[0]
    if c.type == "Mul" and any(
        i is not t and _is_const_near(i, 1 / 255) for i in c.inputs):
      return c.outputs[0]
    return None
  return None


def _find_reconstruction(g: Graph, sig: SignatureTensors):
  """Step 5: walk up from the uint8 output through the "to pixels" ops."""
  r_in = [g.tensor(n) for n in sig.receiver_inputs]
  out = g.tensor(sig.reconstruction_uint8)
  down_strings = g.descendants([t for t in r_in if t.dtype == tf.string])
  down_inputs = g.descendants(r_in)
  t = out
  crossed_255 = False
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
        elif op.type == "Mul" and not crossed_255 and _is_const_near(
            other[0], 255.5, rtol=0.004):  # 255 (round) or 255.5 (tf.image)
          nxt, crossed_255 = dep[0], True
        elif op.type in ("Add", "AddV2") and not crossed_255 and (
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
  if not t.dtype.is_floating or t.op not in down_strings:
    raise ValueError("could not find the float reconstruction before the "
                     f"uint8 conversion (stopped at {t.name}, op {t.op.type}).")
  return t


def _find_latent_hat(g: Graph, sig: SignatureTensors, reconstruction):
  """Step 6: the dequantisation cast farthest upstream of the
  reconstruction, then downstream through constant offsets."""
  r_in = [g.tensor(n) for n in sig.receiver_inputs]
  down_strings = g.descendants([t for t in r_in if t.dtype == tf.string])
  down_inputs = g.descendants(r_in)
  up_rec = g.ancestors([reconstruction])
  casts = [op for op in up_rec if op.type == "Cast" and op in down_strings
           and op.inputs[0].dtype.is_integer
           and op.outputs[0].dtype.is_floating
           and not _low_rank(op.outputs[0])]
  if not casts:
    raise ValueError("found no integer -> float dequantisation (Cast) between "
                     "the received strings and the reconstruction "
                     f"{reconstruction.name}.")
  latent_hat = max(casts, key=lambda op: (up_rec[op], op.name)).outputs[0]
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
  return latent_hat


def _pixel_scale(g: Graph, reconstruction, out) -> float:
  """1 if a multiplication by a constant ~255 (255.5 for tf.image) lies
  between `reconstruction` and the uint8 output (it is in [0, 1]), else
  1/255 (it is taken to be in [0, 255])."""
  between = g.descendants([reconstruction]).intersection(g.ancestors([out]))
  between.discard(reconstruction.op)
  for op in between:
    if op.type == "Mul" and any(
        i.op not in between and i is not reconstruction
        and _is_const_near(i, 255.5, rtol=0.004) for i in op.inputs):
      return 1.0
  logging.warning("no multiplication by 255 between %s and the uint8 output: "
                  "taking it to be in [0, 255]", reconstruction.name)
  return 1 / 255.


def discover_tensors(graph, metagraph,
                     given: Optional[Dict[str, str]] = None,
                     sources: Optional[Dict[str, str]] = None
                     ) -> DiscoveredTensors:
  """Finds the model's internal tensors by structure (op types, dtypes,
  signature wiring), never by name, except those `given`.

  Sender side:
    1. The image is the sender's only uint8 input; the bit strings are the
       sender's tf.string outputs.
    2. The quantiser is the rounding op (Round/Rint/Floor, not of known
       rank < 3, which would be shape arithmetic) that is both
       downstream of the image and upstream of the bit strings, nearest
       (fewest ops, breadth-first over data edges, through loops and
       TensorArray flows) to the strings.
    3. latent: from the quantiser's input, walk upstream through offset ops
       (Identity, float Cast, Add/AddV2/Sub whose other operand does not
       depend on the image - the entropy model's median/offset) - e.g. tfc 1.x
       `floor(y + (0.5 - medians))`, tfc 2.x `round(y - offset)`. If a tensor
       on that walk is the argument of a `Shape` op exported as a sender
       output (`tf.shape(y)[1:-1]`), it is y; otherwise the walk's end is y.
    4. image: from the uint8 image through Cast/ExpandDims/Identity/Reshape/
       new-axis slices to a division by 255 (or multiplication by 1/255).
  Receiver side:
    5. reconstruction: from the uint8 output walk upstream through the "to
       pixels" ops: casts, Round/Floor, clipping (ClipByValue/Maximum/Minimum
       with constant bounds), one multiplication by a constant 255 or 255.5
       (the latter is tf.image.convert_image_dtype), addition of 0.5 after
       that multiplication (rounding as floor/cast(v + 0.5)), and cropping
       (StridedSlice/Slice whose bounds depend on the receiver's shape
       inputs but not on the received strings - so a transposed
       convolution's internal crop is not crossed - or that drop the batch
       axis; Squeeze/ExpandDims). The first op that is none of these
       produced the float reconstruction. It is taken to be in [0, 1] if a
       multiplication by 255 lies between it and the output, else in
       [0, 255].
    6. latent_hat: among the reconstruction's ancestors downstream of the
       received strings, the integer -> float Cast (not of known rank < 3)
       farthest from the reconstruction is the dequantisation; walking
       downstream through offset additions (+ medians/offset) gives y_hat.

  Args:
    graph: the imported graph (e.g. `wrap_function(...).graph`).
    metagraph: the MetaGraphDef (for the signature wiring).
    given: {role: tensor name} to use instead of discovering them (see
      `tensors.ROLES`; validate them first with `tensors.validate_tensors`).
      A given reconstruction is where step 6 starts.
    sources: {role: "given" | "registry"} for the given roles.

  Returns:
    A `DiscoveredTensors`. A role that neither was given nor could be found
    is None, with the failed step's message in `errors[role]`.

  Raises:
    ValueError: the signatures themselves are unusable (see
      `signature_tensors`).
  """
  g = graph if isinstance(graph, Graph) else Graph(graph)
  sig = signature_tensors(g.graph, metagraph)
  given = dict(given or {})
  found: Dict[str, Optional[str]] = {}
  src = {r: (sources or {}).get(r, "given") for r in given}
  errors: Dict[str, str] = {}

  def attempt(role, fn):
    if role in given:
      return g.tensor(given[role])
    try:
      t = fn()
    except ValueError as e:
      errors[role] = str(e)
      return None
    if t is not None:
      src[role] = "discovered"
    return t

  latent = attempt("latent", lambda: _find_latent(g, sig))
  image = attempt("image", lambda: _find_image_float(g, sig))
  if image is None and "image" not in errors:
    errors["image"] = ("found no division of the uint8 image by 255; float "
                       "images are quantised to uint8 for the analysis")
  recon = attempt("reconstruction", lambda: _find_reconstruction(g, sig))
  if recon is None and "latent_hat" not in given:
    errors["latent_hat"] = "needs the reconstruction, which was not found"
    latent_hat = None
  else:
    latent_hat = attempt("latent_hat", lambda: _find_latent_hat(g, sig, recon))
  for role, t in (("image", image), ("latent", latent),
                  ("latent_hat", latent_hat), ("reconstruction", recon)):
    found[role] = t.name if t is not None else None
  out = g.tensor(sig.reconstruction_uint8)
  return DiscoveredTensors(
      image=sig.image, sender_outputs=list(sig.sender_outputs),
      receiver_inputs=list(sig.receiver_inputs),
      reconstruction_uint8=sig.reconstruction_uint8,
      image_float=found["image"], latent=found["latent"],
      latent_hat=found["latent_hat"], reconstruction=found["reconstruction"],
      reconstruction_scale=(_pixel_scale(g, recon, out) if recon is not None
                            else 1.0),
      sources={r: s for r, s in src.items() if found.get(r)},
      errors=errors)


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

  On construction the internal tensors are found (`discover_tensors`, or
  named by `tensors`) and, if all are known, checked once against the
  graph's own codec (`self_check`): a result remembered for this metagraph
  and these tensors is reused (`checks.py`: in memory, and in `check_record`
  when given), otherwise the check runs and its result is remembered. While
  the check has failed, analysis/quantize/synthesis/call raise a ValueError
  with its reason; compress/decompress/reconstruct always work.

  Args:
    path: the `.metagraph` file.
    name: the model name written into .tfci files (tfc's tfci tool looks the
      model up by this name); default: the file name without `.metagraph`.
    distortion: the distortion the model was trained for ("mse", "msssim"),
      if known (from the registry).
    sha256: the file's hash (computed if not given).
    tensors: internal tensors to use instead of discovering them: {role:
      name} or "role=name,..." (`tensors.parse_tensors`).
    tensor_sources: {role: "given" | "registry"} for the `tensors` (default
      "given").
    check: run (or reuse) the first-load self-check.
    check_record: file that stores check results (`pretrained.load` uses
      `<cached metagraph>.check.json`); None keeps them in memory only.

  Raises:
    FileNotFoundError, ValueError: unreadable metagraph, unusable
      signatures, or a given tensor that does not exist or does not fit its
      role (one line naming the role and the nearest candidates).
  """

  rate_unit = "bpp"

  def __init__(self, path, name: Optional[str] = None,
               distortion: Optional[str] = None,
               sha256: Optional[str] = None, *, tensors=None,
               tensor_sources: Optional[Dict[str, str]] = None,
               check: bool = True, check_record: Optional[str] = None):
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
    self.sha256 = sha256 or downloader.sha256_file(path)
    metagraph = self.metagraph
    quiet = _DropSaverNotice()
    tf.get_logger().addFilter(quiet)
    try:
      self._wrapped = tf.compat.v1.wrap_function(
          lambda: tf.compat.v1.train.import_meta_graph(metagraph), [])
    except Exception as e:  # pylint: disable=broad-except
      raise ValueError(f"{path}: importing the MetaGraphDef failed: "
                       f"{type(e).__name__}: {e}") from e
    finally:
      tf.get_logger().removeFilter(quiet)
    self.signatures = signature_tensors(self._wrapped.graph, metagraph)
    self._graph = tensors_lib.Graph(self._wrapped.graph)
    self._fns = {}
    given = tensors_lib.validate_tensors(
        self._graph, self.signatures, tensors_lib.parse_tensors(tensors),
        model_name)
    self.tensors = discover_tensors(
        self._graph, metagraph, given=given,
        sources={r: (tensor_sources or {}).get(r, "given") for r in given})
    missing = self.tensors.missing()
    self.discovery_error = "; ".join(
        f"{r}: {self.tensors.errors.get(r, 'not found')}" for r in missing
    ) or None
    self.check_record = check_record
    self.check = None
    if missing:
      logging.warning(
          "%s: internal tensors not found (%s); only compress/decompress/"
          "reconstruct are available. List candidates with `bin/download "
          "tensors %s` and name them with --tensors role=name.", model_name,
          self.discovery_error, model_name)
    elif check:
      self.check = self._first_load_check()

  def _first_load_check(self) -> dict:
    """The remembered self-check of the current tensors, else runs it."""
    d = self.tensors
    known = checks.lookup(self.check_record, self.sha256, d.roles(),
                          d.reconstruction_scale)
    if known is None:
      try:
        result = self.self_check()
      except Exception as e:  # pylint: disable=broad-except
        # Whatever stops the check is its result: the codec stays usable.
        msg = " ".join(str(e).strip().splitlines()[:1])
        result = {"ok": False, "max_abs_diff": None, "latent_shape": None,
                  "image_max_abs_diff": None,
                  "reason": f"the check could not run: {type(e).__name__}: "
                            f"{msg}"}
      known = checks.store(self.check_record, self.sha256, self.model_name,
                           d.roles(), d.reconstruction_scale, result)
    if not known["ok"]:
      logging.warning("%s: first-load self-check failed: %s", self.model_name,
                      known["reason"])
    return known

  def _resolved(self) -> DiscoveredTensors:
    """The tensors, if every required role is known (no check gate)."""
    d = self.tensors
    missing = d.missing()
    if missing:
      raise ValueError(
          f"{self.model_name}: the {'/'.join(missing)} tensor(s) could not be "
          f"found in this graph ({self.discovery_error}); compress, "
          "decompress and reconstruct still work. List the candidates with "
          f"`bin/download tensors {self.model_name}` and name them with "
          "tensors={role: name} or --tensors role=name (docs/pretrained.md).")
    return d

  def _internals(self) -> DiscoveredTensors:
    """The tensors for analysis/quantize/synthesis: known and checked."""
    d = self._resolved()
    c = self.check
    if c is not None and not c["ok"]:
      where = (f"stored in {c['stored_in']}" if c.get("stored_in") else
               "kept in memory")
      raise ValueError(
          f"{self.model_name}: analysis/quantize/synthesis are refused: the "
          f"first-load self-check of the tensors {c['tensors']} failed: "
          f"{c['reason']} (result {where}). compress, decompress and "
          "reconstruct still work. Find the right tensors with `bin/download "
          f"tensors {self.model_name}` and pass them with tensors={{role: "
          "name}} or --tensors role=name (docs/pretrained.md).")
    return d

  def _t(self, name):
    return self._wrapped.graph.as_graph_element(name)

  def _fn(self, key, feeds, fetches):
    key = (key, tuple(feeds), tuple(fetches))
    if key not in self._fns:
      try:
        self._fns[key] = self._wrapped.prune(
            [self._t(n) for n in feeds], [self._t(n) for n in fetches])
      except Exception as e:  # pylint: disable=broad-except
        raise ValueError(
            f"{self.model_name}: cannot build the {key[0]} function from "
            f"{list(feeds)} to {list(fetches)}: {type(e).__name__}: "
            f"{str(e).strip().splitlines()[0]}") from e
    return self._fns[key]

  def _coder_fns(self, d: DiscoveredTensors):
    """(sender from the latent, receiver to latent_hat): the graph's own
    quantiser, range coder and dequantiser between y and y_hat."""
    key = ("coder", d.latent, d.latent_hat)
    if key not in self._fns:
      self._fns[key] = self._build_coder_fns(d)
    return self._fns[key]

  def _build_coder_fns(self, d: DiscoveredTensors):
    s_out, r_in = self.signatures.sender_outputs, self.signatures.receiver_inputs
    if len(s_out) != len(r_in):
      raise ValueError(
          f"{self.model_name}: the sender has {len(s_out)} outputs but the "
          f"receiver {len(r_in)} inputs; tfci pairs them in sorted key order.")
    g = self._graph
    latent = g.tensor(d.latent)
    up_hat = g.ancestors([g.tensor(d.latent_hat)])
    need = [i for i, n in enumerate(r_in) if g.tensor(n).op in up_hat]
    image_op = g.tensor(self.signatures.image).op
    for i in need:
      if image_op in g.ancestors([g.tensor(s_out[i])], stop=[latent.op]):
        raise ValueError(
            f"{self.model_name}: latent_hat needs the sender output "
            f"{s_out[i]}, which depends on the image other than through the "
            f"latent {d.latent}; name the tensor the bit strings are coded "
            f"from (`bin/download tensors {self.model_name}`).")
    return (self._fn("quantize (sender)", [d.latent], [s_out[i] for i in need]),
            self._fn("quantize (receiver)", [r_in[i] for i in need],
                     [d.latent_hat]))

  # -- the model interface -------------------------------------------------

  def _analysis(self, x, d: DiscoveredTensors):
    if x.dtype == tf.uint8 or d.image_float is None:
      if x.dtype != tf.uint8:
        logging.warning("%s: no float image input found in the graph; "
                        "quantising the float image to uint8", self.model_name)
        x = tf.cast(tf.round(tf.clip_by_value(x, 0., 1.) * 255.), tf.uint8)
      fn, feed = self._fn("analysis", [d.image], [d.latent]), self._t(d.image)
    else:
      x = tf.cast(x, self._t(d.image_float).dtype)
      fn = self._fn("analysis", [d.image_float], [d.latent])
      feed = self._t(d.image_float)
    ys = [_batched(fn(_feed(x[i:i + 1], feed, image=True))[0], 4)
          for i in range(x.shape[0])]
    return tf.cast(tf.concat(ys, 0), tf.float32)

  def analysis(self, x):
    """Latent y (float, before quantisation) of images x [N, H, W, 3].

    Args:
      x: uint8 images, or float images in [0, 1].

    Returns:
      float32 [N, h, w, M].
    """
    x = _as_images(x)
    return self._analysis(x, self._internals())

  def _quantize(self, y, d: DiscoveredTensors):
    sender, receiver = self._coder_fns(d)
    feed = self._t(d.latent)
    out = []
    for i in range(y.shape[0]):
      coded = sender(_feed(tf.cast(y[i:i + 1], feed.dtype), feed))
      out.append(_batched(receiver(*coded)[0], 4))
    return tf.cast(tf.concat(out, 0), tf.float32)

  def quantize(self, y, training=False):
    """Quantised latent y_hat: y run through the graph's own quantiser,
    range coder and dequantiser (the sender from the latent to its outputs,
    the receiver from those to latent_hat), so y_hat is exactly what the
    decoder computes; additive uniform noise in [-0.5, 0.5) if `training`."""
    y = tf.convert_to_tensor(y, tf.float32)
    if y.shape.rank != 4:
      raise ValueError(f"y must be a latent batch [N, h, w, M]; got {y.shape}.")
    if training:
      return y + tf.random.uniform(tf.shape(y), -.5, .5)
    return self._quantize(y, self._internals())

  def _synthesis(self, y_hat, d: DiscoveredTensors):
    fn = self._fn("synthesis", [d.latent_hat], [d.reconstruction])
    feed = self._t(d.latent_hat)
    x_hat = tf.concat(
        [_batched(fn(_feed(tf.cast(y_hat[i:i + 1], feed.dtype), feed))[0], 4)
         for i in range(y_hat.shape[0])], 0)
    x_hat = tf.cast(x_hat, tf.float32)
    if d.reconstruction_scale != 1.0:
      x_hat = x_hat * d.reconstruction_scale
    return x_hat

  def synthesis(self, y_hat):
    """Float reconstruction (nominal [0, 1], not clipped) of y_hat, before
    cropping: spatial size is that of the latent times the model's stride."""
    y_hat = tf.convert_to_tensor(y_hat, tf.float32)
    if y_hat.shape.rank != 4:
      raise ValueError(f"y_hat must be [N, h, w, M]; got {y_hat.shape}.")
    return self._synthesis(y_hat, self._internals())

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
    """Checks that the internal tensors agree with the graph's own codec:
    the pixels of synthesis(quantize(analysis(x))), cropped, scaled to
    [0, 255], clipped and rounded, must be within 1 of reconstruct(x) (1
    allows a graph that converts to uint8 differently, e.g. x * 255.5); and,
    where the float image input (role image) is known, the analysis of
    x / 255 through it must equal that of the uint8 x (within 1e-3 of the
    latent's largest magnitude); and the latent must not be quantised
    already (y - quantize(y) constant in every channel). Runs on the tensors in use whether or not
    the first-load check passed (it is that check).

    Args:
      x: uint8 images [N, H, W, 3]; default: a seeded 64x64 test pattern.

    Returns:
      {"ok": bool, "max_abs_diff": int (pixel levels),
       "image_max_abs_diff": float or None, "latent_shape": [...],
       "reason": None, or why the check failed}.

    Raises:
      ValueError: a required tensor is not known, or a function between
        the tensors cannot be built.
    """
    if x is None:
      rng = np.random.RandomState(0)
      yy, xx = np.mgrid[0:64, 0:64] / 8.
      base = np.stack([np.sin(yy + c) * np.cos(xx + 2 * c) for c in range(3)],
                      -1)
      x = np.clip(128 + 90 * base + rng.normal(0, 8, base.shape), 0, 255)
      x = x.astype(np.uint8)[None]
    x = _as_images(x)
    if x.dtype != tf.uint8:
      raise ValueError(f"self_check takes uint8 images, got {x.dtype.name}.")
    d = self._resolved()
    y = self._analysis(x, d)
    y_hat = self._quantize(y, d)
    x_hat = self._synthesis(y_hat, d)[:, :x.shape[1], :x.shape[2], :]
    pixels = tf.clip_by_value(tf.round(x_hat * 255.), 0., 255.)
    diff = tf.abs(pixels - tf.cast(self.reconstruct(x), tf.float32))
    worst = int(tf.reduce_max(diff).numpy())
    reasons = []
    if worst > 1:
      reasons.append(
          f"synthesis(quantize(analysis(x))) differs from the graph's own "
          f"decoder by up to {worst} pixel levels (> 1) on the check image")
    # A latent taken after the rounding is consistent with the codec but is
    # not y: y - y_hat is then constant in every channel.
    err = tf.reshape(y - y_hat, [-1, y.shape[-1]])
    if y.shape[1] * y.shape[2] > 1 and float(tf.reduce_max(
        tf.math.reduce_std(err, axis=0)).numpy()) < 1e-6:
      reasons.append(
          f"the latent {d.latent} is already quantised (y - quantize(y) is "
          "constant in every channel): name the tensor before the rounding")
    image_diff = None
    if d.image_float is not None:
      yf = self._analysis(tf.cast(x, tf.float32) / 255., d)
      image_diff = float(tf.reduce_max(tf.abs(yf - y)).numpy())
      bound = 1e-3 * max(1.0, float(tf.reduce_max(tf.abs(y)).numpy()))
      if not image_diff <= bound:
        reasons.append(
            f"the analysis of the float image through {d.image_float} "
            f"differs from that of the uint8 image by {image_diff:.4g} (> "
            f"{bound:.3g})")
    return {"ok": not reasons, "max_abs_diff": worst,
            "image_max_abs_diff": image_diff,
            "latent_shape": y.shape.as_list(),
            "reason": "; ".join(reasons) or None}

  def tensor_rows(self) -> List[dict]:
    """Every tensor of the graph with the roles in use and the roles it
    could play (`tensors.tensor_rows`), sorted by name."""
    d = self.tensors
    return tensors_lib.tensor_rows(self._graph, self.signatures, d.roles(),
                                   d.sources)

  def get_config(self):
    d = self.tensors
    return {"name": self.model_name, "path": self.path, "sha256": self.sha256,
            "distortion": self.distortion, "format": "tfci-metagraph",
            "tensors": d.roles(), "tensor_sources": dict(d.sources),
            "reconstruction_scale": d.reconstruction_scale,
            "discovery_errors": {r: d.errors[r] for r in d.missing()},
            "self_check_ok": None if self.check is None else self.check["ok"]}

  def finalize(self):
    """Nothing to do: a metagraph's range coding tables are constants of its
    graph (the Codec interface's finalize step). Returns the model."""
    return self

  def compressed_dtypes(self):
    """dtypes of the receiver's inputs (the tensors of a .tfci file)."""
    return [self._t(n).dtype for n in self.signatures.receiver_inputs]

  # -- .tfci files ---------------------------------------------------------

  def compress_to_file(self, x, path) -> int:
    """Compresses ONE image (uint8 [1, H, W, 3] or [H, W, 3]) to a .tfci file
    readable by tfc's `tfci.py decompress` (`tfc_perception.codec.encode`).
    Returns the file size in bytes."""
    from tfc_perception import codec  # pylint: disable=g-import-not-at-top
    x = tf.convert_to_tensor(x)
    if x.shape.rank == 3:
      x = x[None]
    x = _as_images(x)
    if x.shape[0] != 1:
      raise ValueError(f"a .tfci file holds one image; got a batch of "
                       f"{x.shape[0]}.")
    data = codec.encode(self, x.numpy())
    _io.write_bytes(path, data)
    return len(data)

  def decompress_file(self, path, max_pixels: int = _validation.MAX_PIXELS):
    """Decodes a .tfci file made for this model -> uint8 [1, H, W, 3]
    (`tfc_perception.codec.decode`: the name in "MD" must be this model's,
    and the image sizes the file claims at most `max_pixels`).

    Raises:
      FileNotFoundError: no such file.
      ValueError: the file names another model, is corrupted, or claims a
        larger image than max_pixels.
    """
    from tfc_perception import codec  # pylint: disable=g-import-not-at-top
    path = os.fspath(path)
    if not os.path.isfile(path):
      raise FileNotFoundError(f"no .tfci file at {path}")
    with open(path, "rb") as f:
      data = f.read()
    return tf.constant(codec.decode(self, data, max_pixels)[None])


def write_tfci(path, model_name: str, tensors: Sequence) -> int:
  """Writes a .tfci file (`tfc_perception.codec.pack`: tfc.PackedTensors
  with "MD" = model name and the rank-1 tensors in order, plus a checksum
  tfci.py ignores), atomically.

  Returns:
    The number of bytes written.

  Raises:
    ValueError: a bad model name, or a tensor that is not rank 1.
  """
  from tfc_perception import codec  # pylint: disable=g-import-not-at-top
  data = codec.pack(model_name, tensors)
  _io.write_bytes(path, data)
  return len(data)


def read_tfci(path, dtypes: Optional[Sequence] = None):
  """Reads a .tfci file (`tfc_perception.codec.unpack`).

  Args:
    path: the file.
    dtypes: dtypes of the tensors to unpack (the receiver inputs); None
      returns only the model name and an empty list.

  Returns:
    (model name, list of tensors).

  Raises:
    FileNotFoundError, ValueError: missing or malformed file.
  """
  from tfc_perception import codec  # pylint: disable=g-import-not-at-top
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise FileNotFoundError(f"no .tfci file at {path}")
  with open(path, "rb") as f:
    data = f.read()
  if dtypes is None:
    return codec.read_model_name(data), []
  f = codec.unpack(data, list(dtypes))
  tensors = [tf.constant(t, tf.as_dtype(d)) if len(t) else
             tf.zeros([0], tf.as_dtype(d)) for t, d in zip(f.tensors, dtypes)]
  return f.model, tensors

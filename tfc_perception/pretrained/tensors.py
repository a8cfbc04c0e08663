"""The internal tensors of a tfci graph, by role: names given by the user,
their validation, the candidates for each role, and the listing printed by
`bin/download tensors MODEL` (tfc's `tfci.py tensors`, with op types and the
roles marked).

Induced distances (Hepburn et al., ICLR 2022, Sec. 4, Fig. 3: Din between
latents, Dr between reconstructions) need four tensors inside a pretrained
graph that its signatures do not expose:

  image           float image in [0, 1] that the analysis reads (after the
                  graph's own uint8 -> float /255); optional: without it a
                  float image is quantised to uint8 and fed to the sender
  latent          y = f(x), the analysis output before quantisation
  latent_hat      y_hat, the dequantised latent that the synthesis reads
  reconstruction  x_hat = g(y_hat), the float synthesis output before the
                  conversion to uint8 pixels

`tfci.discover_tensors` finds them by structure; where it cannot, or finds a
wrong one, the user names them (`pretrained.load(name, tensors={...})`,
`--tensors role=name,...`, or a registry entry). This module does not import
TensorFlow: it works on an imported graph handed to it.
"""

import collections
import difflib
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Set

__all__ = ["ROLES", "REQUIRED_ROLES", "ROLE_HELP", "FLAG_HELP", "Graph",
           "parse_tensors", "candidates", "validate_tensors", "tensor_rows",
           "format_listing"]

ROLES = ("image", "latent", "latent_hat", "reconstruction")
REQUIRED_ROLES = ("latent", "latent_hat", "reconstruction")
ROLE_HELP = {
    "image": "float image in [0, 1] read by the analysis (optional)",
    "latent": "y, the analysis output before quantisation",
    "latent_hat": "y_hat, the dequantised latent read by the synthesis",
    "reconstruction": "float synthesis output before conversion to pixels",
}
FLAG_HELP = ("Internal tensors of tfci (.metagraph) models, overriding "
             "structure discovery: role=name,... with roles " +
             ", ".join(ROLES) + " and names as listed by `bin/download "
             "tensors MODEL` (e.g. latent=analysis/Conv2D:0).")

# Ops whose outputs live inside a TF1 while loop or TensorArray flow: a
# pruned function cannot be fed or fetched there.
_LOOP_OPS = ("Enter", "Exit", "Merge", "Switch", "NextIteration", "LoopCond",
             "RefEnter", "RefExit", "RefMerge", "RefSwitch",
             "RefNextIteration")


class Graph:
  """Adjacency of a tf.Graph over data edges (control edges ignored)."""

  def __init__(self, graph):
    self.graph = graph
    self.consumers = collections.defaultdict(list)
    for op in graph.get_operations():
      for t in op.inputs:
        self.consumers[t.name].append(op)

  def tensor(self, name):
    return self.graph.as_graph_element(name)

  def ancestors(self, tensors, stop: Iterable = ()) -> Dict[object, int]:
    """BFS upstream: op -> distance (in ops) from the nearest root tensor.
    Ops in `stop` are reached but not expanded."""
    stop = set(stop)
    depth = {}
    queue = collections.deque()
    for t in tensors:
      if t.op not in depth:
        depth[t.op] = 0
        queue.append(t.op)
    while queue:
      op = queue.popleft()
      if op in stop:
        continue
      for t in op.inputs:
        if t.op not in depth:
          depth[t.op] = depth[op] + 1
          queue.append(t.op)
    return depth

  def descendants(self, tensors) -> Set[object]:
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

  def hops(self, op) -> Dict[object, int]:
    """Undirected BFS distance (in ops) from `op` to every connected op."""
    dist = {op: 0}
    queue = collections.deque([op])
    while queue:
      o = queue.popleft()
      near = [t.op for t in o.inputs] + [
          c for out in o.outputs for c in self.consumers[out.name]]
      for n in near:
        if n not in dist:
          dist[n] = dist[o] + 1
          queue.append(n)
    return dist


def _loop_bodies(g: Graph) -> Set[object]:
  """Ops inside TF1 while loops: downstream of an Enter, before its Exit."""
  inside = set()
  queue = collections.deque(op for op in g.graph.get_operations()
                            if op.type in ("Enter", "RefEnter"))
  while queue:
    op = queue.popleft()
    if op in inside:
      continue
    inside.add(op)
    if op.type in ("Exit", "RefExit"):
      continue
    for out in op.outputs:
      queue.extend(c for c in g.consumers[out.name] if c not in inside)
  return inside


def parse_tensors(spec) -> Dict[str, str]:
  """Reads user-given tensor names.

  Args:
    spec: None or "" (none given); a mapping role -> name; a string
      "role=name,role=name"; or a list of "role=name" items (what an absl
      list flag gives). Names are graph tensor names ("scope/op:0"); an op
      name without ":k" means its first output (":0").

  Returns:
    {role: tensor name}, roles among `ROLES`.

  Raises:
    ValueError: an unknown role (the message lists the roles), a repeated
      role, an item without "=", or an empty name.
  """
  if spec is None or spec == "" or spec == []:
    return {}
  if isinstance(spec, Mapping):
    items = list(spec.items())
  else:
    parts = [spec] if isinstance(spec, str) else list(spec)
    items = []
    for part in parts:
      if not isinstance(part, str):
        raise ValueError(f"tensors: expected role=name strings, got {part!r}.")
      for item in part.split(","):
        item = item.strip()
        if not item:
          continue
        if "=" not in item:
          raise ValueError(f"tensors: {item!r} is not role=name; accepted "
                           f"roles: {', '.join(ROLES)}.")
        role, name = item.split("=", 1)
        items.append((role.strip(), name.strip()))
  out: Dict[str, str] = {}
  for role, name in items:
    if role not in ROLES:
      raise ValueError(f"tensors: unknown role {role!r}; accepted: "
                       f"{', '.join(ROLES)}.")
    if not isinstance(name, str) or not name.strip():
      raise ValueError(f"tensors: {role} needs a tensor name, got {name!r}.")
    if role in out:
      raise ValueError(f"tensors: {role} is given twice ({out[role]!r}, "
                       f"{name!r}).")
    name = name.strip()
    out[role] = name if ":" in name else name + ":0"
  return out


class _Places:
  """Where each role may lie: the sender path (image -> bit strings) and
  the receiver path (bit strings -> uint8 image), outside loops, and not
  downstream of a receiver input that the decoding does not use (the image
  shape of the final crop): a function from latent_hat cannot be fed it."""

  def __init__(self, g: Graph, sig):
    image = g.tensor(sig.image)
    s_strings = [g.tensor(n) for n in sig.sender_outputs
                 if g.tensor(n).dtype.name == "string"]
    r_in = [g.tensor(n) for n in sig.receiver_inputs]
    r_strings = [t for t in r_in if t.dtype.name == "string"]
    out = g.tensor(sig.reconstruction_uint8)
    self.sender = g.descendants([image]).intersection(g.ancestors(s_strings))
    down = g.descendants(r_strings)
    self.receiver = down.intersection(g.ancestors([out]))
    self.image_op = image.op
    self.loop = _loop_bodies(g)
    decoders = {op for op in down
                if any(i.dtype.name == "string" for i in op.inputs)}
    self.aux = [t for t in r_in if t.dtype.name != "string"
                and not g.descendants([t]).intersection(decoders)]
    self.after_aux = g.descendants(self.aux) if self.aux else set()


def _shape(t):
  return None if t.shape.rank is None else t.shape.as_list()


def _fits(role: str, t, places: _Places) -> Optional[str]:
  """None if tensor `t` can play `role`, else why not (for messages)."""
  if not t.dtype.is_floating:
    return f"has dtype {t.dtype.name}, needs a float tensor"
  rank = t.shape.rank
  if rank is not None and rank not in (3, 4):
    return f"has rank {rank} (shape {_shape(t)}), needs rank 3 or 4"
  if role in ("image", "reconstruction") and rank is not None and (
      t.shape[-1] is not None and t.shape[-1] != 3):
    return f"has {t.shape[-1]} channels (shape {_shape(t)}), needs 3"
  if t.op in places.loop or t.op.type in _LOOP_OPS or (
      t.op.type.startswith("TensorArray")):
    return "lies inside a while loop / TensorArray flow"
  if role in ("image", "latent"):
    if t.op not in places.sender or t.op is places.image_op:
      return ("is not between the sender's uint8 image input and its bit "
              "strings")
  elif t.op not in places.receiver:
    return ("is not between the receiver's bit strings and its uint8 image "
            "output")
  elif t.op in places.after_aux:
    return ("depends on the receiver input "
            f"{', '.join(a.name for a in places.aux)} (the image shape), so it "
            "is not computed from latent_hat alone: pick one before the "
            "receiver's crop")
  return None


def candidates(g: Graph, sig, role: str) -> List:
  """Every tensor that could play `role` (float, rank 3/4 or unknown, on the
  right side of the codec, outside loops), in graph order."""
  places = _Places(g, sig)
  return [t for op in g.graph.get_operations() for t in op.outputs
          if _fits(role, t, places) is None]


def _nearest(g: Graph, name: str, pool: Sequence, k: int = 5) -> List[str]:
  """The `k` candidates nearest to `name`: by graph distance when `name`
  exists (then by spelling), else by spelling."""
  try:
    op = g.tensor(name).op
  except (KeyError, ValueError, TypeError):
    op = None
  dist = g.hops(op) if op is not None else {}

  def spelling(t):
    return -difflib.SequenceMatcher(None, name, t.name).ratio()

  ranked = sorted(pool, key=lambda t: (dist.get(t.op, 10 ** 9), spelling(t),
                                       t.name))
  return [t.name for t in ranked[:k]]


def validate_tensors(g: Graph, sig, given: Mapping[str, str],
                     model: str = "model") -> Dict[str, str]:
  """Checks user-given tensor names against the graph.

  Args:
    g: the imported graph (`Graph`).
    sig: the codec's signature tensors (`tfci.SignatureTensors`).
    given: {role: name} from `parse_tensors`.
    model: model name for messages.

  Returns:
    `given`, unchanged, if every name exists and fits its role: float, rank
    3 or 4 (3 channels for image and reconstruction), between the sender's
    image and bit strings (image, latent) or between the receiver's bit
    strings and image (latent_hat, reconstruction).

  Raises:
    ValueError: one line naming the role, what is wrong and the nearest
      candidates for that role.
  """
  places = None
  for role, name in given.items():
    try:
      t = g.tensor(name)
      problem = None if hasattr(t, "dtype") else "is an operation"
    except (KeyError, ValueError, TypeError):
      t, problem = None, "is not a tensor of this graph"
    if problem is None:
      places = places or _Places(g, sig)
      problem = _fits(role, t, places)
    if problem is not None:
      near = _nearest(g, name, candidates(g, sig, role))
      raise ValueError(
          f"{model}: tensors: {role}={name!r} {problem}; nearest candidates "
          f"for {role}: {', '.join(near) if near else '(none)'} (list them "
          f"all with `bin/download tensors {model}`).")
  return dict(given)


def tensor_rows(g: Graph, sig, chosen: Mapping[str, Optional[str]],
                sources: Mapping[str, str]) -> List[dict]:
  """One row per tensor of the graph, sorted by name as tfc's `tfci.py
  tensors` prints them.

  Args:
    g, sig: the graph and signature tensors.
    chosen: {role: tensor name or None}: the tensors in use.
    sources: {role: "discovered" | "given" | "registry"}.

  Returns:
    Dicts with name, op, dtype, shape (static, None for unknown
    dimensions), side ("sender", "receiver" or "" for other ops), roles
    (e.g. ["latent (discovered)"]) and candidate_for (roles it could play).
  """
  places = _Places(g, sig)
  by_name = {v: r for r, v in chosen.items() if v}
  rows = []
  for op in g.graph.get_operations():
    for t in op.outputs:
      roles = [f"{r} ({sources.get(r, 'discovered')})" for r, v in
               chosen.items() if v == t.name]
      cand = [r for r in ROLES if by_name.get(t.name) != r
              and _fits(r, t, places) is None]
      side = ("sender" if op in places.sender or op is places.image_op else
              "receiver" if op in places.receiver else "")
      rows.append(dict(name=t.name, op=op.type, dtype=t.dtype.name,
                       shape=None if t.shape.rank is None else tuple(
                           t.shape.as_list()),
                       side=side, roles=roles, candidate_for=cand))
  rows.sort(key=lambda r: r["name"])
  return rows


def format_listing(listing: Mapping, candidates_only: bool = False
                   ) -> List[str]:
  """Text lines of `pretrained.list_tensors`: a header with the tensor in
  use for each role, where it came from and the self-check, then one line
  per tensor (name, op type, dtype, static shape with ? for unknown
  dimensions, side, roles in use and roles it could play).

  Args:
    listing: the dict `pretrained.list_tensors` returns.
    candidates_only: print only tensors in use or candidates for a role.
  """
  lines = [f"# model {listing['model']}: {listing['path']} (sha256 "
           f"{listing['sha256']})"]
  for role in ROLES:
    r = listing["roles"][role]
    what = (f"{r['tensor']}  ({r['source']})" if r["tensor"] else
            f"(not found: {r['error']})")
    lines.append(f"# {role:<15} {what}")
  check = listing["check"]
  if check is None:
    lines.append("# self-check: not run (a required tensor is missing)")
  else:
    where = (f"stored in {check['stored_in']}" if check.get("stored_in")
             else "kept in memory")
    state = (f"ok, max_abs_diff {check['max_abs_diff']}" if check["ok"] else
             f"FAILED: {check['reason']}")
    lines.append(f"# self-check: {state} ({check['source']}; {where})")
  rows = [r for r in listing["rows"] if not candidates_only
          or r["roles"] or r["candidate_for"]]
  lines.append(f"# {len(rows)} tensors: name, op, dtype, shape, side, roles "
               "(<- in use, candidate: could play)")
  if not rows:
    return lines
  width = max(len(r["name"]) for r in rows)
  opw = max(len(r["op"]) for r in rows)
  for r in rows:
    shape = "unknown" if r["shape"] is None else "(" + ", ".join(
        "?" if d is None else str(d) for d in r["shape"]) + ")"
    marks = []
    if r["roles"]:
      marks.append("<- " + ", ".join(r["roles"]))
    if r["candidate_for"]:
      marks.append("candidate: " + ", ".join(r["candidate_for"]))
    lines.append(f"{r['name']:<{width}}  {r['op']:<{opw}}  "
                 f"{r['dtype']:<8} {shape:<20} {r['side']:<8} "
                 f"{'  '.join(marks)}".rstrip())
  return lines

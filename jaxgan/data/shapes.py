"""``shapes``: procedural captioned images, jaxgan's own benchmark data.

Every example is one or two coloured shapes on a plain background, rendered
from a handful of known attributes (shape, colour, size, position in a 3x3 grid,
background colour). The captions are written from the same attributes in several
phrasings (synonyms and word orders), so how well a generated image follows its
caption can be measured exactly, e.g. with a probe classifier trained on
:func:`render` outputs, and the (shape, colour) pairs in :data:`HOLDOUT_PAIRS`
never appear in the ``train`` split, which tests compositional generalisation.

Examples are rendered on demand, deterministically from ``(seed, split, index)``,
so the source needs no files, no download and no disk space, and any host can
read any shard of it.

No flip or rotation augmentation may be applied to this source: captions say
"left", "right", "top" and "bottom", and a horizontal flip would make them
false (a vertical flip or rotation likewise).

Public API:
  * :class:`ShapesSource`: a grain-compatible random-access source.
  * :func:`describe`: the canonical caption of given attributes.
  * :func:`render`: the image of given attributes.
  * :data:`SHAPES`, :data:`COLOURS`, :data:`SIZES`, :data:`POSITIONS`,
    :data:`BACKGROUNDS`: the label names (attribute values index them).
  * :data:`HOLDOUT_PAIRS`: (shape, colour) index pairs held out of ``train``.
"""

from __future__ import annotations

import operator
from typing import Any, Mapping, Sequence

import numpy as np

# ---------------------------------------------------------------------------
# Attribute vocabularies. Index i of each tuple is the label value i; the
# *_WORDS tables give the phrasings used in captions, the canonical one first.
# ---------------------------------------------------------------------------

SHAPES = ("circle", "square", "triangle", "diamond", "star", "hexagon",
          "cross", "ring")
SHAPE_WORDS = (
    ("circle", "disc", "disk"),
    ("square", "block"),
    ("triangle",),
    ("diamond", "rhombus"),
    ("star",),
    ("hexagon",),
    ("cross", "plus sign", "plus"),
    ("ring", "hoop", "donut"),
)

COLOURS = ("red", "orange", "yellow", "green", "cyan", "blue", "purple",
           "pink", "white", "black")
COLOUR_WORDS = (
    ("red", "crimson", "scarlet"),
    ("orange", "tangerine"),
    ("yellow", "golden"),
    ("green", "emerald"),
    ("cyan", "turquoise", "aqua"),
    ("blue", "cobalt"),
    ("purple", "violet"),
    ("pink",),
    ("white", "snow white"),
    ("black", "jet black"),
)
COLOUR_RGB = np.array([
    (220, 30, 30), (250, 140, 0), (250, 225, 20), (30, 160, 60),
    (0, 200, 220), (30, 80, 230), (140, 50, 190), (250, 130, 190),
    (250, 250, 250), (12, 12, 12)], dtype=np.uint8)

SIZES = ("small", "medium", "large")
SIZE_WORDS = (
    ("small", "little", "tiny"),
    ("medium", "medium sized", "mid sized"),
    ("large", "big", "huge"),
)
# Half-extent of an object as a fraction of the image side. A grid cell is 1/3
# wide, so even a large object (plus jitter) stays inside its own cell: objects
# never overlap and never leave the image.
SIZE_RADII = (0.085, 0.115, 0.15)

# 3x3 grid, row-major: index = 3 * row + column.
POSITIONS = ("top left", "top", "top right", "left", "center", "right",
             "bottom left", "bottom", "bottom right")
# Bare names (used in "top left: a red circle") ...
POSITION_WORDS = (
    ("top left", "upper left", "top left corner"),
    ("top", "top middle", "top centre"),
    ("top right", "upper right", "top right corner"),
    ("left", "middle left", "left side"),
    ("center", "centre", "middle"),
    ("right", "middle right", "right side"),
    ("bottom left", "lower left", "bottom left corner"),
    ("bottom", "bottom middle", "bottom centre"),
    ("bottom right", "lower right", "bottom right corner"),
)
# ... and with the preposition English wants for each ("at the top", "on the left").
POSITION_PHRASES = (
    ("in the top left", "in the upper left", "in the top left corner"),
    ("at the top", "at the top middle", "at the top centre"),
    ("in the top right", "in the upper right", "in the top right corner"),
    ("on the left", "in the middle left", "on the left side"),
    ("in the center", "in the centre", "in the middle"),
    ("on the right", "in the middle right", "on the right side"),
    ("in the bottom left", "in the lower left", "in the bottom left corner"),
    ("at the bottom", "at the bottom middle", "at the bottom centre"),
    ("in the bottom right", "in the lower right", "in the bottom right corner"),
)

BACKGROUNDS = ("black", "white", "gray", "navy", "beige", "brown")
BACKGROUND_WORDS = (
    ("black", "dark"),
    ("white",),
    ("gray", "grey"),
    ("navy", "navy blue", "dark blue"),
    ("beige", "cream"),
    ("brown",),
)
BACKGROUND_RGB = np.array([
    (0, 0, 0), (255, 255, 255), (128, 128, 128), (20, 30, 90),
    (230, 215, 180), (105, 65, 35)], dtype=np.uint8)

# Relation of the first object to the second, derived from grid positions.
RELATIONS = ("left of", "right of", "above", "below")
RELATION_WORDS = (
    ("left of", "to the left of"),
    ("right of", "to the right of"),
    ("above",),
    ("below", "beneath", "under"),
)

# (shape, colour) pairs never drawn in the train split: 10 of the 80 pairs,
# every colour exactly once and every shape at least once, so a model must
# compose a shape and a colour it has only seen apart.
HOLDOUT_PAIRS = (
    (0, 0),  # circle, red
    (3, 1),  # diamond, orange
    (6, 2),  # cross, yellow
    (1, 3),  # square, green
    (4, 4),  # star, cyan
    (7, 5),  # ring, blue
    (2, 6),  # triangle, purple
    (5, 7),  # hexagon, pink
    (0, 8),  # circle, white
    (3, 9),  # diamond, black
)
_HOLDOUT_SET = frozenset(HOLDOUT_PAIRS)
_TRAIN_PAIRS = tuple((s, c) for s in range(len(SHAPES))
                     for c in range(len(COLOURS)) if (s, c) not in _HOLDOUT_SET)
_ALL_PAIRS = tuple((s, c) for s in range(len(SHAPES)) for c in range(len(COLOURS)))

SPLITS = ("train", "holdout")
MIN_IMAGE_SIZE = 16
MAX_IMAGE_SIZE = 256
# Captions per example: the canonical one (:func:`describe`) first, then
# random phrasings.
NUM_CAPTIONS = 5


def _colour_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  """'Redmean' RGB distance: cheap, and close enough to what the eye sees."""
  a = a.astype(np.float64)
  b = b.astype(np.float64)
  rmean = (a[..., 0] + b[..., 0]) / 2
  d = a - b
  return np.sqrt((2 + rmean / 256) * d[..., 0] ** 2 + 4 * d[..., 1] ** 2
                 + (2 + (255 - rmean) / 256) * d[..., 2] ** 2)


# A background is allowed behind an object colour only when the two are this
# far apart; this rules out e.g. white on white or beige, black on black, navy
# or brown, pink on beige (the scale goes up to about 765).
_MIN_CONTRAST = 180.0
# [num_colours, num_backgrounds] bool.
_BACKGROUND_OK = (_colour_distance(COLOUR_RGB[:, None], BACKGROUND_RGB[None])
                  >= _MIN_CONTRAST)


def allowed_backgrounds(colours: Sequence[int]) -> tuple[int, ...]:
  """The backgrounds that contrast with every given object colour.

  Args:
    colours: object colour indices (into :data:`COLOURS`).

  Returns:
    Background indices (into :data:`BACKGROUNDS`), never empty for one or two
    colours.
  """
  ok = np.all(_BACKGROUND_OK[list(colours)], axis=0)
  return tuple(int(i) for i in np.flatnonzero(ok))


def relation(position_a: int, position_b: int) -> int:
  """Where object A is relative to object B, as an index into :data:`RELATIONS`.

  The axis with the larger grid distance wins; on a diagonal tie the vertical
  relation is used. Both are true statements about the image, since positions
  are distinct cells and objects never leave their cell.

  Args:
    position_a: grid cell of A (0..8, row-major).
    position_b: grid cell of B, different from A.

  Returns:
    0 "left of", 1 "right of", 2 "above" or 3 "below".
  """
  row_a, col_a = divmod(int(position_a), 3)
  row_b, col_b = divmod(int(position_b), 3)
  if (row_a, col_a) == (row_b, col_b):
    raise ValueError(f"positions must differ, got {position_a} twice")
  if abs(col_a - col_b) > abs(row_a - row_b):
    return 0 if col_a < col_b else 1
  return 2 if row_a < row_b else 3


# ---------------------------------------------------------------------------
# Rendering: signed distance functions on the pixel grid, anti-aliased.
# ---------------------------------------------------------------------------


def _regular_polygon(n: int, phase: float, radii: Sequence[float] = (1.0,)
                     ) -> np.ndarray:
  """Vertices [n*len(radii), 2] (x right, y down) of a (star) polygon."""
  count = n * len(radii)
  angles = phase + 2 * np.pi * np.arange(count) / count
  r = np.resize(np.asarray(radii, np.float64), count)
  return np.stack([r * np.cos(angles), r * np.sin(angles)], axis=1)


def _centre_vertically(vertices: np.ndarray) -> np.ndarray:
  """Centres the bounding box on the origin, so the object sits in its cell."""
  y = vertices[:, 1]
  return vertices - np.array([0.0, (y.max() + y.min()) / 2])


# Polygon outlines in object units (the object spans [-1, 1]), y pointing down.
_UP = -np.pi / 2  # a vertex pointing to the top of the image
_POLYGONS = {
    "square": np.array([(-0.82, -0.82), (0.82, -0.82), (0.82, 0.82),
                        (-0.82, 0.82)]),
    "triangle": _centre_vertically(_regular_polygon(3, _UP) * [1.12, 1.12]),
    "diamond": np.array([(0.0, -1.0), (0.72, 0.0), (0.0, 1.0), (-0.72, 0.0)]),
    "star": _centre_vertically(_regular_polygon(5, _UP, (1.05, 0.45))),
    "hexagon": _regular_polygon(6, 0.0),
    "cross": np.array([(-0.3, -0.95), (0.3, -0.95), (0.3, -0.3), (0.95, -0.3),
                       (0.95, 0.3), (0.3, 0.3), (0.3, 0.95), (-0.3, 0.95),
                       (-0.3, 0.3), (-0.95, 0.3), (-0.95, -0.3),
                       (-0.3, -0.3)]),
}


class _Edges:
  """A polygon's edges, precomputed as [E, 1, 1] arrays for grid broadcasting."""

  def __init__(self, vertices: np.ndarray):
    a = vertices.astype(np.float32)
    e = np.roll(a, -1, axis=0) - a
    col = lambda v: v.reshape(-1, 1, 1).astype(np.float32)
    self.ax, self.ay = col(a[:, 0]), col(a[:, 1])
    self.ex, self.ey = col(e[:, 0]), col(e[:, 1])
    self.inv_len2 = col(1.0 / (e ** 2).sum(axis=1))
    # dx/dy of each edge for the crossing test; horizontal edges never cross a
    # horizontal ray, so their slope is unused (0 avoids a division by zero).
    ey = e[:, 1]
    slope = np.divide(e[:, 0], ey, out=np.zeros_like(ey), where=ey != 0)
    self.slope = col(slope)


_EDGES = {name: _Edges(v) for name, v in _POLYGONS.items()}


def _polygon_sdf(edges: _Edges, x: np.ndarray, y: np.ndarray) -> np.ndarray:
  """Signed distance (negative inside) of grid points to a polygon.

  All edges are handled at once on an [E, h, w] grid, which keeps the number of
  numpy calls (the real cost at these sizes) small.

  Args:
    edges: the polygon.
    x: [1, w] point x coordinates in object units.
    y: [h, 1] point y coordinates in object units.

  Returns:
    [h, w] signed distance in object units.
  """
  wx = x[None] - edges.ax
  wy = y[None] - edges.ay
  t = np.clip((wx * edges.ex + wy * edges.ey) * edges.inv_len2, 0.0, 1.0)
  dx = wx - edges.ex * t
  dy = wy - edges.ey * t
  dist = np.sqrt(np.min(dx * dx + dy * dy, axis=0))
  # Even-odd rule: count edges crossed by a ray from the point towards +x.
  spans = (edges.ay <= y[None]) != (edges.ay + edges.ey <= y[None])
  crosses = spans & (x[None] < edges.ax + wy * edges.slope)
  inside = np.count_nonzero(crosses, axis=0) % 2 == 1
  return np.where(inside, -dist, dist)


def _shape_sdf(shape: int, x: np.ndarray, y: np.ndarray) -> np.ndarray:
  """Signed distance in object units; x is [1, w], y is [h, 1]."""
  name = SHAPES[shape]
  if name == "circle":
    return np.sqrt(x * x + y * y) - 1.0
  if name == "ring":
    # An annulus between radii 0.55 and 1.
    return np.abs(np.sqrt(x * x + y * y) - 0.775) - 0.225
  return _polygon_sdf(_EDGES[name], x, y)


def _cell_centre(position: int) -> tuple[float, float]:
  row, col = divmod(int(position), 3)
  return (col + 0.5) / 3, (row + 0.5) / 3


def _max_jitter(size: int) -> float:
  """How far an object may move from its cell centre and stay in the cell."""
  return max(0.0, 1 / 6 - SIZE_RADII[size] - 0.01)


def _draw(canvas: np.ndarray, shape: int, colour: int, size: int,
          centre: tuple[float, float]) -> None:
  """Alpha-blends one anti-aliased object into ``canvas`` (uint8, in place)."""
  image_size = canvas.shape[0]
  radius = SIZE_RADII[size]
  cx, cy = centre
  # Only the object's bounding box (plus a pixel of anti-aliasing) is touched.
  x0 = max(int(np.floor((cx - radius) * image_size)) - 1, 0)
  x1 = min(int(np.ceil((cx + radius) * image_size)) + 1, image_size)
  y0 = max(int(np.floor((cy - radius) * image_size)) - 1, 0)
  y1 = min(int(np.ceil((cy + radius) * image_size)) + 1, image_size)
  # Pixel centres, in object units (the object spans [-1, 1]).
  scale = 1.0 / (radius * image_size)
  x = ((np.arange(x0, x1, dtype=np.float32) + 0.5) * scale
       - np.float32(cx / radius))[None, :]
  y = ((np.arange(y0, y1, dtype=np.float32) + 0.5) * scale
       - np.float32(cy / radius))[:, None]
  d = _shape_sdf(shape, x, y)
  # Distance in pixels -> fraction of the pixel covered (a 1-pixel ramp).
  alpha = np.clip(0.5 - d * np.float32(radius * image_size), 0.0, 1.0)
  region = canvas[y0:y1, x0:x1].astype(np.float32)
  target = COLOUR_RGB[colour].astype(np.float32)
  region += (target - region) * alpha[..., None]
  canvas[y0:y1, x0:x1] = np.rint(region).astype(np.uint8)


def _validate_image_size(image_size: Any) -> int:
  if (isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer))
      or not MIN_IMAGE_SIZE <= image_size <= MAX_IMAGE_SIZE):
    raise ValueError(f"image_size must be an integer in {MIN_IMAGE_SIZE}.."
                     f"{MAX_IMAGE_SIZE}, got {image_size!r}")
  return int(image_size)


def _objects(attributes: Mapping[str, Any]) -> list[tuple[int, int, int, int]]:
  """(shape, colour, size, position) of each present object, validated."""
  n = int(np.asarray(attributes["num_objects"]))
  if n not in (1, 2):
    raise ValueError(f"num_objects must be 1 or 2, got {n}")
  fields = [np.atleast_1d(np.asarray(attributes[k])).astype(int)
            for k in ("shape", "colour", "size", "position")]
  limits = (len(SHAPES), len(COLOURS), len(SIZES), len(POSITIONS))
  objects = []
  for i in range(n):
    values = tuple(int(f[i]) for f in fields)
    for key, value, limit in zip(("shape", "colour", "size", "position"),
                                 values, limits):
      if not 0 <= value < limit:
        raise ValueError(f"{key}[{i}]={value} is outside 0..{limit - 1}")
    objects.append(values)
  if n == 2 and objects[0][3] == objects[1][3]:
    raise ValueError("the two objects must be in different grid positions")
  background = int(np.asarray(attributes["background"]))
  if not 0 <= background < len(BACKGROUNDS):
    raise ValueError(f"background={background} is outside "
                     f"0..{len(BACKGROUNDS) - 1}")
  return objects


def render(attributes: Mapping[str, Any], image_size: int,
           offsets: np.ndarray | None = None) -> np.ndarray:
  """Renders the image described by ``attributes``.

  Args:
    attributes: a dict like ``ShapesSource()[i]["attributes"]``: ``num_objects``,
      ``shape``, ``colour``, ``size``, ``position`` (per object, -1 padded) and
      ``background``; ints or numpy arrays.
    image_size: side of the square image, 16..256.
    offsets: optional [num_objects, 2] (dx, dy) shift of each object from its
      cell centre, as a fraction of the image side; clipped so objects stay in
      their cell. None centres every object in its cell.

  Returns:
    uint8 [image_size, image_size, 3].
  """
  image_size = _validate_image_size(image_size)
  objects = _objects(attributes)
  background = int(np.asarray(attributes["background"]))
  canvas = np.empty((image_size, image_size, 3), np.uint8)
  canvas[...] = BACKGROUND_RGB[background]
  for i, (shape, colour, size, position) in enumerate(objects):
    cx, cy = _cell_centre(position)
    if offsets is not None:
      limit = _max_jitter(size)
      cx += float(np.clip(offsets[i][0], -limit, limit))
      cy += float(np.clip(offsets[i][1], -limit, limit))
    _draw(canvas, shape, colour, size, (cx, cy))
  return canvas


# ---------------------------------------------------------------------------
# Captions.
# ---------------------------------------------------------------------------


def _article(phrase: str) -> str:
  return ("an " if phrase[0] in "aeiou" else "a ") + phrase


class _Uniforms:
  """Deterministic draws from pre-sampled uniforms.

  One ``rng.random(64)`` call and plain Python indexing is much cheaper than one
  Generator call per choice (dozens per example).
  """

  def __init__(self, rng: np.random.Generator):
    self._rng = rng
    self._values = rng.random(64).tolist()
    self._next = 0

  def uniform(self) -> float:
    if self._next == len(self._values):
      self._values = self._rng.random(64).tolist()
      self._next = 0
    value = self._values[self._next]
    self._next += 1
    return value

  def below(self, n: int) -> int:
    return min(int(self.uniform() * n), n - 1)

  def choice(self, options: Sequence[Any]) -> Any:
    return options[self.below(len(options))]

  def permutation(self, n: int) -> list[int]:
    order = list(range(n))
    for i in range(n - 1, 0, -1):
      j = self.below(i + 1)
      order[i], order[j] = order[j], order[i]
    return order


# Templates. Fields: o = object with article ("a large red circle"), n = without
# article, p = position with preposition ("in the top left"), w = bare position
# ("top left"), b = background colour, ab = background with article, r / ri =
# relation of object 1 to 2 / of 2 to 1. Suffixes 1 and 2 name the object.
# Colour always directly precedes shape, so captions stay parseable.
_ONE_OBJECT_TEMPLATES = (
    "{o} {p} on {ab} background",  # canonical: keep first
    "{p}, {o} on {ab} background",
    "{w}: {o}, {b} background",
    "{ab} background with {o} {p}",
    "there is {o} {p} of the image, on {ab} background",
    "{n} {p}, {b} background",
    "a picture of {o} {p} with {ab} background",
    "{o} on {ab} background, {p}",
)
_TWO_OBJECT_TEMPLATES = (
    "{o1} {p1} and {o2} {p2} on {ab} background",  # canonical: keep first
    "{o1} {r} {o2} on {ab} background",
    "{o2} {ri} {o1}, {b} background",
    "{w1}: {o1}; {w2}: {o2}; {b} background",
    "{ab} background with {o1} {r} {o2}",
    "{o2} {p2} and {o1} {p1}, {b} background",
    "two shapes on {ab} background: {o1} {r} {o2}",
    "{p1} {o1}, {p2} {o2}, on {ab} background",
)


def _fields(objects: Sequence[tuple[int, int, int, int]], background: int,
            pick) -> dict[str, str]:
  """Template fields, each word chosen by ``pick`` from its synonym tuple."""
  fields = {}
  for i, (shape, colour, size, position) in enumerate(objects):
    suffix = "" if len(objects) == 1 else str(i + 1)
    noun = (f"{pick(SIZE_WORDS[size])} {pick(COLOUR_WORDS[colour])} "
            f"{pick(SHAPE_WORDS[shape])}")
    fields["n" + suffix] = noun
    fields["o" + suffix] = _article(noun)
    fields["p" + suffix] = pick(POSITION_PHRASES[position])
    fields["w" + suffix] = pick(POSITION_WORDS[position])
  if len(objects) == 2:
    fields["r"] = pick(RELATION_WORDS[relation(objects[0][3], objects[1][3])])
    fields["ri"] = pick(RELATION_WORDS[relation(objects[1][3], objects[0][3])])
  fields["b"] = pick(BACKGROUND_WORDS[background])
  fields["ab"] = _article(fields["b"])
  return fields


def _templates(num_objects: int) -> tuple[str, ...]:
  return _ONE_OBJECT_TEMPLATES if num_objects == 1 else _TWO_OBJECT_TEMPLATES


def describe(attributes: Mapping[str, Any]) -> str:
  """The canonical caption of ``attributes`` (first synonym of every word).

  Args:
    attributes: a dict like ``ShapesSource()[i]["attributes"]``.

  Returns:
    E.g. "a large red circle in the top left on a black background", or for two
    objects "a small red circle in the top left and a large blue square in the
    center on a gray background".
  """
  objects = _objects(attributes)
  background = int(np.asarray(attributes["background"]))
  fields = _fields(objects, background, operator.itemgetter(0))
  return _templates(len(objects))[0].format(**fields)


def _captions(objects: Sequence[tuple[int, int, int, int]], background: int,
              draws: _Uniforms) -> list[str]:
  """The canonical caption, then NUM_CAPTIONS - 1 other random phrasings."""
  templates = _templates(len(objects))
  canonical = templates[0].format(
      **_fields(objects, background, operator.itemgetter(0)))
  captions = [canonical]
  # Distinct templates give distinct word orders; synonyms vary on top.
  for t in draws.permutation(len(templates) - 1)[:NUM_CAPTIONS - 1]:
    caption = templates[t + 1].format(
        **_fields(objects, background, draws.choice))
    captions.append(caption)
  return captions


# ---------------------------------------------------------------------------
# The source.
# ---------------------------------------------------------------------------


class ShapesSource:
  """Procedural captioned images, a grain ``RandomAccessDataSource``.

  Example ``i`` is a pure function of ``(seed, split, i)``: any process renders
  the same image and captions for it, which makes sharding and resuming trivial.
  Never apply horizontal flips to it (see the module docstring).

  Each item is a dict:
    * ``image``: uint8 [image_size, image_size, 3].
    * ``captions``: list of NUM_CAPTIONS distinct strings, the canonical one
      (:func:`describe`) first.
    * ``attributes``: int32 numpy arrays, -1 where the second object is absent:
      ``num_objects`` [], ``shape`` [2], ``colour`` [2], ``size`` [2],
      ``position`` [2] (0..8, row-major 3x3 grid), ``background`` [].
  """

  def __init__(self, split: str = "train", image_size: int = 64,
               num_examples: int = 100_000, seed: int = 0, max_objects: int = 2):
    """Creates the source.

    Args:
      split: "train" (no holdout pair anywhere) or "holdout" (the first object
        is always one of :data:`HOLDOUT_PAIRS`).
      image_size: side of the square images, 16..256.
      num_examples: length of the source.
      seed: picks a different, equally distributed set of examples.
      max_objects: 1 or 2 objects per image (2: half the images have two).

    Raises:
      ValueError: on an unknown split or an out-of-range argument.
    """
    if split not in SPLITS:
      raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    self.image_size = _validate_image_size(image_size)
    if (isinstance(num_examples, bool) or not isinstance(num_examples, (int, np.integer))
        or num_examples < 1):
      raise ValueError(f"num_examples must be a positive integer, got {num_examples!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
      raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if isinstance(max_objects, bool) or max_objects not in (1, 2):
      raise ValueError(f"max_objects must be 1 or 2, got {max_objects!r}")
    self.split = split
    self.num_examples = int(num_examples)
    self.seed = int(seed)
    self.max_objects = int(max_objects)
    self._split_id = SPLITS.index(split)

  def __len__(self) -> int:
    return self.num_examples

  def __repr__(self) -> str:
    return (f"ShapesSource(split={self.split!r}, image_size={self.image_size}, "
            f"num_examples={self.num_examples}, seed={self.seed}, "
            f"max_objects={self.max_objects})")

  def _index(self, index: Any) -> int:
    index = operator.index(index)  # accepts numpy integers (grain passes them)
    if index < 0:
      index += self.num_examples
    if not 0 <= index < self.num_examples:
      raise IndexError(f"index {index} out of range for {self.num_examples} examples")
    return index

  def _sample(self, index: Any):
    """Attributes, jitter offsets and captions of one example, without pixels."""
    index = self._index(index)
    draws = _Uniforms(np.random.default_rng([self.seed, self._split_id, index]))
    num_objects = 2 if self.max_objects == 2 and draws.uniform() < 0.5 else 1
    first_pairs = HOLDOUT_PAIRS if self.split == "holdout" else _TRAIN_PAIRS
    pairs = [draws.choice(first_pairs)]
    positions = [draws.below(9)]
    if num_objects == 2:
      # The second object is never a holdout pair (so a holdout image has
      # exactly one unseen combination) nor a copy of the first.
      second = draws.choice(_TRAIN_PAIRS)
      while second == pairs[0]:
        second = draws.choice(_TRAIN_PAIRS)
      pairs.append(second)
      positions.append((positions[0] + 1 + draws.below(8)) % 9)
    sizes = [draws.below(len(SIZES)) for _ in range(num_objects)]
    objects = [(s, c, z, p) for (s, c), z, p in zip(pairs, sizes, positions)]
    background = draws.choice(allowed_backgrounds([c for _, c in pairs]))
    offsets = [((2 * draws.uniform() - 1) * _max_jitter(z),
                (2 * draws.uniform() - 1) * _max_jitter(z)) for z in sizes]
    captions = _captions(objects, background, draws)
    return objects, background, offsets, captions

  def captions(self, index: int) -> list[str]:
    """The captions of example ``index``, without rendering it (cheap).

    Args:
      index: example index, 0 <= index < len(self).

    Returns:
      The same list as ``self[index]["captions"]``.
    """
    return self._sample(index)[3]

  def attributes(self, index: int) -> dict[str, np.ndarray]:
    """The ground-truth attributes of example ``index``, without rendering it.

    Args:
      index: example index, 0 <= index < len(self).

    Returns:
      The same dict as ``self[index]["attributes"]``.
    """
    objects, background, _, _ = self._sample(index)
    return _attribute_arrays(objects, background)

  def __getitem__(self, index: int) -> dict[str, Any]:
    objects, background, offsets, captions = self._sample(index)
    canvas = np.empty((self.image_size, self.image_size, 3), np.uint8)
    canvas[...] = BACKGROUND_RGB[background]
    for (shape, colour, size, position), (dx, dy) in zip(objects, offsets):
      cx, cy = _cell_centre(position)
      _draw(canvas, shape, colour, size, (cx + dx, cy + dy))
    return {"image": canvas, "captions": captions,
            "attributes": _attribute_arrays(objects, background)}


def _attribute_arrays(objects: Sequence[tuple[int, int, int, int]],
                      background: int) -> dict[str, np.ndarray]:
  """The ``attributes`` dict: per-object fields padded with -1 to 2 objects."""
  padded = np.full((4, 2), -1, np.int32)
  for i, obj in enumerate(objects):
    padded[:, i] = obj
  return {"num_objects": np.array(len(objects), np.int32),
          "shape": padded[0], "colour": padded[1], "size": padded[2],
          "position": padded[3], "background": np.array(background, np.int32)}

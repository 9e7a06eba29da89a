"""Tests of the procedural ``shapes`` source: determinism, ground truth, holdout, pixels."""

import re

import numpy as np
import pytest

from jaxgan.data import shapes
from jaxgan.data.shapes import ShapesSource


def _alternation(words):
  # Longest first, so "plus sign" wins over "plus" and "jet black" over "black".
  return "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))


def _lookup(table):
  return {w: i for i, words in enumerate(table) for w in words}


_SIZE = _lookup(shapes.SIZE_WORDS)
_COLOUR = _lookup(shapes.COLOUR_WORDS)
_SHAPE = _lookup(shapes.SHAPE_WORDS)
_BACKGROUND = _lookup(shapes.BACKGROUND_WORDS)
_RELATION = _lookup(shapes.RELATION_WORDS)
# An object noun phrase: size, colour and shape are always adjacent in captions.
_OBJECT_RE = re.compile(
    rf"\b({_alternation(_SIZE)}) ({_alternation(_COLOUR)}) ({_alternation(_SHAPE)})\b")
_BACKGROUND_RE = re.compile(rf"\b({_alternation(_BACKGROUND)}) background\b")
_RELATION_RE = re.compile(rf"\b({_alternation(_RELATION)})\b")


def _objects(attributes):
  n = int(attributes["num_objects"])
  return [tuple(int(attributes[k][i]) for k in ("size", "colour", "shape", "position"))
          for i in range(n)]


def _check_caption(caption, attributes):
  """Asserts that a caption states exactly the attributes' objects and background."""
  objects = _objects(attributes)
  found = [(_SIZE[m[1]], _COLOUR[m[2]], _SHAPE[m[3]], m.start())
           for m in _OBJECT_RE.finditer(caption)]
  assert sorted(f[:3] for f in found) == sorted(o[:3] for o in objects), caption
  backgrounds = [_BACKGROUND[m[1]] for m in _BACKGROUND_RE.finditer(caption)]
  assert backgrounds == [int(attributes["background"])], caption
  by_pair = {o[:3]: o[3] for o in objects}
  mentions_positions = all(
      any(w in caption for w in shapes.POSITION_WORDS[o[3]]) for o in objects)
  if len(objects) == 1:
    assert mentions_positions, caption
    return
  # Two objects: either both positions are named, or the relation between the
  # first-mentioned and the second-mentioned object is stated correctly.
  relations = [m for m in _RELATION_RE.finditer(caption)]
  if not relations:
    assert mentions_positions, caption
    return
  assert len(relations) == 1, caption
  first, second = sorted(found, key=lambda f: f[3])
  expected = shapes.relation(by_pair[first[:3]], by_pair[second[:3]])
  assert _RELATION[relations[0][1]] == expected, caption


def test_deterministic_and_seed_dependent():
  a = ShapesSource(seed=7, image_size=32)
  b = ShapesSource(seed=7, image_size=32)
  other_seed = ShapesSource(seed=8, image_size=32)
  other_split = ShapesSource(split="holdout", seed=7, image_size=32)
  for index in (0, 1, 99_999, np.int64(12)):
    x, y = a[index], b[index]
    np.testing.assert_array_equal(x["image"], y["image"])
    np.testing.assert_array_equal(a[index]["image"], x["image"])
    assert x["captions"] == y["captions"] == a.captions(index)
    for key in x["attributes"]:
      np.testing.assert_array_equal(x["attributes"][key], y["attributes"][key])
  differs = lambda s: sum(not np.array_equal(a[i]["image"], s[i]["image"])
                          for i in range(20))
  assert differs(other_seed) >= 18
  assert differs(other_split) >= 18
  assert [a.captions(i) for i in range(20)] != [other_seed.captions(i) for i in range(20)]


@pytest.mark.parametrize("image_size", [16, 64, 256])
def test_item_structure(image_size):
  source = ShapesSource(image_size=image_size, num_examples=10)
  assert len(source) == 10
  for index in range(3 if image_size == 256 else 10):
    item = source[index]
    assert set(item) == {"image", "captions", "attributes"}
    image = item["image"]
    assert image.dtype == np.uint8 and image.shape == (image_size, image_size, 3)
    captions = item["captions"]
    assert isinstance(captions, list) and len(set(captions)) == len(captions) >= 3
    attributes = item["attributes"]
    assert set(attributes) == {"num_objects", "shape", "colour", "size", "position",
                               "background"}
    for key, value in attributes.items():
      assert isinstance(value, np.ndarray) and value.dtype == np.int32, key
      assert value.shape == (() if key in ("num_objects", "background") else (2,)), key
    n = int(attributes["num_objects"])
    for key in ("shape", "colour", "size", "position"):
      assert np.all(attributes[key][n:] == -1) and np.all(attributes[key][:n] >= 0)


def test_captions_match_attributes():
  source = ShapesSource(seed=1, image_size=16)
  counts = np.zeros(3, int)
  for index in range(400):
    attributes = source.attributes(index)
    captions = source.captions(index)
    counts[int(attributes["num_objects"])] += 1
    assert captions[0] == shapes.describe(attributes)
    for caption in captions:
      # Lower-case ASCII words and a little punctuation: any simple tokenizer works.
      assert re.fullmatch(r"[a-z]+([ ,:;]+[a-z]+)*", caption), caption
      _check_caption(caption, attributes)
  assert counts[1] > 120 and counts[2] > 120  # both kinds are common
  # The cheap path agrees with the full item.
  item = source[5]
  assert item["captions"] == source.captions(5)


def test_vocabulary_and_variety():
  assert len(shapes.SHAPES) >= 8 and len(shapes.COLOURS) >= 10
  assert len(shapes.SIZES) == 3 and len(shapes.POSITIONS) == 9
  for table, names in ((shapes.SHAPE_WORDS, shapes.SHAPES),
                       (shapes.COLOUR_WORDS, shapes.COLOURS),
                       (shapes.SIZE_WORDS, shapes.SIZES),
                       (shapes.BACKGROUND_WORDS, shapes.BACKGROUNDS)):
    assert len(table) == len(names)
    assert [words[0] for words in table] == list(names)
  source = ShapesSource(seed=2)
  words = {w for i in range(300) for c in source.captions(i) for w in re.findall("[a-z]+", c)}
  for expected in ("centre", "center", "upper", "crimson", "grey", "big", "above"):
    assert expected in words
  assert ShapesSource(max_objects=1).attributes(0)["num_objects"] == 1
  assert all(ShapesSource(max_objects=1, seed=3).attributes(i)["num_objects"] == 1
             for i in range(50))


def test_holdout_pairs():
  pairs = set(shapes.HOLDOUT_PAIRS)
  total = len(shapes.SHAPES) * len(shapes.COLOURS)
  assert 0.08 <= len(pairs) / total <= 0.15
  assert {s for s, _ in pairs} == set(range(len(shapes.SHAPES)))
  assert {c for _, c in pairs} == set(range(len(shapes.COLOURS)))

  train = ShapesSource(split="train", seed=5)
  for index in range(3000):
    a = train.attributes(index)
    for i in range(int(a["num_objects"])):
      assert (int(a["shape"][i]), int(a["colour"][i])) not in pairs, index

  holdout = ShapesSource(split="holdout", seed=5)
  seen = set()
  for index in range(500):
    a = holdout.attributes(index)
    first = (int(a["shape"][0]), int(a["colour"][0]))
    assert first in pairs
    seen.add(first)
    if a["num_objects"] == 2:
      assert (int(a["shape"][1]), int(a["colour"][1])) not in pairs
  assert seen == pairs


def test_backgrounds_contrast_with_objects():
  for c1 in range(len(shapes.COLOURS)):
    for c2 in range(len(shapes.COLOURS)):
      assert shapes.allowed_backgrounds([c1, c2])
  source = ShapesSource(seed=4)
  for index in range(500):
    a = source.attributes(index)
    colours = a["colour"][:int(a["num_objects"])]
    assert int(a["background"]) in shapes.allowed_backgrounds(colours)
  used = {int(source.attributes(i)["background"]) for i in range(500)}
  assert used == set(range(len(shapes.BACKGROUNDS)))


def test_anti_aliased_edges():
  attributes = {"num_objects": 1, "shape": [0, -1], "colour": [0, -1], "size": [2, -1],
                "position": [4, -1], "background": 1}
  image = shapes.render(attributes, 64).astype(int)
  red = shapes.COLOUR_RGB[0].astype(int)
  white = shapes.BACKGROUND_RGB[1].astype(int)
  on_colour = np.all(image == red, axis=-1)
  on_background = np.all(image == white, axis=-1)
  partial = ~on_colour & ~on_background
  # A circle of radius ~9.6 px has an edge of ~60 px, nearly all partially covered.
  assert partial.sum() > 30
  # Partially covered pixels are blends of exactly the two colours.
  t = (image[partial] - white) / (red - white)
  assert np.all((t > -0.05) & (t < 1.05))
  assert np.allclose(t, t.mean(axis=1, keepdims=True), atol=0.05)
  # And the area is right: pi r^2 in coverage-weighted pixels.
  coverage = on_colour.sum() + t.mean(axis=1).sum()
  radius = shapes.SIZE_RADII[2] * 64
  assert abs(coverage - np.pi * radius ** 2) / (np.pi * radius ** 2) < 0.03


@pytest.mark.parametrize("shape", [s for s in shapes.SHAPES if s in shapes._POLYGONS])
def test_polygon_area(shape):
  # Checks the polygon distance function's sign (inside/outside) everywhere.
  index = shapes.SHAPES.index(shape)
  attributes = {"num_objects": 1, "shape": [index, -1], "colour": [9, -1],
                "size": [2, -1], "position": [4, -1], "background": 1}
  image = shapes.render(attributes, 128).astype(float)
  coverage = ((255 - image[..., 0]) / (255 - shapes.COLOUR_RGB[9, 0])).sum()
  x, y = shapes._POLYGONS[shape].T
  area = 0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))
  expected = area * (shapes.SIZE_RADII[2] * 128) ** 2
  assert abs(coverage - expected) / expected < 0.03


@pytest.mark.parametrize("image_size", [16, 48, 128])
def test_objects_drawn_in_their_cells(image_size):
  source = ShapesSource(seed=6, image_size=image_size)
  for index in range(60):
    item = source[index]
    image = item["image"].astype(int)
    a = item["attributes"]
    background = shapes.BACKGROUND_RGB[int(a["background"])].astype(int)
    covered = np.zeros(image.shape[:2], bool)
    for i in range(int(a["num_objects"])):
      row, col = divmod(int(a["position"][i]), 3)
      # Pixels the cell touches; anti-aliasing may tint the border pixel.
      rows = slice(row * image_size // 3, -(-(row + 1) * image_size // 3))
      cols = slice(col * image_size // 3, -(-(col + 1) * image_size // 3))
      covered[rows, cols] = True
      cell = image[rows, cols].reshape(-1, 3)
      colour = shapes.COLOUR_RGB[int(a["colour"][i])].astype(int)
      # Pixels mostly covered by the object (coverage read back from the blend
      # of the two colours) average to the named colour.
      span = colour - background
      coverage = (cell - background) @ span / (span @ span)
      assert coverage.max() > 0.4, (index, i)
      if image_size < 32:
        continue  # small rings and stars have sub-pixel strokes at 16 px
      near = coverage > 0.8
      assert near.sum() >= 2, (index, i)
      assert np.abs(cell[near].mean(0) - colour).max() < 30, (index, i)
    # Nothing outside the objects' cells: objects stay inside their cell.
    assert np.all(image[~covered] == background), index


def test_render_and_describe():
  attributes = {"num_objects": np.int32(2), "shape": np.array([4, 1]),
                "colour": np.array([5, 2]), "size": np.array([0, 2]),
                "position": np.array([3, 5]), "background": np.int32(0)}
  assert shapes.describe(attributes) == (
      "a small blue star on the left and a large yellow square on the right "
      "on a black background")
  image = shapes.render(attributes, 96)
  assert image.shape == (96, 96, 3) and image.dtype == np.uint8
  full = lambda im, colour: np.all(im == shapes.COLOUR_RGB[colour], axis=-1)
  # The small blue star is in the left cell, the large yellow square in the right.
  assert full(image[32:64, :32], 5).sum() > 10 and not full(image, 5)[:, 32:].any()
  assert full(image[32:64, 64:], 2).sum() > full(image, 5).sum()
  # An item re-rendered from its attributes has the same objects with the same
  # areas (only the small in-cell jitter differs).
  item = ShapesSource(seed=9, image_size=64)[3]
  again = shapes.render(item["attributes"], 64)
  a = item["attributes"]
  for i in range(int(a["num_objects"])):
    colour = int(a["colour"][i])
    assert abs(full(again, colour).sum() - full(item["image"], colour).sum()) <= 12


def test_relation():
  assert shapes.RELATIONS[shapes.relation(3, 5)] == "left of"
  assert shapes.RELATIONS[shapes.relation(5, 3)] == "right of"
  assert shapes.RELATIONS[shapes.relation(1, 7)] == "above"
  assert shapes.RELATIONS[shapes.relation(0, 4)] == "above"  # diagonal tie
  assert shapes.RELATIONS[shapes.relation(6, 5)] == "left of"  # wider than tall
  assert shapes.RELATIONS[shapes.relation(8, 2)] == "below"
  with pytest.raises(ValueError):
    shapes.relation(4, 4)


@pytest.mark.parametrize("kwargs", [
    {"split": "test"}, {"split": "validation"}, {"image_size": 8},
    {"image_size": 15}, {"image_size": 257}, {"image_size": 64.0},
    {"num_examples": 0}, {"seed": -1}, {"max_objects": 3}, {"max_objects": 0},
])
def test_bad_arguments(kwargs):
  with pytest.raises(ValueError):
    ShapesSource(**kwargs)


def test_bad_render_arguments():
  good = {"num_objects": 1, "shape": [0, -1], "colour": [0, -1], "size": [0, -1],
          "position": [0, -1], "background": 0}
  with pytest.raises(ValueError):
    shapes.render(good, 300)
  for key, value in (("shape", [8, -1]), ("colour", [10, -1]), ("num_objects", 3),
                     ("background", 6), ("position", [9, -1])):
    with pytest.raises(ValueError):
      shapes.render({**good, key: value}, 32)
  with pytest.raises(ValueError):  # two objects in one cell
    shapes.render({**good, "num_objects": 2, "shape": [0, 1], "colour": [0, 1],
                   "size": [0, 0], "position": [4, 4]}, 32)


def test_index_out_of_range():
  source = ShapesSource(num_examples=5, image_size=16)
  source[4]
  np.testing.assert_array_equal(source[-1]["image"], source[4]["image"])
  for index in (5, 100, -6):
    with pytest.raises(IndexError):
      source[index]
    with pytest.raises(IndexError):
      source.captions(index)
  with pytest.raises(TypeError):
    source[1.5]

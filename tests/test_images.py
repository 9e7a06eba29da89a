"""Tests for jaxgan.images: conversion, grids and atomic writers."""

import json
import os

import numpy as np
import pytest
from PIL import Image

from jaxgan import images


def _files(directory):
  return sorted(os.listdir(directory))


def test_to_uint8_known_values():
  x = np.array([-1.0, 0.0, 1.0, np.nan, -3.0, 2.5, np.inf, -np.inf, 0.5],
               np.float32)
  got = images.to_uint8(x)
  assert got.dtype == np.uint8
  # 0 -> 127.5 rounds half to even -> 128; 0.5 -> 191.25 -> 191.
  np.testing.assert_array_equal(got, [0, 128, 255, 0, 0, 255, 255, 0, 191])


def test_to_uint8_keeps_shape_accepts_jax_and_rejects_uint8():
  import jax.numpy as jnp
  x = jnp.zeros((2, 4, 5, 3), jnp.bfloat16)
  got = images.to_uint8(x)
  assert got.shape == (2, 4, 5, 3) and isinstance(got, np.ndarray)
  with pytest.raises(TypeError, match="uint8"):
    images.to_uint8(got)


def test_make_grid_layout_padding_and_empty_cells():
  # Five 2x3 images, each filled with its index + 1, on 2 columns.
  imgs = np.stack([np.full((2, 3, 1), i + 1, np.uint8) for i in range(5)])
  grid = images.make_grid(imgs, ncols=2, padding=1, pad_value=9)
  assert grid.shape == (3 * (2 + 1) + 1, 2 * (3 + 1) + 1, 1)
  assert grid.dtype == np.uint8
  for i in range(5):
    top, left = 1 + (i // 2) * 3, 1 + (i % 2) * 4
    np.testing.assert_array_equal(grid[top:top + 2, left:left + 3, 0], i + 1)
  # Padding rows/cols and the missing sixth cell hold pad_value.
  assert (grid[0] == 9).all() and (grid[:, 0] == 9).all()
  assert (grid[3] == 9).all() and (grid[:, 4] == 9).all()
  np.testing.assert_array_equal(grid[7:9, 5:8], 9)


def test_make_grid_default_ncols_and_no_padding():
  imgs = np.arange(5 * 2 * 2 * 3, dtype=np.uint8).reshape(5, 2, 2, 3)
  grid = images.make_grid(imgs, padding=0)
  assert grid.shape == (2 * 2, 3 * 2, 3)  # ceil(sqrt(5)) = 3 columns.
  np.testing.assert_array_equal(grid[0:2, 2:4], imgs[1])
  np.testing.assert_array_equal(grid[2:4, 2:4], imgs[4])
  np.testing.assert_array_equal(grid[2:4, 4:6], 0)
  # ncols larger than N is clamped: one row, no empty columns.
  assert images.make_grid(imgs[:2], ncols=8, padding=0).shape == (2, 4, 3)


@pytest.mark.parametrize("ext", [".png", ".jpg", ".webp"])
def test_save_image_round_trip_and_creates_dirs(tmp_path, ext):
  rng = np.random.default_rng(0)
  array = rng.integers(0, 256, (8, 10, 3), dtype=np.uint8)
  path = tmp_path / "a" / "b" / f"img{ext}"
  images.save_image(array, str(path))
  with Image.open(path) as im:
    assert im.size == (10, 8)
    assert im.format == {".png": "PNG", ".jpg": "JPEG", ".webp": "WEBP"}[ext]
    if ext == ".png":
      np.testing.assert_array_equal(np.asarray(im), array)
  assert _files(path.parent) == [f"img{ext}"]  # No temp file left.


def test_save_image_failed_write_keeps_old_file(tmp_path, monkeypatch):
  path = tmp_path / "sample.png"
  good = np.full((4, 4, 3), 200, np.uint8)
  images.save_image(good, str(path))
  before = path.read_bytes()

  def broken_save(self, fp, *args, **kwargs):
    fp.write(b"\x89PNG half")  # Some bytes reach the temp file, then a crash.
    raise OSError("disk on fire")

  monkeypatch.setattr(Image.Image, "save", broken_save)
  with pytest.raises(OSError, match="disk on fire"):
    images.save_image(np.zeros((4, 4, 3), np.uint8), str(path))
  monkeypatch.undo()
  assert path.read_bytes() == before
  assert _files(tmp_path) == ["sample.png"]


def test_save_image_unencodable_keeps_old_file(tmp_path):
  # JPEG has no alpha: Pillow fails inside the encoder, after the temp file
  # was created.
  path = tmp_path / "x.jpg"
  images.save_image(np.zeros((4, 4, 3), np.uint8), str(path))
  before = path.read_bytes()
  with pytest.raises(OSError):
    images.save_image(np.zeros((4, 4, 4), np.uint8), str(path))
  assert path.read_bytes() == before
  assert _files(tmp_path) == ["x.jpg"]


def test_save_image_bad_input(tmp_path):
  with pytest.raises(TypeError, match="to_uint8"):
    images.save_image(np.zeros((4, 4, 3), np.float32), str(tmp_path / "a.png"))
  with pytest.raises(ValueError, match="extension"):
    images.save_image(np.zeros((4, 4, 3), np.uint8), str(tmp_path / "a.tiff"))
  assert _files(tmp_path) == []


def test_unwritable_directory_names_path(tmp_path):
  blocker = tmp_path / "file"
  blocker.write_text("not a directory")
  path = blocker / "sub" / "img.png"
  with pytest.raises(OSError, match="img.png") as info:
    images.save_image(np.zeros((2, 2, 3), np.uint8), str(path))
  assert info.value.filename == str(path)
  with pytest.raises(OSError, match="meta.json"):
    images.write_json_atomic({"a": 1}, str(blocker / "meta.json"))


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0,
                    reason="root ignores directory permissions")
def test_read_only_directory_raises_permission_error(tmp_path):
  locked = tmp_path / "locked"
  locked.mkdir()
  locked.chmod(0o500)
  try:
    with pytest.raises(PermissionError, match="img.png"):
      images.save_image(np.zeros((2, 2, 3), np.uint8), str(locked / "img.png"))
  finally:
    locked.chmod(0o700)


def test_new_file_gets_umask_permissions(tmp_path):
  path = tmp_path / "p.png"
  images.save_image(np.zeros((2, 2, 3), np.uint8), str(path))
  umask = os.umask(0)
  os.umask(umask)
  assert path.stat().st_mode & 0o777 == 0o666 & ~umask


@pytest.mark.parametrize("ext", [".gif", ".webp"])
def test_save_animation_frame_count(tmp_path, ext):
  # Distinct frames: GIF merges identical consecutive ones.
  frames = [np.full((6, 7, 3), 40 * i, np.uint8) for i in range(5)]
  path = tmp_path / "anim" / f"walk{ext}"
  images.save_animation(frames, str(path), duration_ms=50)
  with Image.open(path) as im:
    assert im.n_frames == 5
    assert im.size == (7, 6)
    assert im.info.get("loop") == 0
  assert _files(path.parent) == [f"walk{ext}"]


def test_save_animation_rejects_bad_input(tmp_path):
  with pytest.raises(ValueError, match="no frames"):
    images.save_animation([], str(tmp_path / "a.gif"))
  with pytest.raises(ValueError, match="same shape"):
    images.save_animation([np.zeros((2, 2, 3), np.uint8),
                           np.zeros((3, 2, 3), np.uint8)],
                          str(tmp_path / "a.gif"))
  with pytest.raises(ValueError, match="extension"):
    images.save_animation([np.zeros((2, 2, 3), np.uint8)],
                          str(tmp_path / "a.png"))


def test_write_json_atomic(tmp_path):
  path = tmp_path / "meta" / "sample.json"
  obj = {"prompt": "a red circle", "seed": np.int64(3),
         "z": np.arange(3, dtype=np.float32), "truncation": np.float32(0.5)}
  images.write_json_atomic(obj, str(path))
  assert json.loads(path.read_text("utf-8")) == {
      "prompt": "a red circle", "seed": 3, "z": [0.0, 1.0, 2.0],
      "truncation": 0.5}
  before = path.read_bytes()
  with pytest.raises(TypeError):
    images.write_json_atomic({"bad": object()}, str(path))
  assert path.read_bytes() == before
  assert _files(path.parent) == ["sample.json"]


def test_to_pil_modes():
  assert images.to_pil(np.zeros((2, 3), np.uint8)).mode == "L"
  assert images.to_pil(np.zeros((2, 3, 1), np.uint8)).mode == "L"
  assert images.to_pil(np.zeros((2, 3, 3), np.uint8)).mode == "RGB"
  assert images.to_pil(np.zeros((2, 3, 4), np.uint8)).size == (3, 2)
  with pytest.raises(ValueError):
    images.to_pil(np.zeros((2, 3, 2), np.uint8))

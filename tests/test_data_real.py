"""Real-data sources: decoding, the imagefolder / CUB / COCO layouts, and the pipeline on them.

Every data set here is generated on the fly from ``shapes`` renders, saved as
image files in the layout under test.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from jaxgan import data
from jaxgan.data import decode
from jaxgan.data.dfgan_layout import coco_source, cub_source, dfgan_box
from jaxgan.data.files import DataError
from jaxgan.data.imagefolder import imagefolder_source
from jaxgan.data.shapes import ShapesSource
from jaxgan.text.tokenizer import WordTokenizer

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _encode(array: np.ndarray, fmt: str = "PNG", **kwargs) -> bytes:
  buffer = io.BytesIO()
  Image.fromarray(array).save(buffer, format=fmt, **kwargs)
  return buffer.getvalue()


def _renders(count: int, size: int = 32, seed: int = 0):
  source = ShapesSource(image_size=size, num_examples=count, seed=seed)
  return [(source[i]["image"], source.captions(i)) for i in range(count)]


def _write_jsonl_folder(root, count=12, size=32, fmt="png"):
  """An imagefolder with metadata.jsonl, images in two subfolders, list captions."""
  rows = []
  for i, (image, captions) in enumerate(_renders(count, size)):
    name = f"part{i % 2}/img_{i:03d}.{fmt}"
    os.makedirs(root / f"part{i % 2}", exist_ok=True)
    Image.fromarray(image).save(root / name)
    rows.append({"file_name": name, "text": captions[:3], "extra": i})
  with open(root / "metadata.jsonl", "w") as f:
    f.write("\n".join(json.dumps(r) for r in rows) + "\n")
  return rows


def _tokenizer(source):
  return WordTokenizer.build(data.vocabulary_captions(source, len(source)), max_length=32)


# --------------------------------------------------------------------------
# Decoding.
# --------------------------------------------------------------------------

def test_load_rgb_reads_every_mode_as_rgb():
  rgb = np.zeros((6, 8, 3), np.uint8)
  rgb[:, :4] = (200, 30, 10)
  assert np.array_equal(decode.load_rgb(_encode(rgb)), rgb)
  grey = decode.load_rgb(_encode(np.full((6, 8), 77, np.uint8)))
  assert grey.shape == (6, 8, 3) and np.all(grey == 77)
  # 16-bit greys are scaled, not clipped at 255.
  sixteen = Image.fromarray(np.full((4, 4), 65535 // 2, np.uint16))
  buffer = io.BytesIO()
  sixteen.save(buffer, format="PNG")
  assert abs(int(decode.load_rgb(buffer.getvalue())[0, 0, 0]) - 127) <= 1
  # Transparent pixels come out white, opaque ones keep their colour.
  rgba = np.zeros((4, 4, 4), np.uint8)
  rgba[:2] = (10, 20, 30, 255)
  out = decode.load_rgb(_encode(rgba))
  assert np.array_equal(out[0, 0], [10, 20, 30]) and np.array_equal(out[3, 3], [255, 255, 255])
  # Palette and CMYK.
  palette = Image.fromarray(rgb).convert("P")
  buffer = io.BytesIO()
  palette.save(buffer, format="PNG")
  assert decode.load_rgb(buffer.getvalue()).shape == (6, 8, 3)
  cmyk = Image.fromarray(rgb).convert("CMYK")
  buffer = io.BytesIO()
  cmyk.save(buffer, format="JPEG", quality=95)
  out = decode.load_rgb(buffer.getvalue())
  assert out.shape == (6, 8, 3) and out[0, 0, 0] > 150 and out[0, 7, 0] < 60


def test_load_rgb_applies_exif_orientation():
  image = np.zeros((10, 20, 3), np.uint8)
  image[:, :10] = 255  # white left half
  pil = Image.fromarray(image)
  exif = pil.getexif()
  exif[0x0112] = 6  # "rotate 90 CW to display"
  buffer = io.BytesIO()
  pil.save(buffer, format="JPEG", exif=exif.tobytes(), quality=95)
  out = decode.load_rgb(buffer.getvalue())
  assert out.shape == (20, 10, 3)
  assert out[:10].mean() > 200 and out[10:].mean() < 50  # the left half is now on top


@pytest.mark.parametrize("payload", [b"", b"not an image at all", "truncated"])
def test_load_rgb_rejects_bad_files(payload):
  if payload == "truncated":
    payload = _encode(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8),
                      "JPEG")[:300]
  with pytest.raises(decode.BadImageError):
    decode.load_rgb(payload)


def test_prepare_image_box_crop_flip_and_sizes():
  image = np.zeros((100, 200, 3), np.uint8)
  image[:, :100, 0] = 255  # red left half, black right half
  out = decode.prepare_image(image, 16)
  assert out.shape == (16, 16, 3) and out.flags.c_contiguous
  # Centre crop of the 16x32 resize straddles the halves: red on the left.
  assert out[:, :4, 0].mean() > 200 and out[:, -4:, 0].mean() < 50
  flipped = decode.prepare_image(image, 16, flip=True)
  assert np.array_equal(flipped, out[:, ::-1])
  # The box keeps only the red part.
  boxed = decode.prepare_image(image, 16, box=np.array([0, 0, 100, 100]))
  assert boxed[..., 0].min() > 200
  # Random crop: loaded at 76/64 of the size, offsets pick the window.
  left = decode.prepare_image(image, 16, random_crop=True, u_top=0.0, u_left=0.0)
  right = decode.prepare_image(image, 16, random_crop=True, u_top=1.0, u_left=1.0)
  assert left.shape == right.shape == (16, 16, 3)
  assert left[..., 0].mean() > 200 and right[..., 0].mean() < 50


def test_dfgan_box_is_a_square_of_one_and_a_half_the_larger_side():
  left, top, right, bottom = dfgan_box(60.0, 27.0, 100.0, 40.0)
  assert right - left == bottom - top == 150
  assert (left + right) / 2 == 110 and (top + bottom) / 2 == 47


# --------------------------------------------------------------------------
# imagefolder.
# --------------------------------------------------------------------------

def test_imagefolder_metadata_jsonl_reads_images_and_caption_lists(tmp_path):
  rows = _write_jsonl_folder(tmp_path)
  source = imagefolder_source(str(tmp_path))
  assert len(source) == len(rows)
  item = source[3]
  assert item["name"] == rows[3]["file_name"]
  assert item["captions"] == rows[3]["text"]
  assert np.array_equal(decode.load_rgb(item["encoded"]),
                        np.asarray(Image.open(tmp_path / rows[3]["file_name"]).convert("RGB")))


def test_imagefolder_csv_sidecars_and_caption_cleaning(tmp_path):
  renders = _renders(4, 16)
  csv_dir = tmp_path / "csv"
  csv_dir.mkdir()
  with open(csv_dir / "metadata.csv", "w") as f:
    f.write("file_name,text\n")
    for i, (image, captions) in enumerate(renders):
      Image.fromarray(image).save(csv_dir / f"{i}.png")
      f.write(f'{i}.png,"  {captions[0]}\n  again "\n')
  source = imagefolder_source(str(csv_dir))
  assert source.captions(0) == [" ".join(f"{renders[0][1][0]} again".split())]

  side = tmp_path / "side"
  (side / "sub").mkdir(parents=True)
  for i, (image, captions) in enumerate(renders):
    Image.fromarray(image).save(side / "sub" / f"{i}.jpg")
    if i != 2:  # image 2 has no caption: skipped and counted
      (side / "sub" / f"{i}.txt").write_text("\n\n".join(captions[:2]) + "\n\n")
  source = imagefolder_source(str(side))
  assert len(source) == 3 and source.uncaptioned == 1
  assert source.captions(0) == renders[0][1][:2]
  assert source.name(2) == os.path.join("sub", "3.jpg")


def test_imagefolder_splits_from_column_and_folders(tmp_path):
  rows = []
  for i, (image, captions) in enumerate(_renders(6, 16)):
    Image.fromarray(image).save(tmp_path / f"{i}.png")
    rows.append({"file_name": f"{i}.png", "text": captions[0],
                 "split": "test" if i < 2 else "train"})
  (tmp_path / "metadata.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
  assert len(imagefolder_source(str(tmp_path), "train")) == 4
  assert len(imagefolder_source(str(tmp_path), "test")) == 2

  folders = tmp_path / "folders"
  for split, count in (("train", 3), ("test", 2)):
    (folders / split).mkdir(parents=True)
    for i, (image, captions) in enumerate(_renders(count, 16)):
      Image.fromarray(image).save(folders / split / f"{i}.png")
      (folders / split / f"{i}.txt").write_text(captions[0])
  assert len(imagefolder_source(str(folders), "train")) == 3
  assert len(imagefolder_source(str(folders), "test")) == 2


def test_imagefolder_errors_name_what_is_wrong(tmp_path):
  with pytest.raises(DataError, match="is not a directory"):
    imagefolder_source(str(tmp_path / "nowhere"))
  _write_jsonl_folder(tmp_path, count=4)
  with pytest.raises(DataError, match="'test' split"):
    imagefolder_source(str(tmp_path), "test")
  with pytest.raises(DataError, match="'caption' column"):
    imagefolder_source(str(tmp_path), caption_column="caption")
  with open(tmp_path / "metadata.jsonl", "a") as f:
    f.write(json.dumps({"file_name": "missing/ghost.png", "text": "a ghost"}) + "\n")
  with pytest.raises(DataError, match="ghost.png"):
    imagefolder_source(str(tmp_path))
  (tmp_path / "metadata.jsonl").write_text('{"file_name": "a.png", "text": \n')
  with pytest.raises(DataError, match="metadata.jsonl:1: not valid JSON"):
    imagefolder_source(str(tmp_path))


# --------------------------------------------------------------------------
# CUB and COCO in DF-GAN's layout.
# --------------------------------------------------------------------------

def _write_cub(root, count=6, size=48):
  keys, boxes = [], []
  for i, (image, captions) in enumerate(_renders(count, size)):
    key = f"00{i % 2 + 1}.Bird_{i % 2}/Bird_{i:04d}"
    os.makedirs(root / "CUB_200_2011" / "images" / os.path.dirname(key), exist_ok=True)
    os.makedirs(root / "text" / os.path.dirname(key), exist_ok=True)
    Image.fromarray(image).save(root / "CUB_200_2011" / "images" / f"{key}.jpg", quality=95)
    (root / "text" / f"{key}.txt").write_text("\n".join(captions))
    keys.append(key)
    boxes.append((4.0 + i, 6.0, 20.0, 10.0 + i))
  with open(root / "CUB_200_2011" / "images.txt", "w") as f:
    f.writelines(f"{i + 1} {k}.jpg\n" for i, k in enumerate(keys))
  with open(root / "CUB_200_2011" / "bounding_boxes.txt", "w") as f:
    f.writelines(f"{i + 1} {x} {y} {w} {h}\n" for i, (x, y, w, h) in enumerate(boxes))
  for split, part in (("train", keys[:4]), ("test", keys[4:])):
    (root / split).mkdir()
    with open(root / split / "filenames.pickle", "wb") as f:
      pickle.dump(part, f, protocol=2)
  return keys, boxes


def test_cub_reads_the_dfgan_layout_with_bird_crops(tmp_path):
  keys, boxes = _write_cub(tmp_path)
  train, test = cub_source(str(tmp_path), "train"), cub_source(str(tmp_path), "test")
  assert len(train) == 4 and len(test) == 2
  item = train[1]
  assert item["name"] == os.path.join("CUB_200_2011", "images", keys[1] + ".jpg")
  assert len(item["captions"]) == 5
  np.testing.assert_array_equal(item["box"], dfgan_box(*boxes[1]))
  # The pipeline crops to the box before resizing: compare with a manual crop.
  full = decode.load_rgb(item["encoded"])
  manual = decode.prepare_image(decode.crop_to_box(full, item["box"]), 16)
  np.testing.assert_array_equal(decode.prepare_image(full, 16, box=item["box"]), manual)


def test_cub_missing_files_fail_at_start(tmp_path):
  keys, _ = _write_cub(tmp_path)
  os.remove(tmp_path / "CUB_200_2011" / "images" / f"{keys[2]}.jpg")
  with pytest.raises(DataError, match=os.path.basename(keys[2])):
    cub_source(str(tmp_path), "train")
  os.remove(tmp_path / "test" / "filenames.pickle")
  with pytest.raises(DataError, match="filenames.pickle"):
    cub_source(str(tmp_path), "test")


def test_coco_finds_images_in_any_of_its_folders(tmp_path):
  keys = []
  for i, (image, captions) in enumerate(_renders(5, 16)):
    split = "train2014" if i < 3 else "val2014"
    key = f"COCO_{split}_{i:012d}"
    folder = tmp_path / ("images" / __import__("pathlib").Path(split) if i != 4 else "jpg")
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(folder / f"{key}.jpg")
    (tmp_path / "text").mkdir(exist_ok=True)
    (tmp_path / "text" / f"{key}.txt").write_text("\n".join(captions[:5]))
    keys.append(key)
  for split, part in (("train", keys[:3]), ("test", keys[3:])):
    (tmp_path / split).mkdir()
    with open(tmp_path / split / "filenames.pickle", "wb") as f:
      pickle.dump(part, f)
  test = coco_source(str(tmp_path), "test")
  assert [test.name(i) for i in range(2)] == [
      os.path.join("images", "val2014", keys[3] + ".jpg"), os.path.join("jpg", keys[4] + ".jpg")]
  assert len(coco_source(str(tmp_path), "train")) == 3
  os.remove(tmp_path / "text" / f"{keys[0]}.txt")
  with pytest.raises(DataError, match=keys[0]):
    coco_source(str(tmp_path), "train")


# --------------------------------------------------------------------------
# The pipeline on encoded images.
# --------------------------------------------------------------------------

def _batches(dataset, count):
  iterator = iter(dataset)
  return iterator, [next(iterator) for _ in range(count)]


def test_pipeline_is_deterministic_with_any_number_of_workers_and_resumes(tmp_path):
  _write_jsonl_folder(tmp_path, count=10, size=24, fmt="jpg")
  source = imagefolder_source(str(tmp_path))
  tokenizer = _tokenizer(source)
  kwargs = dict(global_batch_size=4, seed=3, image_size=16, random_crop=True, flip=True)
  _, threads = _batches(data.make_dataset(source, tokenizer, workers=0, **kwargs), 6)
  iterator, processes = _batches(data.make_dataset(source, tokenizer, workers=1, **kwargs), 3)
  for a, b in zip(threads, processes):
    for key in ("image", "ids", "mask", "skipped"):
      np.testing.assert_array_equal(a[key], b[key])
  assert threads[0]["image"].shape == (4, 16, 16, 3) and threads[0]["image"].dtype == np.uint8
  # Resume from the state after 3 batches: the next 3 are the same. (The
  # state's layout depends on the worker count, a resume key of the run.)
  state = iterator.get_state()
  resumed = iter(data.make_dataset(source, tokenizer, workers=1, **kwargs))
  resumed.set_state(state)
  for expected in threads[3:]:
    np.testing.assert_array_equal(next(resumed)["image"], expected["image"])
  # Flips and crops happen: some example appears in two different framings
  # over the 2.4 epochs read.
  images = np.concatenate([b["image"] for b in threads])
  assert len({im.tobytes() for im in images}) > 10


def test_pipeline_skips_and_counts_unreadable_images(tmp_path):
  rows = _write_jsonl_folder(tmp_path, count=200, size=16)
  (tmp_path / rows[5]["file_name"]).write_bytes(b"")
  before = sorted((str(p), p.stat().st_mtime_ns) for p in tmp_path.rglob("*"))
  source = imagefolder_source(str(tmp_path))
  dataset = data.make_dataset(source, _tokenizer(source), global_batch_size=8, seed=0,
                              image_size=16, workers=0)
  _, batches = _batches(dataset, 25)  # one epoch of 200
  assert sum(int(b["skipped"].sum()) for b in batches) == 1
  assert all(b["image"].shape == (8, 16, 16, 3) for b in batches)
  # Nothing in the data folder was written.
  assert sorted((str(p), p.stat().st_mtime_ns) for p in tmp_path.rglob("*")) == before


def test_pipeline_fails_when_more_than_one_percent_is_unreadable(tmp_path):
  rows = _write_jsonl_folder(tmp_path, count=40, size=16)
  for row in rows[:3]:
    (tmp_path / row["file_name"]).write_bytes(b"\x89PNG broken")
  source = imagefolder_source(str(tmp_path))
  dataset = data.make_dataset(source, _tokenizer(source), global_batch_size=4, seed=0,
                              image_size=16)
  iterator = iter(dataset)
  with pytest.raises(data.UnreadableDataError, match=r"img_00[0-2]\.png"):
    for _ in range(40):
      next(iterator)


def test_train_py_names_a_missing_data_folder(tmp_path):
  result = subprocess.run(
      [sys.executable, "train.py", "--config", "configs/tiny.py",
       f"--workdir={tmp_path / 'run'}", "--config.data.source=imagefolder",
       f"--config.data.path={tmp_path / 'nowhere'}"],
      cwd=REPO, capture_output=True, text=True, timeout=300)
  assert result.returncode == 1
  assert "nowhere" in result.stderr and "not a directory" in result.stderr
  assert "Traceback" not in result.stderr


def test_config_refuses_flips_on_shapes_and_real_data_without_a_path():
  from configs import tiny  # pylint: disable=g-import-not-at-top
  from jaxgan import config as config_lib  # pylint: disable=g-import-not-at-top
  config = tiny.get_config()
  config.data.flip = True
  with pytest.raises(ValueError, match="flip"):
    config_lib.validate(config)
  config = tiny.get_config()
  config.data.source = "cub"
  with pytest.raises(ValueError, match="data.path"):
    config_lib.validate(config)
  config.data.path = "/data/birds"
  config.eval_every = config.checkpoint_every
  with pytest.raises(ValueError, match="eval_every"):
    config_lib.validate(config)
  config.data.source = "flickr"
  with pytest.raises(ValueError, match="flickr"):
    config_lib.validate(config)


@pytest.mark.slow  # three training runs with a worker process each: ~75 s on 2 cores
def test_training_on_a_folder_resumes_bit_exactly(tmp_path):
  """Decoding in a worker process, crops and flips: a stopped and resumed run is the same run."""
  import jax  # pylint: disable=g-import-not-at-top
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  from configs import tiny  # pylint: disable=g-import-not-at-top
  from jaxgan.train import checkpointing, train_and_evaluate  # pylint: disable=g-import-not-at-top
  folder = tmp_path / "folder"
  folder.mkdir()
  _write_jsonl_folder(folder, count=24, size=24, fmt="jpg")

  def config(steps):
    c = tiny.get_config()
    c.data.source, c.data.path = "imagefolder", str(folder)
    c.data.workers, c.data.flip, c.data.random_crop = 1, True, True
    c.num_steps, c.checkpoint_every, c.sample_every = steps, 4, 100
    return c

  def state(workdir):
    manager = ocp.CheckpointManager(checkpointing.checkpoint_dir(workdir))
    restored = manager.restore(8, args=ocp.args.Composite(state=ocp.args.StandardRestore()))
    manager.close()
    return jax.tree.leaves(jax.tree.map(np.asarray, restored["state"]))

  resumed, straight = str(tmp_path / "resumed"), str(tmp_path / "straight")
  train_and_evaluate(config(4), resumed)
  train_and_evaluate(config(8), resumed)
  train_and_evaluate(config(8), straight)
  for a, b in zip(state(resumed), state(straight)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_resume_warns_when_the_data_set_changed_size(tmp_path):
  from jaxgan import run as run_lib  # pylint: disable=g-import-not-at-top
  assert run_lib.check_data_size(str(tmp_path), 100) is None
  assert run_lib.check_data_size(str(tmp_path), 100) is None
  assert "100 examples" in run_lib.check_data_size(str(tmp_path), 120)


def test_data_seed_fixes_the_data_whatever_the_model_seed():
  from configs import tiny  # pylint: disable=g-import-not-at-top

  def first_batch(seed, data_seed):
    config = tiny.get_config()
    config.seed = seed
    config.data.seed = data_seed
    source = data.build_source(config)
    batch = next(iter(data.dataset_for(config, source, _tokenizer(source))))
    return np.concatenate([batch["image"].ravel(), batch["ids"].ravel()])

  np.testing.assert_array_equal(first_batch(0, 5), first_batch(1, 5))
  assert not np.array_equal(first_batch(0, None), first_batch(1, None))
  np.testing.assert_array_equal(first_batch(5, None), first_batch(0, 5))


def test_an_example_without_captions_is_skipped_like_an_unreadable_image():
  """TFDS records may carry no caption; the pipeline drops them instead of crashing."""
  renders = _renders(16, 16)

  class Records:  # the CaptionedSource protocol over in-memory encoded images
    def __len__(self):
      return len(renders)

    def captions(self, index):
      return [] if index == 3 else renders[index][1]

    def __getitem__(self, index):
      return {"encoded": _encode(renders[index][0]), "captions": self.captions(index),
              "name": f"record {index}"}

  source = Records()
  assert data.fixed_captions(source, 4) == [renders[i][1][0] for i in (0, 1, 2, 4)]
  dataset = data.make_dataset(source, _tokenizer(source), global_batch_size=5, seed=0,
                              image_size=16, max_unreadable=0.1)
  _, batches = _batches(dataset, 3)  # 15 of the 16, the captionless one skipped
  assert sum(int(b["skipped"].sum()) for b in batches) == 1


def test_two_hosts_load_the_rows_of_the_one_host_batches(tmp_path):
  """Every host takes its rows of one global order: N hosts see one host's batches."""
  _write_jsonl_folder(tmp_path, count=20, size=16, fmt="jpg")
  source = imagefolder_source(str(tmp_path))
  tokenizer = _tokenizer(source)
  kwargs = dict(global_batch_size=6, seed=1, image_size=16, random_crop=True, flip=True)
  _, one = _batches(data.make_dataset(source, tokenizer, host=0, num_hosts=1, **kwargs), 5)
  _, first = _batches(data.make_dataset(source, tokenizer, host=0, num_hosts=2, **kwargs), 5)
  _, second = _batches(data.make_dataset(source, tokenizer, host=1, num_hosts=2, **kwargs), 5)
  for whole, a, b in zip(one, first, second):
    assert a["image"].shape[0] == 3
    for key in ("image", "ids", "mask"):
      np.testing.assert_array_equal(whole[key], np.concatenate([a[key], b[key]]))

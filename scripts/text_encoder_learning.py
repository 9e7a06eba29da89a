"""Whether a run's learned text encoder (or adapter) learned: paraphrase separation.

    python scripts/text_encoder_learning.py --workdir runs/NAME [--num 500]

Compares the trained encoder (or the adapter on a frozen encoder) of the run's
latest checkpoint with the same at initialisation (same seed), on captions of
``shapes`` images the run used (see jaxgan/text/diagnostics.py for the measure).
"""

import argparse

import jax
import orbax.checkpoint as ocp

from jaxgan import data, run as run_lib, text
from jaxgan.text.diagnostics import paraphrase_separation
from jaxgan.train import checkpointing
from jaxgan.train.state import init_state


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--workdir", required=True)
  parser.add_argument("--num", type=int, default=500)
  args = parser.parse_args()

  config = run_lib.load_config(args.workdir)
  tokenizer = text.load_tokenizer(args.workdir)
  models, frozen = run_lib.build_gan(config, tokenizer)
  if not models.has_text_params:
    raise SystemExit(f"{args.workdir} uses the frozen {config.text.encoder!r} encoder "
                     f"without adapter: nothing was learned.")
  source = data.build_source(config)
  captions = [source.captions(i) for i in range(args.num)]

  initial = init_state(models, config, run_lib.run_keys(config).init, frozen_text=frozen).text_encoder
  manager = ocp.CheckpointManager(checkpointing.checkpoint_dir(args.workdir))
  step = manager.latest_step()
  restored = manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore()))
  trained = restored["state"]["text_encoder"]

  # MiniLM's weights are an argument, not a closure constant baked into the program.
  encode = jax.jit(lambda p, f, ids, mask: models.encode_text(p, ids, mask, f))
  for name, params in (("initialisation", initial), (f"step {step}", trained)):
    result = paraphrase_separation(
        lambda texts, p=params: encode(p, frozen, *tokenizer.encode(list(texts))), captions)
    print(f"{name:>15}: paraphrases {result['same']:.3f}, different images "
          f"{result['different']:.3f}, gap {result['gap']:.3f}")


if __name__ == "__main__":
  main()

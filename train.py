"""Trains a text-to-image GAN.

    python train.py --config configs/base.py --workdir runs/base [--config.num_steps=20000]

Runs on one CPU, one GPU, or every accelerator of several hosts without change.
Re-running the same command resumes from the latest checkpoint in --workdir.
"""

import logging
import sys

from absl import app, flags
from absl import logging as absl_logging
from ml_collections import config_flags

from jaxgan import xla_flags

if __name__ == "__main__":
  xla_flags.restart_with_huge_pages()  # re-executes once, before anything runs
xla_flags.set_entry_point_defaults()  # before JAX is imported

from jaxgan import cli, sharding  # noqa: E402
from jaxgan.train import NonFiniteLossError, train_and_evaluate

_CONFIG = config_flags.DEFINE_config_file(
    "config", "configs/base.py", "Python config file (get_config()).", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", "runs/base", "Run directory (created, or resumed).")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  # Orbax and JAX log every checkpoint detail at INFO; keep the console for ours.
  absl_logging.set_verbosity(absl_logging.WARNING)
  logging.getLogger("jaxgan").setLevel(logging.INFO)
  try:
    sharding.maybe_initialize_distributed()
    summary = train_and_evaluate(_CONFIG.value, _WORKDIR.value)
  except (ValueError, OSError, NonFiniteLossError) as error:
    print(f"train.py: error: {error}", file=sys.stderr)
    return 1
  if summary["stopped_by"]:
    print(f"Stopped by {summary['stopped_by']} at step {summary['step']}; "
          f"run the same command to resume.")
  return 0


if __name__ == "__main__":
  app.run(lambda argv: sys.exit(main(argv)),
          flags_parser=lambda argv: cli.parse_flags(argv, "train.py"))

"""The package's import graph: sampling and the run directory load no training code."""

import json
import subprocess
import sys

import pytest

# Training-only dependencies and modules that sampling must not pull in.
_TRAINING = ("grain", "optax", "tqdm", "jaxgan.train", "jaxgan.train.loop",
             "jaxgan.train.state", "jaxgan.data")


def _loaded_after(statement: str) -> set[str]:
  code = f"import json, sys\n{statement}\nprint(json.dumps(sorted(sys.modules)))"
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       check=True, cwd=".")
  return set(json.loads(out.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("statement", [
    "import jaxgan.sampling",
    "import jaxgan.run",
    "import jaxgan; jaxgan.load_pipeline",
    "import jaxgan.export",
])
def test_sampling_loads_no_training_code(statement):
  loaded = _loaded_after(statement)
  assert not loaded & set(_TRAINING), sorted(loaded & set(_TRAINING))


def test_importing_jaxgan_is_light():
  loaded = _loaded_after("import jaxgan")
  assert "jax" not in loaded and "flax" not in loaded


def test_config_choices_come_from_the_owning_modules():
  from configs import tiny  # pylint: disable=g-import-not-at-top
  from jaxgan import config as config_lib, losses, models, text  # pylint: disable=g-import-not-at-top
  for key, owner in (("model.arch", models.ARCHS), ("text.encoder", text.ENCODERS),
                     ("loss.kind", losses.KINDS)):
    for value in owner:
      config = tiny.get_config()
      section, name = key.split(".")
      config[section][name] = value
      if value == "mlp":  # DF-GAN's generator options are refused by the MLP's
        config.model.coordinates = config.model.text_stem = False
      config_lib.validate(config)
    config = tiny.get_config()
    config[section][name] = "nope"
    with pytest.raises(ValueError, match=key):
      config_lib.validate(config)


def test_sampling_options_parse_before_jax_and_match_the_scores():
  # sample.py and evaluate.py set XLA's flags after parsing: their shared
  # options (jaxgan/cli.py) must not import JAX, so the choices are a copy.
  loaded = _loaded_after("import sample, evaluate")
  assert "jax" not in loaded and "jaxgan.cli" in loaded
  from jaxgan import cli  # pylint: disable=g-import-not-at-top
  from jaxgan.models import gan  # pylint: disable=g-import-not-at-top
  assert cli.RANK_BY_CHOICES == gan.SCORES

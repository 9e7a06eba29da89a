"""jaxgan: text-to-image GANs in JAX/Flax.

In a notebook::

    import jaxgan
    pipe = jaxgan.load_pipeline("runs/base")          # EMA generator, text encoder
    images = pipe.images(["a large red circle in the center on a black background"])

The modules (``jaxgan.Generator``, ``jaxgan.Discriminator``, the text encoders
in ``jaxgan.text``) are plain Flax linen modules for one's own training code.
"""

from jaxgan.models import Discriminator, Generator, MLPDiscriminator, MLPGenerator
from jaxgan.sampling import Pipeline, load_pipeline
from jaxgan.train import train_and_evaluate

__all__ = ["Discriminator", "Generator", "MLPDiscriminator", "MLPGenerator", "Pipeline",
           "load_pipeline", "train_and_evaluate"]

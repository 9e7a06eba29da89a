"""Training: state, step, checkpoints, loop."""

from jaxgan.train.loop import NonFiniteLossError, train_and_evaluate

__all__ = ["train_and_evaluate", "NonFiniteLossError"]

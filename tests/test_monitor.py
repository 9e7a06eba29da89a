"""The training monitor's progress bar and log lines."""

from jaxgan.train.monitor import Monitor


def test_progress_bar_shows_the_rate_of_the_interval_just_logged(tmp_path):
  monitor = Monitor(str(tmp_path), start_step=0, num_steps=4, batch_size=8, log_every=2,
                    progress_bar=True)
  metrics = {"d_loss": 1.0, "g_loss": 2.0}
  monitor.step(1, metrics)
  # No interval measured yet: the bar says nothing rather than "nan".
  assert "img_s" not in monitor._bar.postfix  # pylint: disable=protected-access
  monitor.step(2, metrics)
  postfix = monitor._bar.postfix  # pylint: disable=protected-access
  assert f"img_s={monitor.images_per_second:.1f}" in postfix and "nan" not in postfix
  assert (tmp_path / "tensorboard").is_dir()
  monitor.close()

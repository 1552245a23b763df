"""Entry point: `python -m imujax.main --config=configs/default.py --workdir=DIR`.

Coarse switches go after the config file (`configs/default.py:model.cell=gru`),
single keys as flags (`--config.model.hidden=64`). Unknown keys are errors.
"""

import logging as logging_std

from absl import app
from absl import flags
from absl import logging
import jax
from ml_collections import config_flags

from imujax import configlib
from imujax.training import distributed
from imujax.experiments import compare
from imujax.training import runtime

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Config file, optionally with :key=value,... args.",
    lock_config=True)
_WORKDIR = flags.DEFINE_string(
    "workdir", None, "Where checkpoints, metrics and results go; rerunning "
    "the same command resumes there.")
_DISTRIBUTED = flags.DEFINE_enum(
    "distributed", "auto", distributed.MODES,
    "Multi-host: start jax.distributed when a launcher (srun, TPU pod, "
    "JAX_COORDINATOR_ADDRESS...) is found (auto), always (on) or never (off).")
flags.mark_flags_as_required(["config", "workdir"])


class _QuietOrbax(logging_std.Filter):
  """Orbax logs several INFO lines per checkpoint; keep its warnings only."""

  def filter(self, record):
    return record.levelno >= logging_std.WARNING or "orbax" not in record.pathname


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  malloc = runtime.tune_malloc()  # Before XLA allocates anything.
  distributed.initialize(_DISTRIBUTED.value)  # Before any other JAX call.
  logging.get_absl_handler().addFilter(_QuietOrbax())
  config = _CONFIG.value
  configlib.check(config)
  logging.info("JAX devices: %s; %s", jax.devices(), malloc)
  logging.info("Config:\n%s", config)
  compare.run(config, _WORKDIR.value)


if __name__ == "__main__":
  app.run(main)

"""Entry point: `python -m imujax.main --config=configs/default.py --workdir=DIR`.

`:arg` after the config file sets the file's switches or any config key
(`configs/default.py:model.cell=gru`); single keys also go as flags
(`--config.model.hidden=64`). Unknown keys and bad values (also held-out
subject counts the dataset cannot give) are one-line errors
(exit 2). `--list_keys` prints every key of the config with its value.
The quick end-to-end run is `--config=configs/test.py` (seconds).
"""

import ast
import logging as logging_std
import sys

from absl import app
from absl import flags
from absl import logging
import jax
from ml_collections import config_flags

from imujax import configlib
from imujax.experiments import compare
from imujax.training import distributed
from imujax.training import pretrained
from imujax.training import runtime

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Config file, optionally with :name=value,... args "
    "(configs/test.py is the quick run; configs/default.py the README's).",
    lock_config=True)
_WORKDIR = flags.DEFINE_string(
    "workdir", None, "Where checkpoints, metrics and results go; rerunning "
    "the same command resumes there.")
_DISTRIBUTED = flags.DEFINE_enum(
    "distributed", "auto", distributed.MODES,
    "Multi-host: start jax.distributed when a launcher (srun, TPU pod, "
    "JAX_COORDINATOR_ADDRESS...) is found (auto), always (on) or never (off).")
_LIST_KEYS = flags.DEFINE_bool(
    "list_keys", False, "Print every config key of --config with its value "
    "(and the modes, objectives and cells to choose from), then exit.")
flags.mark_flag_as_required("config")

# Exceptions that mean "the config or a flag is wrong", not a bug.
_USER_ERRORS = (flags.Error, KeyError, ValueError, AttributeError, TypeError,
                OSError)


class _QuietLogs(logging_std.Filter):
  """Orbax's INFO lines per checkpoint, and JAX's probe for a TPU."""

  def filter(self, record):
    if record.levelno >= logging_std.WARNING:
      return True
    return "orbax" not in record.pathname and (
        "Unable to initialize backend" not in record.getMessage())


def one_line(error: BaseException) -> str:
  """The message of a config error as one readable line."""
  text = str(error)
  while isinstance(error, flags.Error) and error.__context__ is not None:
    error = error.__context__  # The config file's own error, not absl's.
    text = str(error)
  if "Traceback (most recent call last)" in text:  # Keep the error itself.
    text = text.strip().splitlines()[-1]
  if "No such file or directory" in text:
    text = text[text.index("[Errno"):]
  if text[:1] in "'\"":  # KeyError / ml_collections quote their message.
    try:
      text = str(ast.literal_eval(text))
    except (ValueError, SyntaxError):
      pass
  return " ".join(text.replace("\\n", " ").split())


def _parse_flags(argv):
  try:
    return flags.FLAGS(argv)
  except _USER_ERRORS as e:
    print(f"imujax: config error: {one_line(e)}", file=sys.stderr)
    sys.exit(2)


def _list_keys(config) -> str:
  from imujax import cells  # pylint: disable=g-import-not-at-top
  from imujax import objectives  # pylint: disable=g-import-not-at-top
  flat = configlib.flatten(config)
  width = max(map(len, flat))
  return "\n".join(
      [f"{k:{width}s} = {v!r}" for k, v in flat.items()] + [
          "", "mode: pretrain | finetune | compare",
          f"pretrain.objective: {' | '.join(objectives.names())}",
          f"model.cell: {' | '.join(cells.names())}"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  config = _CONFIG.value
  if _LIST_KEYS.value:
    print(_list_keys(config))
    return
  if not _WORKDIR.value:
    raise app.UsageError("--workdir is required (where the run's files go).")
  try:
    configlib.check(config)
    pretrained.resolve(config.init_from)  # A release name that is not here.
  except _USER_ERRORS as e:
    print(f"imujax: config error: {one_line(e)}", file=sys.stderr)
    sys.exit(2)
  if not sys.stderr.isatty():  # Bars glued onto log lines in files.
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
    tfds.disable_progress_bar()
  malloc = runtime.tune_malloc()  # Before XLA allocates anything.
  distributed.initialize(_DISTRIBUTED.value)  # Before any other JAX call.
  logging.get_absl_handler().addFilter(_QuietLogs())
  logging.info("JAX devices: %s; %s", jax.devices(), malloc)
  overrides = config_flags.get_override_values(flags.FLAGS["config"])
  logging.info("Config %s%s (every key: run.json in each run's workdir; "
               "--list_keys)", config_flags.get_config_filename(
                   flags.FLAGS["config"]),
               f" with {overrides}" if overrides else "")
  try:
    compare.run(config, _WORKDIR.value)
  except configlib.ConfigError as e:  # Found once the data are read.
    print(f"imujax: config error: {one_line(e)}", file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
  app.run(main, flags_parser=_parse_flags)

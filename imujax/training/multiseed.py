r"""K runs that differ only in seed, trained as one vmapped, jitted program.

Each member is a complete imujax run of its own: `setup.prepare` gives it its
own subject split, labelled recordings, normaliser, initial params (or
`init_from` encoder), and its workdir gets the files a single run writes
(run.json, splits.json, normalization.json, metrics.jsonl, checkpoints/,
summary.json), so reports and `init_from` treat members like single runs.
The loop (`imujax.training.loop`, the same as for one run) stacks the train
states on a leading member axis and one `jax.jit(jax.vmap(step.train_step))`
updates all of them; host batches are
<float32>[K, batch, time, channels], each member's a pure function of its own
(seed, step) exactly as in a single run, so member k follows the single run of
seed k (to float rounding).

Shared across members (so they must agree): model shapes, the optimizer and
its schedule, the loss program — except the trained phase's learning rate and
weight decay (`MEMBER_HPARAMS`), which members may set each for themselves
(a learning-rate sweep as one program); then every member's optimizer is built
inside the vmapped step from its own values. Per-member data (the
normaliser's statistics that simclr and transform_prediction augment with)
enters the step as a stacked argument, so every objective runs as one
program.

  python -m imujax.training.multiseed --config=configs/test.py --phase=finetune \
      --members='[{"seed": 0, "workdir": "/tmp/ms/s0"},
                  {"seed": 1, "workdir": "/tmp/ms/s1"}]'

Members may add "init_from" (their own pre-trained workdir) and "set":
{"finetune.learning_rate": 3e-3, "finetune.weight_decay": 0.1} (of the phase
they train). Rerunning the command resumes every member from its last
checkpoint.

With several devices the member axis is split over them (`member_mesh`). On
a CPU, `--cpu_devices=K` presents the CPU as K devices, one member each,
which run in parallel: about 1.7x the throughput of K sequential runs on a
2-core machine, where one vmapped device is slower than sequential
(imujax/bench/seeds.py, README "Vectorised seeds").
"""

import copy
import functools
import json

from absl import app
from absl import flags
from absl import logging
import ml_collections
from ml_collections import config_flags
import numpy as np

from imujax import configlib
from imujax.training import runtime

MEMBER_HPARAMS = configlib.MEMBER_HPARAMS


def member_configs(config: ml_collections.ConfigDict, members: list[dict]):
  """One config per member: `config` with the member's seed (and init_from).

  A member may also set "<phase>.learning_rate" / "<phase>.weight_decay"
  under "set", e.g. {"seed": 0, "set": {"finetune.learning_rate": 3e-3}}.
  """
  out = []
  for m in members:
    c = copy.deepcopy(config)
    c.seed = int(m["seed"])
    if "init_from" in m:
      c.init_from = m["init_from"]
    for key, value in m.get("set", {}).items():
      section, _, name = key.partition(".")
      if section not in ("pretrain", "finetune") or name not in MEMBER_HPARAMS:
        raise ValueError(
            f"Member key {key!r} cannot differ between members of one "
            f"program; only <pretrain|finetune>.{{{', '.join(MEMBER_HPARAMS)}}}"
            " can (run other differences as separate runs).")
      try:
        c[section][name] = float(value)
      except (TypeError, ValueError):
        raise ValueError(f"Member {m.get('workdir', m['seed'])!r}: {key}="
                         f"{value!r} is not a number.") from None
    out.append(c)
  return out


def member_hparams(configs: list, phase: str) -> dict:
  """{key: [value per member]} of the MEMBER_HPARAMS in which members differ."""
  out = {}
  for key in MEMBER_HPARAMS:
    values = [float(c[phase][key]) for c in configs]
    if len(set(values)) > 1:
      out[key] = values
  return out


def host_batch(runs: list, configs: list, phase: str, step: int) -> dict:
  """<[K, batch, ...]> the batch each member's single run would draw."""
  batches = [r.train_batch(c.data.window, c[phase].batch_size, c.seed, step)
             for r, c in zip(runs, configs)]
  return {k: np.stack([b[k] for b in batches]) for k in batches[0]}


def check_compatible(configs, runs, phase):
  """Members must share shapes, optimizer and schedule; say which key differs."""
  def shared(c):
    d = c.to_dict()
    d[phase] = {k: v for k, v in d[phase].items() if k not in MEMBER_HPARAMS}
    return d
  ref = shared(configs[0])
  for c in configs[1:]:
    this = shared(c)
    for key in ("model", phase):
      if this[key] != ref[key]:
        raise ValueError(f"Multiseed members differ in config.{key} "
                         f"({this[key]} vs {ref[key]}); only seed, "
                         f"init_from and {phase}.{{{', '.join(MEMBER_HPARAMS)}}}"
                         " may differ.")
    for key in ("window", "name"):
      if c.data[key] != configs[0].data[key]:
        raise ValueError(f"Multiseed members differ in config.data.{key}.")
  for r in runs[1:]:
    if r.cfg != runs[0].cfg:
      raise ValueError(f"Multiseed members have different model shapes "
                       f"({r.cfg} vs {runs[0].cfg}).")
    if r.opts != runs[0].opts:  # Static options, incl. channel names.
      raise ValueError(f"Multiseed members have different objective options "
                       f"({r.opts} vs {runs[0].opts}); they must share one "
                       "program.")


# ------------------------------------------------------------------ CLI
def _define_flags():
  """Flags of the command line only: importing this module defines none."""
  config = config_flags.DEFINE_config_file(
      "config", None, "Config file shared by the members (with :args).",
      lock_config=True)
  members = flags.DEFINE_string(
      "members", None, 'JSON list of {"seed", "workdir"[, "init_from"]}.')
  phase = flags.DEFINE_enum("phase", None, ["pretrain", "finetune"],
                            "Which phase the members train.")
  impl = flags.DEFINE_enum("impl", "vmap", ["vmap", "loop"],
                           "How one program steps the members.")
  cpu_devices = flags.DEFINE_integer(
      "cpu_devices", 0, "Split the host CPU into this many JAX devices and "
      "the members over them (vmap; e.g. the number of cores). 0: JAX's "
      "default.")
  flags.mark_flags_as_required(["config", "members", "phase"])
  return config, members, phase, impl, cpu_devices


def main(argv, config_flag, members_flag, phase_flag, impl_flag,
         cpu_devices_flag):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  logging.info("%s", runtime.tune_malloc())  # As imujax.main does.
  logging.info("%s", runtime.split_cpu(cpu_devices_flag.value))
  config = config_flag.value
  config.mode = phase_flag.value  # What each member is, for check and run.json.
  configlib.check(config)
  members = json.loads(members_flag.value)
  configs = member_configs(config, members)
  for c in configs:
    configlib.check(c)
  from imujax.training import loop  # pylint: disable=g-import-not-at-top
  loop.train_members(configs, [m["workdir"] for m in members],
                     phase_flag.value, impl_flag.value)


if __name__ == "__main__":
  app.run(functools.partial(main, **dict(zip(
      ("config_flag", "members_flag", "phase_flag", "impl_flag",
       "cpu_devices_flag"),
      _define_flags()))))

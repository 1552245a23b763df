r"""Online inference: a classifier run driven one frame at a time.

The pure API needs nothing but the parameter dict (no Flax objects, no config):

  state = init_state(params, batch_size)
  state, out = step(params, state, x_t)     x_t: <float32>[batch, C], normalised
  out["probs"]: <float32>[batch, K]  (and "logits"; "reconstruction" [batch, C]
  when the run has that head)

The model's shape (cell, hidden size, layers, layer norm) is read off the
parameter shapes, so `step` is the streaming twin of `models.classify_sequence`
for any params dict `models.init` returns; a test checks they agree to 1e-5.

Everything online goes through the same preprocessing as offline:

* `OnlineResampler` puts samples `(t, x)` arriving one by one on the model's
  uniform grid (`t0 + k / rate`) by linear interpolation, exactly as
  `datasets.resample.resample_to_grid` does for a whole recording, so on a whole
  recording (no duplicate timestamps) both give the same frames.
* The run's saved normaliser (training subjects' mean / std) scales each frame.
* Channel names and order are checked against the run (`check_channels`).
* Gaps: an interval between samples longer than `gap_factor / rate` (a grid
  frame has no sample of its own) is a gap, handled by `gap_policy`:
  - "interpolate" (default): the gap's frames are linearly interpolated, as
    offline;
  - "hold": the gap's frames repeat the last sample before the gap;
  - "reset": the gap's frames are skipped, the recurrent state is zeroed and
    the grid restarts at the first sample after the gap (a new recording).
  Any gap longer than `max_gap_s` resets, whatever the policy (offline refuses
  such gaps; online there is no one to ask).

Online differences from offline, all counted in `OnlineResampler.repairs`:
a sample whose timestamp is earlier than the previous one is dropped (offline
raises); of samples with equal timestamps the last one is used from then on,
but a frame already emitted at exactly that instant is not revised (offline
uses the last one for it too); a channel non-finite for more than
`max_nonfinite_run` samples is held at its last finite value (offline raises).

Streaming evaluation (`python -m imujax.online.stream --workdir=RUN --split=test`):
the held-out recordings of the split are concatenated in recording order and
streamed back to back WITHOUT resetting the state, so every recording boundary
is a label change the model has to detect from its carried state (on
seglearn_watch each recording holds one exercise, so these are the only
changes). Reported with and without smoothing (`--ema`, `--hysteresis`):

* per-frame macro-F1 and accuracy (as `metrics.scores`);
* detection delay, ms: for each true label change, the time from the change
  to the first frame predicting the new label (a change not detected before
  the next change counts as missed and is excluded from the delay statistics);
* switches per minute: predicted-label changes, and "spurious" ones, those
  that switch to a label other than the true label of that frame.
"""

import json
import math
from typing import Any, NamedTuple, Optional, Sequence

from etils import epath
import jax
import jax.numpy as jnp
import numpy as np

from imujax import cells
from imujax import models

GAP_POLICIES = ("interpolate", "hold", "reset")


# ------------------------------------------------------------ the pure step
def model_config(params) -> models.ModelConfig:
  """The `ModelConfig` (shape only) of a params dict from `models.init`."""
  enc = params["encoder"]
  layers = len([k for k in enc if k.startswith("layer_")])
  cell0 = enc["layer_0"]["cell"]
  hidden = cell0["w_hh"].shape[0]
  gates = cell0["w_hh"].shape[1] // hidden
  kind = "gru" if "b_ih" in cell0 else {1: "rnn", 4: "lstm"}[gates]
  # An input adapter (transfer to other channels) sits before layer 0.
  adapter = enc.get("adapter")
  return models.ModelConfig(
      in_dim=(adapter or cell0)["w" if adapter else "w_ih"].shape[0],
      adapter_dim=cell0["w_ih"].shape[0] if adapter else 0,
      cell=kind, hidden=hidden, layers=layers,
      dropout=0., layer_norm="norm" in enc["layer_0"],
      num_classes=(params["classifier"]["w"].shape[1]
                   if "classifier" in params else 0),
      reconstruct="reconstructor" in params)


def init_state(params, batch_size: int) -> list:
  """Zero per-layer carries for `batch_size` streams (distinct buffers)."""
  cfg = model_config(params)
  # One buffer per leaf: `models.initial_state` shares the LSTM's zeros, which
  # a jitted step with donated state cannot take.
  return jax.tree.map(lambda a: jnp.zeros(a.shape, a.dtype),
                      models.initial_state(cfg, batch_size))


def step(params, state: list, x_t: jax.Array):
  """One normalised frame per stream through the encoder and heads.

  Args:
    params: a classifier run's params (`models.init` layout).
    state: per-layer carries from `init_state` or the previous `step`.
    x_t: <float32>[batch, in_dim], normalised.

  Returns:
    (state, outputs): outputs has "logits" and "probs" <float32>[batch, K]
    when the params have a classifier, "reconstruction" [batch, in_dim] when
    they have a reconstructor.
  """
  cfg = model_config(params)
  state, h = models.encoder_step(params["encoder"], cfg, state, x_t)
  out = {}
  if "classifier" in params:
    logits = models.classify(params, h)
    out["logits"] = logits
    out["probs"] = jax.nn.softmax(logits, axis=-1)
  if "reconstructor" in params:
    out["reconstruction"] = models.reconstruct(params, h)
  return state, out


@jax.jit
def scan_steps(params, xs: jax.Array, state: Optional[list] = None):
  """`step` over <float32>[batch, time, C]; outputs [batch, time, ...]."""
  if state is None:
    state = init_state(params, xs.shape[0])
  state, out = jax.lax.scan(lambda s, x: step(params, s, x), state,
                            jnp.swapaxes(xs, 0, 1))
  return state, jax.tree.map(lambda a: jnp.swapaxes(a, 0, 1), out)


# -------------------------------------------------------------- a saved run
class Run(NamedTuple):
  """A classifier run, as `load_run` reads it from its workdir."""
  params: dict
  config: models.ModelConfig
  mean: np.ndarray  # <float32>[C] normaliser, training subjects only.
  std: np.ndarray   # <float32>[C]
  channel_names: list[str]
  class_names: list[str]
  sample_rate_hz: float
  step: int
  info: dict        # The whole run.json.


def load_run(workdir: str) -> Run:
  """Params of the latest checkpoint and the run's preprocessing.

  Args:
    workdir: a fine-tuned classifier run (e.g. `<compare workdir>/pretrained`
      or `/scratch`), holding run.json and checkpoints/.
  """
  import orbax.checkpoint as ocp  # Only needed to read checkpoints.

  path = epath.Path(workdir)
  info_path = path / "run.json"
  if not info_path.exists():
    arms = [p.name for p in path.iterdir() if (p / "run.json").exists()] \
        if path.is_dir() else []
    hint = (f" It holds the runs {sorted(arms)}: pass one of them, e.g. "
            f"--workdir={path / sorted(arms)[0]}." if arms else
            " Point it at the workdir of a finished fine-tuning run.")
    raise FileNotFoundError(f"{path} has no run.json.{hint}")
  info = json.loads(info_path.read_text())
  cfg = models.ModelConfig(**info["model_config"])
  if not cfg.num_classes:
    raise ValueError(
        f"{path} is a {info.get('objective', 'pretext')} run without a "
        "classifier head; stream a fine-tuned run (its `pretrained` or "
        "`scratch` sibling).")
  mngr = ocp.CheckpointManager(path / "checkpoints")
  try:
    latest = mngr.latest_step()
    if latest is None:
      raise FileNotFoundError(f"{path / 'checkpoints'} holds no checkpoint; "
                              "finish (or rerun) the training first.")
    abstract = jax.eval_shape(lambda: models.init(jax.random.key(0), cfg))
    restored = mngr.restore(latest, args=ocp.args.Composite(
        params=ocp.args.StandardRestore(abstract)))
  finally:
    mngr.close()
  params = jax.tree.map(np.asarray, restored["params"])
  norm = info["normalizer"]
  return Run(params, cfg, np.asarray(norm["mean"], np.float32),
             np.asarray(norm["std"], np.float32), list(info["channel_names"]),
             list(info["class_names"]), float(info["sample_rate_hz"]),
             int(latest), info)


# ---------------------------------------------------------------- channels
class ChannelMismatchError(ValueError):
  """The incoming channels are not the ones the run was trained on."""


def check_channels(expected: Sequence[str], got: Sequence[str], *,
                   source: str, reorder: bool = False) -> np.ndarray:
  """Indices into `got` that give the run's channels in the run's order.

  Args:
    expected: the run's channel names.
    got: the names of the incoming channels, in their order.
    source: names the input in errors.
    reorder: accept any order and extra channels (picked by name); otherwise
      names and order must match exactly.

  Raises:
    ChannelMismatchError: naming the missing, extra or misplaced channels.
  """
  expected, got = list(expected), list(got)
  missing = [c for c in expected if c not in got]
  extra = [c for c in got if c not in expected]
  dup = sorted({c for c in got if got.count(c) > 1})
  problems = []
  if missing:
    problems.append(f"missing {missing}")
  if extra and not reorder:
    problems.append(f"extra {extra}")
  if dup:
    problems.append(f"repeated {dup}")
  if not problems and not reorder and got != expected:
    problems.append(f"order {got} instead of {expected}")
  if problems:
    raise ChannelMismatchError(
        f"{source}: channels do not match the model's: "
        + "; ".join(problems) + f". The model expects {expected}; send exactly "
        "those, in that order (or map the source's names onto them).")
  return np.asarray([got.index(c) for c in expected], np.int64)


# --------------------------------------------------------------- resampling
class OnlineResampler:
  """Uniform-grid frames from samples `(t, x)` arriving one at a time.

  The grid is `t0 + k / rate_hz`, t0 the first sample's time; a frame is
  emitted as soon as every channel has a finite sample at or after its time,
  by the same linear interpolation `resample_to_grid` applies offline (see the
  module docstring for the gap policies and the online differences).
  """

  def __init__(self, rate_hz: float, channels: int, *,
               gap_policy: str = "interpolate", gap_factor: float = 1.5,
               max_gap_s: float = 1.0, max_nonfinite_run: int = 10):
    if gap_policy not in GAP_POLICIES:
      raise ValueError(f"gap_policy={gap_policy!r}; choose one of "
                       f"{GAP_POLICIES}.")
    if not rate_hz > 0:
      raise ValueError(f"rate_hz must be positive, got {rate_hz}.")
    self.rate = float(rate_hz)
    self.channels = channels
    self.gap_policy = gap_policy
    self.gap_s = gap_factor / self.rate
    self.max_gap_s = max_gap_s
    self.max_nonfinite_run = max_nonfinite_run
    self.repairs = dict.fromkeys(
        ("out_of_order_dropped", "duplicate_timestamps", "gaps_interpolated",
         "gaps_held", "resets", "nonfinite_values_held"), 0)
    self._start(None)

  def _start(self, t0):
    self.t0 = t0
    self.k = 0                      # Next grid frame to emit.
    self._t: list[float] = []       # Buffered sample times, relative to t0.
    self._x: list[np.ndarray] = []  # Buffered samples, float64 [C].
    self._last_finite = np.full(self.channels, np.nan)
    self._last_finite_t = np.full(self.channels, -np.inf)
    self._run = np.zeros(self.channels, np.int64)
    self._clean = False  # One finite sample buffered: `_add_fast` applies.

  def push(self, t: float, x) -> tuple[np.ndarray, np.ndarray, bool]:
    """Adds one sample; returns the frames it completes.

    Args:
      t: the sample time, seconds (any origin, non-decreasing).
      x: <float>[C] the sample; NaN marks a missing value.

    Returns:
      (times, frames, reset): <float64>[n] grid times, <float32>[n, C]
      frames, and whether the stream restarted before these frames (the
      caller zeroes the model's state).
    """
    t = float(t)
    x = np.array(x, np.float64).reshape(self.channels)
    if not math.isfinite(t):
      self.repairs["out_of_order_dropped"] += 1
      return self._empty(False)
    if self.t0 is None:
      self._start(t)
      return self._add(0., x, False)
    rel = t - self.t0
    last = self._t[-1] if self._t else self._last_t
    if rel < last:
      self.repairs["out_of_order_dropped"] += 1
      return self._empty(False)
    if rel == last and self._t:
      self.repairs["duplicate_timestamps"] += 1
      self._t.pop(), self._x.pop()
      return self._add(rel, x, False)
    dt = rel - last
    if dt > self.max_gap_s or (dt > self.gap_s and self.gap_policy == "reset"):
      self.repairs["resets"] += 1
      self._start(t)
      return self._add(0., x, True)
    if dt > self.gap_s and self.gap_policy == "hold":
      self.repairs["gaps_held"] += 1
      # A copy of the last sample just before the new one: the gap's frames
      # hold the last values, the one interval after it interpolates.
      self._add(np.nextafter(rel, -np.inf), self._last_finite.copy(), False,
                emit=False)
    elif dt > self.gap_s:
      self.repairs["gaps_interpolated"] += 1
    return self._add(rel, x, False)

  @property
  def _last_t(self) -> float:
    return float(np.max(self._last_finite_t))

  def _empty(self, reset):
    return (np.zeros(0), np.zeros((0, self.channels), np.float32), reset)

  def _add(self, rel, x, reset, emit=True):
    finite = np.isfinite(x).all()
    if finite and emit and len(self._t) == 1 and self._clean:
      return self._add_fast(rel, x, reset)
    self._clean = False
    bad = ~np.isfinite(x)
    self._run = np.where(bad, self._run + 1, 0)
    over = bad & (self._run > self.max_nonfinite_run) & np.isfinite(
        self._last_finite)
    if over.any():
      self.repairs["nonfinite_values_held"] += int(over.sum())
      x = np.where(over, self._last_finite, x)
      bad = ~np.isfinite(x)
    self._t.append(rel)
    self._x.append(x)
    self._last_finite = np.where(bad, self._last_finite, x)
    self._last_finite_t = np.where(bad, self._last_finite_t, rel)
    if not emit:
      return self._empty(reset)
    out = self._emit(reset)
    # Back on the fast path once the buffer is one finite sample again.
    self._clean = len(self._t) == 1 and bool(np.isfinite(self._x[0]).all())
    return out

  def _add_fast(self, rel, x, reset):
    """`_add` + `_emit` for the usual case: one finite sample buffered.

    The same arithmetic as `np.interp` between two samples, for all channels
    at once (np.interp per channel costs more than the model step).
    """
    t0, x0 = self._t[0], self._x[0]
    self._t[0], self._x[0] = rel, x
    self._last_finite, self._last_finite_t[:] = x, rel
    self._run[:] = 0
    n = int(np.floor(rel * self.rate + 1e-9)) + 1 - self.k
    if n <= 0:
      return self._empty(reset)
    if n == 1:  # The usual case (sample rate ~ model rate): scalar grid.
      g = self.k / self.rate
      self.k += 1
      frame = x if g >= rel else x0 if g == t0 else (
          (x - x0) / (rel - t0) * (g - t0) + x0)
      return (np.array([self.t0 + g]), frame[None].astype(np.float32),
              reset)
    grid = np.arange(self.k, self.k + n) / self.rate
    self.k += n
    slope = (x - x0) / (rel - t0)
    out = slope * (grid[:, None] - t0) + x0
    # np.interp's edge cases: exact hits and beyond the last sample.
    out[grid == t0] = x0
    out[grid >= rel] = x
    return self.t0 + grid, out.astype(np.float32), reset

  def flush(self) -> tuple[np.ndarray, np.ndarray, bool]:
    """The frames up to the last sample, channels still missing held.

    For the end of a stream: frames wait for every channel's next finite value,
    so after a trailing non-finite value they would never come out.
    """
    if not self._t or not np.isfinite(self._last_finite).all():
      return self._empty(False)
    return self._emit(False, frontier=self._t[-1])

  def _emit(self, reset, frontier=None):
    if frontier is None:
      frontier = float(np.min(self._last_finite_t))
    if not math.isfinite(frontier):
      return self._empty(reset)
    n = int(np.floor(frontier * self.rate + 1e-9)) + 1 - self.k
    if n <= 0:
      return self._empty(reset)
    grid = np.arange(self.k, self.k + n) / self.rate
    ts = np.asarray(self._t)
    xs = np.stack(self._x)
    if np.isfinite(xs).all():  # Every channel on the same samples: at once.
      out = _interp_rows(grid, ts, xs).astype(np.float32)
    else:
      out = np.empty((n, self.channels), np.float32)
      for c in range(self.channels):
        ok = np.isfinite(xs[:, c])
        out[:, c] = np.interp(grid, ts[ok], xs[ok, c])
    self.k += n
    # Keep, per channel, the last finite sample at or before the next frame
    # (it brackets that frame), and everything after it.
    g_next = self.k / self.rate
    keep_from = len(ts)
    for c in range(self.channels):
      ok = np.flatnonzero(np.isfinite(xs[:, c]) & (ts <= g_next + 1e-12))
      keep_from = min(keep_from, int(ok[-1]) if ok.size else 0)
    del self._t[:keep_from], self._x[:keep_from]
    return self.t0 + grid, out, reset


def _interp_rows(grid: np.ndarray, ts: np.ndarray, xs: np.ndarray):
  """`np.interp(grid, ts, xs[:, c])` for every column c at once.

  grid <float64>[n] inside [ts[0], ts[-1]] (what `_emit` asks for), ts [m]
  increasing, xs [m, C] -> [n, C], with np.interp's arithmetic (slope times
  offset plus left value; exact hits and the right end return the sample).
  """
  if len(ts) == 1:
    return np.repeat(xs, len(grid), axis=0)
  j = np.clip(np.searchsorted(ts, grid, side="right") - 1, 0, len(ts) - 2)
  slope = (xs[j + 1] - xs[j]) / (ts[j + 1] - ts[j])[:, None]
  out = slope * (grid - ts[j])[:, None] + xs[j]
  hit = grid == ts[j]
  out[hit] = xs[j][hit]
  out[grid <= ts[0]] = xs[0]
  out[grid >= ts[-1]] = xs[-1]
  return out


# ---------------------------------------------------------------- smoothing
class Smoother:
  """Causal smoothing of class probabilities for a stable displayed label.

  ema: p_t <- ema * p_{t-1} + (1 - ema) * p_t (0 = off).
  hysteresis: the label switches from c to k only when p_k - p_c > hysteresis
  (0 = plain argmax).
  """

  def __init__(self, ema: float = 0., hysteresis: float = 0.):
    if not 0 <= ema < 1:
      raise ValueError(f"ema={ema} must be in [0, 1).")
    if not 0 <= hysteresis < 1:
      raise ValueError(f"hysteresis={hysteresis} must be in [0, 1).")
    self.ema, self.hysteresis = ema, hysteresis
    self.reset()

  def reset(self):
    self._p = None
    self._label = None

  def __call__(self, probs: np.ndarray) -> tuple[np.ndarray, int]:
    """<float>[K] probabilities -> (smoothed [K], label)."""
    if not self.ema and not self.hysteresis:  # Off: the plain argmax.
      self._p = probs
      return probs, int(probs.argmax())
    probs = np.asarray(probs, np.float64)
    self._p = probs if self._p is None or not self.ema else (
        self.ema * self._p + (1. - self.ema) * probs)
    best = int(np.argmax(self._p))
    if self._label is None or (
        self._p[best] - self._p[self._label] > self.hysteresis):
      self._label = best
    return self._p, self._label


def smooth_labels(probs: np.ndarray, ema: float = 0.,
                  hysteresis: float = 0.) -> np.ndarray:
  """<int32>[T] labels of `Smoother` applied to <float>[T, K] probs."""
  if not ema and not hysteresis:
    return np.asarray(probs).argmax(-1).astype(np.int32)
  s = Smoother(ema, hysteresis)
  return np.asarray([s(p)[1] for p in probs], np.int32)


# ------------------------------------------------------ one live stream
class Model:
  """Raw frames in, probabilities out: a run's normaliser + jitted `step`.

  Also the interface the exported artifact offers (`export.Artifact`), so
  `Streamer` and the live demo take either.
  """

  def __init__(self, run: Run):
    self.channel_names = run.channel_names
    self.class_names = run.class_names
    self.sample_rate_hz = run.sample_rate_hz
    params = jax.tree.map(jnp.asarray, run.params)
    mean, std = jnp.asarray(run.mean), jnp.asarray(run.std)
    leaves, treedef = jax.tree.flatten(init_state(params, 1))
    widths = [leaf.shape[-1] for leaf in leaves]
    self._width = sum(widths)

    def raw_step(packed, x):
      parts = jnp.split(packed, np.cumsum(widths)[:-1], axis=-1)
      state = jax.tree.unflatten(treedef, parts)
      state, out = step(params, state, (x - mean) / std)
      return jnp.concatenate(jax.tree.leaves(state), axis=-1), out["probs"]
    # Params are constants of the compiled step and the carries travel as one
    # packed array: each argument costs dispatch time per call, which is most
    # of a small model's step. The state is donated and stays on the device.
    self._step = jax.jit(raw_step, donate_argnums=0)

    def raw_steps(packed, xs):
      def one(p, x):
        p, probs = raw_step(p, x[None])
        return p, probs[0]
      # Straight-line code for the few frames one sample completes: one
      # dispatch instead of one per frame, and no loop to run.
      return jax.lax.scan(one, packed, xs, unroll=True)
    self._steps = jax.jit(raw_steps, donate_argnums=0)

  def init_state(self, batch_size: int = 1) -> jax.Array:
    """<float32>[batch, sum of carry widths]: every layer's carries packed."""
    return jnp.zeros((batch_size, self._width), jnp.float32)

  def step(self, state, x_raw: np.ndarray):
    """x_raw <float32>[batch, C] in the run's units -> (state, probs [B, K])."""
    return self._step(state, x_raw)

  def steps(self, state, frames: np.ndarray):
    """Consecutive frames <float32>[n, C] of ONE stream -> (state, [n, K])."""
    return self._steps(state, frames)


class NumpyModel:
  """`Model` with the step in NumPy: the same params and maths, no XLA.

  For a demonstrator that should compile nothing (the params become plain
  arrays, no XLA program), and an independent check of the jitted step (test: within 1e-5
  of the training-time scan). It is not the fast path: on the 2-core CPU a
  2x64 LSTM frame takes ~50 us in NumPy (one small NumPy call per op) against
  ~21 us for the jitted `Model` with synchronous dispatch (README, "Online
  inference").
  """

  def __init__(self, run: Run):
    self.channel_names = run.channel_names
    self.class_names = run.class_names
    self.sample_rate_hz = run.sample_rate_hz
    if "classifier" not in run.params:
      raise ValueError("NumpyModel needs a classifier run (params without a "
                       "'classifier' head: use stream.step for other heads).")
    self._cfg = cfg = model_config(run.params)
    f32 = lambda a: np.asarray(a, np.float32)
    enc = run.params["encoder"]
    self._mean, self._std = f32(run.mean), f32(run.std)
    self._adapter = ((f32(enc["adapter"]["w"]), f32(enc["adapter"]["b"]))
                     if "adapter" in enc else None)
    self._layers = []
    for i in range(cfg.layers):
      layer = enc[f"layer_{i}"]
      p = {k: f32(v) for k, v in layer["cell"].items()}
      if cfg.cell != "gru":  # One matmul over [x, h] instead of two.
        p["w"] = np.concatenate([p["w_ih"], p["w_hh"]], axis=0)
      norm = ((f32(layer["norm"]["scale"]), f32(layer["norm"]["bias"]))
              if cfg.layer_norm else None)
      self._layers.append((p, norm))
    self._head = (f32(run.params["classifier"]["w"]),
                  f32(run.params["classifier"]["b"]))

  def init_state(self, batch_size: int = 1) -> list:
    """Per-layer carries: (c, h) for an LSTM, h otherwise; [batch, H] each."""
    zeros = lambda: np.zeros((batch_size, self._cfg.hidden), np.float32)
    return [(zeros(), zeros()) if self._cfg.cell == "lstm" else zeros()
            for _ in range(self._cfg.layers)]

  def step(self, state, x_raw: np.ndarray):
    """x_raw <float32>[batch, C] in the run's units -> (state, probs [B, K])."""
    h = (np.asarray(x_raw, np.float32) - self._mean) / self._std
    if self._adapter is not None:
      h = h @ self._adapter[0] + self._adapter[1]
    new_state = []
    for (p, norm), carry in zip(self._layers, state):
      carry, h = _NUMPY_STEPS[self._cfg.cell](p, carry, h)
      if norm is not None:
        mu = h.mean(-1, keepdims=True)
        var = np.square(h - mu).mean(-1, keepdims=True)
        h = (h - mu) / np.sqrt(var + np.float32(1e-5)) * norm[0] + norm[1]
      new_state.append(carry)
    logits = h @ self._head[0] + self._head[1]
    e = np.exp(logits - logits.max(-1, keepdims=True))
    return new_state, e / e.sum(-1, keepdims=True)


def _np_sigmoid(z):
  # tanh form: no overflow warning for large |z|, same value as 1/(1+e^-z).
  return np.float32(0.5) * (np.tanh(np.float32(0.5) * z) + np.float32(1.))


def _np_rnn(p, h, x):
  h = np.tanh(np.concatenate([x, h], axis=-1) @ p["w"] + p["b"])
  return h, h


def _np_lstm(p, carry, x):
  c, h = carry
  z = np.concatenate([x, h], axis=-1) @ p["w"] + p["b"]
  n = c.shape[-1]
  s = _np_sigmoid(z)
  c = s[:, n:2 * n] * c + s[:, :n] * np.tanh(z[:, 2 * n:3 * n])
  h = s[:, 3 * n:] * np.tanh(c)
  return (c, h), h


def _np_gru(p, h, x):
  gi = x @ p["w_ih"] + p["b_ih"]
  gh = h @ p["w_hh"] + p["b_hh"]
  n = h.shape[-1]
  rz = _np_sigmoid(gi[:, :2 * n] + gh[:, :2 * n])
  r, z = rz[:, :n], rz[:, n:]
  cand = np.tanh(gi[:, 2 * n:] + r * gh[:, 2 * n:])
  h = (1. - z) * cand + z * h
  return h, h


_NUMPY_STEPS = {"rnn": _np_rnn, "lstm": _np_lstm, "gru": _np_gru}


class Output(NamedTuple):
  t: float            # Grid time of the frame, seconds (source clock).
  probs: np.ndarray   # <float32>[K] the model's probabilities.
  smoothed: np.ndarray  # [K] after EMA (probs itself without smoothing).
  label: int          # After smoothing / hysteresis.
  reset: bool         # The state was zeroed before this frame.


class Streamer:
  """One stream: resampling, channel check, normalisation, model, smoothing."""

  def __init__(self, model, input_channels: Sequence[str], *,
               source: str = "stream", reorder: bool = False,
               gap_policy: str = "interpolate", gap_factor: float = 1.5,
               max_gap_s: float = 1.0, ema: float = 0.,
               hysteresis: float = 0.):
    self.model = model
    self.index = check_channels(model.channel_names, input_channels,
                                source=source, reorder=reorder)
    self._select = list(self.index) != list(range(len(input_channels)))
    self.resampler = OnlineResampler(
        model.sample_rate_hz, len(self.index), gap_policy=gap_policy,
        gap_factor=gap_factor, max_gap_s=max_gap_s)
    self.smoother = Smoother(ema, hysteresis)
    self.state = model.init_state(1)

  def push(self, t: float, x) -> list[Output]:
    """One sample (in the source's channel order) -> the frames it completes."""
    if self._select:  # The resampler converts to float64 itself.
      x = np.asarray(x, np.float64)[self.index]
    times, frames, reset = self.resampler.push(t, x)
    if not len(frames):
      return []
    if reset:
      self.state = self.model.init_state(1)
      self.smoother.reset()
    if len(frames) > 1 and getattr(self.model, "steps", None):
      self.state, probs_all = self.model.steps(self.state, frames)
      probs_all = np.asarray(probs_all)
    else:
      probs_all = []
      for frame in frames:
        self.state, probs = self.model.step(self.state, frame[None])
        probs_all.append(np.asarray(probs)[0])
    outs = []
    for i, (tf, probs) in enumerate(zip(times, probs_all)):
      smoothed, label = self.smoother(probs)
      outs.append(Output(float(tf), probs, smoothed, label, reset and i == 0))
    return outs


# ---------------------------------------------------- streaming evaluation
def stream_metrics(labels: np.ndarray, pred: np.ndarray, rate_hz: float,
                   num_classes: int) -> dict:
  """Per-frame scores, detection delays and switch rates of one stream.

  Args:
    labels: <int>[T] true labels (-1: unlabelled, ignored by the scores).
    pred: <int>[T] predicted labels.
    rate_hz: frame rate.
    num_classes: K.
  """
  from imujax import metrics  # Scores only; keeps this module light.

  keep = labels >= 0
  conf = metrics.confusion_matrix(labels[keep], pred[keep], num_classes)
  s = metrics.scores(conf)
  changes = np.flatnonzero((labels[1:] != labels[:-1]) & (labels[1:] >= 0)) + 1
  bounds = list(changes[1:]) + [len(labels)]
  delays, missed = [], 0
  for i, end in zip(changes, bounds):
    hit = np.flatnonzero(pred[i:end] == labels[i])
    if hit.size:
      delays.append(hit[0] / rate_hz * 1e3)
    else:
      missed += 1
  switches = np.flatnonzero(pred[1:] != pred[:-1]) + 1
  spurious = int(np.sum(pred[switches] != labels[switches]))
  minutes = len(labels) / rate_hz / 60.
  return {
      "macro_f1": s["macro_f1"], "accuracy": s["accuracy"],
      "frames": int(keep.sum()), "label_changes": int(len(changes)),
      "delay_ms_median": float(np.median(delays)) if delays else float("nan"),
      "delay_ms_mean": float(np.mean(delays)) if delays else float("nan"),
      "delay_ms_p90": (float(np.percentile(delays, 90)) if delays
                       else float("nan")),
      "changes_missed": missed,
      "switches_per_min": len(switches) / minutes,
      "spurious_switches_per_min": spurious / minutes,
      "true_changes_per_min": len(changes) / minutes,
  }


def evaluate_stream(run: Run, recordings, *, ema: float = 0.,
                    hysteresis: float = 0.) -> dict:
  """Streams `recordings` back to back (no state reset) and scores them.

  Returns {"raw": metrics, "smoothed": metrics (when ema or hysteresis),
  "recordings": n, "minutes": m}.
  """
  signals = np.concatenate([r.signals for r in recordings])
  labels = np.concatenate([r.labels for r in recordings])
  x = ((signals - run.mean) / run.std).astype(np.float32)[None]
  _, out = scan_steps(jax.tree.map(jnp.asarray, run.params), jnp.asarray(x))
  probs = np.asarray(out["probs"][0])
  k = run.config.num_classes
  result = {"recordings": len(recordings),
            "minutes": len(labels) / run.sample_rate_hz / 60.,
            "raw": stream_metrics(labels, probs.argmax(-1), run.sample_rate_hz,
                                  k)}
  if ema or hysteresis:
    result["smoothed"] = stream_metrics(
        labels, smooth_labels(probs, ema, hysteresis), run.sample_rate_hz, k)
    result["smoothing"] = {"ema": ema, "hysteresis": hysteresis}
  return result


def split_recordings(run: Run, split: str, data_dir: str = ""):
  """The recordings of `split` ("train", "val", "test") of the run's data."""
  from imujax.data import input_pipeline  # Reads TFDS: heavy, CLI only.

  data_cfg = run.info["config"]["data"]
  data = input_pipeline.load(data_cfg["name"], data_dir or data_cfg["data_dir"],
                             data_cfg["manual_dir"])
  # The run may use a selection of the dataset's channels (imujax.training.transfer).
  select = check_channels(run.channel_names, data.channel_names,
                          source=f"dataset {data_cfg['name']}", reorder=True)
  data = data._replace(recordings=[r._replace(signals=r.signals[:, select])
                                   for r in data.recordings])
  splits = run.info["splits"]
  if split not in splits:
    raise ValueError(f"--split={split!r}; the run has {sorted(splits)}.")
  return input_pipeline.select(data.recordings, splits[split])


def format_table(result: dict) -> str:
  rows = [("raw", result["raw"])]
  if "smoothed" in result:
    sm = result["smoothing"]
    rows.append((f"ema={sm['ema']:g}, hysteresis={sm['hysteresis']:g}",
                 result["smoothed"]))
  lines = ["| output | macro-F1 | accuracy | delay median / p90 (ms) | missed "
           "| switches/min | spurious/min |", "|---|---|---|---|---|---|---|"]
  for name, m in rows:
    lines.append(
        f"| {name} | {m['macro_f1']:.3f} | {m['accuracy']:.3f} | "
        f"{m['delay_ms_median']:.0f} / {m['delay_ms_p90']:.0f} | "
        f"{m['changes_missed']}/{m['label_changes']} | "
        f"{m['switches_per_min']:.1f} | {m['spurious_switches_per_min']:.1f} |")
  return "\n".join(lines)


def main(argv=None):
  import argparse

  p = argparse.ArgumentParser(
      prog="python -m imujax.online.stream",
      description="Streaming evaluation of a classifier run on held-out "
      "recordings streamed back to back without state reset.")
  p.add_argument("--workdir", required=True, help="A fine-tuned run.")
  p.add_argument("--split", default="test", help="train, val or test.")
  p.add_argument("--ema", type=float, default=0.,
                 help="EMA factor for the probabilities (0 = off).")
  p.add_argument("--hysteresis", type=float, default=0.,
                 help="Probability margin needed to switch label (0 = off).")
  p.add_argument("--data_dir", default="",
                 help="TFDS data_dir (default: the run's).")
  p.add_argument("--json", default="", help="Also write the result here.")
  args = p.parse_args(argv)
  run = load_run(args.workdir)
  recs = split_recordings(run, args.split, args.data_dir)
  result = evaluate_stream(run, recs, ema=args.ema, hysteresis=args.hysteresis)
  print(f"{args.workdir}: {result['recordings']} {args.split} recordings, "
        f"{result['minutes']:.1f} min streamed back to back.")
  print(format_table(result))
  if args.json:
    epath.Path(args.json).write_text(json.dumps(result, indent=1))
  return result


if __name__ == "__main__":
  main()

"""Sparse instants as per-frame event probabilities (finetune.target=events).

The events are the frames where an integer track named in `finetune.tracks`
is > 0 (e.g. mobilised's `labels_initial_contact`: 1 at each initial foot
contact); 0 is "no event" and -1 "unknown" (batch["tracks"] <int32>[B, T,
E]). A per-frame linear head gives one logit per track.

Training target (`event_targets`): at each frame, the largest
exp(−d² / (2σ²)) over the events at d frames from it, with σ = sigma_ms
(peak 1 on the event frame, cut at d > 3σ). The loss is the per-frame
Bernoulli KL divergence KL(y ‖ p) — the cross-entropy minus the target's
entropy, so its gradients are those of the soft cross-entropy and a perfect
prediction scores 0 — with frame weights 1 + (pos_weight − 1)·y (events are
rare). Frames whose ±3σ neighbourhood holds an unknown (-1), padding or
out-of-window frame are masked: their target cannot be known from the
window.

Evaluation (`score`) runs the model causally over whole recordings and
decodes each track online (`metrics.decode_events`: a detection fires at
most delay_ms after its peak); detections on unknown frames are dropped;
precision / recall / F1 with ± tolerance_ms, timing error (ms) and the
detection delay (ms) from `metrics.event_scores`.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np

from imujax import metrics
from imujax import models
from imujax import objectives
from imujax.objectives import losses


def _init_heads(key, cfg: models.ModelConfig, opts) -> dict:
  return {"event_detector": losses.linear_init(key, cfg.hidden,
                                               len(opts["tracks"]))}


def frames(ms: float, sample_rate_hz: float) -> int:
  """The whole frames within `ms` (rounded down, so a tolerance or a delay
  bound is never widened: ±50 ms at 50 Hz is ±2 frames, i.e. ±40 ms)."""
  return int(math.floor(ms * sample_rate_hz / 1000. + 1e-9))


def _shift(x, k: int, fill):
  """x [B, T, ...] moved by k frames along time (out[t] = x[t - k])."""
  if k == 0:
    return x
  pad = jnp.full((x.shape[0], abs(k), *x.shape[2:]), fill, x.dtype)
  if k > 0:
    return jnp.concatenate([pad, x[:, :-k]], 1)
  return jnp.concatenate([x[:, -k:], pad], 1)


def event_targets(tracks, valid, sigma_frames: float):
  """The smoothed event target and the frames it is known at.

  Args:
    tracks: <int32>[B, T, E], > 0 at events, 0 none, -1 unknown.
    valid: <bool>[B, T].
    sigma_frames: the Gaussian's sd in frames (> 0).

  Returns:
    (y <float32>[B, T, E] in [0, 1], mask <bool>[B, T, E]).
  """
  radius = max(1, math.ceil(3 * sigma_frames))
  event = (tracks > 0).astype(jnp.float32)
  known = (tracks >= 0) & valid[..., None]
  y = jnp.zeros_like(event)
  mask = known
  for k in range(-radius, radius + 1):
    weight = math.exp(-k * k / (2 * sigma_frames ** 2))
    y = jnp.maximum(y, weight * _shift(event, k, 0.))
    mask = mask & _shift(known, k, False)
  return y, mask


def event_loss_core(logits, y, mask, pos_weight: float):
  """Weighted mean Bernoulli KL(y ‖ sigmoid(logits)) over masked frames.

  logits, y: <float32>[..., E]; mask: <bool>[..., E]. 0 at logits = logit(y).
  """
  log_p, log_q = jax.nn.log_sigmoid(logits), jax.nn.log_sigmoid(-logits)
  def neg_entropy(a):  # a log a, 0 at a = 0 (and a finite gradient there).
    return jnp.where(a > 0, a * jnp.log(jnp.maximum(a, 1e-12)), 0.)
  kl = neg_entropy(y) + neg_entropy(1 - y) - y * log_p - (1 - y) * log_q
  w = jnp.where(mask, 1. + (pos_weight - 1.) * y, 0.)
  return (w * kl).sum() / jnp.maximum(w.sum(), 1e-6)


def events_loss(params, batch, rng, stats, *, cfg: models.ModelConfig, opts,
                dropout: bool = True):
  """KL to the smoothed event target (module docstring)."""
  del stats  # The event target needs no statistics.
  h = losses.encode(params, cfg, batch["signals"], rng, dropout)
  logits = losses.linear(params["event_detector"], h)
  sigma = opts["sigma_ms"] * opts["sample_rate_hz"] / 1000.
  y, mask = event_targets(batch["tracks"], batch["valid"], sigma)
  loss = event_loss_core(logits, y, mask, opts["pos_weight"])
  hit = jnp.where(mask & (y >= 0.5), jax.nn.sigmoid(logits) >= 0.5, False)
  peaks = jnp.maximum(jnp.where(mask, y >= 0.5, False).sum(), 1)
  return loss, {"peak_frames_found": hit.sum() / peaks}


def predict(params, batch, stats, *, cfg: models.ModelConfig, opts):
  """<float32>[B, T, E]: the causal per-frame event probabilities."""
  del stats, opts
  h, _ = models.encode(params["encoder"], cfg, batch["signals"])
  return jax.nn.sigmoid(losses.linear(params["event_detector"], h))


def score(outputs, recordings, stats, opts) -> dict:
  """Causally decoded events against the track, per track and pooled.

  Args:
    outputs: per recording <float32>[T_i, E] probabilities (`predict`).
    recordings: per recording {"tracks": [T_i, E], "valid": [T_i], ...}.
    stats: unused.
    opts: the run's options ("tracks", "sample_rate_hz", decoder and
      tolerance options).

  Returns:
    The first track's `metrics.event_scores` at the top level, with
    "tolerance_ms" and "decoder_delay_ms", and "per_track": each track's.
  """
  del stats
  rate = opts["sample_rate_hz"]
  delay = frames(opts["delay_ms"], rate)
  tolerance = frames(opts["tolerance_ms"], rate)
  per_track = {}
  for j, name in enumerate(opts["tracks"]):
    counts = []
    for prob, rec in zip(outputs, recordings):
      track = np.where(rec["valid"], rec["tracks"][:, j], -1)
      peaks, fired = metrics.decode_events(prob[:, j], opts["threshold"],
                                           delay)
      keep = track[peaks] >= 0 if len(peaks) else np.zeros(0, bool)
      counts.append(metrics.event_counts(np.flatnonzero(track > 0),
                                         peaks[keep], fired[keep],
                                         tolerance))
    per_track[name] = metrics.event_scores(counts, rate)
  return {**per_track[opts["tracks"][0]],
          "tolerance_ms": tolerance * 1000. / rate,
          "decoder_delay_ms": delay * 1000. / rate, "per_track": per_track}


OBJECTIVE = objectives.Objective("events", _init_heads, events_loss,
                                 predict=predict, score=score)

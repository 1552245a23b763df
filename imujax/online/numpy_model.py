r"""The jitted `model.Model`'s maths in NumPy: a run stepped without XLA.

Owns `NumpyModel` and the NumPy twins of the built-in cells (rnn, lstm, gru,
mingru, minlstm, lru). For a demonstrator that should compile nothing, and an
independent check of the jitted step (tests/test_stream.py and
tests/test_parallel_cells.py: within 1e-5 of the training-time scan). It
is not the fast path (README, "Online inference"), and it covers the built-in
cells only: a cell added with `cells.register` runs in the jitted
`model.Model`, whose step comes from the cell itself.
"""

import numpy as np

from imujax.online import model


class NumpyModel:
  """`model.Model` with the step in NumPy: the same params and maths, no XLA.

  On the 2-core CPU a 2x64 LSTM frame takes ~50 us in NumPy (one small NumPy
  call per op) against ~21 us for the jitted `Model` with synchronous
  dispatch (README, "Online inference").
  """

  def __init__(self, ckpt: model.Checkpoint):
    record = ckpt.record
    self.channel_names = list(record.channel_names)
    self.class_names = list(record.class_names)
    self.sample_rate_hz = float(record.sample_rate_hz)
    self._cfg = cfg = record.model
    # The heads of `export`'s artifact (model.Checkpoint.outputs).
    self.outputs = ckpt.outputs()
    if not self.outputs:
      raise ValueError("NumpyModel needs a classifier, regression or events "
                       "run (model_config.num_classes is 0 and the params "
                       "hold no regressor or event_detector head).")
    if cfg.cell not in _NUMPY_STEPS:
      raise ValueError(
          f"NumpyModel implements the cells {sorted(_NUMPY_STEPS)}; this run's "
          f"model_config.cell is {cfg.cell!r}: use the jitted model.Model "
          "(`--backend=jax` for the live page).")
    f32 = lambda a: np.asarray(a, np.float32)  # noqa: E731
    enc = ckpt.params["encoder"]
    self._mean, self._std = ckpt.mean, ckpt.std
    self._adapter = ((f32(enc["adapter"]["w"]), f32(enc["adapter"]["b"]))
                     if "adapter" in enc else None)
    # models.project_modalities: (channel indices, w, b, norm) per modality,
    # in sorted-modality order.
    self._projection = [
        ([i for i, k in enumerate(cfg.modalities) if k == m],
         f32(p["w"]), f32(p["b"]),
         (f32(p["norm"]["scale"]), f32(p["norm"]["bias"])))
        for m, p in sorted(enc.get("modality_projection", {}).items())
    ] if cfg.modality_projection else None
    self._layers = []
    for i in range(cfg.layers):
      layer = enc[f"layer_{i}"]
      p = {k: f32(v) for k, v in layer["cell"].items()}
      if cfg.cell in ("rnn", "lstm"):  # One matmul over [x, h], not two.
        p["w"] = np.concatenate([p["w_ih"], p["w_hh"]], axis=0)
      if cfg.cell == "lru":  # Constant per run: computed once.
        p["decay"] = np.exp(-np.exp(p["nu_log"]) +
                            1j * np.exp(p["theta_log"])).astype(np.complex64)
        p["gamma"] = np.exp(p["gamma_log"])
      norm = ((f32(layer["norm"]["scale"]), f32(layer["norm"]["bias"]))
              if cfg.layer_norm else None)
      self._layers.append((p, norm))
    heads = {"probs": "classifier", "regression": "regressor",
             "event_probs": "event_detector"}
    self._heads = {k: (f32(ckpt.params[h]["w"]), f32(ckpt.params[h]["b"]))
                   for k, h in heads.items() if h in ckpt.params}
    reg = self.outputs.get("regression")
    self._target = reg and (f32(reg["target_mean"]), f32(reg["target_std"]))

  def init_state(self, batch_size: int = 1) -> list:
    """Per-layer carries, [batch, H] each: (c, h) LSTM, (re, im) LRU, else h."""
    zeros = lambda: np.zeros((batch_size, self._cfg.hidden), np.float32)
    pair = self._cfg.cell in ("lstm", "lru")
    return [(zeros(), zeros()) if pair else zeros()
            for _ in range(self._cfg.layers)]

  def step(self, state, x_raw: np.ndarray):
    """x_raw <float32>[batch, C] in the run's units -> (state, probs [B, K])."""
    if "probs" not in self._heads:
      raise ValueError(
          f"This run has no classifier head (its outputs are "
          f"{sorted(self.outputs)}): call step_outputs(state, x_raw).")
    state, h = self._encode(state, x_raw)
    w, b = self._heads["probs"]
    logits = h @ w + b
    e = np.exp(logits - logits.max(-1, keepdims=True))
    return state, e / e.sum(-1, keepdims=True)

  def step_outputs(self, state, x_raw: np.ndarray):
    """x_raw <float32>[batch, C] -> (state, {"probs" [B, K], "regression"
    [B, R] in the targets' units, "event_probs" [B, E]}: those it has), as
    `export.Artifact.step_outputs`."""
    state, h = self._encode(state, x_raw)
    out = {k: h @ w + b for k, (w, b) in self._heads.items()}
    if "probs" in out:
      e = np.exp(out["probs"] - out["probs"].max(-1, keepdims=True))
      out["probs"] = e / e.sum(-1, keepdims=True)
    if "event_probs" in out:
      out["event_probs"] = _np_sigmoid(out["event_probs"])
    if "regression" in out:
      out["regression"] = out["regression"] * self._target[1] + (
          self._target[0])
    return state, out

  def _encode(self, state, x_raw: np.ndarray):
    """(new state, the top layer's output h [B, H]) of one frame."""
    h = (np.asarray(x_raw, np.float32) - self._mean) / self._std
    if self._adapter is not None:
      h = h @ self._adapter[0] + self._adapter[1]
    if self._projection is not None:  # A missing modality arrives as 0.
      h = np.concatenate([_np_layer_norm(h[:, idx] @ w + b, norm)
                          for idx, w, b, norm in self._projection], axis=-1)
    new_state = []
    for i, ((p, norm), carry) in enumerate(zip(self._layers, state)):
      carry, out = _NUMPY_STEPS[self._cfg.cell](p, carry, h)
      h = h + out if self._cfg.residual and i > 0 else out  # models.encode
      if norm is not None:
        h = _np_layer_norm(h, norm)
      new_state.append(carry)
    return new_state, h


def _np_layer_norm(h, norm):
  mu = h.mean(-1, keepdims=True)
  var = np.square(h - mu).mean(-1, keepdims=True)
  return (h - mu) / np.sqrt(var + np.float32(1e-5)) * norm[0] + norm[1]


def _np_sigmoid(z):
  # tanh form: no overflow warning for large |z|, same value as 1/(1+e^-z).
  return np.float32(0.5) * (np.tanh(np.float32(0.5) * z) + np.float32(1.))


def _np_softplus(z):
  # log(1 + e^z) = max(z, 0) + log1p(e^-|z|); past |z| = 80 that term is
  # under 2e-35, which changes no gate, and the clip keeps e^-|z| from
  # underflowing (a FloatingPointError under np.errstate(all="raise")).
  return np.maximum(z, np.float32(0.)) + np.log1p(
      np.exp(-np.minimum(np.abs(z), np.float32(80.))))


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


def _np_mingru(p, h, x):
  k = x @ p["w"] + p["b"]
  n = h.shape[-1]
  h = _np_sigmoid(-k[:, :n]) * h + _np_sigmoid(k[:, :n]) * k[:, n:]
  return h, h


def _np_minlstm(p, h, x):
  k = x @ p["w"] + p["b"]
  n = h.shape[-1]
  # log f - log i from the log-gates, as cells/minlstm.py.
  log_ratio = _np_softplus(-k[:, :n]) - _np_softplus(-k[:, n:2 * n])
  h = _np_sigmoid(log_ratio) * h + _np_sigmoid(-log_ratio) * k[:, 2 * n:]
  return h, h


def _np_lru(p, carry, x):
  s = p["decay"] * (carry[0] + 1j * carry[1]) + (
      p["gamma"] * (x @ p["w_in_re"]) + 1j * p["gamma"] * (x @ p["w_in_im"]))
  re, im = s.real.astype(np.float32), s.imag.astype(np.float32)
  y = re @ p["w_out_re"] - im @ p["w_out_im"] + x @ p["w_skip"] + p["b"]
  # The tanh form of GELU, as jax.nn.gelu(approximate=True). The tanh is
  # +-1 in float32 beyond |y| = 10: clipping there changes no value and
  # keeps y**3 from overflowing on frames far outside the training range.
  u = np.clip(y, np.float32(-10.), np.float32(10.))
  y = np.float32(0.5) * y * (np.float32(1.) + np.tanh(
      np.float32(np.sqrt(2. / np.pi)) * (u + np.float32(0.044715) * u**3)))
  return (re, im), y


_NUMPY_STEPS = {"rnn": _np_rnn, "lstm": _np_lstm, "gru": _np_gru,
                "mingru": _np_mingru, "minlstm": _np_minlstm, "lru": _np_lru}

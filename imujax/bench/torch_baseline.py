"""PyTorch's nn.LSTM / nn.GRU training step, the baseline of `imujax.bench`.

PyTorch is optional (the CPU wheel, or `pip install -e .[bench]`): it is
imported inside `time_torch`, which returns None without it. On a GPU the
rows run cuDNN's kernels (`torch_device`).
"""

import numpy as np

from imujax.bench import timing


def torch_device(torch, requested: str = "auto") -> str:
  """The device PyTorch's rows run on: "cuda" (cuDNN's nn.LSTM / nn.GRU)
  when `requested` is "auto" and a GPU is visible, else "cpu".

  Raises:
    ValueError: "cuda" requested where PyTorch sees no GPU.
  """
  if requested not in ("auto", "cpu", "cuda"):
    raise ValueError(f"--torch_device={requested!r}: choose auto, cpu or "
                     "cuda.")
  has_cuda = bool(torch.cuda.is_available())
  if requested == "cuda" and not has_cuda:
    raise ValueError("--torch_device=cuda, but PyTorch sees no GPU (a CPU "
                     "wheel, or no driver): install the CUDA wheel, or use "
                     "--torch_device=auto / cpu.")
  if requested == "auto":
    return "cuda" if has_cuda else "cpu"
  return requested


def time_torch(kind: str, batch: int, time_: int, channels: int, hidden: int,
               classes: int, steps: int, warmup: int,
               threads: int = 0, device: str = "auto") -> dict | None:
  """Times nn.LSTM / nn.GRU + Linear + Adam; None when torch is missing.

  On a GPU (`torch_device`) the step is cuDNN's and each timed step ends
  with `torch.cuda.synchronize()`, as each JAX step ends with
  `block_until_ready`: both clocks stop when the work is done, not queued;
  peak_bytes is then `torch.cuda.max_memory_allocated` over the steps.
  """
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError:
    return None
  device = torch_device(torch, device)
  if threads:
    torch.set_num_threads(threads)
  torch.manual_seed(0)
  rnn_cls = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU,
             "rnn": torch.nn.RNN}[kind]
  rnn = rnn_cls(channels, hidden, batch_first=True).to(device)
  head = torch.nn.Linear(hidden, classes).to(device)
  params = list(rnn.parameters()) + list(head.parameters())
  opt = torch.optim.Adam(params, lr=timing.LEARNING_RATE)
  rng = np.random.default_rng(0)
  xs = torch.from_numpy(
      rng.standard_normal((batch, time_, channels)).astype(np.float32)
  ).to(device)
  labels = torch.from_numpy(rng.integers(0, classes, (batch, time_))).to(
      device)
  loss_fn = torch.nn.CrossEntropyLoss()
  cuda = device == "cuda"
  if cuda:
    torch.cuda.reset_peak_memory_stats()

  def run_one():
    opt.zero_grad(set_to_none=True)
    hs, _ = rnn(xs)
    loss = loss_fn(head(hs).reshape(-1, classes), labels.reshape(-1))
    loss.backward()
    opt.step()
    if cuda:
      torch.cuda.synchronize()

  median, best = timing.median_ms(run_one, steps, warmup)
  return {"ms": median, "ms_min": best, "compile_s": None,
          "peak_bytes": torch.cuda.max_memory_allocated() if cuda else None,
          "threads": torch.get_num_threads(),
          "device": torch.cuda.get_device_name() if cuda else "cpu"}

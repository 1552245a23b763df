"""Benchmarks (speed and memory, never timed assertions) and their notes.

`python -m imujax.bench` (training step vs PyTorch and flax.linen),
`imujax.bench.seeds` (vmapped members), `imujax.bench.stream` (online
latency and streams per core), `imujax.bench.mvnx` (MVNX reader). Each
prints ratios against a baseline measured in the same process. NOTES.md holds
the dated measurements and the variants tried. Imports anything; nothing
imports it.
"""

"""Experiments: the research protocol over many runs.

Owns the pre-train vs scratch comparison that `main` runs, sweeps (local,
SLURM, TPU launchers; vmapped seed groups) and reports (tables, statistics,
plots). Imports training; nothing imports it except `main` and bench.
"""

"""Data: recordings from TFDS builders into arrays the trainer consumes.

Owns the input pipeline (load a built dataset into memory, split subjects,
label budgets, the normaliser fitted on training subjects, training windows
and whole recordings for evaluation) and `python -m imujax.data` (what a
dataset holds). Imports `imujax.datasets` (the builders) and nothing above it.
"""

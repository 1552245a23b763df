"""Training: one loop for K >= 1 members, its state, checkpoints and run files.

Owns the train state (`step`, `params`, `opt_state`), the optimizer, the
jitted step over a device mesh, Orbax checkpoints and the run record in a
workdir, evaluation during training, transfer of a pre-trained encoder
(`init_from`), multi-host start-up and process settings (`runtime`).
May import cells, models, objectives, data and datasets; never online,
experiments or bench.
"""

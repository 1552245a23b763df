"""The pure train step, and the programs that run it for one or K members.

State is a dict {"step", "params", "opt_state"}. `train_step` is a
module-level pure function of (state, batch, rng, stats); `stats` is the data
the loss needs besides the batch (the normaliser's statistics), passed as
arrays so that members with different data share one compiled program.

One member (`jit_train_step`): over a `jax.sharding.Mesh` with one `data`
axis, the batch split over devices (and hosts), the state replicated.
K members (`make_members_step`): every leaf gets a leading member axis and
`jax.vmap` runs the members side by side, split over the devices of a
`members` mesh; member k computes exactly what the one-member step would.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax


def train_step(state: dict, batch: dict, rng: jax.Array, stats: dict, *,
               loss_fn, optimizer: optax.GradientTransformation):
  """One optimisation step; pure. Returns (new_state, metrics).

  Args:
    state: {"step": <int32>[], "params", "opt_state"}.
    batch: {"signals": <float32>[B, T, C], "labels": <int32>[B, T],
      "valid": <bool>[B, T]}.
    rng: the run's training key; folded with the step.
    stats: {"mean", "std"}: <float32>[C], passed to the loss.
    loss_fn: (params, batch, rng, stats) -> (loss, metrics).
    optimizer: the phase's optimizer.
  """
  rng = jax.random.fold_in(rng, state["step"])
  (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(
      state["params"], batch, rng, stats)
  updates, opt_state = optimizer.update(grads, state["opt_state"],
                                        state["params"])
  params = optax.apply_updates(state["params"], updates)
  metrics = {"loss": loss, "grad_norm": optax.tree.norm(grads), **aux}
  return {"step": state["step"] + 1, "params": params,
          "opt_state": opt_state}, metrics


def make_mesh(devices=None) -> jax.sharding.Mesh:
  """`devices` (default: all local devices) along one `data` axis."""
  return jax.sharding.Mesh(np.array(devices or jax.devices()), ("data",))


def jit_train_step(mesh, loss_fn, optimizer):
  """`train_step` jitted for `mesh`, with the state donated."""
  replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  sharded = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data"))
  return jax.jit(
      functools.partial(train_step, loss_fn=loss_fn, optimizer=optimizer),
      in_shardings=(replicated, sharded, replicated, replicated),
      out_shardings=(replicated, replicated),
      donate_argnums=0)


# ------------------------------------------------------------- K members
def stack(trees: list):
  """Stacks pytrees on a new leading member axis."""
  return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


def member(tree, k: int):
  """Member k of a stacked pytree (also inside a traced function)."""
  return jax.tree.map(lambda x: x[k], tree)


def local_member(tree, k: int):
  """Member k of a stacked pytree of arrays, read on the device that holds it.

  Indexing an array split over devices (`x[k]`) compiles an SPMD program that
  all-reduces over every device; launched from the host between the members'
  steps, such collectives can wait on each other and deadlock XLA:CPU (seen:
  "Termination timeout for all reduce"). This takes member k from its own
  device's shard instead: no collective, the result stays on that device.
  """
  def leaf(x):
    for shard in x.addressable_shards:
      rows = range(x.shape[0])[shard.index[0]]
      if k in rows:
        return shard.data[k - rows.start]
    raise IndexError(f"member {k} is on no local device")
  return jax.tree.map(leaf, tree)


def member_mesh(num_members: int, devices=None) -> jax.sharding.Mesh:
  """The most leading `devices` (default: local) that split the members evenly.

  On one `members` axis: with d devices each holds num_members / d members and
  runs its share of the vmapped step in parallel with the others (several
  accelerators, or a CPU split into devices with `--cpu_devices`).
  """
  devices = list(devices or jax.local_devices())
  n = max(d for d in range(1, len(devices) + 1) if num_members % d == 0)
  return jax.sharding.Mesh(np.array(devices[:n]), ("members",))


def member_sharding(mesh: jax.sharding.Mesh) -> jax.sharding.NamedSharding:
  """Leading (member) axis split over `mesh`; the rest of each array whole."""
  return jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("members"))


def make_members_step(loss_fn, optimizer, impl: str = "vmap", mesh=None):
  """`train_step` over the member axis, jitted, state donated.

  `optimizer` is shared by the members, or a function of one member's
  hyper-parameters (a dict of scalars, traced) returning its optimizer; then
  the state carries them, <float32>[K] each, under "hparams".

  impl "vmap" batches the members' matmuls; with a `mesh` of several devices
  (`member_mesh`) the member axis is split over them, inputs and outputs
  sharded alike (no communication: members are independent). "loop" traces
  one step per member into the same program (independent subgraphs) on one
  device. Which is faster depends on the machine: imujax/bench/seeds.py.
  """
  if isinstance(optimizer, optax.GradientTransformation):
    step = functools.partial(train_step, loss_fn=loss_fn,
                             optimizer=optimizer)
  else:
    step = functools.partial(_step_with_hparams, loss_fn=loss_fn,
                             optimizer_for=optimizer)
  if impl == "vmap":
    over_members = jax.vmap(step)
  elif impl == "loop":
    if mesh is not None and mesh.size > 1:
      raise ValueError("impl='loop' runs on one device; use impl='vmap' to "
                       f"split members over {mesh.size} devices.")

    def over_members(state, batch, rng, stats):
      outs = [step(member(state, k), member(batch, k), rng[k],
                   member(stats, k))
              for k in range(rng.shape[0])]
      return stack([o[0] for o in outs]), stack([o[1] for o in outs])
  else:
    raise ValueError(f"impl={impl!r}; choose 'vmap' or 'loop'.")
  if mesh is None:
    return jax.jit(over_members, donate_argnums=0)
  members = member_sharding(mesh)
  return jax.jit(over_members, in_shardings=(members,) * 4,
                 out_shardings=(members, members), donate_argnums=0)


def _step_with_hparams(state, batch, rng, stats, *, loss_fn, optimizer_for):
  """One member's step with the optimizer of its own hyper-parameters."""
  hparams = state["hparams"]
  core = {k: v for k, v in state.items() if k != "hparams"}
  core, metrics = train_step(core, batch, rng, stats, loss_fn=loss_fn,
                                   optimizer=optimizer_for(hparams))
  return {**core, "hparams": hparams}, metrics




def step_keys(seeds) -> jax.Array:
  """<key>[K]: each member's training key, as a one-member run derives it."""
  return jnp.stack([run_keys(s)[0] for s in seeds])


def run_keys(seed: int) -> tuple[jax.Array, jax.Array]:
  """(training key, evaluation key) of the run with `seed`."""
  step_key, eval_key = jax.random.split(jax.random.key(seed))
  return step_key, eval_key

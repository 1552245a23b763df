"""Supervised multi-task pre-training on a pooled corpus: labels in the
batches, the per-member heads' loss, the shared label space, the guards, and
a tiny pre-training then fine-tune (imujax/data/CORPUS.md).
"""

import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from imujax import configlib
from imujax import models
from imujax import objectives
from imujax.data import corpus
from imujax.data import corpus_labels
from imujax.data import input_pipeline as ip
from imujax.objectives import corpus_supervised as cs
from imujax.objectives import losses
from imujax.objectives import options
from imujax.training import checkpoints
from imujax.training import loop
from imujax.training import run_record
from imujax.training import setup
from tests import dataset_fixtures as fx
from tests import test_corpus as tc

SIX = tc.SIX


def _labelled(name, placement, subjects, classes, seconds=8, seed=0):
  """Channel 0 holds a frame code (recording * 10000 + frame); labels cycle
  over the classes in runs of 10 frames, -1 on every 7th frame."""
  rng = np.random.default_rng(seed)
  recs = []
  for s in subjects:
    for k in range(2):
      r, t = len(recs), int(seconds * 50)
      x = rng.normal(size=(t, 6)).astype(np.float32)
      x[:, 0] = r * 10000 + np.arange(t)
      labels = ((np.arange(t) // 10 + r) % len(classes)).astype(np.int32)
      labels[::7] = -1
      recs.append(ip.Recording(x, labels, s, f"{s}_{k}"))
  return ip.Dataset(name, recs, [f"{placement}_{c}" for c in SIX],
                    list(classes), 50., f"{name}/fixture")


ALPHA = _labelled("alpha_set", "wrist", ["a1", "a2", "a3"], ["walk", "sit",
                                                            "stand"])
BETA = _labelled("beta_set", "ankle", ["b1", "b2"], ["run", "jump"], seed=1)
PLAIN = tc._dataset("plain_set", [f"back_{c}" for c in SIX], ["p1", "p2"], 8,
                    seed=2)  # No classes.
TARGET = _labelled("target_set", "wrist", ["t1", "t2", "t3", "t4"], ["x", "y"],
                   seed=3)


def _pool(members=(ALPHA, BETA, PLAIN), target=TARGET, **kw):
  return corpus.build(list(members), target, tc._split(target), **kw)


def _expected_labels(member, data, signals):
  """The dataset's labels at the frames the window's codes name."""
  mean, std = member.normalizers[0]
  code = np.rint(signals[:, 0] * std[0] + mean[0]).astype(int)
  return np.array([data.recordings[c // 10000].labels[c % 10000]
                   for c in code])


# ----------------------------------------------------------- batches
def test_batches_carry_each_rows_member_and_its_own_labels():
  pool = _pool(weights=[1., 1., 1.])
  assert [m.labelled for m in pool.members] == [True, True, False]
  seen = set()
  for step in range(6):
    batch = pool.batch(48, 16, 0, step)
    np.testing.assert_array_equal(
        batch["member"], corpus.choose_members(pool.weights, 16, 0, step))
    for b, k in enumerate(batch["member"]):
      seen.add(int(k))
      labels, valid = batch["labels"][b], batch["valid"][b]
      assert (labels[~valid] == -1).all()
      if k == 2:  # Unlabelled member: -1 everywhere.
        assert (labels == -1).all()
        continue
      data = (ALPHA, BETA)[k]
      expected = _expected_labels(pool.members[k], data,
                                  batch["signals"][b][valid])
      np.testing.assert_array_equal(labels[valid], expected)
      assert labels.max() < len(data.class_names) and (labels == -1).any()
  assert seen == {0, 1, 2}
  # Still a pure function of (seed, step).
  again = _pool(weights=[1., 1., 1.]).batch(48, 16, 0, 3)
  for key, value in pool.batch(48, 16, 0, 3).items():
    np.testing.assert_array_equal(value, again[key])


# Today's batches (before labels and members were added), bit for bit.
_GOLDEN = {(): "108a5afea6a2beef", (("channels", "union"),): "b94428df0a557843",
           (("normalize", "pooled"),): "5a067fc77f5c48e3",
           (("memory_budget", 0),): "108a5afea6a2beef"}


@pytest.mark.parametrize("kw", list(_GOLDEN))
def test_self_supervised_batch_content_is_unchanged(kw):
  import hashlib  # pylint: disable=g-import-not-at-top
  pool = tc._corpus(**dict(kw))
  batches = [pool.batch(32, 8, s, st) for s in (0, 1) for st in (0, 3, 50, 77)]
  h = hashlib.sha256()
  for a in [b["signals"] for b in batches] + [b["valid"] for b in batches]:
    h.update(np.ascontiguousarray(a).tobytes())
  assert h.hexdigest()[:16] == _GOLDEN[kw]


def test_self_supervised_loss_ignores_labels_and_members():
  name = "masked_reconstruction"
  objective = objectives.get(name)
  cfg = models.ModelConfig(in_dim=6, hidden=8, layers=1)
  opts = {**options.validate(name, {}),
          **losses.data_options(corpus.CANONICAL)}
  params = {"encoder": models.init_encoder(jax.random.key(0), cfg),
            **objective.init_heads(jax.random.key(1), cfg, opts)}
  batch = _pool().batch(16, 8, 0, 0)
  assert (batch["labels"] >= 0).any()
  stats = losses.stats_of(np.zeros(6), np.ones(6))

  def run(b):
    return objective.loss(params, b, jax.random.key(2), stats, cfg=cfg,
                          opts=opts)[0]
  bare = {k: batch[k] for k in ("signals", "valid")}
  assert run(batch) == run({**bare, "labels": batch["labels"] * 0 - 1})


# ------------------------------------------------------------- heads
def _spaces_opts(members, how="member"):
  spaces = corpus_labels.label_spaces(members, how)
  return spaces, spaces.options([m.name for m in members])


def test_the_loss_is_zero_for_a_perfect_head_and_positive_for_a_wrong_one():
  pool = _pool()
  spaces, opts = _spaces_opts(pool.members)
  assert spaces.heads == (("alpha_set", 3), ("beta_set", 2))
  assert spaces.member_heads == (0, 1, -1)
  batch = pool.batch(48, 24, 0, 1)
  hidden = 3
  heads = {name: {"w": 50. * jnp.eye(hidden)[:, :n], "b": jnp.zeros(n)}
           for name, n in spaces.heads}

  def features(shift_member=None):
    """One-hot of each frame's label (shifted by one for a member)."""
    y = np.maximum(batch["labels"], 0)
    n = np.array([3, 2, 1])[batch["member"]][:, None]
    if shift_member is not None:
      y = np.where(batch["member"][:, None] == shift_member, (y + 1) % n, y)
    return jax.nn.one_hot(y, hidden)

  loss, m = cs.heads_loss(heads, features(), batch, opts)
  assert float(loss) < 1e-6 and m["sup_accuracy"] == 1.
  assert m["sup_frames_alpha_set"] > 0 and m["sup_frames_beta_set"] > 0
  assert "sup_frames_plain_set" not in m  # No classes: no head.
  for k, name in ((0, "alpha_set"), (1, "beta_set")):
    loss, m = cs.heads_loss(heads, features(k), batch, opts)
    assert float(loss) > 1.
    assert m[f"sup_accuracy_{name}"] == 0.
    other = "beta_set" if name == "alpha_set" else "alpha_set"
    assert m[f"sup_accuracy_{other}"] == 1.
  # Windows without members (the target's held-out windows): nothing counts.
  bare = {k: v for k, v in batch.items() if k != "member"}
  loss, m = cs.heads_loss(heads, features(0), bare, opts)
  assert float(loss) == 0. and m["sup_frames"] == 0


def test_the_shared_label_space_maps_similar_classes_and_ignores_others():
  from imujax.datasets.andy import andy_dataset_builder as andy  # pylint: disable=g-import-not-at-top
  from imujax.datasets.ipol_gait import ipol_gait_dataset_builder as ipol  # pylint: disable=g-import-not-at-top
  from imujax.datasets.seglearn_watch import seglearn_watch_dataset_builder as sw  # pylint: disable=g-import-not-at-top
  from imujax.datasets.sp_sw_har import sp_sw_har_dataset_builder as sp  # pylint: disable=g-import-not-at-top
  from imujax.datasets.uci_hapt import uci_hapt_dataset_builder as hapt  # pylint: disable=g-import-not-at-top
  builders = {"uci_hapt": hapt.CLASS_NAMES, "sp_sw_har": sp.CLASS_NAMES,
              "ipol_gait": ipol.CLASS_NAMES, "andy": andy.GENERAL_POSTURE,
              "seglearn_watch": sw.CLASS_NAMES}
  assert set(corpus_labels.SHARED_MAP) == set(builders)
  for cohort, table in corpus_labels.SHARED_MAP.items():
    assert set(table) <= set(builders[cohort]), cohort  # Builders' names.
    assert set(table.values()) <= set(corpus_labels.SHARED_CLASSES)
  members = [types.SimpleNamespace(name=n, class_names=list(c), labelled=True)
             for n, c in (("uci_hapt/50hz", hapt.CLASS_NAMES),
                          ("sp_sw_har/phone_50hz", sp.CLASS_NAMES),
                          ("seglearn_watch", sw.CLASS_NAMES))]
  spaces = corpus_labels.label_spaces(members, "shared")
  shared = corpus_labels.SHARED_CLASSES
  assert spaces.heads == (("shared", len(shared)),)
  assert spaces.member_heads == (0, 0, -1)  # Shoulder exercises: ignored.
  assert [shared[i] for i in spaces.maps[0][:6]] == [
      "walking", "upstairs", "downstairs", "sitting", "standing", "lying"]
  assert {shared[i] for i in spaces.maps[0][6:]} == {"transition"}
  assert [shared[i] for i in spaces.maps[1]] == [
      "sitting", "transition", "walking", "turning", "transition"]
  assert set(spaces.maps[2]) == {-1}
  # Through one head: sp_sw_har's WALKING and uci_hapt's WALKING agree.
  opts = spaces.options([m.name for m in members])
  h = jax.nn.one_hot(jnp.array([[shared.index("walking")]] * 2), 8)
  head = {"shared": {"w": 50. * jnp.eye(8), "b": jnp.zeros(8)}}
  batch = {"labels": jnp.array([[0], [2]]), "valid": jnp.ones((2, 1), bool),
           "member": jnp.array([0, 1])}
  loss, m = cs.heads_loss(head, h, batch, opts)
  assert float(loss) < 1e-6 and m["sup_frames"] == 2
  with pytest.raises(ValueError, match=r"No member of pretrain.corpus has "
                     r"labels.*corpus_label_map='shared'"):
    corpus_labels.label_spaces(members[2:], "shared")


def test_the_combined_loss_is_the_pretext_loss_plus_the_weighted_one():
  simclr = objectives.get("simclr")
  both = cs.with_supervised(simclr, 0.5)
  pool = _pool()
  _, corpus_opts = _spaces_opts(pool.members)
  cfg = models.ModelConfig(in_dim=6, hidden=8, layers=1)
  pretext = {**options.validate("simclr", {}),
             **losses.data_options(corpus.CANONICAL)}
  opts = {**pretext, **corpus_opts}
  key = jax.random.key(1)
  heads = both.init_heads(key, cfg, opts)
  own = simclr.init_heads(key, cfg, pretext)
  assert set(heads) == {"projection", "corpus_heads"}
  jax.tree.map(np.testing.assert_array_equal, heads["projection"],
               own["projection"])  # The pretext heads are unchanged.
  params = {"encoder": models.init_encoder(jax.random.key(0), cfg), **heads}
  batch = pool.batch(32, 8, 0, 0)
  stats = losses.stats_of(np.zeros(6), np.ones(6))
  rng = jax.random.key(2)
  total, m = both.loss(params, batch, rng, stats, cfg=cfg, opts=opts)
  alone = simclr.loss(params, batch, rng, stats, cfg=cfg, opts=pretext)[0]
  assert m["pretext_loss"] == alone and m["sup_loss"] > 0
  np.testing.assert_allclose(total, alone + 0.5 * m["sup_loss"], rtol=1e-6)
  bare = {k: v for k, v in batch.items() if k != "member"}  # Validation.
  assert both.loss(params, bare, rng, stats, cfg=cfg, opts=opts)[0] == (
      simclr.loss(params, bare, rng, stats, cfg=cfg, opts=pretext)[0])


# ------------------------------------------------------------- guards
def test_labels_of_the_target_cohort_are_withheld_and_leaks_refused():
  view = TARGET._replace(name="target_set/other_view")  # Same cohort.
  pool = _pool(members=[view, ALPHA], weights=[1., 1.])
  assert pool.members[0].subjects == tc._split(TARGET)["train"]
  assert [m.labelled for m in pool.members] == [False, True]
  batch = pool.batch(32, 32, 0, 0)
  assert (batch["labels"][batch["member"] == 0] == -1).all()
  assert (batch["labels"][batch["member"] == 1] >= 0).any()
  assert pool.describe()[0]["labelled"] is False
  splits = {"train": ["t1"], "val": ["t2"], "test": ["t3"]}
  with pytest.raises(corpus.LeakError, match=r"holds subjects \['t3'\]"):
    corpus.check_no_leak({"target_set/x": ["t1", "t3"]}, "target_set",
                         splits)


@pytest.mark.parametrize("objective, weight", [("corpus_supervised", 0.),
                                               ("simclr", 0.5)])
def test_a_supervised_corpus_with_the_target_cohort_is_refused(objective,
                                                               weight):
  config = configlib.base()
  config.data.name = "sp_sw_har/watch_50hz"
  config.pretrain.corpus = "uci_hapt/50hz@/u,sp_sw_har/phone_50hz@/s"
  config.pretrain.objective = objective
  config.pretrain.corpus_supervised_weight = weight
  configlib.check(config)
  # Refused before any data is read (the paths do not exist).
  with pytest.raises(ValueError, match=(
      r"member 'sp_sw_har/phone_50hz' is of the fine-tune target's cohort.*"
      r"beyond the label budget.*corpus.leave_one_out.*"
      r"pretrain.corpus='uci_hapt/50hz@/u'")):
    setup.prepare(config, "pretrain")


@pytest.mark.parametrize("keys", [
    {"pretrain.objective": "corpus_supervised"},
    {"pretrain.corpus_supervised_weight": 1.},
    {"pretrain.corpus": "a", "pretrain.objective": "corpus_supervised",
     "pretrain.corpus_supervised_weight": 1.},
])
def test_supervised_corpus_config_errors_name_the_keys(keys):
  config = configlib.base()
  for key, value in keys.items():
    section, name = key.split(".")
    config[section][name] = value
  with pytest.raises(ValueError, match=r"pretrain.objective=corpus_supervised"
                     r", or pretrain.corpus_supervised_weight"):
    configlib.check(config)
  assert "corpus_supervised" not in objectives.self_supervised()


# --------------------------------------------------------- end to end
def test_supervised_corpus_pretrain_then_finetune(tmp_path):
  """Target seglearn_watch; corpus: an sp_sw_har watch fixture (labelled)."""
  raw = tmp_path / "raw"
  fx.write_sp_sw_har(raw, subjects=("s01", "s02", "s03"), executions=2,
                     seconds=6.0)
  config = tc.test_config.get_config(
      f"mode=pretrain,data.data_dir={tmp_path / 'tfds'},pretrain.steps=4,"
      "eval_every=4,checkpoint_every=4,log_every=4")
  config.pretrain.corpus = f"sp_sw_har/watch_50hz@{raw}"
  config.pretrain.objective = "corpus_supervised"
  configlib.check(config)
  run = setup.prepare(config, "pretrain")
  batch = run.train_batch(32, 8, 0, 0)
  _, metrics = jax.jit(run.loss_fn)(run.params, batch, jax.random.key(0),
                                    run.stats)
  assert metrics["sup_frames_sp_sw_har_watch_50hz"] > 0
  summary = loop.train_and_evaluate(config, str(tmp_path / "pre"), "pretrain")
  assert summary["test"]["loss"] == 0.  # No member labels in held-out data.
  params = checkpoints.restore_params(tmp_path / "pre")[0]
  assert set(params) == {"encoder", "corpus_heads"}
  assert params["corpus_heads"]["sp_sw_har_watch_50hz"]["b"].shape == (5,)
  record = run_record.read(tmp_path / "pre")
  assert record.corpus[0]["label_map"] == [0, 1, 2, 3, 4]
  assert record.corpus[0]["labelled"] is True

  ft = tc.test_config.get_config(
      f"mode=finetune,data.data_dir={tmp_path / 'tfds'},finetune.steps=4,"
      "eval_every=4,checkpoint_every=4,log_every=4")
  ft.init_from = str(tmp_path / "pre")
  configlib.check(ft)
  summary = loop.train_and_evaluate(ft, str(tmp_path / "ft"), "finetune")
  assert 0. <= summary["test"]["macro_f1"] <= 1.
  assert run_record.read(tmp_path / "ft").source["objective"] == (
      "corpus_supervised")

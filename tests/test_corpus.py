"""Pooled pre-training corpora (imujax/data/corpus.py): mixing, channels,
leakage, and one pre-training run on a two-dataset corpus.
"""

import sys
import types

import jax
import numpy as np
import pytest

from imujax import configlib
from imujax import models
from imujax import objectives
from imujax.data import corpus
from imujax.data import input_pipeline as ip
from imujax.objectives import losses
from imujax.objectives import options
from imujax.training import checkpoints
from imujax.training import loop
from imujax.training import run_record
from imujax.training import setup
from tests import dataset_fixtures as fx
from tests.conftest import REPO

sys.path.insert(0, str(REPO / "configs"))
import test as test_config  # noqa: E402  configs/test.py

SIX = ["acc_x", "acc_y", "acc_z", "gyr_x", "gyr_y", "gyr_z"]


def _dataset(name, channels, subjects, seconds, offset=0., seed=0,
             rate=50.):
  """A synthetic dataset: 2 recordings per subject, N(offset, 1) signals."""
  rng = np.random.default_rng(seed)
  recs = []
  for s in subjects:
    for k in range(2):
      t = int(seconds * rate)
      recs.append(ip.Recording(
          (offset + rng.normal(size=(t, len(channels)))).astype(np.float32),
          np.full(t, -1, np.int32), s, f"{s}_{k}"))
  return ip.Dataset(name, recs, list(channels), [], rate, f"{name}/fixture")


def _split(data, seed=0):
  return ip.split_subjects([r.subject for r in data.recordings], seed, 1, 1)


WRIST = _dataset("wrist_set", [f"wrist_{c}" for c in SIX],
                 ["a1", "a2", "a3", "a4"], 20, offset=10.)
# Another channel set: back acc only, foot acc + gyr, and a non-IMU channel.
BACK_FOOT = _dataset(
    "back_foot_set", [f"back_{c}" for c in SIX[:3]]
    + [f"foot_{c}" for c in SIX] + ["foot_temp"], ["b1", "b2"], 10,
    offset=-10., seed=1)


def _corpus(members=(WRIST, BACK_FOOT), target=WRIST, **kw):
  return corpus.build(list(members), target, _split(target), **kw)


# ------------------------------------------------------------- mixing
def test_mixing_shares_follow_the_weights():
  # Hours by default: 4 subjects x 2 x 20 s against 2 x 2 x 10 s.
  pool = _corpus(target=_dataset("other", ["x_acc_x"], ["t1", "t2", "t3"], 5),
                 normalize="pooled")
  np.testing.assert_allclose(pool.weights, [0.8, 0.2])
  for weights in ([0.8, 0.2], [1., 3.]):
    pool = _corpus(target=_dataset("other", ["x_acc_x"], ["t1", "t2", "t3"],
                                   5), normalize="pooled", weights=weights)
    # Pooled normaliser: wrist windows (offset +10) are > 0, the others < 0.
    shares = np.mean([
        (pool.batch(16, 32, 0, step)["signals"].mean((1, 2)) > 0).mean()
        for step in range(300)])
    assert shares == pytest.approx(weights[0] / sum(weights), abs=0.02)
  which = np.concatenate([corpus.choose_members(np.array([.5, .3, .2]), 64,
                                                3, s) for s in range(500)])
  np.testing.assert_allclose(np.bincount(which) / len(which), [.5, .3, .2],
                             atol=0.01)


def test_batches_are_a_pure_function_of_seed_and_step():
  a, b = _corpus(), _corpus()
  late = a.batch(32, 8, seed=1, step=7)  # Drawn before step 3: no state.
  first = a.batch(32, 8, seed=1, step=3)
  for key in ("signals", "labels", "valid"):
    np.testing.assert_array_equal(first[key], b.batch(32, 8, 1, 3)[key])
    np.testing.assert_array_equal(late[key], b.batch(32, 8, 1, 7)[key])
  assert not np.array_equal(first["signals"], late["signals"])
  assert not np.array_equal(first["signals"], a.batch(32, 8, 2, 3)["signals"])
  assert (first["labels"] == -1).all() and first["valid"].all()
  assert a.fingerprint == b.fingerprint


def test_gaps_are_left_out_of_member_moments_and_enter_batches_as_zero():
  # Gaze-like track loss: NaN runs in two channels of every recording.
  gappy = _dataset("gappy", [f"wrist_{c}" for c in SIX], ["g1", "g2"], 20,
                   offset=3., seed=4)
  for r in gappy.recordings:
    r.signals[100:400, 0] = np.nan
    r.signals[::7, 4] = np.nan
  pool = _corpus(members=(gappy, BACK_FOOT))
  mean, std = pool.members[0].normalizers[0]
  x = np.concatenate([r.signals for r in gappy.recordings]).astype(np.float64)
  np.testing.assert_allclose(mean, np.nanmean(x, 0), rtol=1e-5)
  np.testing.assert_allclose(std, np.nanstd(x, 0), rtol=1e-4)
  signals = np.concatenate([pool.batch(32, 64, 0, s)["signals"]
                            for s in range(20)])
  assert np.isfinite(signals).all()


def test_streamed_members_give_the_batches_held_ones_give(monkeypatch):
  monkeypatch.setattr(corpus, "ACTIVE", 3)  # Of WRIST's 8 recordings.
  held, streamed = _corpus(), _corpus(memory_budget=0)
  assert [m.held is not None for m in streamed.members] == [False, False]
  assert [d["in_memory"] for d in held.describe()] == [True, True]
  reads = []
  member = streamed.members[0]
  member._read = lambda i, read=member._read: reads.append(i) or read(i)
  for step in (0, 1, corpus.BLOCK_STEPS, 2, corpus.BLOCK_STEPS + 1):
    np.testing.assert_array_equal(held.batch(32, 8, 0, step)["signals"],
                                  streamed.batch(32, 8, 0, step)["signals"])
  # At most ACTIVE recordings per visit of a block (0, 1, 0, 1 here), each
  # read once while the block lasts.
  assert len(reads) <= 4 * 3 and len(set(
      streamed.members[0].active(np.ones(8), 0, 0, 0))) == 3


# ------------------------------------------------------------ channels
def test_canonical_channels_map_each_placement_by_sensor_type():
  views = dict(corpus.views(BACK_FOOT.channel_names, "canonical"))
  assert list(views) == ["back", "foot"]
  np.testing.assert_array_equal(views["back"], [0, 1, 2, -1, -1, -1])
  np.testing.assert_array_equal(views["foot"], [3, 4, 5, 6, 7, 8])
  pool = _corpus(members=[BACK_FOOT])
  assert pool.channel_names == list(corpus.CANONICAL)
  x = np.concatenate([pool.batch(32, 16, 0, s)["signals"] for s in range(20)])
  no_gyr = (x[..., 3:] == 0).all((1, 2))
  # Back windows (about half) have zeros for the gyroscope they lack.
  assert 0.3 < no_gyr.mean() < 0.7
  assert (x[..., :3] != 0).all()
  # Each view standardised on its own frames.
  assert abs(x[~no_gyr].mean()) < 0.1 and abs(x[~no_gyr].std() - 1) < 0.1
  # Fine-tuning any dataset: by sensor type, placements averaged.
  w = corpus.adapter_init(BACK_FOOT.channel_names)["w"]
  assert w.shape == (10, 6)
  assert w[0, 0] == w[3, 0] == 0.5 and w[6, 3] == 1. and not w[9].any()
  np.testing.assert_array_equal(
      corpus.adapter_init(WRIST.channel_names)["w"], np.eye(6))


def test_union_channels_keep_names_and_zero_the_absent_ones():
  pool = _corpus(channels="union")
  assert pool.channel_names == WRIST.channel_names + BACK_FOOT.channel_names
  x = pool.batch(32, 64, 0, 0)["signals"]
  from_wrist = (x[..., 6:] == 0).all((1, 2))
  from_back = (x[..., :6] == 0).all((1, 2))
  assert (from_wrist ^ from_back).all() and from_wrist.any()
  # The target's held-out subjects, in the corpus's frame: normalised by the
  # run's normaliser they are the target standardised on its train subjects.
  held = pool.held_out(WRIST, _split(WRIST))
  assert [len(held[k]) for k in ("val", "test")] == [2, 2]
  v = pool.normalizer(held["val"][0].signals)
  assert np.abs(v[:, 6:]).max() < 1e-4 and abs(v[:, :6].mean()) < 0.2
  # A target whose placement no member has cannot use a union encoder.
  chest = _dataset("chest_set", [f"chest_{c}" for c in SIX],
                   ["c1", "c2", "c3"], 5)
  with pytest.raises(ValueError, match=r"corpus_channels=canonical"):
    pool.held_out(chest, _split(chest))


def test_members_at_another_rate_are_refused_naming_both():
  fast = _dataset("fast_set", WRIST.channel_names, ["c1"], 5, rate=100.)
  with pytest.raises(ValueError, match=r"'fast_set' is at 100 Hz but the "
                     r"run's data.name='wrist_set' is at 50 Hz"):
    _corpus(members=[WRIST, fast])


# ------------------------------------------------------------- leakage
def test_leak_guard_refuses_target_subjects_by_cohort():
  splits = {"train": ["s01"], "val": ["s02"], "test": ["s03"]}
  ok = {"uci_hapt/50hz": ["s02", "s03"], "sp_sw_har/watch_50hz": ["s01"]}
  corpus.check_no_leak(ok, "sp_sw_har/watch_50hz", splits)  # Other cohort.
  with pytest.raises(corpus.LeakError, match=r"'sp_sw_har/watch_50hz' holds "
                     r"subjects \['s03'\]"):
    corpus.check_no_leak({"sp_sw_har/watch_50hz": ["s01", "s03"]},
                         "sp_sw_har/watch_50hz", splits)
  # Another view of the same people (phone vs watch): refused too.
  with pytest.raises(corpus.LeakError, match=r"phone_30hz' holds subjects "
                     r"\['s02'\].*leave-one-dataset-out"):
    corpus.check_no_leak({"sp_sw_har/phone_30hz": ["s02"]},
                         "sp_sw_har/watch_50hz", splits)
  # A fine-tune from a corpus encoder is checked against its own split.
  source = types.SimpleNamespace(corpus=[{"name": "sp_sw_har/phone_50hz",
                                          "subjects": ["s01", "s03"]}])
  with pytest.raises(ValueError, match=r"init_from='/enc'.*\['s03'\]"):
    setup._check_no_corpus_leak(source, "/enc", "sp_sw_har/watch_50hz",
                                splits)


def test_leave_one_dataset_out_drops_every_view_of_the_target():
  text = ("uci_hapt/50hz@d1, sp_sw_har/phone_50hz@d2,"
          "sp_sw_har/watch_50hz@d2,seglearn_watch")
  assert corpus.leave_one_out(text, "sp_sw_har/watch_30hz") == (
      "uci_hapt/50hz@d1,seglearn_watch")
  assert corpus.leave_one_out(text, "seglearn_watch").count(",") == 2


def test_a_member_of_the_target_cohort_gives_its_training_subjects_only():
  splits = _split(WRIST)
  view = WRIST._replace(name="wrist_set/other_view")  # Same cohort.
  pool = _corpus(members=[view, BACK_FOOT])
  assert pool.members[0].subjects == splits["train"]
  assert pool.describe()[1]["subjects"] == ["b1", "b2"]


# ------------------------------------- unlabelled frames count (item 3)
def test_self_supervised_losses_use_unlabelled_frames():
  """Corpus batches carry no labels (-1); the loss reads every valid frame."""
  name = "masked_reconstruction"
  objective = objectives.get(name)
  cfg = models.ModelConfig(in_dim=6, hidden=8, layers=1)
  opts = {**options.validate(name, {}),
          **losses.data_options(corpus.CANONICAL)}
  params = {"encoder": models.init_encoder(jax.random.key(0), cfg),
            **objective.init_heads(jax.random.key(1), cfg, opts)}
  batch = _corpus().batch(16, 4, 0, 0)
  stats = losses.stats_of(np.zeros(6), np.ones(6))

  @jax.jit
  def both(batch):
    def run(b):
      return objective.loss(params, b, jax.random.key(2), stats, cfg=cfg,
                            opts=opts)[0]
    return run(batch), run({**batch, "labels": batch["labels"] * 0}), run(
        {**batch, "valid": batch["valid"].at[:, 8:].set(False)})
  unlabelled, labelled, fewer_frames = both(batch)
  assert np.isfinite(unlabelled) and unlabelled == labelled
  assert unlabelled != fewer_frames  # It is the frames that count.


# --------------------------------------------------------- end to end
def test_pretrain_on_a_two_dataset_corpus_then_finetune(tmp_path):
  """seglearn_watch (target: training subjects only) + an sp_sw_har fixture."""
  raw = tmp_path / "raw"
  fx.write_sp_sw_har(raw, subjects=("s01", "s02", "s03"), executions=2,
                     seconds=6.0)
  config = test_config.get_config(
      f"mode=pretrain,data.data_dir={tmp_path / 'tfds'},pretrain.steps=4,"
      "eval_every=4,checkpoint_every=4,log_every=4")
  config.pretrain.corpus = f"seglearn_watch,sp_sw_har/watch_50hz@{raw}"
  config.pretrain.corpus_channels = "canonical"
  configlib.check(config)
  summary = loop.train_and_evaluate(config, str(tmp_path / "pre"), "pretrain")
  assert np.isfinite(summary["test"]["loss"])
  assert set(checkpoints.restore_params(tmp_path / "pre")[0]) == {
      "encoder", "reconstructor"}
  record = run_record.read(tmp_path / "pre")
  names = [m["name"] for m in record.corpus]
  assert names == ["seglearn_watch", "sp_sw_har/watch_50hz"]
  assert record.corpus[0]["subjects"] == record.splits["train"]
  assert not set(record.splits["train"]) & set(record.splits["test"])
  assert record.corpus[1]["fingerprint"] == "sp_sw_har/watch_50hz/1.0.0"
  assert record.channel_names == list(corpus.CANONICAL)
  assert abs(sum(m["weight"] for m in record.corpus) - 1) < 1e-5

  ft = test_config.get_config(f"mode=finetune,data.data_dir={tmp_path}/tfds")
  ft.init_from = str(tmp_path / "pre")
  configlib.check(ft)
  run = setup.prepare(ft, "finetune")
  np.testing.assert_array_equal(run.params["encoder"]["adapter"]["w"],
                                np.eye(6))  # wrist_* -> imu_*, no mapping.
  assert "by sensor type" in run.record.source["channels"]
  assert run.record.channel_names == ip.load(
      "seglearn_watch", str(tmp_path / "tfds")).channel_names


# -------------------------------------------------------------- config
@pytest.mark.parametrize("keys, message", [
    ({"pretrain.corpus": "a,b", "pretrain.corpus_weights": "1"},
     r"pretrain.corpus_weights has 1 weights for 2 pretrain.corpus members"),
    ({"pretrain.corpus": "a,b", "pretrain.corpus_weights": "1,x"},
     r"pretrain.corpus_weights='1,x' is not comma-separated numbers"),
    ({"pretrain.corpus": "a", "pretrain.corpus_weights": "0"},
     r"weights must be finite, >= 0, and not all 0"),
    ({"pretrain.corpus": "a,@dir"}, r"pretrain.corpus: item '@dir' has no "),
    ({"pretrain.corpus": "a,a@d"}, r"pretrain.corpus names \['a'\] more "),
    ({"pretrain.corpus_weights": "1"}, r"pretrain.corpus is empty"),
    ({"pretrain.corpus": "a", "pretrain.dataset": "b"}, r"not both"),
    ({"pretrain.corpus": "a", "pretrain.objective": "classification"},
     r"trains self-supervised objectives only"),
    ({"pretrain.corpus": "a", "pretrain.corpus_channels": "names"},
     r"pretrain.corpus_channels='names'; choose one of"),
])
def test_corpus_config_errors_name_the_key(keys, message):
  config = configlib.base()
  for key, value in keys.items():
    section, name = key.split(".")
    config[section][name] = value
  with pytest.raises(ValueError, match=message):
    configlib.check(config)
  assert configlib.corpus_members(" uci_hapt/50hz@../d , seglearn_watch") == [
      ("uci_hapt/50hz", "../d"), ("seglearn_watch", "")]

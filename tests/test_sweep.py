"""Sweep expansion, dependencies, skip-finished / resume, launcher scripts."""

import json
import pathlib
import textwrap

import pytest

from imujax.experiments import jobs as jobs_lib
from imujax.experiments import launchers
from imujax.experiments import sweep

_SWEEP = """
CONFIG = "configs/test.py"

def sweep(arg=None):
  seeds = (0, 1) if arg is None else (0,)
  for objective in ("scratch", "masked_reconstruction", "cpc"):
    for budget in (1, 0):
      for seed in seeds:
        yield {"objective": objective, "data.labeled_subjects": budget,
               "seed": seed, "set": {"data.val_subjects": 2}}
"""


@pytest.fixture
def sweep_file(tmp_path):
  path = tmp_path / "toy_sweep.py"
  path.write_text(textwrap.dedent(_SWEEP))
  return path


def _jobs(sweep_file, sweep_dir, arg=""):
  config, points = jobs_lib.load_sweep(f"{sweep_file}{':' + arg if arg else ''}")
  return jobs_lib.expand(points, config, str(sweep_dir))


class FakeRuns:
  """Stands in for subprocesses: finishes a run by writing summary.json."""

  def __init__(self, fail=()):
    self.started, self.fail = [], set(fail)

  def __call__(self, argv, log):
    workdirs = [a.split("=", 1)[1] for a in argv if a.startswith("--workdir=")]
    for a in argv:
      if a.startswith("--members="):
        workdirs += [m["workdir"] for m in json.loads(a.split("=", 1)[1])]
    self.started.append(workdirs)
    failed = any(pathlib.Path(w).name in self.fail for w in workdirs)
    for w in workdirs:
      pathlib.Path(w).mkdir(parents=True, exist_ok=True)
      (pathlib.Path(w) / "run.json").write_text("{}")
      if not failed:
        (pathlib.Path(w) / "summary.json").write_text("{}")
        if "/pretrain/" in w:
          (pathlib.Path(w) / "checkpoints" / "7").mkdir(parents=True)
    return _Done(1 if failed else 0)


class _Done:
  def __init__(self, rc):
    self.rc = rc

  def poll(self):
    return self.rc


def test_expansion_shares_pretraining_across_budgets(sweep_file, tmp_path):
  jobs = _jobs(sweep_file, tmp_path / "s")
  pre = [j for j in jobs if j.mode == "pretrain"]
  ft = [j for j in jobs if j.mode == "finetune"]
  assert len(pre) == 2 * 2 and len(ft) == 3 * 2 * 2  # objectives x seeds.
  assert jobs[:len(pre)] == pre  # Pre-training first.
  for j in pre:
    o = dict(j.overrides)
    assert "data.labeled_subjects" not in o
    assert o["pretrain.objective"] in ("masked_reconstruction", "cpc")
    assert o["data.val_subjects"] == 2  # "set" is applied...
    assert "val_subjects" not in j.name  # ...but kept out of the name.
  names = {j.name for j in jobs}
  for j in ft:
    o = dict(j.overrides)
    if j.objective == "scratch":
      assert o["init_from"] == "" and j.after is None
    else:
      assert j.after in names
      assert o["init_from"] == str((tmp_path / "s" / j.after).absolute())
      after = dict(next(p for p in pre if p.name == j.after).overrides)
      assert after["seed"] == o["seed"]
      assert after["pretrain.objective"] == j.objective
  assert "finetune/cpc-b1-s0" in names and "pretrain/cpc-s1" in names


def test_command_is_main_with_its_own_workdir(sweep_file, tmp_path):
  job = _jobs(sweep_file, tmp_path)[-1]
  argv = jobs_lib.command(job, str(tmp_path), ["data.manual_dir=/x"])
  assert argv[:3] == ["python", "-m", "imujax.main"]
  assert f"--workdir={tmp_path / job.name}" in argv
  assert "--config.mode=finetune" in argv
  assert argv[-1] == "--config.data.manual_dir=/x"


def test_points_may_not_set_mode_or_init_from(tmp_path):
  with pytest.raises(ValueError, match="init_from"):
    jobs_lib.expand([{"objective": "cpc", "init_from": "x"}], "c.py", tmp_path)


def test_local_runs_pretraining_first_then_skips_finished(sweep_file,
                                                          tmp_path):
  root = tmp_path / "s"
  jobs = _jobs(sweep_file, root)
  fake = FakeRuns()
  result = launchers.run_local(jobs, str(root), start=fake, parallel=3,
                           poll_s=0, echo=lambda _: None)
  assert set(result.values()) == {"done"} and len(result) == len(jobs)
  order = [pathlib.Path(w[0]).relative_to(root).as_posix()
           for w in fake.started]
  for j in jobs:
    if j.after:
      assert order.index(j.after) < order.index(j.name)
  again = FakeRuns()
  launchers.run_local(jobs, str(root), start=again, echo=lambda _: None)
  assert again.started == []  # Every run has its summary.json.


def test_local_finishes_a_pretrainings_finetunes_before_the_next(
    sweep_file, tmp_path):
  # Depth first: a kill leaves at most one pre-training whose fine-tunes are
  # unfinished (its checkpoint is what a fresh clone lacks).
  root = tmp_path / "s"
  jobs = _jobs(sweep_file, root)
  fake = FakeRuns()
  launchers.run_local(jobs, str(root), start=fake, poll_s=0,
                      echo=lambda _: None)
  order = [pathlib.Path(w[0]).relative_to(root).as_posix()
           for w in fake.started]
  pre = [n for n in order if n.startswith("pretrain/")]
  assert len(pre) == 4
  for a, b in zip(pre, pre[1:]):
    between = order[order.index(a) + 1:order.index(b)]
    assert sorted(between) == sorted(j.name for j in jobs if j.after == a)


def test_interrupted_runs_are_restarted_to_resume(sweep_file, tmp_path):
  root = tmp_path / "s"
  jobs = _jobs(sweep_file, root)
  for j in jobs:  # All finished but one, which was interrupted.
    (root / j.name).mkdir(parents=True)
    (root / j.name / "run.json").write_text("{}")
    if j.name != "finetune/cpc-b0-s1":
      (root / j.name / "summary.json").write_text("{}")
    if j.mode == "pretrain":
      (root / j.name / "checkpoints" / "7").mkdir(parents=True)
  assert jobs_lib.state(jobs[-1], str(root)) == "started"
  fake = FakeRuns()
  launchers.run_local(jobs, str(root), start=fake, echo=lambda _: None)
  assert fake.started == [[str(root.absolute() / "finetune/cpc-b0-s1")]]


def test_archived_pretraining_reruns_only_for_unfinished_finetunes(
    sweep_file, tmp_path):
  # A sweep dir kept in git: every summary.json, no checkpoints.
  root = tmp_path / "s"
  jobs = _jobs(sweep_file, root)
  for j in jobs:
    (root / j.name).mkdir(parents=True)
    (root / j.name / "summary.json").write_text("{}")
  pre = next(j for j in jobs if j.name == "pretrain/cpc-s1")
  assert jobs_lib.state(pre, str(root)) == "archived"
  fake = FakeRuns()
  result = launchers.run_local(jobs, str(root), start=fake, echo=lambda _: None)
  assert fake.started == [] and set(result.values()) == {"done"}
  (root / "finetune/cpc-b0-s1/summary.json").unlink()
  result = launchers.run_local(jobs, str(root), start=fake, echo=lambda _: None)
  assert fake.started == [[str(root.absolute() / "pretrain/cpc-s1")],
                          [str(root.absolute() / "finetune/cpc-b0-s1")]]
  assert set(result.values()) == {"done"}
  slurm = launchers.write_slurm(jobs, str(tmp_path / "empty")).parent
  line = (slurm / "pretrain.txt").read_text().splitlines()[0]
  assert "summary.json && test -d " in line and "imujax.main" in line


def test_a_rerun_archived_pretraining_killed_midway_is_started(sweep_file,
                                                                tmp_path):
  # Its old summary.json (step 4) beside the rerun's partial checkpoint
  # (step 2), as code before the loop removed stale summaries left it.
  root = tmp_path / "s"
  pre = next(j for j in _jobs(sweep_file, root) if j.mode == "pretrain")
  (root / pre.name / "checkpoints" / "2").mkdir(parents=True)
  (root / pre.name / "summary.json").write_text('{"step": 4}')
  assert jobs_lib.state(pre, str(root)) == "started"
  (root / pre.name / "checkpoints" / "4").mkdir()
  assert jobs_lib.state(pre, str(root)) == "done"


def test_a_failed_pretraining_blocks_only_its_finetunes(sweep_file, tmp_path):
  root = tmp_path / "s"
  jobs = _jobs(sweep_file, root)
  result = launchers.run_local(jobs, str(root), start=FakeRuns(fail={"cpc-s0"}),
                           echo=lambda _: None)
  assert result["pretrain/cpc-s0"] == "failed"
  assert result["finetune/cpc-b1-s0"] == result["finetune/cpc-b0-s0"] == (
      "blocked")
  assert result["finetune/cpc-b1-s1"] == "done"
  assert result["finetune/scratch-b1-s0"] == "done"


def test_vmap_seeds_groups_runs_that_differ_only_in_seed(sweep_file,
                                                         tmp_path):
  root = tmp_path / "s"
  jobs = _jobs(sweep_file, root)
  units = jobs_lib.units(jobs, str(root), vmap_seeds=True)
  assert len(units) == len(jobs) // 2
  for unit in units:
    assert sorted(dict(j.overrides)["seed"] for j in unit.jobs) == [0, 1]
    assert len({j.objective for j in unit.jobs}) == 1
    assert unit.argv[:3] == ["python", "-m", "imujax.training.multiseed"]
    members = json.loads(next(a for a in unit.argv
                              if a.startswith("--members="))[10:])
    assert [m["seed"] for m in members] == [0, 1]
    assert all(("init_from" in m) == bool(unit.after) for m in members)
    assert not any(a.startswith("--cpu_devices") for a in unit.argv)
  split = jobs_lib.units(jobs, str(root), vmap_seeds=True, cpu_devices=2)
  assert all("--cpu_devices=2" in u.argv for u in split)
  fake = FakeRuns()
  result = launchers.run_local(jobs, str(root), start=fake, vmap_seeds=True,
                           echo=lambda _: None)
  assert set(result.values()) == {"done"}
  assert all(len(w) == 2 for w in fake.started)
  # A started member resumes alone; a new one is not grouped with it.
  (root / jobs[0].name / "summary.json").unlink()
  assert [len(u.jobs) for u in jobs_lib.units(jobs, str(root),
                                           vmap_seeds=True)] == [1]


def test_slurm_arrays_wait_for_their_pretraining(sweep_file, tmp_path):
  root = tmp_path / "s"
  jobs = _jobs(sweep_file, root)
  (root / "finetune/scratch-b1-s0").mkdir(parents=True)
  (root / "finetune/scratch-b1-s0/summary.json").write_text("{}")
  submit = launchers.write_slurm(jobs, str(root), directives=["--time=1:00:00"])
  text = submit.read_text()
  assert "pre=$(sbatch --parsable pretrain.sbatch)" in text
  assert "--dependency=afterok:${pre} finetune_after.sbatch" in text
  slurm = submit.parent
  assert len((slurm / "pretrain.txt").read_text().splitlines()) == 4
  assert len((slurm / "finetune_after.txt").read_text().splitlines()) == 8
  scratch = (slurm / "finetune.txt").read_text().splitlines()
  assert len(scratch) == 3  # One of the four scratch runs is finished.
  assert all(line.startswith("test -f ") for line in scratch)
  sbatch = (slurm / "pretrain.sbatch").read_text()
  assert "#SBATCH --array=0-3" in sbatch and "#SBATCH --time=1:00:00" in sbatch


def test_tpu_script_runs_every_job_on_all_workers(sweep_file, tmp_path):
  jobs = _jobs(sweep_file, tmp_path, "one_seed")
  path = launchers.write_tpu(jobs, str(tmp_path), tpu="v4-8", zone="us-x")
  lines = [l for l in path.read_text().splitlines()
           if l.startswith("gcloud")]
  assert len(lines) == len(jobs)
  assert all("--worker=all" in l and "imujax.main" in l for l in lines)
  assert "mode=pretrain" in lines[0] and "mode=finetune" in lines[-1]


def test_cli_lists_the_plan(sweep_file, tmp_path, capsys):
  assert sweep.main([f"--sweep={sweep_file}",
                     f"--sweep_dir={tmp_path / 's'}"]) == 0
  out = capsys.readouterr().out
  assert "16 runs (4 pre-training)" in out and "new     pretrain/cpc-s0" in out
  plan = json.loads((tmp_path / "s" / "sweep.json").read_text())
  assert len(plan["jobs"]) == 16


def test_plain_points_are_single_runs_of_their_config(tmp_path):
  jobs = jobs_lib.expand([{"seed": 0}, {"seed": 1}], "configs/test.py",
                      str(tmp_path))
  assert [j.name for j in jobs] == ["s0", "s1"] and jobs[0].mode == ""
  units = jobs_lib.units(jobs, str(tmp_path), vmap_seeds=True)
  assert [len(u.jobs) for u in units] == [1, 1]
  assert "--config.mode=" not in " ".join(units[0].argv)


def test_vmap_seeds_groups_a_learning_rate_sweep_with_per_member_values(
    tmp_path):
  path = tmp_path / "lr_sweep.py"
  path.write_text(textwrap.dedent("""
      CONFIG = "configs/test.py"

      def sweep(arg=None):
        for lr in (1e-3, 3e-3):
          for seed in (0, 1):
            yield {"objective": "scratch", "seed": seed,
                   "finetune.learning_rate": lr, "finetune.steps": 7}
  """))
  jobs = _jobs(path, tmp_path / "s")
  units = jobs_lib.units(jobs, str(tmp_path / "s"), vmap_seeds=True)
  assert len(units) == 1 and len(units[0].jobs) == 4
  argv = units[0].argv
  members = json.loads(next(a for a in argv if a.startswith("--members="))
                       [len("--members="):])
  assert sorted((m["seed"], m["set"]["finetune.learning_rate"])
                for m in members) == [(0, 1e-3), (0, 3e-3), (1, 1e-3),
                                      (1, 3e-3)]
  assert "--config.finetune.steps=7" in argv  # Shared keys stay shared.
  assert not any("learning_rate" in a for a in argv if a.startswith("--config."))


def test_a_damaged_summary_is_run_again(sweep_file, tmp_path):
  root = tmp_path / "s"
  jobs = _jobs(sweep_file, root)
  launchers.run_local(jobs, str(root), start=FakeRuns(), echo=lambda _: None)
  victim = next(j for j in jobs if j.name == "finetune/cpc-b1-s0")
  (root / victim.name / "summary.json").write_text('{"test": {"mac')
  assert jobs_lib.state(victim, str(root)) == "damaged"
  fake = FakeRuns()
  result = launchers.run_local(jobs, str(root), start=fake, echo=lambda _: None)
  assert fake.started == [[str(root.absolute() / victim.name)]]
  assert set(result.values()) == {"done"}

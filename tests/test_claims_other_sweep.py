"""claims --other_dir: arms of two sweeps on one cohort, paired per subject."""

import pytest

from imujax.experiments import claims
from imujax.experiments import run_records


def _runs(dataset, arm, score_of):
  """Runs of one arm, seeds 1 and 2, subjects a, b, c (score_of(i))."""
  return [run_records.FinetuneRun(
      path="", dataset=dataset, arm=arm, budget=1, labelled_subjects=1,
      seed=seed, steps=1, val=[], class_names=[], test={
          "macro_f1": 0.0, "per_subject": {
              s: {"macro_f1": score_of(i)} for i, s in enumerate("abc")}})
          for seed in (1, 2)]


def test_the_other_sweeps_arms_pair_in_the_same_cells():
  runs = (_runs("gaze/500hz_velocity", "scratch", lambda i: .5 + .1 * i) +
          _runs("gaze/500hz_velocity", "mr", lambda i: .6))
  other = _runs("gaze/500hz", "scratch", lambda i: .3)
  both = claims.with_other_sweep(runs, other, "positions")
  assert {(r.dataset, r.arm) for r in both[len(runs):]} == {
      ("gaze/500hz_velocity", "scratch (positions)")}
  table = claims.versus_markdown(both, "scratch (positions)",
                                 keep_scratch=True)
  # Differences .2, .3, .4 per subject, twice (seeds): mean +0.300.
  assert "| gaze/500hz_velocity | 1 | scratch | 3 × 2 | +0.300 |" in table
  assert "| gaze/500hz_velocity | 1 | mr | 3 × 2 | +0.300 |" in table
  # Without keep_scratch the plain scratch arm is left out, as before.
  assert "| scratch |" not in claims.versus_markdown(
      both, "scratch (positions)")


def test_an_ambiguous_or_missing_cohort_is_an_error():
  runs = (_runs("gaze/500hz_velocity", "scratch", lambda i: .5) +
          _runs("gaze/250hz", "scratch", lambda i: .5))
  with pytest.raises(ValueError, match="matches.*gaze/250hz.*one dataset"):
    claims.with_other_sweep(runs, _runs("gaze/500hz", "scratch",
                                        lambda i: .3), "positions")
  with pytest.raises(ValueError, match="no dataset"):
    claims.with_other_sweep(runs, _runs("uci/50hz", "scratch",
                                        lambda i: .3), "positions")


def test_an_other_dir_without_runs_is_a_usage_error(tmp_path, capsys):
  with pytest.raises(SystemExit) as e:
    claims.main([str(tmp_path), "--versus=scratch (x)",
                 f"--other_dir={tmp_path / 'nowhere'}", "--other_tag=x"])
  assert e.value.code == 2
  assert "holds no finished fine-tune run" in capsys.readouterr().err


def test_a_damaged_record_is_one_line_naming_the_file(tmp_path, capsys):
  run = tmp_path / "other" / "finetune" / "scratch-s1"
  run.mkdir(parents=True)
  (run / "run.json").write_text('{"phase": "fine')  # Cut off mid-write.
  code = claims.main([str(tmp_path / "main"), "--versus=scratch (x)",
                      f"--other_dir={tmp_path / 'other'}"])
  err = capsys.readouterr().err
  assert code == 1 and err.startswith("claims: ")
  assert "run.json is not valid JSON" in err and "Restore it" in err
  assert "Traceback" not in err

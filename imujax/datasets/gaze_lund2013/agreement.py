"""Inter-rater agreement on the Lund 2013 recordings coded by both raters.

Sample-level Cohen's kappa, pooled over every doubly coded recording (the two
raters' label columns, sample by sample, concatenated): overall over the five
classes, and per class one-vs-rest (class c against every other class), as
sample-level kappa per event type is reported for this data by Zemblys et al.
(2018, 2019). Samples either rater left undefined (code 6) are excluded.

  python -m imujax.datasets.gaze_lund2013 \
      --manual_dir=../shared/data/gaze_lund2013
"""

from etils import epath
import numpy as np

from imujax.datasets.gaze_lund2013 import reader


def cohen_kappa(a: np.ndarray, b: np.ndarray) -> float:
  """Cohen's kappa of two label sequences (any integer codes).

  (p_o - p_e) / (1 - p_e); NaN when chance agreement is already 1 (both
  sequences one and the same constant).
  """
  a, b = np.asarray(a), np.asarray(b)
  if a.shape != b.shape or a.ndim != 1 or not a.size:
    raise ValueError(f"cohen_kappa needs two equal, non-empty 1-D sequences; "
                     f"got shapes {a.shape} and {b.shape}.")
  codes, joint = np.unique(np.stack([a, b]), return_inverse=True)
  ia, ib = joint.reshape(2, -1)
  k = len(codes)
  counts = np.bincount(ia * k + ib, minlength=k * k).reshape(k, k)
  n = float(a.size)
  p_o = np.trace(counts) / n
  p_e = float((counts.sum(1) / n) @ (counts.sum(0) / n))
  if p_e >= 1.0:
    return float("nan")
  return float((p_o - p_e) / (1.0 - p_e))


def agreement(a: np.ndarray, b: np.ndarray,
              class_names=reader.CLASS_NAMES) -> dict:
  """Kappa overall and per class between two raters' class indices.

  Args:
    a, b: <int>[N] class indices, -1 where a rater left the sample undefined.
    class_names: names of the indices 0..C-1.

  Returns:
    {"samples": compared, "excluded_undefined": count, "percent_agreement",
     "kappa": overall, "kappa_per_class": name -> kappa,
     "samples_per_class": name -> [count by a, count by b]}.
  """
  a, b = np.asarray(a), np.asarray(b)
  both = (a >= 0) & (b >= 0)
  a, b = a[both], b[both]
  return {
      "samples": int(both.sum()),
      "excluded_undefined": int((~both).sum()),
      "percent_agreement": float(100.0 * np.mean(a == b)),
      "kappa": cohen_kappa(a, b),
      "kappa_per_class": {name: cohen_kappa(a == c, b == c)
                          for c, name in enumerate(class_names)},
      "samples_per_class": {name: [int((a == c).sum()), int((b == c).sum())]
                            for c, name in enumerate(class_names)},
  }


def rater_agreement(data_dir: epath.Path, subset: str = "original",
                    first: str = "RA", second: str = "MN") -> dict:
  """`agreement` pooled over the recordings of `subset` both raters coded.

  Args:
    data_dir: the upstream `annotated_data` folder (or one above it).
    subset: "original" or "article" (see reader.SUBSET_DIRS).

  Returns:
    `agreement`'s dict plus "recordings" (how many) and "by_stimulus_type"
    (the same dict per stimulus type).
  """
  found = reader.find_data_dir(epath.Path(data_dir))
  if found is None:
    raise FileNotFoundError(f"{data_dir}: no {reader.EXPECTED} in it or "
                            "below it.")
  recordings, _ = reader.load_recordings(found, subset)
  pairs = {}
  for rec in recordings.values():
    if first in rec.files and second in rec.files:
      pairs.setdefault(rec.stimulus_type, []).append(
          (rec.files[first].labels, rec.files[second].labels))
  if not pairs:
    raise ValueError(f"{found}: no recording of the {subset!r} subset is "
                     f"coded by both {first} and {second}.")

  def pooled(items):
    return agreement(np.concatenate([a for a, _ in items]),
                     np.concatenate([b for _, b in items]))

  everything = [p for items in pairs.values() for p in items]
  result = pooled(everything)
  result["recordings"] = len(everything)
  result["by_stimulus_type"] = {
      kind: dict(pooled(items), recordings=len(items))
      for kind, items in sorted(pairs.items())}
  return result


def format_agreement(result: dict, title: str) -> str:
  lines = [f"{title}: {result['recordings']} recordings, "
           f"{result['samples']} samples compared "
           f"({result['excluded_undefined']} undefined by a rater excluded)",
           f"  percent agreement {result['percent_agreement']:.1f}, "
           f"kappa {result['kappa']:.3f}"]
  per_class = ", ".join(f"{k} {v:.3f}"
                        for k, v in result["kappa_per_class"].items())
  lines.append(f"  kappa per class: {per_class}")
  for kind, part in result.get("by_stimulus_type", {}).items():
    per = ", ".join(f"{k} {v:.3f}" for k, v in part["kappa_per_class"].items())
    lines.append(f"  {kind} ({part['recordings']} recordings, "
                 f"{part['samples']} samples): kappa {part['kappa']:.3f}; "
                 f"{per}")
  return "\n".join(lines)

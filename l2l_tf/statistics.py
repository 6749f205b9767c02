"""Paired comparisons of optimizers on the same test problems.

Two optimizers evaluated on the same problems are best compared problem by problem: the
spread between problems (some initializations are simply harder) cancels in the differences,
so the interval of the mean difference is far narrower than the two means' own intervals
suggest. Reported for a learned optimizer L against a baseline B:

* mean_difference: mean over problems of final_L - final_B (negative: L is better), with the
  95% interval of that mean (Student's t with n - 1 degrees of freedom);
* ratio: mean final_L / mean final_B (the issue's "0.95x the best baseline");
* win_rate: the fraction of problems on which L ends lower (ties count half).
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

#: Two-sided 95% quantiles of Student's t for 1..10 degrees of freedom (beyond, an expansion).
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228)


def t_quantile_975(df: int) -> float:
    """The 0.975 quantile of Student's t with `df` degrees of freedom (to about 1e-4)."""
    if df < 1:
        return math.inf
    if df <= len(_T975):
        return _T975[df - 1]
    z = 1.959963984540054  # Cornish-Fisher expansion around the normal quantile
    return (z + (z ** 3 + z) / (4 * df) + (5 * z ** 5 + 16 * z ** 3 + 3 * z) / (96 * df ** 2)
            + (3 * z ** 7 + 19 * z ** 5 + 17 * z ** 3 - 15 * z) / (384 * df ** 3))


def paired_comparison(learned: Sequence[float], baseline: Sequence[float]) -> dict:
    """Statistics of `learned` against `baseline`, final losses of the same problems in the same order.

    Diverged runs (non-finite losses) make the difference undefined: then every statistic but
    the win rate (a diverged run loses to any finite one) is None.
    """
    a, b = np.asarray(learned, np.float64), np.asarray(baseline, np.float64)
    if a.shape != b.shape or a.ndim != 1 or not len(a):
        raise ValueError(f"paired comparison needs two equal-length lists of final losses, got {a.shape} and {b.shape}")
    finite_a, finite_b = np.isfinite(a), np.isfinite(b)
    wins = np.where(finite_a & finite_b, (a < b) + 0.5 * (a == b), np.where(finite_a, 1.0, np.where(finite_b, 0.0, 0.5)))
    n = len(a)
    out = {"num_problems": n, "win_rate": float(np.mean(wins)), "mean_difference": None, "ci95": [None, None],
           "ratio": None}
    if not (finite_a.all() and finite_b.all()):
        return out
    d = a - b
    mean = float(np.mean(d))
    half = t_quantile_975(n - 1) * float(np.std(d, ddof=1)) / math.sqrt(n) if n > 1 else math.inf
    out.update(mean_difference=mean, ci95=[mean - half, mean + half],
               ratio=float(np.mean(a) / np.mean(b)) if np.mean(b) != 0 else None)
    return out


def compare_all(results: dict) -> dict:
    """{learned name: {baseline name: paired_comparison}} for every pair in a results dict
    whose entries carry per-problem "final_losses" (learned: learning_rate None)."""
    entries = results["optimizers"]
    learned = [k for k, e in entries.items() if e.get("learning_rate") is None and "final_losses" in e]
    baselines = [k for k, e in entries.items() if e.get("learning_rate") is not None and "final_losses" in e]
    return {name: {base: paired_comparison(_floats(entries[name]["final_losses"]), _floats(entries[base]["final_losses"]))
                   for base in baselines} for name in learned}


def _floats(values) -> list[float]:
    return [math.nan if v is None else float(v) for v in values]

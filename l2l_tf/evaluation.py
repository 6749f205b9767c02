"""Evaluation: every optimizer on the same fresh test problems, baselines tuned fairly.

The protocol (one for every optimizer, so comparisons are fair):
* Test problems are functions 0..M-1 of the "test" split under `seed`; every optimizer sees
  exactly the same ones, and the learned optimizer is run once on them (no best-of-N).
* Each hand-designed baseline's learning rate is chosen from one log-spaced grid by mean
  final loss on validation problems ("validation" split, never the test functions); the
  chosen rate is recorded in results.json. The learned optimizer was selected on validation
  problems by the same criterion during meta-training.
* Reported: per-step mean loss, and the final loss's mean, standard deviation and a 95%
  confidence interval of the mean (normal approximation, 1.96 standard errors).
"""
from __future__ import annotations

import dataclasses
import math
import os
from typing import Callable, Iterable, Sequence

import numpy as np
import tensorflow as tf

from l2l_tf import files
from l2l_tf.optimizers.base import Optimizer, set_horizon
from l2l_tf.problems.base import Problem, ProblemFamily
from l2l_tf.unroll import run_steps

#: Steps per compiled call when a family needs per-step batches (bounds batch memory).
EVAL_CHUNK = 100


def learning_rate_grid(low: float = 1e-4, high: float = 1.0, per_decade: int = 4) -> list[float]:
    """Log-spaced learning rates from `low` to `high` inclusive, `per_decade` per factor of 10."""
    if not (0 < low <= high) or per_decade < 1:
        from l2l_tf.errors import UserError
        raise UserError(f"bad learning-rate grid: low={low}, high={high}, per_decade={per_decade}")
    n = int(round(math.log10(high / low) * per_decade)) + 1
    return [float(v) for v in np.logspace(math.log10(low), math.log10(high), max(n, 1))]


def sample_problems(family: ProblemFamily, split: str, seed: int, num_functions: int) -> list[Problem]:
    """Functions 0..num_functions-1 of a split: one vectorized problem, or one problem each."""
    if family.vectorized:
        return [family.sample(split, seed, range(num_functions))]
    return [family.sample(split, seed, [i]) for i in range(num_functions)]


class _Runner:
    """A compiled trajectory loop for one (family, optimizer) pair, reused across problems."""

    def __init__(self, family: ProblemFamily, optimizer: Optimizer):
        self.family, self.optimizer = family, optimizer
        self._fn = tf.function(self._run, reduce_retracing=True)

    def _run(self, params, state, data, batches, num_steps):
        return run_steps(self.family.loss_and_state, self.optimizer, params, state, data, batches, num_steps)

    def __call__(self, problem: Problem, num_steps: int) -> tuple[np.ndarray, Problem]:
        """(loss curves [num_steps + 1, functions], the problem at its final parameters and data)."""
        params, data = problem.params, problem.data
        set_horizon(self.optimizer, num_steps)  # a variable: no retracing for another length
        state = self.optimizer.init(params, problem.num_functions, names=problem.param_names)
        state = self.optimizer.pack_state(state, params)  # the layout for many updates in one loop
        pieces, done = [], 0
        while done < num_steps:
            n = num_steps - done if problem.batch_fn is None else min(EVAL_CHUNK, num_steps - done)
            batches = problem.batches(done, n + 1)
            params, state, data, losses = self._fn(params, state, data, batches, tf.constant(n))
            losses = losses.numpy()
            done += n
            pieces.append(losses if done == num_steps else losses[:-1])
        return np.concatenate(pieces, axis=0), dataclasses.replace(problem, params=list(params), data=data)


_RUNNERS: dict = {}


def _runner(family: ProblemFamily, optimizer: Optimizer) -> _Runner:
    key = (id(family), id(optimizer))
    if key not in _RUNNERS or _RUNNERS[key].optimizer is not optimizer or _RUNNERS[key].family is not family:
        _RUNNERS[key] = _Runner(family, optimizer)
    return _RUNNERS[key]


def run_trajectories(family: ProblemFamily, optimizer: Optimizer, problems: Iterable[Problem],
                     num_steps: int, metrics: dict | None = None) -> np.ndarray:
    """Loss curves [num_steps + 1, total functions] of `optimizer` on `problems`.

    If `metrics` is a dict, the family's end-of-trajectory metrics (e.g. test accuracy) of
    every problem are appended to it, one list per metric name.
    """
    curves = []
    for problem in problems:
        losses, final = run_problem(family, optimizer, problem, num_steps)
        curves.append(losses)
        if metrics is not None:
            for name, value in (problem.family or family).metrics(final.params, final).items():
                metrics.setdefault(name, []).append(value)
    return np.concatenate(curves, axis=1)


def run_problem(family: ProblemFamily, optimizer: Optimizer, problem: Problem,
                num_steps: int) -> tuple[np.ndarray, Problem]:
    """(loss curve [num_steps + 1, functions], the problem at its final parameters and data) of
    one problem; its batch stream is released. For callers that need the optimized parameters
    themselves (e.g. the images of neural art) or the evolved data (batch-norm statistics)."""
    losses, final = _runner(problem.family or family, optimizer)(problem, num_steps)
    problem.release()
    return losses, final


def _final_score(curves: np.ndarray) -> float:
    final = curves[-1]
    return float(np.mean(final)) if np.all(np.isfinite(final)) else math.inf


def tune_learning_rate(family: ProblemFamily, optimizer, grid: Sequence[float],
                       problems: list[Problem] | Callable[[], list[Problem]],
                       num_steps: int) -> tuple[float, dict[float, float]]:
    """Sets and returns the grid rate with the lowest mean final loss on `problems` (validation).

    `problems` may be a function returning them, for families whose problems carry batch
    streams that one run consumes (every grid point must see the same batches).
    """
    scores = {}
    for lr in grid:
        optimizer.set_learning_rate(lr)
        batch = problems() if callable(problems) else problems
        scores[lr] = _final_score(run_trajectories(family, optimizer, batch, num_steps))
    best = min(grid, key=lambda lr: scores[lr])
    optimizer.set_learning_rate(best)
    return best, scores


def _finite_or_none(x: float):
    return float(x) if math.isfinite(x) else None


def summarize(curves: np.ndarray, learning_rate: float | None) -> dict:
    """The results.json entry of one optimizer from its loss curves [steps + 1, functions]."""
    final = curves[-1].astype(np.float64)
    m = len(final)
    with np.errstate(invalid="ignore", over="ignore"):  # diverged runs become null, not warnings
        mean = float(np.mean(final))
        std = float(np.std(final, ddof=1)) if m > 1 else 0.0
    half = 1.96 * std / math.sqrt(m)
    return {
        "learning_rate": learning_rate,
        "final_loss_mean": _finite_or_none(mean),
        "final_loss_std": _finite_or_none(std),
        "final_loss_ci95": [_finite_or_none(mean - half), _finite_or_none(mean + half)],
        "loss_sum_mean": _finite_or_none(float(np.mean(np.sum(curves[1:].astype(np.float64), axis=0)))),
        "loss_mean_per_step": [_finite_or_none(float(v)) for v in np.mean(curves.astype(np.float64), axis=1)],
        "num_diverged": int(np.sum(~np.isfinite(final))),
        #: Per test problem, in problem order: what paired comparisons (l2l_tf/statistics.py) need.
        "final_losses": [_finite_or_none(float(v)) for v in final],
    }


def evaluate(family: ProblemFamily, learned: dict[str, Optimizer], baselines: dict[str, Optimizer],
             num_steps: int, num_problems: int, seed: int, grid: Sequence[float],
             num_tuning_problems: int | None = None, log=print, reused: dict | None = None) -> dict:
    """Runs learned optimizers and tuned baselines on the same test problems; returns results.

    `reused`: entries of baselines already tuned and run on these very test problems (from an
    earlier results.json, see `reusable_baselines`), taken as they are instead of re-running.
    Every learned optimizer is compared with every baseline problem by problem ("paired").
    """
    # Problems with batch streams are consumed by a run: every run samples identical new copies.
    test = lambda: sample_problems(family, "test", seed, num_problems)  # noqa: E731
    tuning = lambda: sample_problems(family, "validation", seed, num_tuning_problems or num_problems)  # noqa: E731
    results = {"problem": family.name, "problem_settings": family.describe(), "num_steps": int(num_steps),
               "num_problems": int(num_problems), "seed": int(seed), "learning_rate_grid": list(grid),
               "optimizers": {}}
    def on_test(opt, lr):
        metrics: dict = {}
        entry = summarize(run_trajectories(family, opt, test(), num_steps, metrics), lr)
        for metric, values in metrics.items():
            entry[f"final_{metric}_mean"] = _finite_or_none(float(np.mean(values)))
        return entry

    for name, opt in learned.items():
        log(f"evaluating {name} on {num_problems} test problems x {num_steps} steps")
        results["optimizers"][name] = on_test(opt, None)
    for name, entry in (reused or {}).items():
        log(f"{name}: reused (tuned learning rate {entry['learning_rate']:.3g})")
        results["optimizers"][name] = {**entry, "reused_from": entry.get("reused_from")}
    for name, opt in baselines.items():
        lr, scores = tune_learning_rate(family, opt, grid, tuning, num_steps)
        edge = " (at the edge of the grid: widen it)" if lr in (grid[0], grid[-1]) and len(grid) > 1 else ""
        log(f"{name}: tuned learning rate {lr:.3g}{edge}")
        entry = on_test(opt, lr)
        entry["tuning_final_loss"] = {f"{k:.6g}": _finite_or_none(v) for k, v in scores.items()}
        results["optimizers"][name] = entry
    from l2l_tf.statistics import compare_all

    results["paired"] = compare_all(results)
    return results


#: What must match for baselines of an earlier evaluation to be reused: the same test problems.
_SAME_PROBLEMS = ("problem", "problem_settings", "num_steps", "num_problems", "seed")


def _comparable(value):
    """`value` with every "data_source" that names an existing file by its real path, so that the
    same data reached as ../shared/data/mnist.npz and /work/shared/data/mnist.npz compares equal."""
    if isinstance(value, dict):
        return {k: os.path.realpath(v) if k == "data_source" and isinstance(v, str) and os.path.exists(v)
                else _comparable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_comparable(v) for v in value]
    return value


def reusable_baselines(path: str, family: ProblemFamily, num_steps: int, num_problems: int,
                       seed: int) -> tuple[dict, list[float]]:
    """The tuned baselines of an earlier results.json, if it evaluated the same test problems,
    and the learning-rate grid they were tuned on (what a report of them must name, and the grid
    any baseline tuned beside them should use).

    Raises a one-line `UserError` for an unreadable file, other test problems (problem,
    settings, steps, count or seed differ) or entries without per-problem losses."""
    import json

    from l2l_tf.errors import UserError

    try:
        with open(path) as f:
            earlier = json.load(f)
    except (OSError, ValueError) as e:
        raise UserError(f"cannot read baselines from {path}: {e}") from None
    wanted = {"problem": family.name, "problem_settings": family.describe(), "num_steps": int(num_steps),
              "num_problems": int(num_problems), "seed": int(seed)}
    wanted = json.loads(json.dumps(wanted))  # tuples become lists, as in the file
    differing = [k for k in _SAME_PROBLEMS if _comparable(earlier.get(k)) != _comparable(wanted[k])]
    if differing:
        what = "; ".join(f"{k} {earlier.get(k)!r} there, {wanted[k]!r} here" for k in differing)
        raise UserError(f"{path} evaluated other test problems ({what})")
    entries = {k: {**e, "reused_from": path} for k, e in earlier.get("optimizers", {}).items()
               if e.get("learning_rate") is not None}
    if not entries or not all("final_losses" in e for e in entries.values()):
        raise UserError(f"{path} holds no tuned baselines with per-problem final losses (evaluated by an older l2l_tf?)")
    grid = earlier.get("learning_rate_grid")
    if not grid:
        raise UserError(f"{path} does not record the learning-rate grid its baselines were tuned on")
    return entries, [float(r) for r in grid]


def write_results(results: dict, output_dir: str) -> str:
    """Writes results.json (strict JSON: non-finite numbers are null); returns its path."""
    os.makedirs(output_dir, exist_ok=True)
    path = os.path.join(output_dir, "results.json")
    return files.write_json(path, results, allow_nan=False)


def zero_gradient_drift(optimizer: Optimizer, num_steps: int = 100, size: int = 1000) -> float:
    """How far `num_steps` updates of all-zero gradients move a parameter from a fresh state: the
    largest |theta_T - theta_0| over `size` coordinates. Users expect a frozen or converged
    parameter to stay put; a learned rule may drift on its own (a bias in its read-out), and
    every bundled optimizer's model card states this number. A grouped optimizer (one LSTM per
    parameter group) drifts as far as its worst LSTM."""
    from l2l_tf.optimizers.grouped import GroupedLSTM

    if isinstance(optimizer, GroupedLSTM):
        return max(zero_gradient_drift(member, num_steps, size) for member in optimizer.optimizers.values())
    params = [tf.ones([size])]
    zeros = [tf.zeros([size])]

    @tf.function
    def run(state):
        total = tf.zeros([size])
        for _ in tf.range(num_steps):
            (update,), state = optimizer.update(zeros, state, params)
            total += update
        return total

    return float(tf.reduce_max(tf.abs(run(optimizer.init(params)))))

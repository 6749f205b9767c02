"""Training-time changes to sampled problems that make learned optimizers generalize (Lv et al. 2017).

* **Random scaling.** A coordinatewise optimizer trained on one family learns its gradient
  and parameter scales. Reparametrizing every training problem as theta = c * theta', with a
  random c_i = exp(u_i), u_i ~ U(-r, r) per coordinate, changes both (gradients scale with c,
  curvature with c^2) while keeping the problem's solutions, so the optimizer cannot rely on
  them. theta'_0 = theta_0 / c starts where the original problem starts.
* **A convex term.** A few extra coordinates with a simple convex loss,
  mean(clip((x - a)^2, 0, 10)) with a ~ U(-1, 1)^n and x_0 = 0, are added to every training
  problem, so every trajectory also contains coordinates whose right behaviour is plain,
  fast convergence.

Only training problems are changed; validation and test problems are the family's own.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import tensorflow as tf

from l2l_tf.problems.base import Problem, ProblemFamily

#: The name of the convex term's parameter tensor (for optimizers that group parameters by name).
CONVEX_TERM_NAME = "convex_term/x"


class AugmentedFamily(ProblemFamily):
    """`inner`'s loss on scaled parameters, plus the convex term when the problem has one.

    data = (inner data, per-tensor scales, convex target or None)."""

    def __init__(self, inner: ProblemFamily, convex: bool):
        self.inner, self.convex = inner, convex
        self.name, self.vectorized = inner.name, inner.vectorized

    def sample(self, split, seed, indices):
        raise TypeError("augmented problems are made by `augment`, not sampled")

    def loss_and_state(self, params, data, batch):
        inner_data, scales, target = data
        n = len(scales)
        theta = [c * p for c, p in zip(scales, params[:n])]
        losses, inner_data = self.inner.loss_and_state(theta, inner_data, batch)
        if self.convex:
            x = params[n]
            axes = list(range(1, x.shape.rank)) if self.inner.vectorized else None
            term = tf.reduce_mean(tf.clip_by_value(tf.square(x - target), 0.0, 10.0), axis=axes)
            losses = losses + (term if self.inner.vectorized else tf.reshape(term, [1]))
        return losses, (inner_data, scales, target)

    def loss(self, params, data, batch):
        return self.loss_and_state(params, data, batch)[0]

    def describe(self) -> dict:
        return self.inner.describe()


@dataclasses.dataclass(frozen=True)
class Augmentation:
    """How training problems are changed: `param_scale_range` r (0: off) and `convex_coordinates` n (0: off)."""

    param_scale_range: float = 0.0
    convex_coordinates: int = 0

    def __post_init__(self):
        from l2l_tf.errors import UserError

        if not (0.0 <= self.param_scale_range <= 10.0):
            raise UserError(f"param_scale_range must be between 0 (off) and 10, got {self.param_scale_range}")
        if self.convex_coordinates < 0:
            raise UserError(f"convex_coordinates must be >= 0 (0: off), got {self.convex_coordinates}")

    @property
    def active(self) -> bool:
        return bool(self.param_scale_range or self.convex_coordinates)


_WRAPPERS: dict = {}


def _wrapper(family: ProblemFamily, convex: bool) -> AugmentedFamily:
    """One wrapper per (family, convex), so each compiles its truncation once."""
    key = (id(family), convex)
    if key not in _WRAPPERS or _WRAPPERS[key].inner is not family:
        _WRAPPERS[key] = AugmentedFamily(family, convex)
    return _WRAPPERS[key]


def augment(problem: Problem, family: ProblemFamily, augmentation: Augmentation, rng: np.random.Generator) -> Problem:
    """`problem` (of `family`, or of its own `problem.family`) as an augmented training problem."""
    inner = problem.family or family
    r = augmentation.param_scale_range
    scales = [tf.constant(np.exp(rng.uniform(-r, r, size=p.shape.as_list())).astype(np.float32)) if r
              else tf.ones_like(p) for p in problem.params]
    params = [p / c for p, c in zip(problem.params, scales)]
    names = problem.param_names
    target: Any = tf.zeros([0])
    n = augmentation.convex_coordinates
    if n:
        shape = [problem.num_functions, n] if inner.vectorized else [n]
        target = tf.constant(rng.uniform(-1.0, 1.0, size=shape).astype(np.float32))
        params.append(tf.zeros(shape))
        names = None if names is None else (*names, CONVEX_TERM_NAME)
    return dataclasses.replace(problem, params=params, data=(problem.data, scales, target),
                               family=_wrapper(inner, bool(n)), param_names=names)

"""Training on a mixture of problem families, so one optimizer transfers to all of them.

The paper's MNIST optimizer, trained on one sigmoid MLP, fails on ReLU networks. Training
on a distribution that covers the variants (widths, depths, activations) and on losses of
randomly scaled magnitude (so the optimizer cannot memorize one gradient scale) is the
obvious fix; `MixtureFamily` draws, for every function, a member family and a loss scale
from the function's own seed, so mixtures stay reproducible and splits stay disjoint.
"""
from __future__ import annotations

import math
from typing import Sequence

import tensorflow as tf

from l2l_tf.problems.base import Problem, ProblemFamily, function_rng


class ScaledFamily(ProblemFamily):
    """A family whose losses are multiplied by a per-problem constant (carried in `data`)."""

    def __init__(self, inner: ProblemFamily):
        self.inner = inner
        self.name = inner.name
        self.vectorized = False

    def wrap(self, problem: Problem, scale: float) -> Problem:
        return Problem(params=problem.params, data=(problem.data, tf.constant(scale, tf.float32)),
                       num_functions=problem.num_functions, batch_fn=problem.batch_fn, family=self,
                       param_names=problem.param_names)

    def sample(self, split, seed, indices):
        return self.wrap(self.inner.sample(split, seed, indices), 1.0)

    def loss(self, params, data, batch):
        inner_data, scale = data
        return scale * self.inner.loss(params, inner_data, batch)

    def loss_and_state(self, params, data, batch):
        inner_data, scale = data
        losses, inner_data = self.inner.loss_and_state(params, inner_data, batch)
        return scale * losses, (inner_data, scale)

    def metrics(self, params, problem):
        return self.inner.metrics(params, Problem(problem.params, problem.data[0], problem.num_functions,
                                                  param_names=problem.param_names))

    def describe(self):
        return self.inner.describe()


class MixtureFamily(ProblemFamily):
    """Each function is drawn from one of `members` (uniformly); training losses are scaled
    by 10^u, u ~ U(-log10_scale_range, log10_scale_range)."""

    vectorized = False

    def __init__(self, members: Sequence[ProblemFamily], log10_scale_range: float = 0.0, name: str = "mixture"):
        if not members:
            raise ValueError("a mixture needs at least one member family")
        self.members = [ScaledFamily(m) for m in members]
        self.log10_scale_range = float(log10_scale_range)
        self.name = name

    def sample(self, split: str, seed: int, indices: Sequence[int]) -> Problem:
        if len(indices) != 1:
            raise ValueError(f"{self.name} problems hold one function each")
        rng = function_rng(split, seed, indices[0], self.name)
        member = self.members[int(rng.integers(len(self.members)))]
        # Only training losses are rescaled: validation and test measure the true loss.
        u = rng.uniform(-self.log10_scale_range, self.log10_scale_range)
        scale = 10.0 ** u if split == "train" and self.log10_scale_range else 1.0
        return member.wrap(member.inner.sample(split, seed, indices), float(scale))

    def loss(self, params, data, batch):
        raise TypeError("a mixture's problems carry their member family; use problem.family.loss")

    def describe(self) -> dict:
        return {"name": self.name, "members": [m.describe() for m in self.members],
                "log10_scale_range": self.log10_scale_range}


def mnist_mixture(hidden_sizes_options: Sequence[Sequence[int]] = ((20,), (40,), (20, 20)),
                  activations: Sequence[str] = ("sigmoid", "relu", "tanh"), log10_scale_range: float = 1.0,
                  batch_size: int = 128, data_dir: str | None = None) -> MixtureFamily:
    """MNIST MLPs of several widths/depths and activations, losses scaled by up to 10^±range."""
    from l2l_tf.problems.mnist import MNISTFamily

    members = [MNISTFamily(h, a, batch_size, data_dir) for h in hidden_sizes_options for a in activations]
    if not math.isfinite(log10_scale_range) or log10_scale_range < 0:
        raise ValueError("log10_scale_range must be >= 0")
    return MixtureFamily(members, log10_scale_range, name="mnist_mix")

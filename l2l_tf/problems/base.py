"""Problem families: how optimizees are sampled for training, validation and testing.

A *family* (e.g. "10-d quadratics", "MNIST MLPs") fixes the loss function's structure;
sampling it with seeds gives a concrete *problem*: initial parameters, the fixed tensors
that define the function (e.g. W and y of a quadratic), and a stream of per-step batches.
The loss lives on the family and the problem holds only tensors, so one compiled
trajectory loop serves every problem of a family without retracing.

A problem may hold several independent functions (a meta-batch): `loss` returns one value
per function, the optimizee gradient is taken of their sum (each function's parameters
get exactly their own gradient), and meta-losses and reports average over functions.

Seeds: every function is identified by (split, seed, index); the split enters the seed, so
train, validation and test functions can never coincide, whatever seeds are used.
"""
from __future__ import annotations

import abc
import dataclasses
from typing import Any, Callable, Sequence

import numpy as np
import tensorflow as tf

SPLITS = {"train": 1, "validation": 2, "test": 3}


def function_rng(split: str, seed: int, index: int, family: str = "") -> np.random.Generator:
    """A numpy generator for function `index` of `split` under `seed`, independent of all others."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}")
    tag = int.from_bytes(family.encode()[:8].ljust(8, b"\0"), "little")
    return np.random.default_rng(np.random.SeedSequence([SPLITS[split], int(seed), int(index), tag]))


@dataclasses.dataclass
class Problem:
    """A sampled optimization problem (possibly a batch of independent functions).

    Attributes:
      params: initial parameters theta_0 (list of tensors).
      data: tensors fixed for the whole trajectory (a nest; may be empty).
      num_functions: how many independent functions `loss` returns values for.
      batch_fn: `batch_fn(start, count)` returns a nest of tensors with leading dimension
        `count`, the per-step batches for steps start .. start+count-1; None when the
        loss takes no batch.
      family: the family whose `loss` and `metrics` apply, when it is not the family that
        sampled the problem (a mixture of families hands out problems of its members).
      param_names: a name per parameter tensor (e.g. a Keras variable's path), which lets an
        optimizer treat parameters by kind (separate LSTMs for conv and dense weights);
        None when the parameters have no meaningful names.
    """

    params: list
    data: Any
    num_functions: int
    batch_fn: Callable[[int, int], Any] | None = None
    family: "ProblemFamily | None" = None
    param_names: tuple[str, ...] | None = None

    def batches(self, start: int, count: int) -> Any:
        return () if self.batch_fn is None else self.batch_fn(start, count)

    def release(self) -> None:
        """Frees the batch stream's resources (e.g. a tf.data iterator) once the trajectory is done."""
        close = getattr(self.batch_fn, "close", None)
        if close is not None:
            close()


class ProblemFamily(abc.ABC):
    """A distribution over optimization problems with a shared loss structure."""

    #: Registry name ("quadratic", "mnist", ...).
    name: str = "problem"
    #: Whether `sample` can put many functions in one problem (vectorized evaluation).
    vectorized: bool = False

    @abc.abstractmethod
    def sample(self, split: str, seed: int, indices: Sequence[int]) -> Problem:
        """The problem made of functions `indices` of `split` (one function unless `vectorized`)."""

    @abc.abstractmethod
    def loss(self, params: Sequence[tf.Tensor], data: Any, batch: Any) -> tf.Tensor:
        """Per-function losses, shape [num_functions]."""

    def loss_and_state(self, params: Sequence[tf.Tensor], data: Any, batch: Any) -> tuple[tf.Tensor, Any]:
        """Per-function losses and the problem's `data` after this step.

        Most problems hold fixed data and return it unchanged. A problem with state that
        evolves along the trajectory without being optimized (batch-norm moving statistics)
        returns the updated state; the trajectory loop threads it from step to step, so it
        is part of the optimizee's state but never of theta.
        """
        return self.loss(params, data, batch), data

    def metrics(self, params: Sequence[tf.Tensor], problem: Problem) -> dict[str, float]:
        """End-of-trajectory metrics of final parameters (e.g. test accuracy); none by default."""
        return {}

    def describe(self) -> dict:
        """Settings recorded with trained optimizers and results."""
        return {"name": self.name}

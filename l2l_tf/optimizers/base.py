"""The one optimizer interface shared by learned and hand-designed update rules.

An optimizer is a pair of pure functions in the style of optax's `GradientTransformation`:

    state = opt.init(params)                    # or opt.init(params, num_functions=F)
    updates, state = opt.update(grads, state, params)
    params = [p + u for p, u in zip(params, updates)]

`params`, `grads` and `updates` are lists of tensors of any shapes; `state` is a nest of
tensors. Nothing is stored in the optimizer between calls except hyperparameters and, for
learned optimizers, the meta-parameters phi. Keeping the state explicit is what lets the
meta-trainer differentiate through T updates, lets the evaluator run every optimizer in the
same compiled loop, and lets the Keras wrapper keep the state as optimizer variables.
"""
from __future__ import annotations

import abc
from typing import Any, Sequence

import tensorflow as tf

Params = Sequence[tf.Tensor]
State = Any


class Optimizer(tf.Module, abc.ABC):
    """Base class: `init(params) -> state`, `update(grads, state, params) -> (updates, state)`.

    Subclasses are `tf.Module`s so that their variables (hand-designed learning rates,
    learned meta-parameters) are tracked and captured by reference in `tf.function`s:
    assigning a new learning rate does not retrace a compiled loop.
    """

    #: Short name used in results.json, plots and flags ("sgd", "adam", "L2L", ...).
    label: str = "optimizer"

    @abc.abstractmethod
    def init(self, params: Params, num_functions: int = 1, names: Sequence[str] | None = None) -> State:
        """Returns the initial state for `params` (list of tensors).

        `names` (one per tensor, e.g. Keras variable paths) matter only to optimizers that
        treat parameters by kind, such as one LSTM for conv and one for dense weights; the
        others ignore them.

        `num_functions` > 1 says that `params` hold that many independent functions along
        their leading axis (a vectorized meta-batch); optimizers that share information
        across coordinates must only share it within a function. Coordinatewise rules
        ignore it.
        """

    @abc.abstractmethod
    def update(self, grads: Params, state: State, params: Params) -> tuple[list[tf.Tensor], State]:
        """Returns (updates to add to params, next state)."""

    @property
    def meta_variables(self) -> list[tf.Variable]:
        """The meta-parameters phi trained by the meta-trainer (empty for hand-designed rules)."""
        return []

    def pack_state(self, state: State, params: Params) -> State:
        """The state in a layout for many consecutive updates inside one compiled loop.

        `update` accepts both layouts and returns the one it was given; `unpack_state`
        undoes this. The meta-trainer packs once per truncation so that an optimizer whose
        public layout costs work every step (the coordinatewise LSTM joins its per-tensor
        states into one batch) pays it once. Default: the same layout.
        """
        del params
        return state

    def unpack_state(self, state: State, params: Params) -> State:
        """The inverse of `pack_state`."""
        del params
        return state

    def apply(self, grads: Params, state: State, params: Params) -> tuple[list[tf.Tensor], State]:
        """Convenience: one step, returning (new params, new state)."""
        updates, state = self.update(grads, state, params)
        return [p + u for p, u in zip(params, updates)], state


def set_horizon(optimizer, num_steps: int) -> None:
    """Tells an optimizer that knows of horizons (a learned one with the progress feature, a
    scheduled teacher) how many steps its trajectories have; others are left as they are."""
    setter = getattr(optimizer, "set_horizon", None)
    if setter is not None:
        setter(int(num_steps))

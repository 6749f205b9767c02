"""The optimization loop shared by meta-training and evaluation.

`run_steps` applies an optimizer to a problem for T steps and returns the per-function
losses f(theta_0) .. f(theta_T). It is written once and compiled two ways:

* meta-training calls it with a Python `int` T under a `GradientTape`: the loop is
  unrolled statically into one graph, so the meta-gradient flows through every update;
* evaluation calls it with a tensor T: autograph turns the loop into a `tf.while_loop`,
  so one trace serves any trajectory length.

Optimizee gradients are wrapped in `tf.stop_gradient` unless `second_derivatives` is set:
the paper's first-order approximation, which drops the Hessian terms of the meta-gradient.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import tensorflow as tf

from l2l_tf.optimizers.base import Optimizer

LossFn = Callable[[Sequence[tf.Tensor], Any, Any], tf.Tensor]
#: `(params, data, batch) -> (per-function losses, data after the step)`: a family's `loss_and_state`.
StatefulLossFn = Callable[[Sequence[tf.Tensor], Any, Any], tuple[tf.Tensor, Any]]


def _batch_at(batches: Any, t) -> Any:
    return tf.nest.map_structure(lambda b: b[t], batches)


def loss_and_grads(loss_fn: LossFn, params: list, data: Any, batch: Any) -> tuple[tf.Tensor, list]:
    """Per-function losses and the gradient of their sum (each function's own gradient)."""
    losses, _, grads = _losses_state_grads(lambda p, d, b: (loss_fn(p, d, b), d), params, data, batch)
    return losses, grads


def _losses_state_grads(loss_fn: StatefulLossFn, params: list, data: Any, batch: Any):
    """`loss_and_grads` for a family's `loss_and_state`: also returns the data after the step."""
    with tf.GradientTape() as tape:
        tape.watch(params)
        losses, new_data = loss_fn(params, data, batch)
        total = tf.reduce_sum(losses)
    return losses, new_data, tape.gradient(total, params)


def run_steps(loss_fn: StatefulLossFn, optimizer: Optimizer, params: list, state: Any, data: Any, batches: Any,
              num_steps, second_derivatives: bool = False) -> tuple[list, Any, Any, tf.Tensor]:
    """Runs `num_steps` optimizer steps from (params, state, data).

    Args:
      loss_fn: a family's `loss_and_state`; the data it returns (e.g. batch-norm moving
        statistics) is passed to the next step, so such state follows the trajectory.
      batches: a nest with leading dimension num_steps + 1 (the last batch scores the final
        iterate), or () for losses without batches.
      num_steps: a Python int (static unroll, differentiable) or a scalar int tensor.

    Returns:
      (final params, final optimizer state, final data, losses [num_steps + 1, num_functions]).
    """
    params = list(params)
    if isinstance(num_steps, int):
        losses = []
        for t in range(num_steps):
            step_losses, data, grads = _losses_state_grads(loss_fn, params, data, _batch_at(batches, t))
            if not second_derivatives:
                grads = [tf.stop_gradient(g) for g in grads]
            losses.append(step_losses)
            params, state = optimizer.apply(grads, state, params)
        final_losses, _ = loss_fn(params, data, _batch_at(batches, num_steps))
        losses.append(final_losses)
        return params, state, data, tf.stack(losses)

    array = tf.TensorArray(tf.float32, size=num_steps + 1)
    for t in tf.range(num_steps):
        step_losses, data, grads = _losses_state_grads(loss_fn, params, data, _batch_at(batches, t))
        array = array.write(t, step_losses)
        params, state = optimizer.apply(grads, state, params)
    final_losses, _ = loss_fn(params, data, _batch_at(batches, num_steps))
    array = array.write(num_steps, final_losses)
    return params, state, data, array.stack()

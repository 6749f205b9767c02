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


def _losses_state_grads(loss_fn: StatefulLossFn, params: list, data: Any, batch: Any, symbolic: bool = False):
    """`loss_and_grads` for a family's `loss_and_state`: also returns the data after the step.

    `symbolic` takes the gradient with `tf.gradients` (graph mode only) instead of a tape:
    under `tf.recompute_grad` the forward pass runs with every tape stopped, and only a
    symbolic gradient still sees the optimizee's loss there.
    """
    if symbolic:
        losses, new_data = loss_fn(params, data, batch)
        grads = tf.gradients(tf.reduce_sum(losses), params)
        return losses, new_data, [tf.zeros_like(p) if g is None else g for g, p in zip(grads, params)]
    with tf.GradientTape() as tape:
        tape.watch(params)
        losses, new_data = loss_fn(params, data, batch)
        total = tf.reduce_sum(losses)
    return losses, new_data, tape.gradient(total, params)


def run_steps(loss_fn: StatefulLossFn, optimizer: Optimizer, params: list, state: Any, data: Any, batches: Any,
              num_steps, second_derivatives: bool = False,
              symbolic_gradients: bool = False) -> tuple[list, Any, Any, tf.Tensor]:
    """Runs `num_steps` optimizer steps from (params, state, data).

    Args:
      loss_fn: a family's `loss_and_state`; the data it returns (e.g. batch-norm moving
        statistics) is passed to the next step, so such state follows the trajectory.
      batches: a nest with leading dimension num_steps + 1 (the last batch scores the final
        iterate), or () for losses without batches.
      num_steps: a Python int (static unroll, differentiable) or a scalar int tensor.
      symbolic_gradients: optimizee gradients by `tf.gradients` (inside `tf.function` only).

    Returns:
      (final params, final optimizer state, final data, losses [num_steps + 1, num_functions]).
    """
    params = list(params)
    if isinstance(num_steps, int):
        losses = []
        for t in range(num_steps):
            step_losses, data, grads = _losses_state_grads(loss_fn, params, data, _batch_at(batches, t),
                                                           symbolic_gradients)
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


def _slice_batches(batches: Any, start: int, count: int) -> Any:
    return tf.nest.map_structure(lambda b: b[start:start + count], batches)


def run_steps_recomputed(loss_fn: StatefulLossFn, optimizer: Optimizer, params: list, state: Any, data: Any,
                         batches: Any, num_steps: int, segment_length: int,
                         second_derivatives: bool = False) -> tuple[list, Any, Any, tf.Tensor]:
    """`run_steps` with a static unroll cut into segments whose activations are recomputed.

    Backpropagating through a T-step unroll keeps every step's activations (the LSTM's
    gates for every coordinate, the optimizee's forward pass) alive until the backward pass:
    memory linear in T. Here each segment of `segment_length` steps runs under
    `tf.recompute_grad`: only (theta, optimizer state, data) at segment boundaries are kept,
    and a segment's activations are rebuilt when the backward pass reaches it. With segments
    of about sqrt(T) steps, memory grows like sqrt(T) at the price of one more forward pass
    (~1/3 more time). The values and gradients are those of `run_steps`: each segment ends by
    scoring its last iterate on the next batch, exactly the loss the next segment's first
    step computes again.

    `tf.recompute_grad` runs the forward pass with all tapes stopped, so the optimizee
    gradients inside a segment are symbolic (`tf.gradients`); in the recomputation they are
    taken under the recomputing tape, so second derivatives still flow when asked for.
    Batches (integer labels among them) are captured by the segment function rather than
    passed in, since every argument is differentiated. Must run inside a `tf.function`.
    """
    if not (isinstance(num_steps, int) and 0 < segment_length):
        raise ValueError("run_steps_recomputed needs a static num_steps and a positive segment_length")
    params = list(params)
    losses = []
    for start in range(0, num_steps, segment_length):
        steps = min(segment_length, num_steps - start)
        segment_batches = _slice_batches(batches, start, steps + 1)
        carried = (params, state, data)

        def segment(*flat, _batches=segment_batches, _steps=steps, _structure=carried):
            p, s, d = tf.nest.pack_sequence_as(_structure, list(flat))
            p, s, d, seg_losses = run_steps(loss_fn, optimizer, p, s, d, _batches, _steps, second_derivatives,
                                            symbolic_gradients=True)
            return tf.nest.flatten((p, s, d)) + [seg_losses]

        out = tf.recompute_grad(segment)(*tf.nest.flatten(carried))
        params, state, data = tf.nest.pack_sequence_as(carried, list(out[:-1]))
        params = list(params)
        losses.append(out[-1] if not losses else out[-1][1:])
    return params, state, data, tf.concat(losses, axis=0)

"""Experiment: does XLA on the LSTM update alone (not the whole truncation) speed up meta-training?

Compiling whole truncations with XLA is ~3x slower on this CPU (RESULTS.md, Speed), while XLA is
the fastest single forward update. This compiles only `CoordinatewiseLSTM.update` with
`jit_compile=True` inside an otherwise ordinary 20-step unroll, so the forward and the gradient
of each update are XLA clusters and the rest is plain TensorFlow, and times forward + meta-
gradient of the unroll on N coordinates (MNIST's default MLP has 15,910) against the plain path,
alternating three rounds. Run from the repository root:

    python benchmarks/experiments/xla_cell.py [N]
"""
from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

import tensorflow as tf  # noqa: E402

from l2l_tf.optimizers import CoordinatewiseLSTM  # noqa: E402
from l2l_tf.optimizers.coordinatewise import LSTMOptimizerConfig  # noqa: E402

T, REPEATS = 20, 5


def unroll(optimizer, step, n: int, grads: tf.Tensor):
    """T optimizer steps on theta (gradient = a fixed sequence + 0.01 theta), then d(sum |theta|^2)/d phi."""

    def run():
        with tf.GradientTape() as tape:
            state, theta, total = optimizer.init([tf.zeros([n])]), tf.zeros([n]), 0.0
            for t in range(T):
                (update,), state = step([grads[t] + 0.01 * theta], state)
                theta = theta + update
                total += tf.reduce_sum(theta * theta)
        return tape.gradient(total, optimizer.meta_variables)

    return tf.function(run)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 15910
    optimizer = CoordinatewiseLSTM(LSTMOptimizerConfig(preprocess_p=5, output_scale=0.01), seed=0)
    grads = tf.random.normal([T, n], seed=0)
    plain = unroll(optimizer, lambda g, s: optimizer.update(g, s, None), n, grads)
    xla = unroll(optimizer, tf.function(lambda g, s: optimizer.update(g, s, None), jit_compile=True), n, grads)
    for _ in range(3):
        for name, fn in (("plain", plain), ("xla_update", xla)):
            fn()  # warm-up (and compilation)
            start = time.perf_counter()
            for _ in range(REPEATS):
                fn()
            print(f"{name}: {(time.perf_counter() - start) / REPEATS * 1000:.0f} ms per {T}-step unroll "
                  f"(forward + meta-gradient, {n} coordinates)")


if __name__ == "__main__":
    main()

"""Experiment: how close is the fused LSTM kernel to this machine's arithmetic limit?

Times one layer of the fused kernel (l2l_tf/kernels/lstm_kernel.cc), forward (with the cache for
the backward pass) and backward, on N coordinates on ONE thread, for the two layer shapes of the
default optimizer (inputs 2 and 20, 20 units), and a 2048^2 matmul on the same thread: the
FLOP/s of the layer's matmul work (2 (inputs + units) 4 units per coordinate forward, twice that
backward) against the matmul's say what share of the layer's time the matmuls would need at the
machine's peak; the rest is the element-wise gate math and memory traffic. Run from the
repository root (N defaults to MNIST's 15,910 coordinates):

    python benchmarks/experiments/kernel_layer_cost.py [N]
"""
from __future__ import annotations

import os
import sys
import time

os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from l2l_tf.kernels import fused_lstm  # noqa: E402

UNITS, CALLS, REPEATS = 20, 20, 9


def _best_ms(fn) -> float:
    """Fastest of REPEATS runs of fn (CALLS kernel calls each), per call."""
    fn().numpy()
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        fn().numpy()
        times.append((time.perf_counter() - start) / CALLS * 1e3)
    return min(times)


def layer_ms(rows: int, inputs: int) -> tuple[float, float]:
    """(forward ms, backward ms) of one fused layer on `rows` coordinates."""
    lib = fused_lstm._load()
    rng = np.random.default_rng(0)
    x, h, c, dh = (tf.constant(rng.normal(size=(rows, n)).astype(np.float32)) for n in (inputs, UNITS, UNITS, UNITS))
    kernel = tf.constant(rng.normal(scale=inputs ** -0.5, size=(inputs, 4 * UNITS)).astype(np.float32))
    recurrent = tf.constant(rng.normal(scale=UNITS ** -0.5, size=(UNITS, 4 * UNITS)).astype(np.float32))
    bias = tf.zeros([4 * UNITS])
    _, _, cache = lib.l2l_lstm_layer(x, h, c, kernel, recurrent, bias)

    @tf.function
    def forward():
        total = 0.0
        for i in range(CALLS):  # distinct inputs, so that no call is folded into another
            h_out, _, _ = lib.l2l_lstm_layer(x, h + float(i), c, kernel, recurrent, bias)
            total += h_out[0, 0]
        return total

    @tf.function
    def backward():
        total = 0.0
        for i in range(CALLS):
            grads = lib.l2l_lstm_layer_grad(dh + float(i), dh, x, h, c, kernel, recurrent, cache)
            total += sum(g[(0,) * len(g.shape)] for g in grads)
        return total

    return _best_ms(forward), _best_ms(backward)


def matmul_gflops() -> float:
    a, b = tf.random.normal([2048, 2048]), tf.random.normal([2048, 2048])
    fn = tf.function(lambda: sum(tf.reduce_sum(tf.matmul(a + float(i), b)) for i in range(CALLS)))
    return 2 * 2048 ** 3 / (_best_ms(fn) / 1e3) / 1e9


def main() -> None:
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 15910
    if not fused_lstm.available():
        sys.exit("the fused kernel does not build here")
    peak = matmul_gflops()
    print(f"one thread; 2048^2 matmul: {peak:.1f} GFLOP/s; {rows:,} coordinates, {UNITS} units")
    print("| layer inputs | pass | ms | matmul GFLOP/s | of the 2048^2 matmul |")
    print("|---:|---|---:|---:|---:|")
    for inputs in (2, UNITS):
        flops = 2 * (inputs + UNITS) * 4 * UNITS * rows
        for name, ms, work in zip(("forward", "backward"), layer_ms(rows, inputs), (flops, 2 * flops)):
            gflops = work / (ms / 1e3) / 1e9
            print(f"| {inputs} | {name} | {ms:.3f} | {gflops:.1f} | {gflops / peak:.0%} |")


if __name__ == "__main__":
    main()

"""One optimizer update on a flat parameter vector: learned (LSTM) vs Keras Adam, and FLOP/s.

The learned update is `CoordinatewiseLSTM.update` on one [N] gradient (state in, update
and state out) in a `tf.function`; Adam is `keras.optimizers.Adam.apply` on one [N]
variable. The LSTM's work is counted as its matmul FLOPs (2 * in * out per coordinate and
weight matrix; the element-wise gate math is not counted), and compared with what a large
square matmul reaches in the same process, and with what matmuls of the LSTM's own
tall-and-skinny shapes ([N, in + units] x [in + units, 4 units]) reach: the ceiling of an
implementation that leaves the matmuls to this machine's BLAS (the fused kernel does its own).
"""
from __future__ import annotations

IMPLEMENTATIONS = ("fast", "keras_cells", "fast_xla", "unfused", "adam")


def lstm_matmul_flops_per_coordinate(layers=(20, 20), num_features: int = 2) -> int:
    """Multiply-adds x 2 of one coordinate's LSTM step: gate matmuls of each layer and the output."""
    flops, width = 0, num_features
    for units in layers:
        flops += 2 * (width + units) * 4 * units
        width = units
    return flops + 2 * width


def matmul_gflops(shape_a, shape_b, warmup: int, repeats: int) -> float:
    import tensorflow as tf

    from benchmarks.harness.common import time_calls

    a = tf.random.normal(shape_a)
    b = tf.random.normal(shape_b)
    fn = tf.function(lambda: tf.reduce_sum(tf.matmul(a, b)))
    out = {}
    times = time_calls(lambda: out.update(v=fn()), lambda: out["v"].numpy(), warmup=warmup, repeats=repeats)
    return 2 * shape_a[0] * shape_a[1] * shape_b[1] / (times["ms"] / 1e3) / 1e9


def measure(size: int, implementation: str, warmup: int, repeats: int) -> dict:
    import keras
    import tensorflow as tf

    from benchmarks.harness.common import learned_optimizer, time_calls

    if implementation not in IMPLEMENTATIONS:
        raise ValueError(f"unknown implementation {implementation!r}")
    keras.utils.set_random_seed(0)
    grad = tf.random.normal([size], stddev=1e-3)
    out = {}
    if implementation == "adam":
        variable = keras.Variable(tf.zeros([size]))
        adam = keras.optimizers.Adam(1e-3)
        adam.build([variable])
        step = tf.function(lambda: adam.apply([grad], [variable]))
        times = time_calls(step, lambda: adam.iterations.numpy(), warmup=warmup, repeats=repeats)
        return {"size": size, "implementation": implementation, "update": times}
    optimizer = learned_optimizer(implementation)
    state = optimizer.init([grad])
    update = tf.function(lambda g, s: optimizer.update([g], s, [g]), jit_compile=implementation == "fast_xla")
    times = time_calls(lambda: out.update(v=update(grad, state)), lambda: out["v"][0][0].numpy(),
                       warmup=warmup, repeats=repeats)
    flops = lstm_matmul_flops_per_coordinate(optimizer.config.layers) * size
    return {"size": size, "implementation": implementation, "update": times, "matmul_flops": flops,
            "gflops_per_second": flops / (times["ms"] / 1e3) / 1e9}


def machine_matmul(warmup: int, repeats: int) -> dict:
    """GFLOP/s of a large square matmul and of the LSTM's own matmul shapes at 2^20 rows."""
    rows = 2 ** 20
    return {"square_2048": matmul_gflops((2048, 2048), (2048, 2048), warmup, repeats),
            "lstm_layer1_shape": matmul_gflops((rows, 22), (22, 80), warmup, repeats),
            "lstm_layer2_shape": matmul_gflops((rows, 40), (40, 80), warmup, repeats),
            "rows": rows}

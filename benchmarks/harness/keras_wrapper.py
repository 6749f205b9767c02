"""The Keras wrapper's cost: `LearnedOptimizer` vs `keras.optimizers.Adam` on an MLP of a given size.

One case per process (the benchmark's worker): the optimizer's own step (`optimizer.apply` in a
`tf.function`) and a whole `train_on_batch`, in wall and CPU time, the optimizer state's bytes
and the peak resident memory growth per parameter.
"""
from __future__ import annotations

INPUT_DIM, OUTPUT_DIM = 100, 10


def hidden_units(params: float) -> int:
    """h such that the MLP 100 -> h -> 10 has about `params` parameters (111 h + 10)."""
    return max(1, round((params - OUTPUT_DIM) / (INPUT_DIM + 1 + OUTPUT_DIM)))



def measure(params: int, which: str, path: str | None, batch_size: int, warmup: int, repeats: int,
            steps: int) -> dict:
    """One case, in this process: times and memory of optimizer `which` on a model of ~params."""
    import keras
    import numpy as np
    import tensorflow as tf

    from l2l_tf import LearnedOptimizer
    from benchmarks.harness.common import proc_status, time_calls
    from l2l_tf.optimizers import CoordinatewiseLSTM

    keras.utils.set_random_seed(0)
    h = hidden_units(params)
    model = keras.Sequential([keras.Input((INPUT_DIM,)), keras.layers.Dense(h, activation="relu"),
                              keras.layers.Dense(OUTPUT_DIM)])
    x = np.random.default_rng(0).standard_normal((batch_size, INPUT_DIM)).astype(np.float32)
    y = np.random.default_rng(1).integers(0, OUTPUT_DIM, batch_size).astype(np.int32)
    model(x)  # TensorFlow's runtime is warm before the memory baseline
    variables = model.trainable_variables
    n = int(sum(np.prod(v.shape) for v in variables))
    grads = [tf.constant(np.random.default_rng(2).standard_normal(v.shape).astype(np.float32) * 1e-2)
             for v in variables]
    rss_before = proc_status("VmRSS")

    if which == "adam":
        optimizer = keras.optimizers.Adam(1e-3)
    else:
        state_dtype = "bfloat16" if which == "learned_bfloat16" else "float32"
        optimizer = LearnedOptimizer(path if path else CoordinatewiseLSTM(), learning_rate=0.01,
                                     state_dtype=state_dtype, jit_compile=which == "learned_xla")
    optimizer.build(variables)
    apply = tf.function(lambda: optimizer.apply(grads, variables))
    sync = lambda: optimizer.iterations.numpy()  # noqa: E731 - blocks until the steps have run
    apply_times = time_calls(apply, sync, warmup, repeats, steps)

    model.compile(optimizer=optimizer, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    train_times = time_calls(lambda: model.train_on_batch(x, y), sync, warmup, repeats, steps)
    peak = proc_status("VmHWM")
    state_bytes = sum(int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize for v in optimizer.variables)
    return {"optimizer": which, "params": n, "hidden_units": h,
            **{f"apply_{k}": v for k, v in apply_times.items()},
            **{f"train_step_{k}": v for k, v in train_times.items()},
            "state_bytes_per_param": state_bytes / n, "peak_rss_growth_bytes_per_param": (peak - rss_before) / n}

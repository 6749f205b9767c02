"""Meta-training throughput: optimizee steps per second, meta backward pass and Adam included.

One epoch of `MetaTrainer` is timed: a fresh problem, `num_steps` optimizee steps in
truncations of `unroll_length`, each followed by the meta-gradient and Adam's step on phi.
The same is measured for the fast path (`CoordinatewiseLSTM` with the fused C++ kernel of
l2l_tf/kernels where it builds), for the same class on Keras' own LSTM cells (one [N, 4 units]
gate matmul per layer: the fast path before the kernel), for the plain unfused reference of the
same math (`UnfusedLSTM`, same phi) and for Keras' cells compiled with XLA, so the speed-up ratios
come from one machine state.
"""
from __future__ import annotations

import os

IMPLEMENTATIONS = ("fast", "keras_cells", "unfused", "fast_xla")


def lstm_kernel(implementation: str) -> str:
    """What computes the LSTM in `implementation` on this machine."""
    from l2l_tf.kernels import fused_lstm

    if implementation == "fast":
        if not fused_lstm.available():
            return "Keras cells (fused kernel unavailable)"
        info = fused_lstm.build_info()
        return f"fused C++ kernel ({info['build']} build: {' '.join(info['flags']) or 'default target'})"
    return {"keras_cells": "Keras cells", "unfused": "per-gate TensorFlow ops", "fast_xla": "Keras cells under XLA"}[
        implementation]


def measure(problem: str, implementation: str, data_dir: str | None, warmup: int, repeats: int,
            profile_dir: str | None = None) -> dict:
    import keras

    from benchmarks.harness.common import learned_optimizer, time_calls
    from l2l_tf.meta import MetaTrainConfig, MetaTrainer
    from l2l_tf.problems.registry import make_family

    if implementation not in IMPLEMENTATIONS:
        raise ValueError(f"unknown implementation {implementation!r}")
    keras.utils.set_random_seed(0)
    family = make_family(problem, **({"data_dir": data_dir} if problem != "quadratic" else {}))
    optimizer = learned_optimizer(implementation)
    config = MetaTrainConfig(num_steps=100, unroll_length=20, jit_compile=implementation == "fast_xla")
    trainer = MetaTrainer(family, optimizer, config)
    epoch = iter(range(10**9))
    run = lambda: trainer.run_epoch(next(epoch))  # noqa: E731
    times = time_calls(run, lambda: None, warmup=warmup, repeats=repeats)  # run_epoch returns host floats
    result = {"problem": problem, "implementation": implementation, "epoch": times,
              "steps_per_second": config.num_steps / (times["ms"] / 1e3),
              "steps_per_cpu_second": config.num_steps / (times["cpu_ms"] / 1e3),
              "setup": {"num_steps": config.num_steps, "unroll_length": config.unroll_length,
                        "family": family.describe(), "optimizer": "2-layer LSTM, 20 units"},
              "traces": dict(trainer.traces), "lstm_kernel": lstm_kernel(implementation)}
    if profile_dir:
        from benchmarks.harness.profile_ops import profile

        result["profile"] = profile(run, os.path.join(profile_dir, f"meta_training_{problem}_{implementation}"))
    return result

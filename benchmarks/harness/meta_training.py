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
import statistics

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


def summarize_rounds(rounds: list[dict], implementations=IMPLEMENTATIONS) -> dict:
    """One problem's meta_training entry from its rounds ({implementation: worker row} each):
    medians over rounds per implementation, the fast path's speed-ups, the first round in full."""
    rates = {impl: [r[impl].get("steps_per_second") for r in rounds] for impl in implementations}
    median = {impl: statistics.median(v) if None not in v else None for impl, v in rates.items()}
    fast, unfused, keras_cells = median["fast"], median["unfused"], median["keras_cells"]
    return {"steps_per_second": fast,
            "lstm_kernel": rounds[0]["fast"].get("lstm_kernel"),
            "speedup_vs_unfused": fast / unfused if fast and unfused else None,
            "speedup_vs_keras_cells": fast / keras_cells if fast and keras_cells else None,
            "speedup_vs_unfused_per_round": [a / b if a and b else None for a, b in zip(rates["fast"], rates["unfused"])],
            "median_steps_per_second": median, "steps_per_second_per_round": rates,
            "implementations": rounds[0]}  # the first round in full (profiles included)

"""Meta-training throughput: optimizee steps per second, meta backward pass and Adam included.

One epoch of `MetaTrainer` is timed: a fresh problem, `num_steps` optimizee steps in
truncations of `unroll_length`, each followed by the meta-gradient and Adam's step on phi.
The same is measured for the fused fast path (`CoordinatewiseLSTM`), for the plain unfused
reference of the same math (`UnfusedLSTM`, same phi) and for the fast path compiled with XLA,
so the speed-up ratios come from one machine state.
"""
from __future__ import annotations

import os

IMPLEMENTATIONS = ("fast", "unfused", "fast_xla")


def measure(problem: str, implementation: str, data_dir: str | None, warmup: int, repeats: int,
            profile_dir: str | None = None) -> dict:
    import keras
    import tensorflow as tf

    from l2l_tf.benchmarks.common import time_calls
    from l2l_tf.meta import MetaTrainConfig, MetaTrainer
    from l2l_tf.optimizers import CoordinatewiseLSTM
    from l2l_tf.optimizers.reference import UnfusedLSTM
    from l2l_tf.problems.registry import make_family

    if implementation not in IMPLEMENTATIONS:
        raise ValueError(f"unknown implementation {implementation!r}")
    keras.utils.set_random_seed(0)
    family = make_family(problem, **({"data_dir": data_dir} if problem != "quadratic" else {}))
    fast = CoordinatewiseLSTM(seed=0)
    optimizer = UnfusedLSTM(fast) if implementation == "unfused" else fast
    config = MetaTrainConfig(num_steps=100, unroll_length=20, jit_compile=implementation == "fast_xla")
    trainer = MetaTrainer(family, optimizer, config)
    epoch = iter(range(10**9))
    run = lambda: trainer._run_epoch(next(epoch))  # noqa: E731
    times = time_calls(run, lambda: None, warmup=warmup, repeats=repeats)  # _run_epoch returns host floats
    result = {"problem": problem, "implementation": implementation, "epoch": times,
              "steps_per_second": config.num_steps / (times["ms"] / 1e3),
              "steps_per_cpu_second": config.num_steps / (times["cpu_ms"] / 1e3),
              "setup": {"num_steps": config.num_steps, "unroll_length": config.unroll_length,
                        "family": family.describe(), "optimizer": "2-layer LSTM, 20 units"},
              "traces": dict(trainer.traces)}
    if profile_dir:
        from l2l_tf.benchmarks.profile_ops import profile

        result["profile"] = profile(run, os.path.join(profile_dir, f"meta_training_{problem}_{implementation}"))
    return result

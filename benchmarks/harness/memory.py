"""Peak memory of meta-training against unroll length, with and without gradient checkpointing.

One process per case: the MNIST family (default MLP, batch 128) is loaded, the resident
memory is read, and two epochs of one truncation of T steps each are run (the first traces
and compiles). The figure is the process's peak resident memory (VmHWM) minus the resident
memory before the trainer existed: the unroll's activations, the compiled graph and the
optimizer state, i.e. what grows with T. The second epoch's time gives steps per second.
"""
from __future__ import annotations

import math
import time


def measure(problem: str, unroll: int, checkpointing: str, data_dir: str | None) -> dict:
    import keras

    from benchmarks.harness.common import proc_status
    from l2l_tf.meta import MetaTrainConfig, MetaTrainer
    from l2l_tf.optimizers import CoordinatewiseLSTM
    from l2l_tf.problems.registry import make_family

    keras.utils.set_random_seed(0)
    family = make_family(problem, **({"data_dir": data_dir} if problem != "quadratic" else {}))
    family.sample("train", 0, [0]).release()  # the dataset is loaded before the baseline
    segment = {"off": 0, "sqrt": math.ceil(math.sqrt(unroll))}[checkpointing]
    config = MetaTrainConfig(num_steps=unroll, unroll_length=unroll, gradient_checkpointing=segment)
    before = proc_status("VmRSS")
    trainer = MetaTrainer(family, CoordinatewiseLSTM(seed=0), config)
    trainer.run_epoch(0)
    start = time.perf_counter()
    trainer.run_epoch(1)
    seconds = time.perf_counter() - start
    peak = proc_status("VmHWM")
    return {"problem": problem, "unroll": unroll, "checkpointing": checkpointing, "segment": segment,
            "peak_growth_mb": (peak - before) / 2**20,
            "steps_per_second": unroll / seconds}

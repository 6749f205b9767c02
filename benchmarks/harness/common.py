"""Timing and memory readings shared by the benchmarks."""
from __future__ import annotations

import statistics
import time
from typing import Callable


def proc_status(field: str) -> int:
    """A memory field of /proc/self/status in bytes (VmRSS: now, VmHWM: peak since start)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def time_calls(fn: Callable[[], object], sync: Callable[[], object], warmup: int, repeats: int,
               calls: int = 1) -> dict:
    """Wall and process-CPU milliseconds per call: the median over repeats and every repeat.

    CPU time (all threads of this process) is what a call costs; wall time is what a user
    waits, and on a shared machine it also counts the time other jobs held the cores.
    `sync` blocks until queued work has finished (TensorFlow runs ops asynchronously).
    """
    for _ in range(warmup):
        fn()
    sync()
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        for _ in range(calls):
            fn()
        sync()
        wall.append(1e3 * (time.perf_counter() - start) / calls)
        cpu.append(1e3 * (time.process_time() - start_cpu) / calls)
    return {"ms": statistics.median(wall), "cpu_ms": statistics.median(cpu),
            "ms_repeats": [round(t, 3) for t in wall], "cpu_ms_repeats": [round(t, 3) for t in cpu]}


def learned_optimizer(implementation: str):
    """The untrained default LSTM optimizer as one benchmark implementation computes it.

    "fast": `CoordinatewiseLSTM` as shipped (the fused kernel where it builds); "keras_cells"
    and "fast_xla": the same on Keras' cells (XLA cannot compile the kernel's custom op);
    "unfused": the per-gate reference reading the same phi.
    """
    from l2l_tf.optimizers import CoordinatewiseLSTM
    from l2l_tf.optimizers.reference import UnfusedLSTM

    fast = CoordinatewiseLSTM(seed=0)
    if implementation in ("keras_cells", "fast_xla"):
        fast.kernel = "keras"
    return UnfusedLSTM(fast) if implementation == "unfused" else fast

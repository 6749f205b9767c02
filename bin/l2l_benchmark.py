#!/usr/bin/env python3
"""Benchmarks the Keras wrapper: step time and memory per parameter vs keras.optimizers.Adam.

    python bin/l2l_benchmark.py --output=benchmarks/results.json

For each model size (MLPs 100 -> h -> 10 with about 1e4, 1e5, 1e6 parameters) and each
optimizer (`LearnedOptimizer`, `keras.optimizers.Adam`), one fresh process measures
  * the optimizer step alone: `optimizer.apply(grads, variables)` in a `tf.function`,
  * a whole training step: `model.train_on_batch` (forward, backward, optimizer step),
as the median over --repeats repeats of --steps steps each, after --warmup steps, in wall
time and in process CPU time (which other jobs on a shared machine barely affect), and
  * optimizer state bytes per parameter (exact: the optimizer's variables),
  * peak resident memory growth per parameter (the process's VmHWM after the timed steps
    minus its VmRSS before the optimizer existed; includes compiled-graph overheads, so it
    is only meaningful for the larger models).
A fresh process per measurement keeps one measurement's peak memory out of the next.

Timing does not depend on phi's values, so without --path the learned optimizer is an
untrained network of the default architecture (2 LSTM layers of 20 units).

Results go under the top-level key "keras_wrapper" of --output; other keys of an existing
file are kept, so other benchmarks can share it.
"""
from __future__ import annotations

import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from absl import flags  # noqa: E402

from l2l_tf import cli  # noqa: E402
from l2l_tf.errors import UserError  # noqa: E402

SECTION = "keras_wrapper"
OPTIMIZERS = ("learned", "adam")
INPUT_DIM, OUTPUT_DIM = 100, 10

FLAGS = flags.FLAGS
flags.DEFINE_string("output", "benchmarks/results.json", "JSON file to write (key 'keras_wrapper').")
flags.DEFINE_string("sizes", "1e4,1e5,1e6", "Approximate parameter counts of the benchmarked models.")
flags.DEFINE_string("path", None, "Learned optimizer (directory, export or bundled name); default: an untrained "
                    "network of the default architecture.")
flags.DEFINE_integer("repeats", 5, "Timed repeats (the median is reported).", lower_bound=1)
flags.DEFINE_integer("steps", 10, "Steps per timed repeat.", lower_bound=1)
flags.DEFINE_integer("warmup", 3, "Untimed steps first (tracing, allocation).", lower_bound=1)
flags.DEFINE_integer("batch_size", 32, "Batch size of the training step.", lower_bound=1)
flags.DEFINE_string("worker", None, "Internal: 'PARAMS,OPTIMIZER' measures one case and prints JSON.")
cli.validate_flags_nonempty("output")


def hidden_units(params: float) -> int:
    """h such that the MLP 100 -> h -> 10 has about `params` parameters (111 h + 10)."""
    return max(1, round((params - OUTPUT_DIM) / (INPUT_DIM + 1 + OUTPUT_DIM)))


def parse_sizes(text: str) -> list[int]:
    try:
        sizes = [int(float(s)) for s in text.split(",") if s.strip()]
    except ValueError:
        raise UserError(f"--sizes must be comma-separated numbers, got {text!r}") from None
    if not sizes or any(s < 2 * (INPUT_DIM + OUTPUT_DIM) for s in sizes):
        raise UserError(f"--sizes must list parameter counts of at least {2 * (INPUT_DIM + OUTPUT_DIM)}, got {text!r}")
    return sizes


def _proc_status(field: str) -> int:
    """A memory field of /proc/self/status in bytes (VmRSS: now, VmHWM: peak)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def _time_steps(fn, sync) -> dict:
    """Wall and process-CPU milliseconds per step: the median and every repeat.

    CPU time (all threads of this process) is what a step costs; wall time is what a user
    waits, and on a shared machine it also counts the time other jobs held the cores.
    """
    for _ in range(FLAGS.warmup):
        fn()
    sync()
    wall, cpu = [], []
    for _ in range(FLAGS.repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        for _ in range(FLAGS.steps):
            fn()
        sync()
        wall.append(1e3 * (time.perf_counter() - start) / FLAGS.steps)
        cpu.append(1e3 * (time.process_time() - start_cpu) / FLAGS.steps)
    return {"ms": statistics.median(wall), "cpu_ms": statistics.median(cpu),
            "ms_repeats": [round(t, 3) for t in wall], "cpu_ms_repeats": [round(t, 3) for t in cpu]}


def measure(params: int, which: str) -> dict:
    """One case, in this process: times and memory of optimizer `which` on a model of ~params."""
    import keras
    import numpy as np
    import tensorflow as tf

    from l2l_tf import LearnedOptimizer
    from l2l_tf.optimizers import CoordinatewiseLSTM

    keras.utils.set_random_seed(0)
    h = hidden_units(params)
    model = keras.Sequential([keras.Input((INPUT_DIM,)), keras.layers.Dense(h, activation="relu"),
                              keras.layers.Dense(OUTPUT_DIM)])
    x = np.random.default_rng(0).standard_normal((FLAGS.batch_size, INPUT_DIM)).astype(np.float32)
    y = np.random.default_rng(1).integers(0, OUTPUT_DIM, FLAGS.batch_size).astype(np.int32)
    model(x)  # TensorFlow's runtime is warm before the memory baseline
    variables = model.trainable_variables
    n = int(sum(np.prod(v.shape) for v in variables))
    grads = [tf.constant(np.random.default_rng(2).standard_normal(v.shape).astype(np.float32) * 1e-2)
             for v in variables]
    rss_before = _proc_status("VmRSS")

    if which == "adam":
        optimizer = keras.optimizers.Adam(1e-3)
    else:
        optimizer = LearnedOptimizer(FLAGS.path if FLAGS.path else CoordinatewiseLSTM(), learning_rate=0.01)
    optimizer.build(variables)
    apply = tf.function(lambda: optimizer.apply(grads, variables))
    sync = lambda: optimizer.iterations.numpy()  # noqa: E731 - blocks until the steps have run
    apply_times = _time_steps(apply, sync)

    model.compile(optimizer=optimizer, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    train_times = _time_steps(lambda: model.train_on_batch(x, y), sync)
    peak = _proc_status("VmHWM")
    state_bytes = sum(int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize for v in optimizer.variables)
    return {"optimizer": which, "params": n, "hidden_units": h,
            **{f"apply_{k}": v for k, v in apply_times.items()},
            **{f"train_step_{k}": v for k, v in train_times.items()},
            "state_bytes_per_param": state_bytes / n, "peak_rss_growth_bytes_per_param": (peak - rss_before) / n}


def run_worker(params: int, which: str) -> dict:
    args = [sys.executable, os.path.abspath(__file__), f"--worker={params},{which}", f"--repeats={FLAGS.repeats}",
            f"--steps={FLAGS.steps}", f"--warmup={FLAGS.warmup}", f"--batch_size={FLAGS.batch_size}",
            f"--output={FLAGS.output}"] + ([f"--path={FLAGS.path}"] if FLAGS.path else [])
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run(args, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise UserError(f"the {which} benchmark at {params} parameters failed: "
                        f"{(proc.stderr.strip().splitlines() or ['no output'])[-1]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def table(rows: list[dict]) -> str:
    lines = ["| parameters | optimizer | optimizer step: wall ms (CPU ms) | train step: wall ms (CPU ms) | "
             "state bytes/param | peak RSS growth bytes/param |", "|---:|---|---:|---:|---:|---:|"]
    for r in rows:
        name = "LearnedOptimizer" if r["optimizer"] == "learned" else "keras Adam"
        lines.append(f"| {r['params']:,} | {name} | {r['apply_ms']:.2f} ({r['apply_cpu_ms']:.2f}) | "
                     f"{r['train_step_ms']:.2f} ({r['train_step_cpu_ms']:.2f}) | "
                     f"{r['state_bytes_per_param']:.1f} | {r['peak_rss_growth_bytes_per_param']:.0f} |")
    return "\n".join(lines)


def main(argv):
    del argv
    if FLAGS.worker:
        params, which = FLAGS.worker.split(",")
        print(json.dumps(measure(int(params), which)))
        return
    sizes = parse_sizes(FLAGS.sizes)
    if FLAGS.path:
        from l2l_tf import loading

        loading.resolve(FLAGS.path)  # a bad --path fails here, in one line, not in every worker
    if os.path.exists(FLAGS.output) and not os.path.isfile(FLAGS.output):
        raise UserError(f"--output {FLAGS.output} exists and is not a file")
    load_before = os.getloadavg()
    start = time.time()
    rows = []
    for params in sizes:
        for which in OPTIMIZERS:
            rows.append(run_worker(params, which))
            print(table(rows[-1:]).splitlines()[-1], flush=True)
    import keras
    import tensorflow as tf

    section = {
        "command": " ".join(shlex.quote(a) for a in ["python", "bin/l2l_benchmark.py", *sys.argv[1:]]),
        "learned_optimizer": FLAGS.path or "untrained default architecture (layers 20,20)",
        "model": f"MLP {INPUT_DIM} -> h (relu) -> {OUTPUT_DIM}, batch {FLAGS.batch_size}",
        "protocol": f"median over {FLAGS.repeats} repeats of {FLAGS.steps} steps after {FLAGS.warmup} warm-up "
                    "steps, one process per row, no XLA (Keras' CPU default)",
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "tensorflow": tf.__version__, "keras": keras.__version__,
                    "load_average_1min_before": round(load_before[0], 2),
                    "load_average_1min_after": round(os.getloadavg()[0], 2)},
        "wall_seconds": round(time.time() - start, 1),
        "results": rows,
    }
    document = {}
    if os.path.isfile(FLAGS.output):
        try:
            with open(FLAGS.output) as f:
                document = json.load(f)
        except (OSError, json.JSONDecodeError) as e:
            raise UserError(f"--output {FLAGS.output} exists but is not readable JSON ({e}); "
                            "move it away or choose another file") from None
        if not isinstance(document, dict):
            raise UserError(f"--output {FLAGS.output} does not hold a JSON object")
    document[SECTION] = section
    os.makedirs(os.path.dirname(os.path.abspath(FLAGS.output)), exist_ok=True)
    tmp = FLAGS.output + ".tmp"
    with open(tmp, "w") as f:
        json.dump(document, f, indent=2)
    os.replace(tmp, FLAGS.output)
    print()
    print(table(rows))
    print(f"results: {os.path.abspath(FLAGS.output)} (key {SECTION!r})")


if __name__ == "__main__":
    cli.run(main)

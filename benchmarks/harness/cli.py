"""Benchmarks: meta-training speed, update cost, memory, and the Keras wrapper, vs references.

    python bin/l2l_benchmark.py --data_dir=../shared/data --output=benchmarks/results.json

Sections (--benchmarks; each case runs in a fresh process, each figure is the median of
--repeats repeats after --warmup untimed ones, in wall and process-CPU time):

  meta_training  optimizee steps per second of meta-training (MNIST default MLP, batch 128,
                 unroll 20; quadratics, 128 functions), backward pass and Adam included: the
                 fast path (the fused C++ LSTM kernel), Keras' LSTM cells, the plain unfused
                 reference of the same math, and Keras' cells under XLA; with --profile, a
                 profiler trace summarized per op type.
  update         one learned update vs one Keras Adam update on flat vectors (--update_sizes;
                 the cases: --update_implementations),
                 the LSTM's achieved matmul GFLOP/s, and the GFLOP/s of a large square matmul
                 and of the LSTM's own matmul shapes measured in the same run.
  memory         peak memory of meta-training vs unroll length (--unrolls), with and
                 without gradient checkpointing (segments of ceil(sqrt(T)) steps).
  keras_wrapper  `LearnedOptimizer` vs `keras.optimizers.Adam` in a Keras model: optimizer
                 step and train step time, state bytes and peak memory per parameter, for
                 MLPs 100 -> h -> 10 of about --sizes parameters (the optimizers: --keras_optimizers).

Results go under one top-level key per section of --output; other keys of an existing file
are kept, so sections can be re-run one at a time. Timing does not depend on phi's values,
so the learned optimizer is an untrained network of the default architecture unless --path
is given (keras_wrapper).
"""
from __future__ import annotations

import json
import os
import platform
import shlex
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)  # the repository: l2l_tf and benchmarks/

from absl import flags  # noqa: E402

from l2l_tf import cli, files  # noqa: E402
from benchmarks.harness import report, update_cost  # noqa: E402
from l2l_tf.errors import UserError  # noqa: E402

SECTIONS = ("meta_training", "update", "memory", "keras_wrapper")
KERAS_OPTIMIZERS = ("learned", "learned_xla", "learned_bfloat16", "adam")
#: The update section's cases (update_cost imports TensorFlow only inside its functions).
UPDATE_CASES = update_cost.IMPLEMENTATIONS
#: The smallest model the keras_wrapper section builds (MLP 100 -> h -> 10).
MIN_KERAS_SIZE = 220

FLAGS = flags.FLAGS
flags.DEFINE_string("output", "benchmarks/results.json", "JSON file to write (one key per section).")
flags.DEFINE_list("benchmarks", list(SECTIONS), f"Sections to run, of {', '.join(SECTIONS)}.")
flags.DEFINE_string("data_dir", None, "MNIST for meta_training and memory: mnist.npz, a folder holding it, or a "
                    "tensorflow-datasets folder (default: $L2L_DATA_DIR, then tensorflow-datasets).")
flags.DEFINE_list("meta_problems", ["mnist", "quadratic"], "meta_training: problems (mnist, quadratic).")
flags.DEFINE_integer("rounds", 3, "meta_training: rounds of one fresh process per implementation, interleaved so "
                     "that drifts of the machine's speed hit every implementation alike (medians reported).",
                     lower_bound=1)
flags.DEFINE_bool("profile", True, "meta_training: also record a profiler trace of one epoch and summarize it.")
flags.DEFINE_string("update_sizes", "1e4,1e5,1e6,1e7", "update: flat vector sizes.")
flags.DEFINE_list("unrolls", ["10", "20", "50", "100"], "memory: unroll lengths.")
flags.DEFINE_list("update_implementations", list(UPDATE_CASES),
                  f"update: the cases to measure, of {', '.join(UPDATE_CASES)} (adam is the reference every learned "
                  "update is divided by, so it is always measured).")
flags.DEFINE_string("sizes", "1e4,1e5,1e6", "keras_wrapper: approximate parameter counts of the models.")
flags.DEFINE_list("keras_optimizers", list(KERAS_OPTIMIZERS), f"keras_wrapper: the optimizers to measure, of "
                  f"{', '.join(KERAS_OPTIMIZERS)}.")
flags.DEFINE_string("path", None, "keras_wrapper: learned optimizer (directory, export or bundled name); default: "
                    "an untrained network of the default architecture.")
flags.DEFINE_integer("repeats", 5, "Timed repeats (the median is reported).", lower_bound=1)
flags.DEFINE_integer("steps", 10, "keras_wrapper: steps per timed repeat.", lower_bound=1)
flags.DEFINE_integer("warmup", 3, "Untimed calls first (tracing, allocation).", lower_bound=1)
flags.DEFINE_integer("batch_size", 32, "keras_wrapper: batch size of the training step.", lower_bound=1)
flags.DEFINE_string("worker", None, "Internal: 'SECTION:ARG,ARG' measures one case and prints JSON.")
flags.DEFINE_integer("worker_round", 0, "Internal: which round a meta_training worker belongs to.")
cli.validate_flags_nonempty("output")

cli.validate_subset("keras_optimizers", KERAS_OPTIMIZERS)
cli.validate_subset("update_implementations", UPDATE_CASES)
cli.validate_output_files("output")


def parse_sizes(text: str, flag: str = "sizes", minimum: int = MIN_KERAS_SIZE) -> list[int]:
    try:
        sizes = [int(float(s)) for s in text.split(",") if s.strip()]
    except ValueError:
        raise UserError(f"--{flag} must be comma-separated numbers, got {text!r}") from None
    if not sizes or any(s < minimum for s in sizes):
        raise UserError(f"--{flag} must list sizes of at least {minimum}, got {text!r}")
    return sizes


def measure_case(section: str, args: list[str]) -> dict:
    """The worker side: one case of one section, measured in this (fresh) process."""
    if section == "keras_wrapper":
        from benchmarks.harness import keras_wrapper

        return keras_wrapper.measure(int(args[0]), args[1], FLAGS.path, FLAGS.batch_size, FLAGS.warmup, FLAGS.repeats,
                                     FLAGS.steps)
    if section == "meta_training":
        from benchmarks.harness import meta_training

        profile_dir = os.path.join(os.path.dirname(os.path.abspath(FLAGS.output)), "profiles") if FLAGS.profile else None
        if FLAGS.worker_round:  # only the first round is profiled
            profile_dir = None
        return meta_training.measure(args[0], args[1], FLAGS.data_dir, FLAGS.warmup, FLAGS.repeats,
                                     profile_dir if args[1] != "fast_xla" else None)
    if section == "update":
        if args[0] == "matmul":
            return update_cost.machine_matmul(FLAGS.warmup, FLAGS.repeats)
        return update_cost.measure(int(args[0]), args[1], FLAGS.warmup, FLAGS.repeats)
    if section == "memory":
        from benchmarks.harness import memory

        return memory.measure("mnist", int(args[0]), args[1], FLAGS.data_dir)
    raise UserError(f"unknown benchmark section {section!r}")


def run_worker(section: str, *args, round_index: int = 0) -> dict:
    """Runs one case in a fresh process; a failure (e.g. out of memory) is recorded, not fatal."""
    forwarded = [f"--worker_round={round_index}"] + [FLAGS[name].serialize()
                 for name in ("output", "data_dir", "profile", "path", "repeats", "steps", "warmup", "batch_size")
                 if FLAGS[name].value is not None]
    cmd = [sys.executable, os.path.abspath(__file__), f"--worker={section}:{','.join(map(str, args))}", *forwarded]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        last = (proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"])[-1]
        print(f"  {section} {args}: failed: {last}", flush=True)
        return {"case": list(map(str, args)), "error": last[-300:], "exit_code": proc.returncode}
    return json.loads(lines[-1])


def run_keras_wrapper() -> dict:
    rows = []
    for params in parse_sizes(FLAGS.sizes):
        for which in [k for k in KERAS_OPTIMIZERS if k in FLAGS.keras_optimizers]:
            rows.append(run_worker("keras_wrapper", params, which))
            print("  keras_wrapper", params, which, rows[-1].get("apply_ms", rows[-1].get("error")), flush=True)
    from benchmarks.harness.keras_wrapper import INPUT_DIM, OUTPUT_DIM

    return {"model": f"MLP {INPUT_DIM} -> h (relu) -> {OUTPUT_DIM}, batch {FLAGS.batch_size}",
            "learned_optimizer": FLAGS.path or "untrained default architecture (layers 20,20)",
            "protocol": f"median over {FLAGS.repeats} repeats of {FLAGS.steps} steps after {FLAGS.warmup} warm-up "
                        "steps, one process per row; the model itself without XLA (Keras' CPU default); "
                        "learned_xla: LearnedOptimizer(jit_compile=True); learned_bfloat16: state_dtype='bfloat16'",
            "results": rows}


def run_meta_training() -> dict:
    from benchmarks.harness.meta_training import IMPLEMENTATIONS, summarize_rounds

    out = {}
    for problem in FLAGS.meta_problems:
        rounds = []
        for k in range(FLAGS.rounds):
            rows = {impl: run_worker("meta_training", problem, impl, round_index=k) for impl in IMPLEMENTATIONS}
            rounds.append(rows)
            print("  meta_training", problem, f"round {k + 1}:",
                  {impl: round(r.get("steps_per_second", float("nan")), 1) for impl, r in rows.items()}, flush=True)
        out[problem] = summarize_rounds(rounds)
    out["protocol"] = (f"{FLAGS.rounds} interleaved rounds of one fresh process per implementation, each the median "
                       f"epoch time of {FLAGS.repeats} epochs after {FLAGS.warmup} warm-up epochs; the median over rounds "
                       "is reported per implementation")
    return out


def run_update() -> dict:
    chosen = [impl for impl in UPDATE_CASES if impl in FLAGS.update_implementations or impl == "adam"]
    matmul = run_worker("update", "matmul")
    print("  update matmul", matmul, flush=True)
    rows = []
    for size in parse_sizes(FLAGS.update_sizes, "update_sizes", minimum=1):
        case = {impl: run_worker("update", size, impl) for impl in chosen}
        adam_ms = case["adam"].get("update", {}).get("ms")
        row = {"size": size, "adam_ms": adam_ms}
        for impl in [i for i in chosen if i != "adam"]:
            r = case[impl]
            ms = r.get("update", {}).get("ms")
            row[impl] = {"ms": ms, "ratio_to_adam": ms / adam_ms if ms and adam_ms else None,
                         "gflops_per_second": r.get("gflops_per_second"),
                         "fraction_of_square_matmul": (r["gflops_per_second"] / matmul["square_2048"]
                                                       if "gflops_per_second" in r and "square_2048" in matmul
                                                       else None),
                         "error": r.get("error")}
        rows.append(row)
        print("  update", size, {k: (v["ms"] if isinstance(v, dict) else v) for k, v in row.items()}, flush=True)
    return {"matmul_gflops_per_second": matmul, "results": rows, "cases": "fast: CoordinatewiseLSTM.update in a "
            "tf.function (the fused C++ LSTM kernel where it builds); keras_cells: the same on Keras' LSTM cells; "
            "fast_xla: Keras' cells with jit_compile=True; unfused: the per-gate reference; adam: "
            "keras.optimizers.Adam.apply on one variable"}


def run_memory() -> dict:
    rows = []
    for unroll in parse_sizes(",".join(FLAGS.unrolls), "unrolls", minimum=1):
        for mode in ("off", "sqrt"):
            rows.append(run_worker("memory", unroll, mode))
            print("  memory", unroll, mode, rows[-1].get("peak_growth_mb", rows[-1].get("error")), flush=True)
    return {"problem": "mnist (default MLP, batch 128), one truncation of T steps per epoch", "results": rows}


RUNNERS = {"meta_training": run_meta_training, "update": run_update, "memory": run_memory,
           "keras_wrapper": run_keras_wrapper}


def machine() -> dict:
    import keras
    import tensorflow as tf

    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    except OSError:
        pass
    return {"cpus": os.cpu_count(), "cpu_model": model, "platform": platform.platform(),
            "python": platform.python_version(), "tensorflow": tf.__version__, "keras": keras.__version__}


def read_document(path: str) -> dict:
    if not os.path.isfile(path):
        return {}
    try:
        with open(path) as f:
            document = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise UserError(f"--output {path} exists but is not readable JSON ({e}); "
                        "move it away or choose another file") from None
    if not isinstance(document, dict):
        raise UserError(f"--output {path} does not hold a JSON object")
    return document


def main(argv):
    del argv
    if FLAGS.worker:
        section, _, args = FLAGS.worker.partition(":")
        print(json.dumps(measure_case(section, args.split(","))))
        return
    unknown = sorted(set(FLAGS.benchmarks) - set(SECTIONS))
    if unknown or not FLAGS.benchmarks:
        raise UserError(f"--benchmarks must list sections of {', '.join(SECTIONS)}; got {','.join(FLAGS.benchmarks)}")
    bad = sorted(set(FLAGS.meta_problems) - {"mnist", "quadratic"})
    if bad:
        raise UserError(f"--meta_problems must list mnist and/or quadratic, got {','.join(bad)}")
    if report_path() == FLAGS.output:
        raise UserError(f"--output {FLAGS.output} would be overwritten by the markdown tables; give a .json file")
    parse_sizes(FLAGS.update_sizes, "update_sizes", minimum=1)
    parse_sizes(",".join(FLAGS.unrolls), "unrolls", minimum=1)
    parse_sizes(FLAGS.sizes)
    if FLAGS.path:
        from l2l_tf import loading

        loading.resolve(FLAGS.path)  # a bad --path fails here, in one line, not in every worker
    needs_mnist = "memory" in FLAGS.benchmarks or ("meta_training" in FLAGS.benchmarks and "mnist" in FLAGS.meta_problems)
    if needs_mnist:
        from l2l_tf.problems.datasets import load_dataset

        load_dataset("mnist", FLAGS.data_dir)  # missing data fails here, in one line
    if os.path.exists(FLAGS.output) and not os.path.isfile(FLAGS.output):
        raise UserError(f"--output {FLAGS.output} exists and is not a file")
    document = read_document(FLAGS.output)
    command = " ".join(shlex.quote(a) for a in ["python", "bin/l2l_benchmark.py", *sys.argv[1:]])
    for section in [s for s in SECTIONS if s in FLAGS.benchmarks]:
        print(f"{section}:", flush=True)
        load_before, start = os.getloadavg()[0], time.time()
        result = RUNNERS[section]()
        document[section] = {"command": command, **result,
                             "machine": {**machine(), "load_average_1min_before": round(load_before, 2),
                                         "load_average_1min_after": round(os.getloadavg()[0], 2)},
                             "protocol": result.get("protocol", f"median over {FLAGS.repeats} repeats after "
                                                    f"{FLAGS.warmup} warm-up calls, one process per case"),
                             "wall_seconds": round(time.time() - start, 1)}
        os.makedirs(os.path.dirname(os.path.abspath(FLAGS.output)), exist_ok=True)
        files.write_json(FLAGS.output, document)  # after every section, so a long run keeps what it measured
        files.write_text(report_path(), report.render(document))
    print(f"results: {os.path.abspath(FLAGS.output)}, tables: {os.path.abspath(report_path())}")


def report_path() -> str:
    """The markdown tables go beside the JSON: benchmarks/results.json -> benchmarks/results.md."""
    return os.path.splitext(FLAGS.output)[0] + ".md"


def run() -> None:
    """The `l2l_benchmark` program (bin/l2l_benchmark.py, `l2l-benchmark` in an editable install)."""
    cli.run(main)


if __name__ == "__main__":  # a worker process runs this file directly
    run()

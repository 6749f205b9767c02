"""The benchmark binary measures what it says, in tiny settings (numbers are not checked: speed
targets belong to the benchmark report, not to tests)."""
import json
import os

import pytest
from conftest import run_binary

from benchmarks.harness.update_cost import lstm_matmul_flops_per_coordinate

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURE = os.path.join(ROOT, "testdata", "mnist_subset.npz")


def test_lstm_flop_count_of_the_default_architecture():
    # layer 1: 2 * (2 + 20) * 80; layer 2: 2 * (20 + 20) * 80; output: 2 * 20
    assert lstm_matmul_flops_per_coordinate((20, 20), 2) == 3520 + 6400 + 40


def test_rounds_are_summarized_by_their_medians():
    """Several rounds (the tiny run below has one): medians per implementation, speed-ups of the
    medians and per round, a failed round's implementation without a median."""
    from benchmarks.harness.meta_training import summarize_rounds

    impls = ("fast", "keras_cells", "unfused", "fast_xla")
    speeds = [{"fast": 10.0, "keras_cells": 8.0, "unfused": 5.0, "fast_xla": 4.0},
              {"fast": 30.0, "keras_cells": 6.0, "unfused": 6.0, "fast_xla": None},
              {"fast": 20.0, "keras_cells": 7.0, "unfused": 4.0, "fast_xla": 5.0}]
    rounds = [{i: {"steps_per_second": v[i], "lstm_kernel": f"k{n}"} for i in impls} for n, v in enumerate(speeds)]
    out = summarize_rounds(rounds, impls)
    assert out["median_steps_per_second"] == {"fast": 20.0, "keras_cells": 7.0, "unfused": 5.0, "fast_xla": None}
    assert out["steps_per_second"] == 20.0 and out["lstm_kernel"] == "k0" and out["implementations"] is rounds[0]
    assert out["speedup_vs_unfused"] == pytest.approx(4.0) and out["speedup_vs_keras_cells"] == pytest.approx(20 / 7)
    assert out["speedup_vs_unfused_per_round"] == pytest.approx([2.0, 5.0, 5.0])
    assert out["steps_per_second_per_round"]["fast"] == [10.0, 30.0, 20.0]


@pytest.mark.slow
def test_every_section_on_tiny_settings(tmp_path):
    output = tmp_path / "results.json"
    output.write_text(json.dumps({"other": {"kept": True}}))
    proc = run_binary("l2l_benchmark", "--update_sizes=1000", "--unrolls=2", "--meta_problems=quadratic", "--rounds=1",
                      "--sizes=300", "--steps=1", f"--data_dir={FIXTURE}", "--repeats=1", "--warmup=1",
                      # a subset of two sections' cases (each case is a process: the suite's time)
                      "--keras_optimizers=learned_bfloat16,learned,adam", "--update_implementations=unfused,fast",
                      f"--output={output}", timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(output.read_text())
    assert doc["other"] == {"kept": True}  # other keys survive

    rows = {r["optimizer"]: r for r in doc["keras_wrapper"]["results"]}
    assert [r["optimizer"] for r in doc["keras_wrapper"]["results"]] == ["learned", "learned_bfloat16", "adam"]
    # 2 layers x (h, c) x 20 units x 4 bytes, plus a few scalars (iterations, learning rate)
    assert rows["learned"]["state_bytes_per_param"] == pytest.approx(320.0, rel=1e-3)
    assert rows["learned_bfloat16"]["state_bytes_per_param"] == pytest.approx(160.0, rel=2e-3)
    assert all(r["apply_ms"] > 0 and r["train_step_ms"] > 0 for r in rows.values())

    update = doc["update"]
    assert update["matmul_gflops_per_second"]["square_2048"] > 0
    (row,) = update["results"]
    assert row["size"] == 1000 and row["adam_ms"] > 0
    assert "keras_cells" not in row and "fast_xla" not in row  # not asked for; Adam always is (the reference)
    for impl in ("fast", "unfused"):
        assert row[impl]["error"] is None and row[impl]["ms"] > 0 and row[impl]["gflops_per_second"] > 0

    memory = {(r["unroll"], r["checkpointing"]): r for r in doc["memory"]["results"]}
    assert set(memory) == {(2, "off"), (2, "sqrt")} and memory[(2, "sqrt")]["segment"] == 2
    assert all(r["peak_growth_mb"] > 0 and r["steps_per_second"] > 0 for r in memory.values())

    quadratic = doc["meta_training"]["quadratic"]
    runs = quadratic["implementations"]
    assert set(runs) == {"fast", "keras_cells", "unfused", "fast_xla"}
    from l2l_tf.kernels import fused_lstm

    from conftest import kernel_not_expected

    assert runs["fast"]["lstm_kernel"] == quadratic["lstm_kernel"]
    if kernel_not_expected() is None:  # the benchmark must measure the fast path, not the fallback
        assert runs["fast"]["lstm_kernel"].startswith("fused C++ kernel (native"), runs["fast"]["lstm_kernel"]
    elif not fused_lstm.available():
        assert runs["fast"]["lstm_kernel"] == "Keras cells (fused kernel unavailable)"
    assert runs["keras_cells"]["lstm_kernel"] == "Keras cells"
    assert all(r["steps_per_second"] > 0 and r["traces"] == {"quadratic": 1} for r in runs.values())
    # One round (each round is four fresh processes; the suite's time): the median of one.
    per_round = quadratic["steps_per_second_per_round"]
    assert all(len(v) == 1 and v[0] > 0 for v in per_round.values())
    assert quadratic["steps_per_second"] == quadratic["median_steps_per_second"]["fast"] == per_round["fast"][0]
    assert quadratic["speedup_vs_unfused"] == pytest.approx(
        quadratic["median_steps_per_second"]["fast"] / quadratic["median_steps_per_second"]["unfused"])
    assert quadratic["speedup_vs_keras_cells"] == pytest.approx(
        quadratic["median_steps_per_second"]["fast"] / quadratic["median_steps_per_second"]["keras_cells"])
    parts = runs["fast"]["profile"]["by_part"]
    assert parts["LSTM forward"]["ms"] > 0 and parts["LSTM backward"]["ms"] > 0
    assert runs["unfused"]["profile"]["by_part"]["LSTM forward"]["ms"] > 0
    assert os.path.exists(runs["fast"]["profile"]["trace"])
    assert doc["meta_training"]["machine"]["cpus"] >= 1

    tables = (tmp_path / "results.md").read_text()  # the markdown report beside the JSON
    speedup = f"{quadratic['speedup_vs_unfused']:.2f}×"
    assert f"| quadratic | {quadratic['steps_per_second']:,.1f} |" in tables and speedup in tables
    (update_line,) = [line for line in tables.splitlines() if line.startswith(f"| 1,000 | {row['adam_ms']:,.2f} |")]
    assert f"| {row['fast']['ms']:,.2f} (" in update_line and "| n/a | n/a |" in update_line  # cases not run
    assert f"| 2 | {memory[(2, 'off')]['peak_growth_mb']:,.0f} |" in tables
    assert f"| {rows['adam']['params']:,} | adam | {rows['adam']['apply_ms']:,.2f} " in tables

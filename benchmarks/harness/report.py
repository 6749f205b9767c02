"""Markdown tables of a benchmark document (`benchmarks/results.json`).

The benchmark binary writes these next to its JSON so that the tables in RESULTS.md are copied from
a file the command produced, never retyped: a reader re-running the command gets the same layout
with their own numbers. Sections that were not run (or failed) are left out or shown as "n/a".
"""

from __future__ import annotations

from typing import Any, Optional


def _num(value: Optional[float], digits: int = 1) -> str:
    if value is None:
        return "n/a"
    return f"{value:,.{digits}f}"


def _ratio(value: Optional[float]) -> str:
    return "n/a" if value is None else f"{value:.2f}×"


def _machine(section: dict) -> str:
    m = section.get("machine", {})
    return (f"{m.get('cpus', '?')} CPUs ({m.get('cpu_model') or 'unknown model'}), TensorFlow {m.get('tensorflow', '?')}, "
            f"Keras {m.get('keras', '?')}; load average {m.get('load_average_1min_before', '?')} before, "
            f"{m.get('load_average_1min_after', '?')} after; {section.get('wall_seconds', '?')} s")


def meta_training_table(section: dict) -> list[str]:
    lines = ["| problem | fast steps/s | Keras cells steps/s | unfused steps/s | XLA steps/s | fast ÷ unfused (median) "
             "| per round | fast ÷ Keras cells |", "|---|---:|---:|---:|---:|---:|---|---:|"]
    for problem, row in section.items():
        if not isinstance(row, dict) or "median_steps_per_second" not in row:
            continue
        median = row["median_steps_per_second"]
        per_round = ", ".join(_ratio(r) for r in row.get("speedup_vs_unfused_per_round", []))
        lines.append(f"| {problem} | {_num(median.get('fast'))} | {_num(median.get('keras_cells'))} | "
                     f"{_num(median.get('unfused'))} | {_num(median.get('fast_xla'))} | "
                     f"{_ratio(row.get('speedup_vs_unfused'))} | {per_round} | {_ratio(row.get('speedup_vs_keras_cells'))} |")
    return lines


def profile_table(section: dict, problem: str = "mnist", implementation: str = "fast") -> list[str]:
    profile = section.get(problem, {}).get("implementations", {}).get(implementation, {}).get("profile")
    if not profile:
        return []
    wall = f", {profile['wall_ms']:,.0f} ms wall" if "wall_ms" in profile else ""
    lines = [f"Profile of one {problem} epoch ({implementation}, {profile['op_ms_total']:,.0f} ms of recorded op "
             f"time{wall}; oneDNN's matmuls are not recorded):", "",
             "| part | share |", "|---|---:|"]
    lines += [f"| {part} | {v['share']:.0%} |" for part, v in profile["by_part"].items()]
    lines += ["", "| op type | share |", "|---|---:|"]
    lines += [f"| {op['type']} | {op['share']:.0%} |" for op in profile["top_op_types"]]
    return lines


#: The learned-update columns of the update table, in order.
UPDATE_IMPLEMENTATIONS = ("fast", "keras_cells", "fast_xla", "unfused")


def update_table(section: dict) -> list[str]:
    matmul = section.get("matmul_gflops_per_second", {})
    lines = [f"Matmul on this machine: {_num(matmul.get('square_2048'))} GFLOP/s (2048²), "
             f"{_num(matmul.get('lstm_layer1_shape'))} and {_num(matmul.get('lstm_layer2_shape'))} GFLOP/s at the "
             "LSTM layers' own shapes.", "",
             "| coordinates | Adam ms | fast ms (× Adam) | Keras cells ms (× Adam) | XLA ms (× Adam) | "
             "unfused ms (× Adam) | best GFLOP/s | of square matmul |", "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for row in section.get("results", []):
        runs = [row.get(k) or {} for k in UPDATE_IMPLEMENTATIONS]
        cells = [f"{r['ms']:,.2f} ({r['ratio_to_adam']:,.0f}×)" if r.get("ms") else "n/a" for r in runs]
        best = max((r for r in runs if r.get("gflops_per_second")),
                   key=lambda r: r["gflops_per_second"], default=None)
        fraction = best and best.get("fraction_of_square_matmul")
        lines.append(f"| {row['size']:,} | {_num(row.get('adam_ms'), 2)} | {' | '.join(cells)} | "
                     f"{_num(best and best['gflops_per_second'])} | {'n/a' if fraction is None else f'{fraction:.0%}'} |")
    return lines


def memory_table(section: dict) -> list[str]:
    rows = {(r["unroll"], r["checkpointing"]): r for r in section.get("results", []) if "unroll" in r}
    lines = ["| unroll T | peak MB, no checkpointing | peak MB, sqrt checkpointing (segment) | steps/s off | steps/s sqrt |",
             "|---:|---:|---:|---:|---:|"]
    for unroll in sorted({u for u, _ in rows}):
        off, sqrt = rows.get((unroll, "off"), {}), rows.get((unroll, "sqrt"), {})
        lines.append(f"| {unroll} | {_num(off.get('peak_growth_mb'), 0)} | {_num(sqrt.get('peak_growth_mb'), 0)} "
                     f"({sqrt.get('segment', '?')}) | {_num(off.get('steps_per_second'))} | "
                     f"{_num(sqrt.get('steps_per_second'))} |")
    return lines


def keras_wrapper_table(section: dict) -> list[str]:
    lines = ["| parameters | optimizer | apply ms (CPU ms) | train step ms | state bytes/param | "
             "peak RSS growth bytes/param |", "|---:|---|---:|---:|---:|---:|"]
    for r in section.get("results", []):
        if "apply_ms" not in r:
            lines.append(f"| {r.get('params', '?')} | {r.get('optimizer', '?')} | failed: {r.get('error', '?')} | | | |")
            continue
        lines.append(f"| {r['params']:,} | {r['optimizer']} | {r['apply_ms']:,.2f} ({r['apply_cpu_ms']:,.2f}) | "
                     f"{r['train_step_ms']:,.2f} | {r['state_bytes_per_param']:.0f} | "
                     f"{r['peak_rss_growth_bytes_per_param']:,.0f} |")
    return lines


SECTIONS = {"meta_training": ("Meta-training throughput (optimizee steps/s, meta backward pass included)",
                              lambda s: meta_training_table(s) + [""] + profile_table(s)),
            "update": ("One learned update vs one Adam update", update_table),
            "memory": ("Peak memory of meta-training vs unroll length", memory_table),
            "keras_wrapper": ("LearnedOptimizer in Keras vs Adam", keras_wrapper_table)}


def render(document: dict[str, Any]) -> str:
    """The whole document as markdown: per section its command, machine and table."""
    parts = ["# Benchmark report", "", "Generated by `bin/l2l_benchmark.py` from the JSON beside this file.", ""]
    for name, (title, table) in SECTIONS.items():
        section = document.get(name)
        if not isinstance(section, dict):
            continue
        parts += [f"## {title}", "", f"`{section.get('command', '?')}`", "", f"Machine: {_machine(section)}.", "",
                  f"Protocol: {section.get('protocol', '?')}.", "", *table(section), ""]
    return "\n".join(parts)

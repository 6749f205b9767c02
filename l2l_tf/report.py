"""A human-readable Markdown report of an evaluation (the table RESULTS.md quotes)."""
from __future__ import annotations

import os


def _fmt(x) -> str:
    return "diverged" if x is None else f"{x:.4g}"


def results_table(results: dict) -> str:
    """Markdown table: one row per optimizer, sorted by mean final loss."""
    accuracy = any("final_test_accuracy_mean" in e for e in results["optimizers"].values())
    rows = ["| optimizer | learning rate | final loss mean ± std | 95% CI of mean | sum of losses |"
            + (" test accuracy |" if accuracy else ""),
            "|---|---|---|---|---|" + ("---|" if accuracy else "")]
    order = sorted(results["optimizers"].items(),
                   key=lambda kv: float("inf") if kv[1]["final_loss_mean"] is None else kv[1]["final_loss_mean"])
    for name, e in order:
        lr = "learned" if e["learning_rate"] is None else f"{e['learning_rate']:.3g}"
        lo, hi = e["final_loss_ci95"]
        rows.append(f"| {name} | {lr} | {_fmt(e['final_loss_mean'])} ± {_fmt(e['final_loss_std'])} | "
                    f"[{_fmt(lo)}, {_fmt(hi)}] | {_fmt(e['loss_sum_mean'])} |"
                    + (f" {_fmt(e.get('final_test_accuracy_mean'))} |" if accuracy else ""))
    return "\n".join(rows)


def write_report(results: dict, output_dir: str, plot_file: str, command: str) -> str:
    """Writes report.md beside results.json and the plot; returns its path."""
    path = os.path.join(output_dir, "report.md")
    text = (
        f"# {results['problem']}: {results['num_problems']} test problems, {results['num_steps']} steps\n\n"
        f"Command: `{command}`\n\n"
        f"{results_table(results)}\n\n"
        f"Baselines' learning rates were tuned on validation problems over "
        f"{len(results['learning_rate_grid'])} log-spaced rates from {results['learning_rate_grid'][0]:.3g} "
        f"to {results['learning_rate_grid'][-1]:.3g}; the test problems (seed {results['seed']}) are the same "
        f"for every optimizer.\n\n"
        f"![mean loss per step]({os.path.basename(plot_file)})\n")
    with open(path, "w") as f:
        f.write(text)
    return path

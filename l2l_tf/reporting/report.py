"""A human-readable Markdown report of an evaluation (the table RESULTS.md quotes)."""
from __future__ import annotations

import os

from l2l_tf import files


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


def paired_table(results: dict) -> str:
    """Markdown table of every learned optimizer against every baseline on the same problems."""
    paired = results.get("paired") or {}
    rows = ["| learned | baseline | mean difference (learned - baseline) | 95% CI | ratio of means | win rate |",
            "|---|---|---|---|---|---|"]
    for name, against in paired.items():
        for base, p in against.items():
            lo, hi = p["ci95"]
            ratio = "—" if p["ratio"] is None else f"{p['ratio']:.3f}"
            rows.append(f"| {name} | {base} | {_fmt(p['mean_difference'])} | [{_fmt(lo)}, {_fmt(hi)}] | {ratio} | "
                        f"{p['win_rate']:.0%} |")
    return "\n".join(rows) if len(rows) > 2 else ""


def write_report(results: dict, output_dir: str, plot_file: str, command: str) -> str:
    """Writes report.md beside results.json and the plot; returns its path."""
    path = os.path.join(output_dir, "report.md")
    text = (
        f"# {results['problem']}: {results['num_problems']} test problems, {results['num_steps']} steps\n\n"
        f"Command: `{command}`\n\n"
        f"{results_table(results)}\n\n"
        + (f"Paired on the same {results['num_problems']} test problems (a negative difference: the learned "
           f"optimizer ends lower; the win rate counts problems where it does):\n\n{paired_table(results)}\n\n"
           if paired_table(results) else "")
        + f"Baselines' learning rates were tuned on validation problems over "
        f"{len(results['learning_rate_grid'])} log-spaced rates from {results['learning_rate_grid'][0]:.3g} "
        f"to {results['learning_rate_grid'][-1]:.3g}; the test problems (seed {results['seed']}) are the same "
        f"for every optimizer.\n\n"
        f"![mean loss per step]({os.path.basename(plot_file)})\n")
    return files.write_text(path, text)


def format_keras_fit(results: dict) -> str:
    """report.md of reproduce/keras_fit.py: a learned optimizer in model.fit against Adam."""
    import numpy as np

    def mean(runs, key="loss_after_epoch"):
        values = [r[key] for r in runs]
        return None if any(v is None for v in values) else float(np.mean(values))

    rows = ["| model | learned (default arguments) | Adam 1e-3 | Adam tuned (lr) | learned / tuned Adam | any NaN |",
            "|---|---|---|---|---|---|"]
    for name, e in results["models"].items():
        learned, fixed, tuned = mean(e["learned"]), mean(e["adam_1e-3"]), mean(e["adam_tuned"])
        ratio = "—" if learned is None or not tuned else f"{learned / tuned:.2f}"
        nan = any(r["nan"] for key in ("learned", "adam_1e-3", "adam_tuned") for r in e[key])
        rows.append(f"| {name} | {_fmt(learned)} | {_fmt(fixed)} | {_fmt(tuned)} ({e['adam_tuned_learning_rate']:g}) | "
                    f"{ratio} | {'yes' if nan else 'no'} |")
    keras_rows = ["| model | learned | Adam 1e-3 | Adam tuned |", "|---|---|---|---|"]
    for name, e in results["models"].items():
        keras_rows.append(f"| {name} | {_fmt(mean(e['learned'], 'keras_epoch_mean_loss'))} | "
                          f"{_fmt(mean(e['adam_1e-3'], 'keras_epoch_mean_loss'))} | "
                          f"{_fmt(mean(e['adam_tuned'], 'keras_epoch_mean_loss'))} |")
    return (f"# `LearnedOptimizer({results['optimizer']!r})` in model.fit, one epoch\n\n"
            f"Command: `{results['command']}`\n\n"
            f"Training loss after one epoch (the training set, at most 20,000 examples, evaluated after the epoch), "
            f"mean over seeds {results['seeds']}; Adam's rate tuned on seed {results['tuning_seed']} over "
            f"{results['adam_grid']}:\n\n" + "\n".join(rows) + "\n\nKeras' own running mean of the epoch's "
            "minibatch losses (`history.history['loss']`):\n\n" + "\n".join(keras_rows) + "\n")

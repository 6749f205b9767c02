"""Prints the MNIST ablation table (RESULTS.md) from reproduce/mnist_recipe.sh's results.json files.

Usage: python reproduce/ablation_table.py OUT   (OUT as given to mnist_recipe.sh; runs/abl by default)

One row per learned optimizer and per tuned baseline; per setting, the mean final loss on the 100
test problems and, for the learned optimizers, the ratio to the best tuned baseline of that setting
with the paired 95% interval of the difference (an interval below zero: a win, above: a loss).
The training wall time is read from each run's training_summary.json.
"""
from __future__ import annotations

import json
import os
import sys

from l2l_tf.optimizers.registry import BASELINES

SETTINGS = (("100_steps", "100 steps"), ("200_steps", "200 steps"), ("40_units", "40 units"),
            ("2_layers", "2 layers"), ("relu", "ReLU"))


def _best_baseline(results: dict) -> str:
    """The tuned baseline with the lowest mean final loss in one setting's results.json."""
    return min(BASELINES, key=lambda b: results["optimizers"][b]["final_loss_mean"])


def _cell(results: dict, name: str) -> str:
    mean = results["optimizers"][name]["final_loss_mean"]
    if name in BASELINES:
        return f"{mean:.3f}"
    paired = results["paired"][name][_best_baseline(results)]
    low, high = paired["ci95"]
    verdict = "**win**" if high < 0 else ("loss" if low > 0 else "level")
    return f"{mean:.3f} ({paired['ratio']:.2f}×, [{low:+.3f}, {high:+.3f}] {verdict})"


def _training_seconds(out: str, name: str) -> str:
    path = os.path.join(out, name.removeprefix("L2L-"), "training_summary.json")
    if name == "L2L" or not os.path.isfile(path):
        return "—"
    with open(path) as f:
        return f"{json.load(f)['wall_seconds']:,.0f}"


def main(out: str) -> None:
    results = {}
    for key, _ in SETTINGS:
        path = os.path.join(out, f"eval_{key}", "results.json")
        if not os.path.isfile(path):
            sys.exit(f"ablation_table: {path} not found; run reproduce/mnist_recipe.sh first")
        with open(path) as f:
            results[key] = json.load(f)
    names = list(results[SETTINGS[0][0]]["optimizers"])
    learned = [n for n in names if n not in BASELINES]
    print("| optimizer | training (s) | " + " | ".join(label for _, label in SETTINGS) + " |")
    print("|---|---:|" + "---|" * len(SETTINGS))
    for name in learned + list(BASELINES):
        cells = [_cell(results[key], name) for key, _ in SETTINGS]
        label = "horizon-free recipe (bundled `mnist`)" if name == "L2L" else name.removeprefix("L2L-")
        print(f"| {label} | {_training_seconds(out, name)} | " + " | ".join(cells) + " |")
    for key, label in SETTINGS:
        print(f"{label}: best baseline {_best_baseline(results[key])}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "runs/abl")

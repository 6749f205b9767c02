"""Figures like the paper's: mean loss against optimization step on a log axis."""
from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")  # Files only: binaries run on machines without a display.
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from l2l_tf import files  # noqa: E402

#: Colours and line styles kept fixed per optimizer so figures are comparable across runs.
STYLES = {
    "L2L": dict(color="tab:red", linewidth=2.0),
    "sgd": dict(color="tab:blue", linestyle="--"),
    "nag": dict(color="tab:purple", linestyle="--"),
    "rmsprop": dict(color="tab:orange", linestyle="--"),
    "adam": dict(color="tab:green", linestyle="--"),
}

#: Colours of further learned optimizers, none shared with STYLES.
COMPARED_COLORS = ("black", "tab:brown", "tab:pink", "tab:olive", "tab:cyan", "tab:gray")


def plot_loss_curves(results: dict, path: str, title: str | None = None) -> str:
    """Plots `loss_mean_per_step` of every optimizer in a results dict; returns the PNG path."""
    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=120)
    extra = 0
    for name, entry in results["optimizers"].items():
        curve = np.array([np.nan if v is None else v for v in entry["loss_mean_per_step"]], dtype=float)
        label = name if entry.get("learning_rate") is None else f"{name} (lr {entry['learning_rate']:.2g})"
        if name in STYLES:
            style = STYLES[name]
        else:  # further learned optimizers (l2l_evaluate --compare): solid, in colours no baseline uses
            style = dict(color=COMPARED_COLORS[extra % len(COMPARED_COLORS)], linewidth=1.6)
            extra += 1
        ax.plot(np.arange(len(curve)), curve, label=label, **style)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel(f"mean loss over {results['num_problems']} test problems")
    ax.set_title(title or f"{results['problem']}: {results['num_steps']} steps")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    files.save_figure(fig, path)
    plt.close(fig)
    return path

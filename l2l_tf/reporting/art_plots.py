"""Neural-art figures: loss curves of several settings side by side (like the paper's Figure 8)
and grids of images (content, style, learned-optimizer result, baseline result)."""
from __future__ import annotations

import os
from typing import Sequence

import matplotlib

matplotlib.use("Agg")  # Files only: binaries run on machines without a display.
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from l2l_tf import files  # noqa: E402
from l2l_tf.reporting.plotting import COMPARED_COLORS, STYLES  # noqa: E402


def _curve(entry: dict) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in entry["loss_mean_per_step"]], dtype=float)


def plot_settings(results: dict[str, dict], titles: dict[str, str], path: str) -> str:
    """One log-scale panel of mean loss per step for each setting's results.json; returns the PNG path."""
    fig, axes = plt.subplots(1, len(results), figsize=(4.6 * len(results), 3.8), dpi=120, squeeze=False)
    for ax, (key, res) in zip(axes[0], results.items()):
        extra = 0
        for name, entry in res["optimizers"].items():
            if name in STYLES:
                style = STYLES[name]
            else:
                style = dict(color=COMPARED_COLORS[extra % len(COMPARED_COLORS)], linewidth=1.6)
                extra += 1
            lr = entry.get("learning_rate")
            ax.plot(_curve(entry), label=name if lr is None else f"{name} (lr {lr:.2g})", **style)
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_title(titles.get(key, key), fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel(f"mean loss over {next(iter(results.values()))['num_problems']} test images")
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    files.save_figure(fig, path)
    plt.close(fig)
    return path


def plot_image_grid(rows: Sequence[Sequence[np.ndarray]], columns: Sequence[str], path: str,
                    row_labels: Sequence[str] | None = None) -> str:
    """Images in a grid, one row per example (e.g. content, style, L2L result, Adam result)."""
    n_rows, n_cols = len(rows), len(columns)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(2.2 * n_cols, 2.2 * n_rows + 0.3), dpi=120, squeeze=False)
    for r, row in enumerate(rows):
        for c, image in enumerate(row):
            ax = axes[r][c]
            ax.imshow(np.clip(image, 0.0, 1.0), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(columns[c], fontsize=9)
            if c == 0 and row_labels:
                ax.set_ylabel(row_labels[r], fontsize=7)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    files.save_figure(fig, path)
    plt.close(fig)
    return path

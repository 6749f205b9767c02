"""What a learned optimizer does, coordinate by coordinate (the paper's Appendix B).

`update_history` follows one trajectory of a learned optimizer and records, for chosen
coordinates, the gradient it saw and the update it proposed, next to the updates SGD and
Adam would have proposed at the very same iterates (their states are fed the same gradient
sequence). `response_curve` freezes a coordinate's LSTM state at a step and sweeps the input
gradient, showing the update rule the LSTM implements at that moment.
"""
from __future__ import annotations

import dataclasses
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from l2l_tf import files  # noqa: E402
from l2l_tf.errors import UserError  # noqa: E402
from l2l_tf.optimizers.base import Optimizer, set_horizon  # noqa: E402
from l2l_tf.optimizers.coordinatewise import CoordinatewiseLSTM  # noqa: E402
from l2l_tf.problems.base import Problem, ProblemFamily  # noqa: E402
from l2l_tf.unroll import loss_and_grads  # noqa: E402


@dataclasses.dataclass
class UpdateHistory:
    coordinates: list
    losses: np.ndarray          # [steps + 1]
    gradients: np.ndarray       # [steps, len(coordinates)]
    updates: dict               # name -> [steps, len(coordinates)]
    states: dict                # step -> learned optimizer state at that step (before its update)


def _flat(tensors) -> tf.Tensor:
    return tf.concat([tf.reshape(t, [-1]) for t in tensors], axis=0)


def update_history(family: ProblemFamily, learned: Optimizer, problem: Problem, num_steps: int,
                   coordinates: list[int], baselines: dict[str, Optimizer], keep_states: tuple = ()) -> UpdateHistory:
    """Runs `learned` on `problem`; records gradients and every optimizer's proposals."""
    params = list(problem.params)
    total = int(sum(p.shape.num_elements() for p in params))
    bad = [c for c in coordinates if not 0 <= c < total]
    if bad:
        raise UserError(f"coordinates {bad} out of range: the problem has {total} coordinates")
    owner = problem.family or family
    idx = tf.constant(coordinates)
    for opt in (learned, *baselines.values()):
        set_horizon(opt, num_steps)
    state = learned.init(params, problem.num_functions, names=problem.param_names)
    base_states = {name: opt.init(params, problem.num_functions, names=problem.param_names)
                   for name, opt in baselines.items()}

    @tf.function(reduce_retracing=True)
    def step(params, state, base_states, batch):
        losses, grads = loss_and_grads(owner.loss, params, problem.data, batch)
        updates, state = learned.update(grads, state, params)
        proposals, next_base = {}, {}
        for name, opt in baselines.items():
            u, next_base[name] = opt.update(grads, base_states[name], params)
            proposals[name] = tf.gather(_flat(u), idx)
        proposals["L2L"] = tf.gather(_flat(updates), idx)
        new_params = [p + u for p, u in zip(params, updates)]
        return new_params, state, next_base, tf.reduce_mean(losses), tf.gather(_flat(grads), idx), proposals

    losses, gradients, updates, states = [], [], {n: [] for n in ["L2L", *baselines]}, {}
    for t in range(num_steps):
        if t in keep_states:
            states[t] = state
        batch = tf.nest.map_structure(lambda b: b[0], problem.batches(t, 1))
        params, state, base_states, loss, g, proposals = step(params, state, base_states, batch)
        losses.append(float(loss))
        gradients.append(g.numpy())
        for name, value in proposals.items():
            updates[name].append(value.numpy())
    final = owner.loss(params, problem.data, tf.nest.map_structure(lambda b: b[0], problem.batches(num_steps, 1)))
    losses.append(float(tf.reduce_mean(final)))
    return UpdateHistory(list(coordinates), np.array(losses), np.array(gradients),
                         {k: np.array(v) for k, v in updates.items()}, states)


def response_curve(optimizer: CoordinatewiseLSTM, state, coordinate: int, gradients: np.ndarray) -> np.ndarray:
    """Updates the LSTM would propose for each of `gradients`, from `coordinate`'s state."""
    if type(optimizer) is not CoordinatewiseLSTM:
        raise UserError("response curves need the coordinatewise LSTM (coupled optimizers have no "
                        "per-coordinate state to freeze)")
    sizes = [int(tensors[0].shape[0]) for tensors in state]
    tensor = int(np.searchsorted(np.cumsum(sizes), coordinate, side="right"))
    local = coordinate - int(np.sum(sizes[:tensor]))
    m = len(gradients)
    frozen = [tuple(tf.repeat(t[local:local + 1], m, axis=0) for t in state[tensor])]
    g = tf.constant(gradients, tf.float32)
    (u,), _ = optimizer.update([g], frozen, [tf.zeros_like(g)])
    return u.numpy()


def plot_update_history(history: UpdateHistory, path: str) -> str:
    n = len(history.coordinates)
    fig, axes = plt.subplots(n, 1, figsize=(7, 2.2 * n), dpi=110, sharex=True, squeeze=False)
    styles = {"L2L": dict(color="tab:red", linewidth=1.8), "sgd": dict(color="tab:blue", linestyle="--"),
              "adam": dict(color="tab:green", linestyle="--")}
    for i, (ax, c) in enumerate(zip(axes[:, 0], history.coordinates)):
        for name, values in history.updates.items():
            ax.plot(values[:, i], label=name, **styles.get(name, {}))
        ax.axhline(0, color="grey", linewidth=0.5)
        ax.set_ylabel(f"update, coord {c}")
    axes[0, 0].legend(loc="upper right", fontsize=8)
    axes[-1, 0].set_xlabel("step (proposals at the learned optimizer's iterates)")
    fig.tight_layout()
    files.save_figure(fig, path)
    plt.close(fig)
    return path


def plot_response_curves(curves: dict, gradients: np.ndarray, coordinate: int, path: str) -> str:
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=110)
    for step, updates in curves.items():
        ax.plot(gradients, updates, label=f"step {step}")
    ax.set_xscale("symlog", linthresh=1e-4)
    ax.axhline(0, color="grey", linewidth=0.5)
    ax.axvline(0, color="grey", linewidth=0.5)
    ax.set_xlabel("input gradient")
    ax.set_ylabel("proposed update")
    ax.set_title(f"LSTM update as a function of the gradient (coordinate {coordinate}'s state)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    files.save_figure(fig, path)
    plt.close(fig)
    return path


def write_pngs(history: UpdateHistory, optimizer, coordinates, output_dir: str) -> list[str]:
    """history.png, plus response_<coordinate>.png for a coordinatewise LSTM."""
    os.makedirs(output_dir, exist_ok=True)
    paths = [plot_update_history(history, os.path.join(output_dir, "update_history.png"))]
    if type(optimizer) is CoordinatewiseLSTM and history.states:
        grid = np.concatenate([-np.logspace(2, -6, 60), [0.0], np.logspace(-6, 2, 60)]).astype(np.float32)
        for c in coordinates:
            curves = {t: response_curve(optimizer, s, c, grid) for t, s in sorted(history.states.items())}
            paths.append(plot_response_curves(curves, grid, c, os.path.join(output_dir, f"response_{c}.png")))
    return paths

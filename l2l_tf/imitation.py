"""Imitation of analytic optimizers: some meta-training epochs regress the LSTM onto a teacher.

Backpropagating a meta-loss through long unrolls is slow and noisy, and early in training the
LSTM's own trajectories wander where no good optimizer would go. Chen et al. (2020) mix in
epochs of imitation: the trajectory follows a tuned hand-designed teacher (NAG, Adam), and
the LSTM, fed the very gradients the teacher sees (its state evolving along the teacher's
trajectory), is trained to propose the teacher's updates. With several teachers the losses
are averaged ("mean"), or the worst-imitated teacher is the loss ("max"): the min-max
amalgamation of Huang et al. (2022), which asks the student to be close to every teacher.

The imitation loss of one truncation for one teacher is the relative squared error of the
proposals, averaged over its steps:
    (1/T) sum_t ||u_LSTM,t - u_teacher,t||^2 / ||u_teacher,t||^2,
which is scale-free, so problems (and stages) of very different update sizes weigh alike.
Teachers' learning rates are tuned on problems of their own (`tune_teachers`), never on the
validation problems that select phi.
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import tensorflow as tf

from l2l_tf.errors import UserError
from l2l_tf.optimizers.base import Optimizer
from l2l_tf.optimizers.hand_designed import TEACHERS, make_hand_designed
from l2l_tf.unroll import _batch_at, _losses_state_grads

MODES = ("mean", "max")


@dataclasses.dataclass(frozen=True)
class TeacherSpec:
    """A teacher by name ("nag", "adam", ...), with a fixed learning rate or None (tuned)."""

    name: str
    learning_rate: float | None = None


def parse_teachers(items: Sequence[str]) -> tuple[TeacherSpec, ...]:
    """["nag", "adam:0.01"] -> teacher specs, with one-line errors."""
    specs = []
    for item in items:
        name, _, rate = str(item).strip().partition(":")
        name = name.strip().lower()
        if name not in TEACHERS:
            raise UserError(f"unknown imitation teacher {name!r}; expected one of {sorted(TEACHERS)} "
                            "(optionally NAME:LEARNING_RATE)")
        lr = None
        if rate.strip():
            try:
                lr = float(rate)
            except ValueError:
                lr = -1.0
            if not lr > 0:
                raise UserError(f"imitation teacher {item!r}: the learning rate must be a positive number")
        specs.append(TeacherSpec(name, lr))
    if len({s.name for s in specs}) != len(specs):
        raise UserError(f"imitation teachers must be distinct, got {list(items)}")
    return tuple(specs)


def tune_teachers(family, specs: Sequence[TeacherSpec], num_steps: int, seed: int, num_problems: int = 8,
                  grid: Sequence[float] | None = None) -> dict[str, float]:
    """{teacher: learning rate}: given ones as they are, the others the best of a log grid by mean
    final loss over `num_steps` on problems of their own (validation split of another seed)."""
    from l2l_tf.evaluation import learning_rate_grid, sample_problems, tune_learning_rate

    grid = list(grid or learning_rate_grid(1e-4, 10.0, 4))
    rates = {}
    for spec in specs:
        if spec.learning_rate is not None:
            rates[spec.name] = spec.learning_rate
            continue
        teacher = make_hand_designed(spec.name)
        if hasattr(teacher, "set_horizon"):
            teacher.set_horizon(num_steps)
        problems = lambda: sample_problems(family, "validation", seed + 7919, num_problems)  # noqa: E731
        rates[spec.name], _ = tune_learning_rate(family, teacher, grid, problems, num_steps)
    return rates


def imitation_gradient(loss_fn, learner: Optimizer, teachers: Sequence[Optimizer], params: list, learner_states: list,
                       teacher_states: list, data: list, batches, num_steps: int, mode: str = "mean",
                       second_derivatives: bool = False):
    """One truncation of imitation for every teacher (each on its own trajectory).

    params, learner_states, teacher_states and data hold one entry per teacher. Returns
    (per-teacher params, learner states, teacher states, data, final losses [teachers],
    the imitation loss, its gradient w.r.t. the learner's phi).
    """
    if mode not in MODES:
        raise UserError(f"imitation mode must be one of {MODES}, got {mode!r}")
    phi = learner.meta_variables
    learner_states = [learner.pack_state(s, p) for s, p in zip(learner_states, params)]
    out_params, out_learner, out_teacher, out_data, finals, errors = [], [], [], [], [], []
    with tf.GradientTape() as tape:
        for teacher, p, ls, ts, d in zip(teachers, params, learner_states, teacher_states, data):
            p, error = list(p), 0.0
            for t in range(num_steps):
                _, d, grads = _losses_state_grads(loss_fn, p, d, _batch_at(batches, t))
                if not second_derivatives:
                    grads = [tf.stop_gradient(g) for g in grads]
                target, ts = teacher.update(grads, ts, p)
                proposal, ls = learner.update(grads, ls, p)
                target = [tf.stop_gradient(u) for u in target]
                squared = tf.add_n([tf.reduce_sum(tf.square(a - b)) for a, b in zip(proposal, target)])
                scale = tf.add_n([tf.reduce_sum(tf.square(b)) for b in target])
                error += squared / tf.maximum(scale, 1e-30)
                p = [x + u for x, u in zip(p, target)]  # the teacher's trajectory
            final, _ = loss_fn(p, d, _batch_at(batches, num_steps))
            errors.append(error / num_steps)
            finals.append(tf.reduce_mean(final))
            out_params.append(p)
            out_learner.append(learner.unpack_state(ls, p))
            out_teacher.append(ts)
            out_data.append(d)
        stacked = tf.stack(errors)
        loss = tf.reduce_max(stacked) if mode == "max" else tf.reduce_mean(stacked)
    grads = tape.gradient(loss, phi)
    grads = [tf.zeros_like(v) if g is None else g for g, v in zip(grads, phi)]
    return out_params, out_learner, out_teacher, out_data, tf.stack(finals), loss, grads


def make_teachers(rates: dict[str, float]) -> list[Optimizer]:
    return [make_hand_designed(name, float(lr)) for name, lr in rates.items()]


def describe(rates: dict[str, float]) -> str:
    return ", ".join(f"{name} (lr {lr:.3g})" for name, lr in rates.items())

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

On a mixture of families one rate per teacher fits none of them well: NAG tuned on the whole
MNIST mixture takes lr 0.178 where its sigmoid nets want 0.56-1 (RESULTS.md). `tune_teacher_groups`
therefore tunes the teachers for each member of a mixture on its own ("member"), and can keep for
each member only the teacher whose tuned loss is lowest ("member_best"): the LSTM then imitates,
on every kind of problem, the best tuned analytic optimizer for that kind.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import tensorflow as tf

from l2l_tf.errors import UserError
from l2l_tf.optimizers.base import Optimizer, set_horizon
from l2l_tf.optimizers.hand_designed import TEACHERS, make_hand_designed
from l2l_tf.unroll import _batch_at, _losses_state_grads

MODES = ("mean", "max")
#: Where teachers are tuned: once on the whole family, per mixture member, or per member keeping
#: only that member's best teacher.
TUNINGS = ("family", "member", "member_best")


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
    return {name: rate for name, (rate, _) in
            _tune(family, specs, num_steps, seed, num_problems, grid, score_fixed=False).items()}


def _tune(family, specs, num_steps, seed, num_problems, grid, score_fixed) -> dict[str, tuple[float, float]]:
    """{teacher: (learning rate, its mean final loss)}; a fixed rate is scored only if `score_fixed`
    (its loss is NaN otherwise). Every teacher sees the same problems, so the losses compare."""
    from l2l_tf.evaluation import learning_rate_grid, sample_problems, tune_learning_rate

    grid = list(grid or learning_rate_grid(1e-4, 10.0, 4))
    tuned = {}
    for spec in specs:
        if spec.learning_rate is not None and not score_fixed:
            tuned[spec.name] = (spec.learning_rate, float("nan"))
            continue
        teacher = make_hand_designed(spec.name)
        set_horizon(teacher, num_steps)
        problems = lambda: sample_problems(family, "validation", seed + 7919, num_problems)  # noqa: E731
        points = [spec.learning_rate] if spec.learning_rate is not None else grid
        rate, scores = tune_learning_rate(family, teacher, points, problems, num_steps)
        tuned[spec.name] = (rate, float(scores[rate]))
    return tuned


def member_label(member) -> str:
    """A mixture member's settings in one short string ("mnist(hidden_sizes=[20], activation=relu)")."""
    info = {k: v for k, v in member.describe().items() if k not in ("name", "num_params")}
    inner = ", ".join(f"{k}={v}" for k, v in info.items())
    return f"{member.name}({inner})" if inner else member.name


def tune_teacher_groups(family, specs: Sequence[TeacherSpec], num_steps: int, seed: int, tuning: str = "family",
                        num_problems: int | None = None,
                        grid: Sequence[float] | None = None) -> list[tuple[str, dict[str, float]]]:
    """[(group label, {teacher: learning rate})]: one group for tuning="family" (the whole
    family, 8 problems); otherwise one per mixture member, in `family.members` order (4 problems
    each), with "member_best" keeping only the teacher of lowest tuned loss on that member (ties:
    the first given)."""
    if tuning not in TUNINGS:
        raise UserError(f"imitation tuning must be one of {TUNINGS}, got {tuning!r}")
    if tuning == "family":
        return [("", tune_teachers(family, specs, num_steps, seed, num_problems or 8, grid))]
    members = getattr(family, "members", None)
    if not members:
        raise UserError(f"imitation tuning {tuning!r} needs a mixture of problem families (e.g. --problem=mnist_mix); "
                        f"{family.name} has no members")
    groups = []
    for i, member in enumerate(members):
        tuned = _tune(member, specs, num_steps, seed + 104729 * (i + 1), num_problems or 4, grid,
                      score_fixed=tuning == "member_best")
        if tuning == "member_best":
            best = min(tuned, key=lambda name: (not math.isfinite(tuned[name][1]), tuned[name][1]))
            tuned = {best: tuned[best]}
        groups.append((member_label(member), {name: rate for name, (rate, _) in tuned.items()}))
    return groups


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

"""Meta-training: Adam on phi through truncated unrolls of the optimizee's optimization.

One epoch samples a fresh training problem, initializes theta_0 and the optimizer state,
and optimizes it for `num_steps` steps in truncations of `unroll_length`. Each truncation is
one compiled `meta_step`: T optimizee steps under a `GradientTape`, the meta-loss

    L(phi) = sum_{t=1..T} w_t * mean_over_functions f(theta_t),

its gradient with respect to phi (optimizee gradients enter as constants unless
`second_derivatives`), global-norm clipping and an Adam step. theta and the optimizer state
carry over from one truncation to the next (as values: no gradient flows across the cut),
and are reset for the next epoch's fresh problem.

Every `evaluation_period` epochs phi is scored on fixed validation problems (a split whose
seeds never meet training or test seeds) and the best phi is kept apart (early stopping).
The full training state goes to a `tf.train.CheckpointManager`, so `resume=True` continues
exactly where a run stopped: training problems are a pure function of (seed, epoch).
"""
from __future__ import annotations

import collections
import dataclasses
import math
import os
import time
from typing import Any, Callable

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from l2l_tf import saving
from l2l_tf.curriculum import Curriculum, CurriculumState
from l2l_tf.errors import UserError
from l2l_tf.evaluation import run_problem, run_trajectories, sample_problems
from l2l_tf.imitation import MODES as IMITATION_MODES
from l2l_tf.imitation import TUNINGS as IMITATION_TUNINGS
from l2l_tf.imitation import imitation_gradient, make_teachers, parse_teachers, tune_teacher_groups
from l2l_tf.optimizers.base import Optimizer, set_horizon
from l2l_tf.problems.augment import Augmentation, augment
from l2l_tf.problems.base import ProblemFamily, function_rng
from l2l_tf.unroll import run_steps, run_steps_recomputed

#: The meta-losses `MetaTrainConfig.meta_loss` names.
META_LOSSES = ("sum", "relative", "log_ratio")
#: How phi's gradient is estimated (`MetaTrainConfig.meta_gradient`).
META_GRADIENTS = ("backprop", "es")


@dataclasses.dataclass
class MetaTrainConfig:
    """Meta-training settings: every field is the `l2l_train` flag of the same name, with the same default."""

    num_epochs: int = 2000
    num_steps: int = 100
    unroll_length: int = 20
    learning_rate: float = 1e-3
    meta_batch_size: int = 128
    clip_norm: float = 1.0
    second_derivatives: bool = False
    loss_weights: tuple[float, ...] | None = None
    #: Divide each function's losses in a truncation by its loss at the truncation's start, so
    #: every truncation weighs its relative progress: without it the first truncation (where
    #: losses fall by an order of magnitude) dominates phi's updates and late-trajectory
    #: behaviour, which decides the final loss, is learned from small gradients.
    relative_meta_loss: bool = False
    evaluation_period: int = 100
    evaluation_epochs: int = 2
    checkpoint_every: int = 100
    log_period: int = 50
    seed: int = 0
    max_consecutive_skips: int = 20
    #: "off", "sqrt" or a segment length k: recompute the unroll's activations in segments of k
    #: steps in the backward pass (same meta-gradient, memory ~ T/k + k steps instead of T;
    #: "sqrt": k = ceil(sqrt(unroll_length))). 0 is "off".
    gradient_checkpointing: str | int = "off"
    #: Compile each truncation with XLA: off, since on CPUs the fused kernel (which XLA cannot
    #: hold) is faster (RESULTS.md, "Speed, memory and scale"); it is there for GPUs.
    jit_compile: bool = False
    #: The meta-loss of a truncation: "sum" (the paper: sum_t w_t f_t), "relative" (see
    #: `relative_meta_loss`) or "log_ratio" (sum_t w_t (log f_t - log f_0)): every step's
    #: *relative* progress counts alike, however small the losses have become, so late steps
    #: of long trajectories are not drowned by the first ones.
    meta_loss: str = "sum"
    #: (low, high): every epoch's trajectory length is drawn uniformly from the multiples of
    #: unroll_length in [low, high] (seeded per epoch) instead of num_steps: the optimizer
    #: cannot specialize to one horizon.
    num_steps_range: tuple[int, int] | None = None
    #: Trajectory lengths of a validation-gated curriculum (l2l_tf/curriculum.py), e.g.
    #: (100, 200, 500, 1000); empty: no curriculum (every epoch num_steps, validated on num_steps).
    curriculum: tuple[int, ...] = ()
    #: Validations in a row without a new best that end a curriculum stage.
    curriculum_patience: int = 2
    #: Per curriculum stage, the epochs it may train at most (0: until its patience runs out).
    curriculum_epochs: tuple[int, ...] = ()
    #: Teachers to imitate in some epochs (l2l_tf/imitation.py): "nag", "adam:0.01", ...
    imitation_teachers: tuple[str, ...] = ()
    #: Probability that an epoch imitates rather than meta-trains: one value, or one per
    #: curriculum stage (the last repeats).
    imitation_ratio: tuple[float, ...] = (0.0,)
    #: "mean" of the teachers' imitation losses, or their "max" (min-max amalgamation).
    imitation_mode: str = "mean"
    #: Where untuned teachers' rates are tuned (l2l_tf/imitation.py): "family" (one rate per
    #: teacher), "member" (per member of a mixture), "member_best" (per member, imitating only
    #: the teacher of lowest tuned loss there).
    imitation_tuning: str = "family"
    #: Random scaling of training problems' parameters: theta = c * theta', c = exp(U(-r, r))
    #: per coordinate (l2l_tf/problems/augment.py); 0: off.
    param_scale_range: float = 0.0
    #: Coordinates of a simple convex term added to every training problem; 0: off.
    convex_term: int = 0
    #: Families of one problem per sample (MNIST, CIFAR, neural art): problems per epoch, run
    #: side by side, each truncation's meta-gradient their mean (a meta-batch of problems: less
    #: noisy than one problem's). Vectorized families batch functions with meta_batch_size instead.
    problems_per_epoch: int = 1
    #: How phi's gradient is obtained: "backprop" through each truncation (the paper), or "es":
    #: antithetic evolution strategies on whole trajectories (`es_gradient`): no truncation, no
    #: backpropagation through hundreds of steps, whose meta-gradients grow chaotic and bias
    #: truncated training towards short horizons (Metz et al. 2019; Vicol et al. 2021).
    #: One value, or one per curriculum stage (the last repeats): e.g. backprop for the short
    #: first stage, ES for the long one.
    meta_gradient: tuple[str, ...] = ("backprop",)
    #: ES: antithetic pairs (two trajectories each, on the same problem) per update of phi.
    es_pairs: int = 4
    #: ES: the standard deviation of phi's Gaussian perturbations.
    es_sigma: float = 0.01
    #: ES: the learning rate of its own Adam on phi (ES gradients are noisier than backprop's).
    es_learning_rate: float = 1e-3
    #: Score the starting phi before training, so that a fine-tune (--init_from) keeps its
    #: starting point unless training beats it on validation.
    validate_start: bool = False

    def __post_init__(self):
        positive = ("num_epochs", "num_steps", "unroll_length", "meta_batch_size", "evaluation_period",
                    "evaluation_epochs", "checkpoint_every", "log_period", "max_consecutive_skips",
                    "problems_per_epoch", "es_pairs")
        for name in positive:
            if int(getattr(self, name)) <= 0:
                raise UserError(f"{name} must be a positive integer, got {getattr(self, name)}")
        if self.num_steps % self.unroll_length:
            raise UserError(f"num_steps ({self.num_steps}) must be a multiple of unroll_length ({self.unroll_length})")
        if not (self.learning_rate > 0 and math.isfinite(self.learning_rate)):
            raise UserError(f"learning_rate must be a positive number, got {self.learning_rate}")
        self.checkpoint_segment  # noqa: B018 - validates gradient_checkpointing
        if not self.clip_norm > 0:
            raise UserError(f"clip_norm must be > 0, got {self.clip_norm}")
        if isinstance(self.meta_gradient, str):
            self.meta_gradient = (self.meta_gradient,)
        self.meta_gradient = tuple(self.meta_gradient)
        if not self.meta_gradient or any(m not in META_GRADIENTS for m in self.meta_gradient):
            raise UserError(f"meta_gradient must be one of {META_GRADIENTS} (or one per curriculum stage), got "
                            f"{list(self.meta_gradient)}")
        for name in ("es_sigma", "es_learning_rate"):
            if not (getattr(self, name) > 0 and math.isfinite(getattr(self, name))):
                raise UserError(f"{name} must be a positive number, got {getattr(self, name)}")
        if self.meta_loss not in META_LOSSES:
            raise UserError(f"meta_loss must be one of {META_LOSSES}, got {self.meta_loss!r}")
        if self.relative_meta_loss:
            if self.meta_loss not in ("sum", "relative"):
                raise UserError(f"relative_meta_loss and meta_loss={self.meta_loss!r} contradict each other")
            self.meta_loss = "relative"
        self.relative_meta_loss = self.meta_loss == "relative"
        T = self.unroll_length
        if self.num_steps_range is not None:
            low, high = (int(v) for v in self.num_steps_range)
            if not (0 < low <= high) or low % T or high % T:
                raise UserError(f"num_steps_range must be two multiples of unroll_length ({T}), low <= high; "
                                f"got {list(self.num_steps_range)}")
            self.num_steps_range = (low, high)
        self.curriculum = tuple(int(s) for s in self.curriculum)
        if not self.curriculum and (self.curriculum_epochs or len(self.meta_gradient) > 1):
            raise UserError("curriculum_epochs and per-stage meta_gradient values need a curriculum")
        if self.curriculum:
            self.curriculum_epochs = tuple(int(e) for e in self.curriculum_epochs)
            self.schedule  # noqa: B018 - validates
            if any(s % T for s in self.curriculum):
                raise UserError(f"curriculum stages must be multiples of unroll_length ({T}), got {list(self.curriculum)}")
            if self.num_steps_range is not None:
                raise UserError("num_steps_range and curriculum both set the trajectory length; choose one")
        self.imitation_ratio = tuple(float(r) for r in self.imitation_ratio)
        if not self.imitation_ratio or not all(0.0 <= r <= 1.0 for r in self.imitation_ratio):
            raise UserError(f"imitation_ratio must be probabilities in [0, 1], got {list(self.imitation_ratio)}")
        self.imitation_teachers = tuple(self.imitation_teachers)
        parse_teachers(self.imitation_teachers)  # validates
        if any(self.imitation_ratio) and not self.imitation_teachers:
            raise UserError("imitation_ratio > 0 needs imitation_teachers")
        if self.imitation_mode not in IMITATION_MODES:
            raise UserError(f"imitation_mode must be one of {IMITATION_MODES}, got {self.imitation_mode!r}")
        if self.imitation_tuning not in IMITATION_TUNINGS:
            raise UserError(f"imitation_tuning must be one of {IMITATION_TUNINGS}, got {self.imitation_tuning!r}")
        Augmentation(self.param_scale_range, self.convex_term)  # validates
        if self.loss_weights is not None:
            self.loss_weights = tuple(float(w) for w in self.loss_weights)
            if len(self.loss_weights) != self.unroll_length:
                raise UserError(f"loss_weights has {len(self.loss_weights)} entries; unroll_length is {self.unroll_length}")
            if any(w < 0 or not math.isfinite(w) for w in self.loss_weights):
                raise UserError("loss_weights must be finite and non-negative")

    @property
    def weights(self) -> np.ndarray:
        """w_1..w_T of the meta-loss (all ones by default, as in the paper)."""
        w = self.loss_weights or (1.0,) * self.unroll_length
        return np.asarray(w, np.float32)

    @property
    def checkpoint_segment(self) -> int:
        """The recomputed segments' length in steps (0: no gradient checkpointing)."""
        value = self.gradient_checkpointing
        text = str(value).strip().lower()
        if text in ("off", "0"):
            return 0
        if text == "sqrt":
            return math.ceil(math.sqrt(self.unroll_length))
        try:
            segment = int(text)
        except ValueError:
            segment = -1
        if not 1 <= segment <= self.unroll_length:
            raise UserError(f"--gradient_checkpointing must be 'off', 'sqrt' or a segment length from 1 to "
                            f"--unroll_length ({self.unroll_length}), got {text!r}")
        return segment

    @property
    def schedule(self) -> Curriculum | None:
        return (Curriculum(self.curriculum, self.curriculum_patience, self.curriculum_epochs) if self.curriculum
                else None)

    def meta_gradient_of(self, stage: int) -> str:
        """How `stage`'s meta-training epochs estimate phi's gradient ("backprop" or "es")."""
        return self.meta_gradient[min(stage, len(self.meta_gradient) - 1)]

    @property
    def uses_es(self) -> bool:
        return "es" in self.meta_gradient

    def imitation_probability(self, stage: int) -> float:
        return self.imitation_ratio[min(stage, len(self.imitation_ratio) - 1)]

    def epoch_num_steps(self, epoch: int, stage: int = 0) -> int:
        """The trajectory length of `epoch` (in curriculum `stage`)."""
        if self.curriculum:
            return self.curriculum[stage]
        if self.num_steps_range is None:
            return self.num_steps
        low, high = self.num_steps_range
        T = self.unroll_length
        rng = np.random.default_rng([self.seed, epoch, 5150])
        return T * int(rng.integers(low // T, high // T + 1))

    def validation_steps(self, stage: int = 0) -> int:
        """The horizon validation scores phi on."""
        return self.schedule.validation_steps(stage) if self.curriculum else self.num_steps


@dataclasses.dataclass
class EpochRecord:
    epoch: int
    meta_loss: float
    final_loss: float
    skipped_steps: int
    #: Optimizee steps of the epoch's trajectory (per replica).
    num_steps: int = 0
    #: "meta" (the meta-loss) or "imitation" (regression onto teachers; meta_loss is then that loss).
    kind: str = "meta"
    #: Optimizee steps the epoch ran (trajectory length x problems per epoch, or x teachers).
    optimizee_steps: int = 0


@dataclasses.dataclass
class TrainResult:
    best_validation: float
    best_epoch: int
    epochs_run: int
    seconds: float
    skipped_steps: int
    history: list = dataclasses.field(default_factory=list)
    validation: list = dataclasses.field(default_factory=list)
    #: Curriculum stage changes: (epoch, stage, trajectory length, validation horizon, starting value).
    stages: list = dataclasses.field(default_factory=list)
    #: Whether a curriculum ended training before num_epochs (its last stage stopped improving).
    finished_curriculum: bool = False


class TrainingDiverged(UserError):
    """Too many consecutive meta-steps were non-finite; the last good checkpoint is kept."""


class TrainingInterrupted(Exception):
    """A stop was requested (SIGINT/SIGTERM); a checkpoint of `epoch` was written first."""

    def __init__(self, epoch: int, checkpoint: str | None):
        super().__init__(f"interrupted at epoch {epoch}" + (f"; checkpoint {checkpoint}" if checkpoint else ""))
        self.epoch, self.checkpoint = epoch, checkpoint


def truncation_meta_loss(losses, weights, meta_loss: str = "sum") -> tf.Tensor:
    """sum_t w_t * mean over functions of the meta-loss term of f(theta_t), t = 1..T, from the
    losses [T + 1, functions] of one truncation (row 0: its start, a constant)."""
    losses = tf.convert_to_tensor(losses, tf.float32)
    start = tf.stop_gradient(tf.maximum(losses[0], 1e-12))
    if meta_loss == "log_ratio":
        later = tf.math.log(tf.maximum(losses[1:], 1e-12)) - tf.math.log(start)
    elif meta_loss == "relative":
        later = losses[1:] / start
    else:
        later = losses[1:]
    return tf.reduce_sum(tf.convert_to_tensor(weights, tf.float32) * tf.reduce_mean(later, axis=1))


def trajectory_meta_loss(curves: np.ndarray, weights, meta_loss: str = "sum") -> float:
    """A whole trajectory's meta-loss for ES: every truncation's weighted terms (as in
    `truncation_meta_loss`, len(weights) steps each), all measured from the trajectory's start.

    Backprop measures a truncation's relative progress from its own start, a constant there. ES
    differentiates the whole trajectory, where that start depends on phi: measured from it, a high
    loss at step 100 would lower the second truncation's log-ratio, rewarding a bad first half.
    For meta_loss="sum" both are the same. `curves`: losses [steps + 1, functions]; inf when any
    loss is not finite.
    """
    curves = np.asarray(curves, np.float32)
    if not np.all(np.isfinite(curves)):
        return math.inf
    T = len(weights)
    return float(sum(truncation_meta_loss(np.concatenate([curves[:1], curves[k + 1:k + T + 1]]), weights, meta_loss)
                     for k in range(0, curves.shape[0] - 1, T)))


def es_gradient(score: Callable[[list[np.ndarray], int], float], phi: list[np.ndarray], pairs: int, sigma: float,
                rng: np.random.Generator) -> tuple[list[np.ndarray] | None, list[tuple[float, float]]]:
    """Antithetic evolution-strategies estimate of the gradient of E[score(phi + sigma * eps)].

    For each of `pairs` draws eps ~ N(0, I): (score(phi + sigma eps) - score(phi - sigma eps)) /
    (2 sigma) * eps, averaged. `score(values, pair)` runs the whole trajectory, so the estimate
    has no truncation bias and never differentiates through the unroll; both members of a pair
    see the same problem (common random numbers), which cancels most of the problem-to-problem
    noise. Pairs with a non-finite score are dropped; returns (None, scores) if all were.
    """
    total, used, scores = None, 0, []
    for j in range(pairs):
        eps = [rng.standard_normal(p.shape).astype(np.float32) for p in phi]
        plus = score([p + sigma * e for p, e in zip(phi, eps)], j)
        minus = score([p - sigma * e for p, e in zip(phi, eps)], j)
        scores.append((plus, minus))
        if not (math.isfinite(plus) and math.isfinite(minus)):
            continue
        c = (plus - minus) / (2.0 * sigma)
        total = [c * e for e in eps] if total is None else [t + c * e for t, e in zip(total, eps)]
        used += 1
    return (None if total is None else [t / used for t in total]), scores


def meta_gradient(loss_fn, optimizer: Optimizer, params, state, data, batches, weights,
                  second_derivatives: bool = False, checkpoint_segment: int = 0, relative: bool = False,
                  meta_loss: str = "sum"):
    """One truncation: T = len(weights) steps, the meta-loss and its gradient w.r.t. phi.

    meta-loss = sum_{t=1..T} w_t * mean over functions of f(theta_t). theta_0 and the
    incoming state are constants (the truncation), so nothing flows to earlier unrolls.

    `loss_fn` is a family's `loss_and_state`; the problem data it evolves (batch-norm
    statistics) comes back as data_T, for the next truncation.

    `relative` (or meta_loss="relative"): each function's f(theta_t) is divided by its
    (constant) f(theta_0), see `MetaTrainConfig.relative_meta_loss`; meta_loss="log_ratio"
    uses log f(theta_t) - log f(theta_0) instead.

    `checkpoint_segment` > 0 recomputes the unroll's activations in segments of that many
    steps during the backward pass (`run_steps_recomputed`): the same values in less memory.

    Returns (theta_T, state_T, data_T, losses [T+1, functions], meta-loss, gradients w.r.t. phi).
    """
    weights = tf.convert_to_tensor(weights, tf.float32)
    phi = optimizer.meta_variables
    unroll_length = int(weights.shape[0])  # this truncation's steps
    state = optimizer.pack_state(state, params)  # e.g. the LSTM's per-tensor states joined once
    with tf.GradientTape() as tape:
        if checkpoint_segment:
            params, state, data, losses = run_steps_recomputed(loss_fn, optimizer, params, state, data, batches,
                                                               unroll_length, checkpoint_segment, second_derivatives)
        else:
            params, state, data, losses = run_steps(loss_fn, optimizer, params, state, data, batches, unroll_length,
                                                    second_derivatives)
        meta_loss = truncation_meta_loss(losses, weights, "relative" if relative else meta_loss)
    state = optimizer.unpack_state(state, params)
    grads = tape.gradient(meta_loss, phi)
    grads = [tf.zeros_like(v) if g is None else g for g, v in zip(grads, phi)]
    return params, state, data, losses, meta_loss, grads


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes checkpoints and results (always, unless it is a non-chief worker)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    if resolver.task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "worker" and resolver.task_id == 0 and not has_chief


def _format_seconds(s: float) -> str:
    s = int(max(s, 0))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


class MetaTrainer:
    """Trains the meta-parameters of a learned optimizer on a problem family."""

    def __init__(self, family: ProblemFamily, optimizer: Optimizer, config: MetaTrainConfig,
                 save_path: str | None = None, metadata: dict | None = None,
                 strategy: tf.distribute.Strategy | None = None):
        """`strategy` (e.g. `MirroredStrategy`, `MultiWorkerMirroredStrategy`) spreads every
        epoch's meta-batch over its replicas; phi and the meta-optimizer stay ordinary
        variables, which every worker updates identically with the all-reduced gradient. Only
        the chief worker writes under `save_path`; the others read its checkpoints to resume
        (so `save_path` must be on a filesystem they share)."""
        if not optimizer.meta_variables:
            raise UserError(f"optimizer {optimizer.label!r} has no meta-parameters to train")
        self.family, self.optimizer, self.config = family, optimizer, config
        self.strategy = strategy or tf.distribute.get_strategy()
        self.num_replicas = int(self.strategy.num_replicas_in_sync)
        if self.num_replicas > 1:
            from l2l_tf.problems.mixture import MixtureFamily
            if isinstance(family, MixtureFamily):
                raise UserError("distributed meta-training needs one problem family; a mixture's replicas would "
                                "run different models")
            if family.vectorized and config.meta_batch_size % self.num_replicas:
                raise UserError(f"meta_batch_size ({config.meta_batch_size}) must be a multiple of the "
                                f"{self.num_replicas} replicas")
        chief = is_chief(self.strategy)
        self._resume_dir = os.path.join(save_path, "checkpoints") if save_path else None
        self.save_path = save_path if chief else None
        self.metadata = dict(metadata or {})
        self.phi = optimizer.meta_variables
        self.meta_optimizer = keras.optimizers.Adam(learning_rate=config.learning_rate)
        self.meta_optimizer.build(self.phi)
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        self.best_validation = tf.Variable(np.inf, dtype=tf.float32, trainable=False, name="best_validation")
        self.best_epoch = tf.Variable(-1, dtype=tf.int64, trainable=False, name="best_epoch")
        self.skipped = tf.Variable(0, dtype=tf.int64, trainable=False, name="skipped_steps")
        self.consecutive_skips = tf.Variable(0, dtype=tf.int64, trainable=False, name="consecutive_skips")
        self._stop_requested = False
        self.best_phi = [tf.Variable(v.value if hasattr(v, "value") else v, trainable=False) for v in self.phi]
        self._weights = tf.constant(config.weights)
        self._meta_steps: dict = {}
        #: How often each family's truncation was traced (compiled): once per family, however many
        #: epochs run. More means something in the inputs' structure or shapes changes.
        self.traces: collections.Counter = collections.Counter()
        self._apply = tf.function(self._apply_fn)
        self._manager = None
        self._augmentation = Augmentation(config.param_scale_range, config.convex_term)
        self._teacher_specs = parse_teachers(config.imitation_teachers)
        if config.problems_per_epoch > 1 and family.vectorized:
            raise UserError("problems_per_epoch applies to families of one problem per sample; a vectorized family "
                            "batches functions with meta_batch_size")
        if config.uses_es and self.num_replicas > 1:
            raise UserError("ES meta-gradients run on one replica; drop --meta_gradient=es or the strategy")
        if self._teacher_specs and self.num_replicas > 1:
            raise UserError("imitation epochs run on one replica; drop --imitation_teachers or the strategy")
        if self._teacher_specs and config.imitation_tuning != "family" and not getattr(family, "members", None):
            raise UserError(f"imitation_tuning={config.imitation_tuning} needs a mixture of problem families "
                            f"(e.g. --problem=mnist_mix); {family.name} is one family")
        #: One teacher object per name, shared by the tuning groups (its rate is set every epoch).
        self._teachers = dict(zip((s.name for s in self._teacher_specs),
                                  make_teachers({s.name: 1.0 for s in self._teacher_specs})))
        #: stage -> [(group label, {teacher: rate})]: one group, or one per mixture member.
        self._teacher_rates: dict[int, list[tuple[str, dict[str, float]]]] = {}
        self._imitation_steps: dict = {}
        tracked = dict(phi=saving.tf_variables(self.phi),
                       meta_optimizer=saving.tf_variables(self.meta_optimizer.variables),
                       epoch=self.epoch, best_validation=self.best_validation, best_epoch=self.best_epoch,
                       skipped=self.skipped, consecutive_skips=self.consecutive_skips, best_phi=self.best_phi)
        #: Curriculum position (checkpointed only with a curriculum, so older runs still resume).
        self.stage = tf.Variable(0, dtype=tf.int64, trainable=False, name="curriculum_stage")
        self.stage_stalls = tf.Variable(0, dtype=tf.int64, trainable=False, name="curriculum_stalls")
        #: The epoch the current curriculum stage began (for its epoch budget).
        self.stage_start = tf.Variable(0, dtype=tf.int64, trainable=False, name="curriculum_stage_start")
        if config.curriculum:
            tracked.update(stage=self.stage, stage_stalls=self.stage_stalls)
        if config.curriculum_epochs:
            tracked.update(stage_start=self.stage_start)
        #: ES updates phi with an Adam of its own (its gradients' scale and noise are not backprop's).
        self.es_optimizer = None
        if config.uses_es:
            self.es_optimizer = keras.optimizers.Adam(learning_rate=config.es_learning_rate)
            self.es_optimizer.build(self.phi)
            tracked.update(es_optimizer=saving.tf_variables(self.es_optimizer.variables))
            self._apply_es = tf.function(self._apply_es_fn)
        self._checkpoint = tf.train.Checkpoint(**tracked)
        if self.save_path:
            self._manager = tf.train.CheckpointManager(self._checkpoint, self._resume_dir, max_to_keep=3)

    # -- compiled pieces -------------------------------------------------------------------

    def _meta_step(self, family: ProblemFamily):
        """The compiled truncation for one family's loss (a mixture has one per member).

        Every replica of the strategy runs the truncation on its own problem; the meta-loss,
        the final loss and the meta-gradient are averaged over replicas (an all-reduce), so
        with R replicas of B/R functions each the result is the meta-gradient of the same B
        functions on one replica. Without a strategy, TensorFlow's default (one replica, no
        communication) makes this the plain single-process step.
        """
        if id(family) not in self._meta_steps:
            strategy, cfg = self.strategy, self.config

            def truncation(params, state, data, batches):
                return meta_gradient(family.loss_and_state, self.optimizer, params, state, data, batches,
                                     self._weights, cfg.second_derivatives, cfg.checkpoint_segment,
                                     meta_loss=cfg.meta_loss)

            if cfg.jit_compile:
                truncation = tf.function(truncation, jit_compile=True)

            def replica_step(params, state, data, batches):
                params, state, data, losses, meta_loss, grads = truncation(params, state, data, batches)
                return params, state, data, tf.reduce_mean(losses[-1]), meta_loss, grads

            def step(params, state, data, batches):
                self.traces[family.name] += 1  # Python side effect: runs only while tracing
                params, state, data, final, meta_loss, grads = strategy.run(
                    replica_step, args=(params, state, data, batches))
                mean = lambda x: strategy.reduce(tf.distribute.ReduceOp.MEAN, x, axis=None)  # noqa: E731
                grads = [mean(g) for g in grads]
                return params, state, data, mean(final), mean(meta_loss), grads, tf.linalg.global_norm(grads)

            self._meta_steps[id(family)] = (family, tf.function(step))
        return self._meta_steps[id(family)][1]

    def _imitation_step(self, family: ProblemFamily, names: tuple[str, ...]):
        """The compiled imitation truncation for one family and set of teachers (l2l_tf/imitation.py)."""
        key = (id(family), names)
        if key not in self._imitation_steps:
            cfg = self.config
            teachers = [self._teachers[n] for n in names]

            def step(params, learner_states, teacher_states, data, batches):
                self.traces[f"{family.name}/imitation"] += 1  # Python side effect: runs only while tracing
                out = imitation_gradient(family.loss_and_state, self.optimizer, teachers, params, learner_states,
                                         teacher_states, data, batches, cfg.unroll_length, cfg.imitation_mode,
                                         cfg.second_derivatives)
                return (*out, tf.linalg.global_norm(out[-1]))

            self._imitation_steps[key] = (family, tf.function(step))
        return self._imitation_steps[key][1]

    def _apply_fn(self, grads):
        clipped, _ = tf.clip_by_global_norm(grads, self.config.clip_norm)
        self.meta_optimizer.apply_gradients(zip(clipped, self.phi))

    def _apply_es_fn(self, grads):
        self.es_optimizer.apply_gradients(zip(grads, self.phi))

    # -- the loop -------------------------------------------------------------------------

    def _train_problem(self, epoch: int, replica: int = 0):
        """Replica `replica`'s share of epoch `epoch`'s training functions.

        A vectorized family's meta-batch of B functions is split into R equal parts; other
        families give every replica one problem of its own (a meta-batch of R problems). With
        one replica both are the single-process problem of the epoch.
        """
        r = self.num_replicas
        if self.family.vectorized:
            b = self.config.meta_batch_size // r
            first = epoch * self.config.meta_batch_size + replica * b
            return self.family.sample("train", self.config.seed, range(first, first + b))
        return self.family.sample("train", self.config.seed, [epoch * r + replica])

    def _augmented(self, problem, epoch: int, replica: int):
        """The training problem with random scaling / a convex term (MetaTrainConfig), if asked for."""
        if not self._augmentation.active:
            return problem
        rng = function_rng("train", self.config.seed, epoch * self.num_replicas + replica, "augment")
        return augment(problem, self.family, self._augmentation, rng)

    def _per_replica(self, fn):
        """The value `fn(replica id)` on every local replica (plain values with one replica)."""
        return self.strategy.experimental_distribute_values_from_function(
            lambda ctx: fn(ctx.replica_id_in_sync_group))

    def run_epoch(self, epoch: int) -> EpochRecord:
        """Trains phi on epoch `epoch`'s problem: a meta-training epoch, or (with imitation
        teachers, at the stage's imitation ratio) an imitation epoch. A pure function of the
        epoch index, phi and the meta-optimizer, so a resumed run repeats it exactly."""
        cfg = self.config
        stage = int(self.stage.numpy())
        num_steps = cfg.epoch_num_steps(epoch, stage)
        set_horizon(self.optimizer, num_steps)
        p = cfg.imitation_probability(stage) if self._teacher_specs else 0.0
        if p and np.random.default_rng([cfg.seed, epoch, 4242]).random() < p:
            return self._imitation_epoch(epoch, num_steps, stage)
        if cfg.meta_gradient_of(stage) == "es":
            return self._es_epoch(epoch, num_steps)
        return self._meta_epoch(epoch, num_steps)

    def teacher_rates(self, stage: int = 0, group: int = 0) -> dict[str, float]:
        """The imitation teachers' learning rates for `stage` (tuned once per stage, on its horizon)
        in tuning group `group` (the mixture member's index with member tuning)."""
        if stage not in self._teacher_rates:
            steps = self.config.epoch_num_steps(0, stage)
            self._teacher_rates[stage] = tune_teacher_groups(self.family, self._teacher_specs, steps, self.config.seed,
                                                             self.config.imitation_tuning)
            for label, rates in self._teacher_rates[stage]:
                logging.info("imitation teachers for %d-step trajectories%s: %s", steps, f" on {label}" if label else "",
                             ", ".join(f"{k} lr {v:.3g}" for k, v in rates.items()))
        return self._teacher_rates[stage][group][1]

    def _teacher_group(self, family: ProblemFamily) -> int:
        """The tuning group of a training problem's family: 0, or its index among the mixture's members."""
        if self.config.imitation_tuning == "family":
            return 0
        return next(i for i, member in enumerate(self.family.members) if member is family)

    def _imitation_epoch(self, epoch: int, num_steps: int, stage: int) -> EpochRecord:
        """The LSTM regressed onto the teachers' updates along their own trajectories (no augmentation:
        a teacher tuned on the family's problems would not be tuned for rescaled ones)."""
        problem = self._train_problem(epoch * self.config.problems_per_epoch)
        family = problem.family or self.family
        rates = self.teacher_rates(stage, self._teacher_group(family))
        teachers = [self._teachers[name] for name in rates]
        for teacher, lr in zip(teachers, rates.values()):
            teacher.set_learning_rate(lr)
            set_horizon(teacher, num_steps)  # a scheduled teacher spans the stage's trajectories
        names = problem.param_names
        k = len(teachers)
        params = [list(problem.params) for _ in range(k)]
        learner = [self.optimizer.init(problem.params, problem.num_functions, names=names) for _ in range(k)]
        teacher = [t.init(problem.params, problem.num_functions, names=names) for t in teachers]
        data = [problem.data for _ in range(k)]
        step = self._imitation_step(family, tuple(rates))
        T = self.config.unroll_length
        losses, final, skipped = [], math.nan, 0
        for j in range(num_steps // T):
            batches = problem.batches(j * T, T + 1)
            params, learner, teacher, data, finals, loss, grads, norm = step(params, learner, teacher, data, batches)
            if not (math.isfinite(float(loss)) and math.isfinite(float(norm))):
                skipped += 1
                self.consecutive_skips.assign_add(1)
                logging.warning("epoch %d (imitation), truncation %d: non-finite loss %s or gradient norm %s; "
                                "step skipped (%d in a row)", epoch + 1, j + 1, float(loss), float(norm),
                                int(self.consecutive_skips.numpy()))
                break
            self.consecutive_skips.assign(0)
            self._apply(grads)
            losses.append(float(loss))
            final = float(np.mean(finals.numpy()))
        problem.release()
        return EpochRecord(epoch, float(np.mean(losses)) if losses else math.nan, final, skipped, num_steps,
                           "imitation", num_steps * k)

    def _meta_epoch(self, epoch: int, num_steps: int) -> EpochRecord:
        """One meta-training epoch: `problems_per_epoch` problems (per replica), optimized side by
        side in truncations; each truncation's meta-gradient is averaged over them (and over
        replicas) before one Adam step on phi."""
        slots = [self._slot(epoch, j) for j in range(self.config.problems_per_epoch)]
        T = self.config.unroll_length
        meta_losses, finals, skipped = [], [], 0
        active = list(range(len(slots)))
        for k in range(num_steps // T):
            grads_sum, losses_k, finals_k = None, [], []
            for j in list(active):
                slot = slots[j]
                batches = self._per_replica(lambda r: slot["problems"][r].batches(k * T, T + 1))
                out = slot["step"](slot["params"], slot["state"], slot["data"], batches)
                slot["params"], slot["state"], slot["data"], final_loss, meta_loss, grads, norm = out
                if not (math.isfinite(float(meta_loss)) and math.isfinite(float(norm))):
                    # A NaN/Inf in the optimizee's loss or gradients, or in the meta-gradient: phi is
                    # not touched by it, the step is counted, and the diverged trajectory is abandoned.
                    skipped += 1
                    self.consecutive_skips.assign_add(1)
                    logging.warning("epoch %d, truncation %d: non-finite meta-loss %s or meta-gradient norm %s; "
                                    "meta-step skipped (%d in a row)", epoch + 1, k + 1, float(meta_loss),
                                    float(norm), int(self.consecutive_skips.numpy()))
                    active.remove(j)
                    continue
                grads_sum = grads if grads_sum is None else [a + b for a, b in zip(grads_sum, grads)]
                losses_k.append(float(meta_loss))
                finals_k.append(float(final_loss))
            if grads_sum is None:
                break
            self.consecutive_skips.assign(0)
            n = len(losses_k)
            self._apply(grads_sum if n == 1 else [g / n for g in grads_sum])
            meta_losses.append(float(np.mean(losses_k)))
            finals = finals_k
        for slot in slots:
            for problem in slot["problems"].values():
                problem.release()
        replicas = 1 if self.family.vectorized else self.num_replicas
        return EpochRecord(epoch, float(np.mean(meta_losses)) if meta_losses else math.nan,
                           float(np.mean(finals)) if finals else math.nan, skipped, num_steps, "meta",
                           num_steps * len(slots) * replicas)

    def _es_epoch(self, epoch: int, num_steps: int) -> EpochRecord:
        """One update of phi by `es_gradient`: pair j runs training problem epoch * es_pairs + j
        (the same problem, augmentation and batches for both signs) for the whole trajectory,
        scored by `trajectory_meta_loss`; phi is restored before the meta-optimizer's step."""
        cfg = self.config
        start = [np.array(v.numpy()) for v in self.phi]
        finals: list[float] = []

        def score(values: list[np.ndarray], j: int) -> float:
            for v, x in zip(self.phi, values):
                v.assign(x)
            index = epoch * cfg.es_pairs + j
            problem = self._augmented(self._train_problem(index), index, 0)
            curves, _ = run_problem(self.family, self.optimizer, problem, num_steps)
            finals.append(float(np.mean(curves[-1])))
            return trajectory_meta_loss(curves, cfg.weights, cfg.meta_loss)

        grads, scores = es_gradient(score, start, cfg.es_pairs, cfg.es_sigma,
                                    np.random.default_rng([cfg.seed, epoch, 2718]))
        for v, x in zip(self.phi, start):
            v.assign(x)
        finite = [(a + b) / 2 for a, b in scores if math.isfinite(a) and math.isfinite(b)]
        skipped = len(scores) - len(finite)
        if grads is None:
            self.consecutive_skips.assign_add(1)
            logging.warning("epoch %d: every ES trajectory diverged; phi not updated (%d in a row)", epoch + 1,
                            int(self.consecutive_skips.numpy()))
        else:
            self.consecutive_skips.assign(0)
            self._apply_es([tf.constant(g) for g in grads])
        finite_finals = [f for f in finals if math.isfinite(f)]
        return EpochRecord(epoch, float(np.mean(finite)) if finite else math.nan,
                           float(np.mean(finite_finals)) if finite_finals else math.nan, skipped, num_steps, "meta",
                           num_steps * 2 * cfg.es_pairs)

    def _slot(self, epoch: int, j: int) -> dict:
        """Problem j of the epoch on every replica, with its initial state and compiled truncation."""
        problems: dict[int, Any] = {}
        index = epoch * self.config.problems_per_epoch + j

        def problem_of(replica: int):
            if replica not in problems:
                problems[replica] = self._augmented(self._train_problem(index, replica), index, replica)
            return problems[replica]

        def state_of(replica: int):
            problem = problem_of(replica)
            return self.optimizer.init(problem.params, problem.num_functions, names=problem.param_names)

        params = self._per_replica(lambda r: problem_of(r).params)
        state = self._per_replica(state_of)
        data = self._per_replica(lambda r: problem_of(r).data)
        step = self._meta_step(next(iter(problems.values())).family or self.family)
        return {"problems": problems, "params": params, "state": state, "data": data, "step": step}

    def validate(self, num_steps: int | None = None) -> float:
        """Mean final loss of the current phi on the fixed validation problems, after `num_steps`
        (default: the current curriculum stage's validation horizon, else num_steps)."""
        b = self.config.meta_batch_size if self.family.vectorized else 1
        problems = sample_problems(self.family, "validation", self.config.seed, self.config.evaluation_epochs * b)
        horizon = num_steps or self.config.validation_steps(int(self.stage.numpy()))
        curves = run_trajectories(self.family, self.optimizer, problems, horizon)
        final = curves[-1]
        return float(np.mean(final)) if np.all(np.isfinite(final)) else math.inf

    def _save_best(self, value: float, epoch: int) -> None:
        self.best_validation.assign(value)
        self.best_epoch.assign(epoch)
        for b, v in zip(self.best_phi, self.phi):
            b.assign(v.value if hasattr(v, "value") else v)
        if self.save_path:
            saving.save_best_weights(self.save_path, self.best_phi)
            self._write_config(value, epoch)

    def restore(self) -> int:
        """Restores the latest checkpoint; returns the epoch to continue from (0 if none)."""
        latest = tf.train.latest_checkpoint(self._resume_dir) if self._resume_dir else None
        if not latest:
            return 0
        # Normalized through the config class, so a run saved before a setting existed (which
        # then had its default) still resumes.
        run_dir = os.path.dirname(self._resume_dir)
        saved = type(self.optimizer.config).from_dict(saving.read_config(run_dir)["optimizer"]).to_dict()
        if saved != self.optimizer.config.to_dict():
            raise UserError(f"cannot resume {run_dir}: it holds an optimizer with {saved}, "
                            f"but this run asks for {self.optimizer.config.to_dict()}")
        try:
            self._checkpoint.restore(latest).assert_existing_objects_matched()
        except (tf.errors.OpError, ValueError, AssertionError) as e:
            raise UserError(f"cannot resume from {latest}: it does not match this "
                            f"optimizer or is corrupt ({str(e).splitlines()[0]})") from None
        return int(self.epoch.numpy())

    def request_stop(self) -> None:
        """Asks `train` to checkpoint and stop after the current epoch (safe from a signal handler)."""
        self._stop_requested = True

    def train(self, resume: bool = False, on_epoch: Callable[[EpochRecord], None] | None = None) -> TrainResult:
        """Runs epochs up to `num_epochs` (or until a curriculum's last stage stops improving),
        validating, logging and checkpointing on their schedules (the small helpers below)."""
        cfg = self.config
        start = self.restore() if resume else 0
        if self.save_path:
            self._write_config(float(self.best_validation.numpy()), int(self.best_epoch.numpy()))
        writer = tf.summary.create_file_writer(os.path.join(self.save_path, "logs")) if self.save_path else None
        result = TrainResult(float(self.best_validation.numpy()), int(self.best_epoch.numpy()), 0, 0.0, 0)
        progress = _Progress(self, writer)
        t0 = time.time()
        if start >= cfg.num_epochs:
            logging.info("Nothing to do: checkpoint is at epoch %d of %d.", start, cfg.num_epochs)
        done = start
        if cfg.validate_start and start == 0:
            self._validate_and_select(0, result, writer)  # the starting phi is a candidate too
        for epoch in range(start, cfg.num_epochs):
            record = self.run_epoch(epoch)
            self.skipped.assign_add(record.skipped_steps)
            result.history.append(record)
            if on_epoch:
                on_epoch(record)
            done = epoch + 1
            progress.epoch(record)
            finished = False
            if done % cfg.evaluation_period == 0 or done == cfg.num_epochs:
                finished = self._validate_and_select(done, result, writer)
            if done % cfg.log_period == 0 or done == cfg.num_epochs or finished:
                progress.log(done, result)
            self.epoch.assign(done)
            self._checkpoint_if_due(done, finished, writer)
            if finished:
                result.finished_curriculum = True
                logging.info("epoch %d: the curriculum's last stage stopped improving; training ends", done)
                break
        if writer:
            writer.flush()
        result.best_validation = float(self.best_validation.numpy())
        result.best_epoch = int(self.best_epoch.numpy())
        result.epochs_run = max(done - start, 0)
        result.seconds = time.time() - t0
        result.skipped_steps = int(self.skipped.numpy())
        return result

    def _write_config(self, best: float, epoch: int) -> None:
        extra = {}
        if self.config.curriculum:
            stage = int(self.stage.numpy())
            extra["curriculum"] = {"stages": list(self.config.curriculum), "stage": stage,
                                   "num_steps": self.config.epoch_num_steps(0, stage),
                                   "validation_steps": self.config.validation_steps(stage)}
        if self._teacher_rates:
            extra["imitation_teachers"] = {str(k): groups[0][1] if self.config.imitation_tuning == "family" else
                                           dict(groups) for k, groups in self._teacher_rates.items()}
        saving.save_config(self.save_path, self.optimizer, {
            **self.metadata, **extra, "best_epoch": epoch,
            "best_validation_final_loss": best if math.isfinite(best) else None})

    def _validate_and_select(self, done: int, result: TrainResult, writer) -> bool:
        """One validation: keeps the best phi, moves the curriculum on; True when training is finished."""
        value = self.validate()
        result.validation.append((done, value))
        finished = False
        if self.config.curriculum:
            state = CurriculumState(self.config.schedule, int(self.stage.numpy()),
                                    float(self.best_validation.numpy()), int(self.stage_stalls.numpy()))
            improved, action = state.record(value, done - int(self.stage_start.numpy()))
            if improved:
                self._save_best(value, done)
            self.stage_stalls.assign(state.stalls)
            if action == CurriculumState.NEXT_STAGE:
                self._next_stage(state, done, result)
            finished = action == CurriculumState.DONE
        else:
            improved = value < float(self.best_validation.numpy())
            if improved:
                self._save_best(value, done)
        logging.info("epoch %d: validation final loss %.4g%s (best %.4g at epoch %d)", done, value,
                     " *" if improved else "", float(self.best_validation.numpy()), int(self.best_epoch.numpy()))
        if writer:
            with writer.as_default(step=done):
                tf.summary.scalar("validation_final_loss", value)
        return finished

    def _next_stage(self, state: CurriculumState, done: int, result: TrainResult) -> None:
        """Restores the stage's best phi and starts the next stage from it, on its own horizon."""
        for v, b in zip(self.phi, self.best_phi):
            v.assign(b)
        self.stage.assign(state.stage + 1)
        self.stage_start.assign(done)
        start_value = self.validate()
        state.advance(start_value)
        self.stage_stalls.assign(0)
        self._save_best(start_value, done)
        cfg = self.config
        result.stages.append((done, state.stage, cfg.epoch_num_steps(0, state.stage), cfg.validation_steps(state.stage),
                              start_value))
        logging.info("epoch %d: curriculum stage %d: %d-step trajectories, validated at %d steps (the best phi so "
                     "far scores %.4g there)", done, state.stage + 1, cfg.epoch_num_steps(0, state.stage),
                     cfg.validation_steps(state.stage), start_value)

    def _checkpoint_if_due(self, done: int, finished: bool, writer) -> None:
        cfg = self.config
        due = done % cfg.checkpoint_every == 0 or done == cfg.num_epochs or finished or self._stop_requested
        if self._manager and due:
            self._manager.save(checkpoint_number=done)
        if self._stop_requested:
            if writer:
                writer.flush()
            raise TrainingInterrupted(done, self._manager.latest_checkpoint if self._manager else None)
        if int(self.consecutive_skips.numpy()) >= cfg.max_consecutive_skips:
            kept = self._manager.latest_checkpoint if self._manager else None
            raise TrainingDiverged(
                f"{int(self.consecutive_skips.numpy())} consecutive meta-steps had a non-finite loss or "
                f"gradient (epoch {done}); stopping. phi was never updated from them"
                + (f"; the last good checkpoint is {kept}" if kept else "")
                + ". Try a lower --learning_rate, a smaller --output_scale or --max_update.")


class _Progress:
    """Progress lines (meta-loss, final loss, optimizee steps/s, ETA) and TensorBoard scalars."""

    def __init__(self, trainer: MetaTrainer, writer):
        self.trainer, self.writer = trainer, writer
        self.window_start, self.window = time.time(), []

    def epoch(self, record: EpochRecord) -> None:
        self.window.append(record)
        if self.writer:
            with self.writer.as_default(step=record.epoch + 1):
                tf.summary.scalar("meta_loss" if record.kind == "meta" else "imitation_loss", record.meta_loss)
                tf.summary.scalar("final_loss", record.final_loss)

    def log(self, done: int, result: TrainResult) -> None:
        cfg = self.trainer.config
        steps = sum(r.optimizee_steps for r in self.window)
        elapsed = time.time() - self.window_start
        rate = steps / max(elapsed, 1e-9)
        remaining = (cfg.num_epochs - done) * (steps / max(len(self.window), 1))
        meta = [r.meta_loss for r in self.window if r.kind == "meta"]
        imitation = [r.meta_loss for r in self.window if r.kind == "imitation"]
        logging.info("epoch %d/%d  meta-loss %.4g  final loss %.4g%s  %.0f steps/s  ETA %s", done, cfg.num_epochs,
                     np.nanmean(meta) if meta else math.nan, np.nanmean([r.final_loss for r in self.window]),
                     f"  imitation loss {np.nanmean(imitation):.4g} ({len(imitation)} epochs)" if imitation else "",
                     rate, _format_seconds(remaining / max(rate, 1e-9)))
        if self.writer:
            with self.writer.as_default(step=done):
                tf.summary.scalar("steps_per_second", rate)
        self.window_start, self.window = time.time(), []

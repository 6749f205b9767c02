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
from l2l_tf.errors import UserError
from l2l_tf.evaluation import run_trajectories, sample_problems
from l2l_tf.optimizers.base import Optimizer
from l2l_tf.problems.base import ProblemFamily
from l2l_tf.unroll import run_steps, run_steps_recomputed


@dataclasses.dataclass
class MetaTrainConfig:
    """Meta-training settings (the binaries' flags map onto these one to one)."""

    num_epochs: int = 1000
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
    #: > 0: recompute the unroll's activations in segments of this many steps in the backward
    #: pass (gradient checkpointing: same meta-gradient, memory ~ T/k + k steps instead of T).
    checkpoint_segment: int = 0
    #: Compile each truncation with XLA. Measured on the 2-core CPU dev machine it is 3-6x
    #: SLOWER (bin/l2l_benchmark.py, RESULTS.md), so it is off; it is there for GPUs.
    jit_compile: bool = False

    def __post_init__(self):
        positive = ("num_epochs", "num_steps", "unroll_length", "meta_batch_size", "evaluation_period",
                    "evaluation_epochs", "checkpoint_every", "log_period", "max_consecutive_skips")
        for name in positive:
            if int(getattr(self, name)) <= 0:
                raise UserError(f"{name} must be a positive integer, got {getattr(self, name)}")
        if self.num_steps % self.unroll_length:
            raise UserError(f"num_steps ({self.num_steps}) must be a multiple of unroll_length ({self.unroll_length})")
        if not (self.learning_rate > 0 and math.isfinite(self.learning_rate)):
            raise UserError(f"learning_rate must be a positive number, got {self.learning_rate}")
        if not 0 <= int(self.checkpoint_segment) <= self.unroll_length:
            raise UserError(f"checkpoint_segment must be between 0 (off) and unroll_length ({self.unroll_length}), "
                            f"got {self.checkpoint_segment}")
        if not self.clip_norm > 0:
            raise UserError(f"clip_norm must be > 0, got {self.clip_norm}")
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


@dataclasses.dataclass
class EpochRecord:
    epoch: int
    meta_loss: float
    final_loss: float
    skipped_steps: int


@dataclasses.dataclass
class TrainResult:
    best_validation: float
    best_epoch: int
    epochs_run: int
    seconds: float
    skipped_steps: int
    history: list = dataclasses.field(default_factory=list)
    validation: list = dataclasses.field(default_factory=list)


class TrainingDiverged(UserError):
    """Too many consecutive meta-steps were non-finite; the last good checkpoint is kept."""


class TrainingInterrupted(Exception):
    """A stop was requested (SIGINT/SIGTERM); a checkpoint of `epoch` was written first."""

    def __init__(self, epoch: int, checkpoint: str | None):
        super().__init__(f"interrupted at epoch {epoch}" + (f"; checkpoint {checkpoint}" if checkpoint else ""))
        self.epoch, self.checkpoint = epoch, checkpoint


def meta_gradient(loss_fn, optimizer: Optimizer, params, state, data, batches, weights,
                  second_derivatives: bool = False, checkpoint_segment: int = 0, relative: bool = False):
    """One truncation: T = len(weights) steps, the meta-loss and its gradient w.r.t. phi.

    meta-loss = sum_{t=1..T} w_t * mean over functions of f(theta_t). theta_0 and the
    incoming state are constants (the truncation), so nothing flows to earlier unrolls.

    `loss_fn` is a family's `loss_and_state`; the problem data it evolves (batch-norm
    statistics) comes back as data_T, for the next truncation.

    `relative`: each function's f(theta_t) is divided by its (constant) f(theta_0), see
    `MetaTrainConfig.relative_meta_loss`.

    `checkpoint_segment` > 0 recomputes the unroll's activations in segments of that many
    steps during the backward pass (`run_steps_recomputed`): the same values in less memory.

    Returns (theta_T, state_T, data_T, losses [T+1, functions], meta-loss, gradients w.r.t. phi).
    """
    weights = tf.convert_to_tensor(weights, tf.float32)
    phi = optimizer.meta_variables
    num_steps = int(weights.shape[0])
    state = optimizer.pack_state(state, params)  # e.g. the LSTM's per-tensor states joined once
    with tf.GradientTape() as tape:
        if checkpoint_segment:
            params, state, data, losses = run_steps_recomputed(loss_fn, optimizer, params, state, data, batches,
                                                               num_steps, checkpoint_segment, second_derivatives)
        else:
            params, state, data, losses = run_steps(loss_fn, optimizer, params, state, data, batches, num_steps,
                                                    second_derivatives)
        later = losses[1:] / tf.stop_gradient(tf.maximum(losses[0], 1e-12)) if relative else losses[1:]
        per_step = tf.reduce_mean(later, axis=1)
        meta_loss = tf.reduce_sum(weights * per_step)
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
        self._checkpoint = tf.train.Checkpoint(
            phi=saving.tf_variables(self.phi),
            meta_optimizer=saving.tf_variables(self.meta_optimizer.variables),
            epoch=self.epoch, best_validation=self.best_validation, best_epoch=self.best_epoch,
            skipped=self.skipped, consecutive_skips=self.consecutive_skips, best_phi=self.best_phi)
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
                                     cfg.relative_meta_loss)

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

    def _apply_fn(self, grads):
        clipped, _ = tf.clip_by_global_norm(grads, self.config.clip_norm)
        self.meta_optimizer.apply_gradients(zip(clipped, self.phi))

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

    def _per_replica(self, fn):
        """The value `fn(replica id)` on every local replica (plain values with one replica)."""
        return self.strategy.experimental_distribute_values_from_function(
            lambda ctx: fn(ctx.replica_id_in_sync_group))

    def _run_epoch(self, epoch: int) -> EpochRecord:
        problems: dict[int, Any] = {}

        def problem_of(replica: int):
            if replica not in problems:
                problems[replica] = self._train_problem(epoch, replica)
            return problems[replica]

        def state_of(replica: int):
            problem = problem_of(replica)
            return self.optimizer.init(problem.params, problem.num_functions, names=problem.param_names)

        params = self._per_replica(lambda r: problem_of(r).params)
        state = self._per_replica(state_of)
        data = self._per_replica(lambda r: problem_of(r).data)
        T = self.config.unroll_length
        meta_step = self._meta_step(next(iter(problems.values())).family or self.family)
        meta_losses, final, skipped = [], math.nan, 0
        for k in range(self.config.num_steps // T):
            batches = self._per_replica(lambda r: problem_of(r).batches(k * T, T + 1))
            params, state, data, final_loss, meta_loss, grads, norm = meta_step(params, state, data, batches)
            if not (math.isfinite(float(meta_loss)) and math.isfinite(float(norm))):
                # A NaN/Inf in the optimizee's loss or gradients, or in the meta-gradient: phi is
                # not touched, the step is counted, and the diverged trajectory is abandoned.
                skipped += 1
                self.consecutive_skips.assign_add(1)
                logging.warning("epoch %d, truncation %d: non-finite meta-loss %s or meta-gradient norm %s; "
                                "meta-step skipped (%d in a row)", epoch + 1, k + 1, float(meta_loss), float(norm),
                                int(self.consecutive_skips.numpy()))
                break
            self.consecutive_skips.assign(0)
            self._apply(grads)
            meta_losses.append(float(meta_loss))
            final = float(final_loss)
        for problem in problems.values():
            problem.release()
        return EpochRecord(epoch, float(np.mean(meta_losses)) if meta_losses else math.nan, final, skipped)

    def validate(self) -> float:
        """Mean final loss of the current phi on the fixed validation problems."""
        b = self.config.meta_batch_size if self.family.vectorized else 1
        problems = sample_problems(self.family, "validation", self.config.seed, self.config.evaluation_epochs * b)
        curves = run_trajectories(self.family, self.optimizer, problems, self.config.num_steps)
        final = curves[-1]
        return float(np.mean(final)) if np.all(np.isfinite(final)) else math.inf

    def _save_best(self, value: float, epoch: int) -> None:
        self.best_validation.assign(value)
        self.best_epoch.assign(epoch)
        for b, v in zip(self.best_phi, self.phi):
            b.assign(v.value if hasattr(v, "value") else v)
        if self.save_path:
            saving.save_best_weights(self.save_path, self.best_phi)
            saving.save_config(self.save_path, self.optimizer, {
                **self.metadata, "best_epoch": epoch, "best_validation_final_loss": value})

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
        cfg = self.config
        start = self.restore() if resume else 0
        if self.save_path:
            best = float(self.best_validation.numpy())
            saving.save_config(self.save_path, self.optimizer, {
                **self.metadata, "best_epoch": int(self.best_epoch.numpy()),
                "best_validation_final_loss": best if math.isfinite(best) else None})
        writer = tf.summary.create_file_writer(os.path.join(self.save_path, "logs")) if self.save_path else None
        result = TrainResult(float(self.best_validation.numpy()), int(self.best_epoch.numpy()), 0, 0.0, 0)
        t0 = time.time()
        window_start, window_epochs = t0, 0
        steps_per_epoch = cfg.num_steps * (1 if self.family.vectorized else self.num_replicas)  # trajectories
        if start >= cfg.num_epochs:
            logging.info("Nothing to do: checkpoint is at epoch %d of %d.", start, cfg.num_epochs)
        for epoch in range(start, cfg.num_epochs):
            record = self._run_epoch(epoch)
            self.skipped.assign_add(record.skipped_steps)
            result.history.append(record)
            window_epochs += 1
            if on_epoch:
                on_epoch(record)
            done = epoch + 1
            if writer:
                with writer.as_default(step=done):
                    tf.summary.scalar("meta_loss", record.meta_loss)
                    tf.summary.scalar("final_loss", record.final_loss)
            if done % cfg.evaluation_period == 0 or done == cfg.num_epochs:
                value = self.validate()
                result.validation.append((done, value))
                improved = value < float(self.best_validation.numpy())
                if improved:
                    self._save_best(value, done)
                logging.info("epoch %d: validation final loss %.4g%s (best %.4g at epoch %d)", done, value,
                             " *" if improved else "", float(self.best_validation.numpy()), int(self.best_epoch.numpy()))
                if writer:
                    with writer.as_default(step=done):
                        tf.summary.scalar("validation_final_loss", value)
            if done % cfg.log_period == 0 or done == cfg.num_epochs:
                elapsed = time.time() - window_start
                rate = window_epochs * steps_per_epoch / max(elapsed, 1e-9)
                eta = (cfg.num_epochs - done) * steps_per_epoch / max(rate, 1e-9)
                recent = result.history[-window_epochs:]
                logging.info("epoch %d/%d  meta-loss %.4g  final loss %.4g  %.0f steps/s  ETA %s",
                             done, cfg.num_epochs, np.nanmean([r.meta_loss for r in recent]),
                             np.nanmean([r.final_loss for r in recent]), rate, _format_seconds(eta))
                if writer:
                    with writer.as_default(step=done):
                        tf.summary.scalar("steps_per_second", rate)
                window_start, window_epochs = time.time(), 0
            self.epoch.assign(done)
            if self._manager and (done % cfg.checkpoint_every == 0 or done == cfg.num_epochs or self._stop_requested):
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
        if writer:
            writer.flush()
        result.best_validation = float(self.best_validation.numpy())
        result.best_epoch = int(self.best_epoch.numpy())
        result.epochs_run = cfg.num_epochs - start if start < cfg.num_epochs else 0
        result.seconds = time.time() - t0
        result.skipped_steps = int(self.skipped.numpy())
        return result

"""Meta-trains a coordinatewise LSTM optimizer on a problem family.

    python bin/l2l_train.py --problem=quadratic --save_path=runs/quadratic

Writes the trained optimizer (optimizer.json + best/ weights), resumable checkpoints and
TensorBoard logs under --save_path; `l2l_evaluate --path=<save_path>` evaluates it.
"""
from __future__ import annotations

import dataclasses
import json
import os
import resource
import signal
import sys
import time
from typing import Sequence


from absl import flags, logging

from l2l_tf import cli, files
from l2l_tf.cli import recipes
from l2l_tf.cli import problem_flags
from l2l_tf.errors import UserError
from l2l_tf.optimizers import registry as architectures
from l2l_tf.problems import problem_names
from l2l_tf.problems.registry import family_spec

FLAGS = flags.FLAGS
flags.DEFINE_enum("problem", "quadratic", problem_names(), "Problem family to meta-train on.")
flags.DEFINE_enum("recipe", "default", list(recipes.RECIPES), "default: the best recipe measured for --problem "
                  "(l2l_tf/cli/recipes.py, RESULTS.md); paper: Andrychowicz et al. 2016 exactly (the flags' own "
                  "defaults). Flags given on the command line override the recipe.")
flags.DEFINE_string("save_path", None, "Directory for the trained optimizer, checkpoints and logs.", required=True)
flags.DEFINE_integer("num_epochs", 2000, "Training problems (epochs) to meta-train on.", lower_bound=1)
flags.DEFINE_integer("num_steps", 100, "Optimizee steps per training trajectory.", lower_bound=1)
flags.DEFINE_integer("unroll_length", 20, "Steps per truncated unroll (meta-gradient horizon).", lower_bound=1)
flags.DEFINE_float("learning_rate", 1e-3, "Adam learning rate on the meta-parameters.", lower_bound=1e-12)
flags.DEFINE_integer("meta_batch_size", 128, "Independent functions per training problem (vectorized families).",
                     lower_bound=1)
flags.DEFINE_float("clip_norm", 1.0, "Global-norm clipping of the meta-gradient.", lower_bound=1e-12)
flags.DEFINE_string("loss_weights", "", "Comma-separated w_1..w_T of the meta-loss (default: all ones), or 'ramp': "
                    "w_t = 2t / (T + 1), rising linearly over each unroll of T steps (mean 1), so the steps that "
                    "decide an unroll's final loss weigh most, or 'last:K': T / K on the last K steps of each unroll "
                    "and 0 before (mean 1): only the end of the trajectory, which evaluations measure, counts.")
flags.DEFINE_bool("relative_meta_loss", False, "Divide each function's losses in a truncation by its loss at the "
                  "truncation's start, so late truncations weigh as much as the first (= --meta_loss=relative).")
flags.DEFINE_enum("meta_loss", "sum", ["sum", "relative", "log_ratio"], "The meta-loss of a truncation: sum_t w_t f_t "
                  "(the paper), f_t / f_0, or log f_t - log f_0 (every step's relative progress counts alike).")
flags.DEFINE_string("num_steps_range", "", "LOW,HIGH: draw every epoch's trajectory length from the multiples of "
                    "--unroll_length in [LOW, HIGH] instead of --num_steps.")
flags.DEFINE_string("curriculum", "", "Trajectory lengths of a validation-gated curriculum, e.g. 100,200,500,1000: "
                    "each stage validated on the next stage's horizon; when it stops improving its best phi is "
                    "restored and the next stage starts (overrides --num_steps).")
flags.DEFINE_list("curriculum_epochs", [], "Per --curriculum stage, the epochs it may train at most (0: until "
                  "--curriculum_patience ends it), e.g. 200,0.")
flags.DEFINE_integer("curriculum_patience", 2, "Validations without a new best that end a curriculum stage.",
                     lower_bound=1)
flags.DEFINE_list("imitation_teachers", [], "Analytic teachers imitated in some epochs: nag, adam, rmsprop, sgd, "
                  "each optionally NAME:LEARNING_RATE (else tuned on problems of their own).")
flags.DEFINE_list("imitation_ratio", ["0"], "Probability that an epoch imitates the teachers: one value, or one per "
                  "curriculum stage.")
flags.DEFINE_enum("imitation_mode", "mean", ["mean", "max"], "Imitation loss over several teachers: their mean, or "
                  "the worst-imitated one (min-max amalgamation).")
flags.DEFINE_enum("imitation_tuning", "family", ["family", "member", "member_best"], "Where untuned teachers' rates "
                  "are tuned: on the whole family; per member of a mixture (--problem=mnist_mix, general); or per "
                  "member, imitating there only the teacher of lowest tuned loss.")
flags.DEFINE_float("param_scale_range", 0.0, "Random scaling of training problems: theta = c * theta', "
                   "c = exp(U(-r, r)) per coordinate (0: off; RNNprop used 3).", lower_bound=0.0, upper_bound=10.0)
flags.DEFINE_list("meta_gradient", ["backprop"], "How phi's gradient is estimated: backprop through each truncation "
                  "(the paper), or es: antithetic evolution strategies on whole trajectories (no truncation bias, no "
                  "backpropagation through long unrolls; --es_pairs, --es_sigma, --es_learning_rate). One value, or "
                  "one per --curriculum stage, e.g. backprop,es.")
flags.DEFINE_integer("es_pairs", 4, "--meta_gradient=es: antithetic pairs of trajectories per update of phi.",
                     lower_bound=1)
flags.DEFINE_float("es_sigma", 0.01, "--meta_gradient=es: standard deviation of phi's perturbations.",
                   lower_bound=1e-12)
flags.DEFINE_float("es_learning_rate", 1e-3, "--meta_gradient=es: learning rate of ES's own Adam on phi.",
                   lower_bound=1e-12)
flags.DEFINE_bool("validate_start", False, "Score the starting phi before training, so a fine-tune keeps it unless "
                  "training beats it on validation (on by default with --init_from).")
flags.DEFINE_integer("problems_per_epoch", 1, "MNIST, CIFAR, neural art: problems per epoch, side by side, each "
                     "truncation's meta-gradient their mean (vectorized families use --meta_batch_size).", lower_bound=1)
flags.DEFINE_integer("convex_term", 0, "Coordinates of a simple convex term added to every training problem "
                     "(0: off; RNNprop used 20).", lower_bound=0)
flags.DEFINE_bool("second_derivatives", False, "Backpropagate through optimizee gradients (no stop_gradient).")
flags.DEFINE_integer("evaluation_period", 100, "Epochs between validations (early stopping).", lower_bound=1)
flags.DEFINE_integer("evaluation_epochs", 2, "Validation problems (meta-batches) per validation.", lower_bound=1)
flags.DEFINE_integer("checkpoint_every", 100, "Epochs between resumable checkpoints.", lower_bound=1)
flags.DEFINE_integer("log_period", 50, "Epochs between progress lines.", lower_bound=1)
flags.DEFINE_integer("seed", 0, "Seed of phi's initialization and of the training/validation problems.",
                     lower_bound=0)
flags.DEFINE_bool("resume", False, "Continue from the latest checkpoint under --save_path.")
flags.DEFINE_bool("deterministic", False, "Enable TensorFlow op determinism (bit-identical reruns).")
flags.DEFINE_string("lstm_layers", "20,20", "Units of each stacked LSTM layer.")
flags.DEFINE_enum("preprocess", "log_sign", ["log_sign", "none", "adam"], "Gradient features: the paper's "
                  "log-magnitude/sign, the raw gradient, or Adam-normalized g/sqrt(v) and m/sqrt(v) (RNNprop) with "
                  "their running moments in the optimizer state.")
flags.DEFINE_float("preprocess_p", 10.0, "p of the log/sign preprocessing.", lower_bound=1e-6)
flags.DEFINE_list("momentum_betas", ["0.95"], "--preprocess=adam: timescales of the momentum features (several: "
                  "momentum at several timescales, e.g. 0.5,0.9,0.99,0.999).")
flags.DEFINE_float("rms_beta", 0.95, "--preprocess=adam: timescale of the second moment.", lower_bound=1e-6,
                   upper_bound=1 - 1e-9)
flags.DEFINE_integer("input_layer", 0, "Units of a dense ELU layer between the features and the LSTM (0: none).",
                     lower_bound=0)
flags.DEFINE_bool("magnitude_feature", False, "--preprocess=adam: also feed the gradient's scale, "
                  "max(0, 1 + log(sqrt(v)) / --preprocess_p), so the LSTM can make steps proportional to the gradient "
                  "(NAG's) and not only Adam-like ones.")
flags.DEFINE_bool("time_features", False, "--preprocess=adam: also feed 1 - beta^t of every moment timescale, a "
                  "saturating clock with which the LSTM can follow a learning-rate schedule.")
flags.DEFINE_bool("progress_feature", False, "--preprocess=adam: also feed the fraction of the trajectory done, "
                  "min(t / T, 1); evaluations and meta-training tell the optimizer T (its number of steps).")
flags.DEFINE_enum("output", "linear", ["linear", "tanh", "momentum"], "The LSTM's read-out: linear (the paper), "
                  "output_scale * tanh (no coordinate ever moves by more than --output_scale), or momentum: a learned "
                  "per-coordinate rescaling of NAG's update at --base_learning_rate/--base_momentum plus "
                  "output_scale * tanh (needs --preprocess=adam; the untrained network is that NAG).")
flags.DEFINE_float("base_learning_rate", 0.0, "--output=momentum: the learning rate of the NAG update the LSTM "
                   "rescales (e.g. tuned NAG's on the training problems).", lower_bound=0.0)
flags.DEFINE_enum("base_schedule", "constant", ["constant", "cosine"], "--output=momentum: the base rate's "
                  "schedule: constant, or cosine from --base_learning_rate to a tenth of it over the trajectory "
                  "(needs --progress_feature, which tells the optimizer the horizon).")
flags.DEFINE_float("base_warmup", 0.0, "--output=momentum: warm the base rate up linearly over this fraction of "
                   "the trajectory (0: none; needs --progress_feature).", lower_bound=0.0, upper_bound=0.99)
flags.DEFINE_float("base_momentum", 0.9, "--output=momentum: NAG's momentum; must be one of --momentum_betas.",
                   lower_bound=0.0, upper_bound=1 - 1e-9)
flags.DEFINE_bool("zero_update_at_zero_gradient", False, "No bias where it would move a coordinate whose gradients "
                  "were all zero (needs --preprocess=adam): frozen or unused parameters stay exactly put.")
flags.DEFINE_float("output_scale", 0.1, "Scale of the LSTM's output.", lower_bound=1e-12)
flags.DEFINE_enum("optimizer_architecture", "lstm", architectures.cli_names(),
                  "Learned optimizer: the coordinatewise LSTM, LSTM+GAC, or NTM-BFGS (paper's Appendix D).")
flags.DEFINE_integer("num_gac", 5, "lstm_gac/ntm_bfgs: global averaging cells per layer.", lower_bound=1)
flags.DEFINE_enum("memory", "lbfgs", ["lbfgs", "full"], "ntm_bfgs: last-k ring buffer (O(kn)) or dense (O(n^2)).")
flags.DEFINE_integer("memory_slots", 10, "ntm_bfgs with --memory=lbfgs: k, the writes kept.", lower_bound=1)
flags.DEFINE_string("param_groups", "", "Separate LSTMs by parameter name: NAME=REGEX;NAME=REGEX (first match "
                    "wins; every parameter must match one), e.g. 'conv=^conv;fc=.*' for CIFAR. Empty: one LSTM.")
flags.DEFINE_float("max_update", 0.0, "Clip each proposed coordinate update to +-this (0: off).", lower_bound=0.0)
flags.DEFINE_enum("strategy", "default", ["default", "mirrored", "multi_worker"],
                  "tf.distribute strategy: one replica; MirroredStrategy over this machine's devices (GPUs, or "
                  "--cpu_replicas virtual CPUs); MultiWorkerMirroredStrategy over the workers in $TF_CONFIG. "
                  "Each replica runs its own problems of the meta-batch and the meta-gradient is all-reduced.")
flags.DEFINE_integer("cpu_replicas", 0, "With --strategy=mirrored: split the CPU into this many virtual "
                     "devices, one replica each (0: use the physical devices).", lower_bound=0)
flags.DEFINE_integer("max_consecutive_skips", 20, "Stop after this many non-finite meta-steps in a row.",
                     lower_bound=1)
flags.DEFINE_string("gradient_checkpointing", "off", "Recompute the unroll's activations in the backward pass "
                    "instead of keeping them: 'off', 'sqrt' (segments of ceil(sqrt(unroll_length)) steps: memory "
                    "grows like sqrt(T)), or a segment length in steps. Same meta-gradient, ~1/3 more time.")
flags.DEFINE_bool("jit_compile", False, "Compile each truncation with XLA (slower on CPU; for GPUs).")
flags.DEFINE_string("init_from", "", "Start phi from this trained optimizer (a trained directory, an export or a "
                    "bundled name such as 'mnist') instead of a random draw: fine-tuning, e.g. with a lower "
                    "--learning_rate or a new problem family. Its architecture is used as saved.")
cli.validate_flags_nonempty("save_path")
cli.validate_parsed("lstm_layers", lambda v: cli.parse_int_list(v, "lstm_layers"))
cli.validate_parsed("loss_weights", lambda v: v.strip() == RAMP or _last_count(v) is not None
                    or cli.parse_float_list(v, "loss_weights"))
cli.validate_parsed("curriculum", lambda v: cli.parse_int_list(v, "curriculum"))
cli.validate_output_dirs("save_path")


EXIT_INTERRUPTED = 130


def _stop_on_signals(trainer) -> None:
    """SIGINT/SIGTERM: finish the current epoch, write a checkpoint, exit; a second signal exits at once."""

    def handler(signum, frame):
        del frame
        if getattr(handler, "seen", False):
            raise KeyboardInterrupt
        handler.seen = True
        logging.warning("received %s: writing a checkpoint after this epoch, then stopping",
                        signal.Signals(signum).name)
        trainer.request_stop()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)




def architecture_settings() -> dict:
    """Config fields of the chosen architecture (GAC and memory settings only where they apply)."""
    arch = architectures.from_cli(FLAGS.optimizer_architecture).name
    settings = {"architecture": arch}
    if arch != "coordinatewise_lstm":
        settings["num_gac"] = FLAGS.num_gac
    if arch == "ntm_bfgs":
        settings.update(memory=FLAGS.memory, memory_slots=FLAGS.memory_slots)
    return settings


def _pair(text: str, name: str) -> tuple[int, int] | None:
    if not text.strip():
        return None
    values = cli.parse_int_list(text, name)
    if len(values) != 2:
        raise UserError(f"--{name} must be LOW,HIGH, got {text!r}")
    return values


#: Flags that set the architecture; with --init_from it is the loaded optimizer's.
ARCHITECTURE_FLAGS = ("lstm_layers", "preprocess", "preprocess_p", "output_scale", "max_update",
                      "optimizer_architecture", "num_gac", "memory", "memory_slots", "param_groups", "momentum_betas",
                      "rms_beta", "input_layer", "output", "zero_update_at_zero_gradient", "magnitude_feature",
                      "time_features", "progress_feature", "base_learning_rate", "base_momentum",
                      "base_schedule", "base_warmup")


def initial_optimizer(opt_config):
    """phi's starting point: a random draw of `opt_config`, or the trained optimizer of --init_from.

    A warm start takes the architecture from what it loads, so an architecture flag given
    beside it would be silently ignored: that is refused instead.
    """
    if not FLAGS.init_from:
        return architectures.make(opt_config, seed=FLAGS.seed)
    given = [f"--{name}" for name in ARCHITECTURE_FLAGS if FLAGS[name].present]
    if given:
        raise UserError(f"--init_from takes the architecture from {FLAGS.init_from}; drop {', '.join(given)}")
    from l2l_tf import loading

    optimizer, info = loading.load_with_info(FLAGS.init_from)
    logging.info("phi starts from %s (%s)", info["source"].describe(), optimizer.config.to_dict())
    return optimizer


def check_imitation_tuning() -> None:
    """Per-member teacher tuning needs teachers and a mixture: refused before TensorFlow loads."""
    if FLAGS.imitation_tuning == "family":
        return
    if not FLAGS.imitation_teachers:
        raise UserError(f"--imitation_tuning={FLAGS.imitation_tuning} tunes imitation teachers; "
                        "give --imitation_teachers")
    if not family_spec(FLAGS.problem).mixture:
        mixtures = [name for name in problem_names() if family_spec(name).mixture]
        raise UserError(f"--imitation_tuning={FLAGS.imitation_tuning} needs a mixture of problem families "
                        f"({', '.join(mixtures)}); --problem={FLAGS.problem} is one family")


def make_strategy():
    """The --strategy, built before TensorFlow initializes its devices (None: the default).

    Its flags are checked before TensorFlow loads, so a bad combination is refused at once."""
    if FLAGS.cpu_replicas and FLAGS.strategy != "mirrored":
        raise UserError("--cpu_replicas applies to --strategy=mirrored")
    if FLAGS.strategy == "multi_worker" and not os.environ.get("TF_CONFIG"):
        raise UserError("--strategy=multi_worker needs $TF_CONFIG describing the cluster and this worker's task")
    if FLAGS.strategy == "default":
        return None
    import tensorflow as tf

    if FLAGS.strategy == "mirrored":
        if FLAGS.cpu_replicas:
            cpu = tf.config.list_physical_devices("CPU")[0]
            tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * FLAGS.cpu_replicas)
            return tf.distribute.MirroredStrategy([f"/cpu:{i}" for i in range(FLAGS.cpu_replicas)])
        return tf.distribute.MirroredStrategy()
    try:
        config = json.loads(os.environ["TF_CONFIG"])
        config["cluster"], config["task"]["type"], config["task"]["index"]  # noqa: B018 - presence check
    except (ValueError, KeyError, TypeError):
        raise UserError("$TF_CONFIG must be JSON with 'cluster' and 'task' {type, index}") from None
    return tf.distribute.MultiWorkerMirroredStrategy()


#: --loss_weights' keyword for linearly rising weights.
RAMP = "ramp"
#: --loss_weights' prefix of "last:K", weights on the last K steps of each unroll only.
LAST = "last:"


def _last_count(text: str) -> int | None:
    """K of a --loss_weights of the form "last:K" (digits only), else None."""
    text = text.strip()
    count = text[len(LAST):]
    return int(count) if text.startswith(LAST) and count.isdigit() else None


def loss_weights_from_flag(text: str, unroll_length: int) -> Sequence[float] | None:
    """--loss_weights as numbers: None (all ones) when empty, 2t / (T + 1) for t = 1..T with "ramp",
    T / K on the last K steps of the T and 0 before with "last:K"."""
    text = text.strip()
    if not text:
        return None
    if text == RAMP:
        return [2.0 * t / (unroll_length + 1) for t in range(1, unroll_length + 1)]
    if text.startswith(LAST):
        k = _last_count(text)
        if k is None or not 1 <= k <= unroll_length:
            raise UserError(f"--loss_weights=last:K needs K from 1 to --unroll_length ({unroll_length}), got {text!r}")
        return [0.0] * (unroll_length - k) + [unroll_length / k] * k
    return cli.parse_float_list(text, "loss_weights")


def _budgets(items: list[str]) -> tuple[int, ...]:
    """--curriculum_epochs: integers >= 0 (0: no budget)."""
    try:
        budgets = tuple(int(v) for v in items if v.strip())
    except ValueError:
        budgets = (-1,)
    if any(b < 0 for b in budgets):
        raise UserError(f"--curriculum_epochs must list integers >= 0, got {','.join(items)!r}")
    return budgets


def meta_config_from_flags(values):
    """The MetaTrainConfig the flags describe: each flag is the field of the same name."""
    from l2l_tf.meta import MetaTrainConfig

    parsed = {
        "loss_weights": loss_weights_from_flag(values.loss_weights, values.unroll_length),
        "num_steps_range": _pair(values.num_steps_range, "num_steps_range"),
        "curriculum": cli.parse_int_list(values.curriculum, "curriculum") if values.curriculum else (),
        "imitation_teachers": tuple(values.imitation_teachers),
        "imitation_ratio": cli.parse_float_list(",".join(values.imitation_ratio), "imitation_ratio"),
        "meta_gradient": tuple(values.meta_gradient),
        "curriculum_epochs": _budgets(values.curriculum_epochs),
    }
    fields = [f.name for f in dataclasses.fields(MetaTrainConfig)]
    return MetaTrainConfig(**{name: parsed[name] if name in parsed else values[name].value for name in fields})


def optimizer_config_from_flags(values):
    """The learned optimizer's config (an `LSTMOptimizerConfig`, or a `GroupedConfig` of one) the
    architecture flags describe."""
    from l2l_tf.optimizers import LSTMOptimizerConfig

    config = LSTMOptimizerConfig(layers=cli.parse_int_list(values.lstm_layers, "lstm_layers"),
                                 preprocess=values.preprocess, preprocess_p=values.preprocess_p,
                                 output_scale=values.output_scale, max_update=values.max_update,
                                 momentum_betas=cli.parse_float_list(",".join(values.momentum_betas), "momentum_betas"),
                                 rms_beta=values.rms_beta, input_layer=values.input_layer, output=values.output,
                                 zero_update_at_zero_gradient=values.zero_update_at_zero_gradient,
                                 magnitude_feature=values.magnitude_feature, time_features=values.time_features,
                                 progress_feature=values.progress_feature,
                                 base_learning_rate=values.base_learning_rate, base_momentum=values.base_momentum,
                                 base_schedule=values.base_schedule, base_warmup=values.base_warmup,
                                 **architecture_settings())
    if values.param_groups:
        from l2l_tf.optimizers.grouped import GroupedConfig, parse_groups
        config = GroupedConfig(parse_groups(values.param_groups), config)
    return config


def main(argv):
    del argv
    applied = recipes.apply(FLAGS, FLAGS.recipe, FLAGS.problem)
    if applied:
        logging.info("recipe %r for %s: %s", FLAGS.recipe, FLAGS.problem,
                     " ".join(f"--{k}={','.join(map(str, v)) if isinstance(v, list) else v}" for k, v in applied.items()))
    problem_flags.check_family_flags(FLAGS.problem)
    check_imitation_tuning()
    save_path = FLAGS.save_path
    has_run = os.path.isdir(os.path.join(save_path, "checkpoints")) and os.listdir(os.path.join(save_path, "checkpoints"))
    if has_run and not FLAGS.resume:
        raise UserError(f"{save_path} already holds a training run; pass --resume to continue it "
                        "or choose another --save_path")
    strategy = make_strategy()
    import keras
    import tensorflow as tf

    from l2l_tf.meta import MetaTrainer, TrainingInterrupted

    if FLAGS.init_from and not FLAGS["validate_start"].present:
        FLAGS.validate_start = True  # a fine-tune keeps its starting point unless it beats it
    config = meta_config_from_flags(FLAGS)
    opt_config = optimizer_config_from_flags(FLAGS)
    if FLAGS.deterministic:
        tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(FLAGS.seed)

    family = problem_flags.family_from_flags(FLAGS.problem)
    optimizer = initial_optimizer(opt_config)
    from l2l_tf.optimizers.grouped import GroupedLSTM

    if isinstance(optimizer, GroupedLSTM):  # one LSTM per parameter group (--param_groups, or a grouped --init_from)
        names = family.sample("validation", FLAGS.seed, [0]).param_names
        if names is None:
            raise UserError(f"parameter groups need named parameters; --problem={FLAGS.problem} has none")
        for group, members in optimizer.assign(names).items():
            logging.info("parameter group %s: %s", group, ", ".join(members) or "(none)")
    metadata = {"problem": family.describe(), "recipe": {"name": FLAGS.recipe, "settings": applied},
                "train_flags": {k: FLAGS[k].value for k in (
        "problem", "hidden_sizes", "activation", "labels", "batch_size", "param_groups", "num_epochs", "num_steps", "unroll_length", "learning_rate", "meta_batch_size", "clip_norm",
        "loss_weights", "relative_meta_loss", "second_derivatives", "gradient_checkpointing", "jit_compile", "evaluation_period",
        "evaluation_epochs", "seed", "init_from", "meta_loss", "num_steps_range", "curriculum", "curriculum_patience",
        "imitation_teachers", "imitation_ratio", "imitation_mode", "imitation_tuning", "param_scale_range", "convex_term", "problems_per_epoch",
        "meta_gradient", "es_pairs", "es_sigma", "es_learning_rate", "validate_start", "curriculum_epochs",
        "mix_hidden_sizes", "mix_activations", "mix_log10_loss_scale")}}
    trainer = MetaTrainer(family, optimizer, config, save_path=save_path, metadata=metadata, strategy=strategy)
    if trainer.num_replicas > 1:
        logging.info("distributed meta-training: %d replicas (%s)", trainer.num_replicas, FLAGS.strategy)
    logging.info("meta-training %s on %s for %d epochs of %d steps (unroll %d); %d meta-parameters",
                 optimizer.label, family.name, config.num_epochs, config.num_steps, config.unroll_length,
                 sum(int(v.numpy().size) for v in optimizer.meta_variables))
    _stop_on_signals(trainer)
    start = time.time()
    try:
        result = trainer.train(resume=FLAGS.resume)
    except TrainingInterrupted as stop:
        print(f"l2l_train: stopped at epoch {stop.epoch}; checkpoint {stop.checkpoint}; "
              "continue with the same flags and --resume", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
    summary = {"wall_seconds": round(time.time() - start, 1), "peak_memory_mb": round(peak_mb, 1),
               "epochs_run": result.epochs_run,
               "best_epoch": result.best_epoch, "best_validation_final_loss": result.best_validation,
               "skipped_steps": result.skipped_steps, "validation": result.validation,
               "replicas": trainer.num_replicas, "strategy": FLAGS.strategy}
    if not trainer.save_path:  # a non-chief worker: the chief writes the run
        print(f"worker done: {summary['wall_seconds']} s; the chief wrote {os.path.abspath(save_path)}")
        return
    if result.stages or config.curriculum:
        summary["curriculum_stages"] = [{"epoch": e, "stage": k, "num_steps": n, "validation_steps": v,
                                         "starting_validation": x} for e, k, n, v, x in result.stages]
        summary["finished_curriculum"] = result.finished_curriculum
    summary["imitation_epochs"] = sum(r.kind == "imitation" for r in result.history)
    files.write_json(os.path.join(save_path, "training_summary.json"), summary)
    print(f"trained optimizer: {os.path.abspath(save_path)} (best validation final loss "
          f"{result.best_validation:.4g} at epoch {result.best_epoch}; {summary['wall_seconds']} s, "
          f"peak memory {summary['peak_memory_mb']:.0f} MB)")


def run() -> None:
    """The `l2l_train` program: bin/l2l_train.py and the `l2l-train` command."""
    cli.run(main)


if __name__ == "__main__":
    run()

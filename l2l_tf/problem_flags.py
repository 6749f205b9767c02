"""Flags that choose a problem family's variant, shared by l2l_train and l2l_evaluate.

Both binaries must build the same family from the same words, so the flags and their
translation into `make_family` keyword arguments live here once.
"""
from __future__ import annotations

import os

from absl import flags

from l2l_tf.cli import parse_int_list
from l2l_tf.errors import UserError
from l2l_tf.neural_art_flags import NEURAL_ART_FLAGS, neural_art_settings
from l2l_tf.problems import make_family
from l2l_tf.problems.base import ProblemFamily

FLAGS = flags.FLAGS
flags.DEFINE_string("data_dir", None, "Local data: a folder with mnist.npz / cifar10.npz (Keras layout), "
                    "cifar-10-batches-py/, or a prepared tensorflow-datasets data dir; default: $L2L_DATA_DIR, "
                    "then tfds.load.")
flags.DEFINE_string("hidden_sizes", "20", "MNIST MLP: comma-separated hidden layer widths.")
flags.DEFINE_enum("activation", "sigmoid", ["sigmoid", "relu", "tanh"], "MNIST MLP: hidden activation.")
flags.DEFINE_integer("batch_size", 128, "Minibatch size of dataset problems.", lower_bound=1)
flags.DEFINE_string("mix_hidden_sizes", "20;40;20,20", "mnist_mix: hidden-layer options, ';'-separated.")
flags.DEFINE_list("mix_activations", ["sigmoid", "relu", "tanh"], "mnist_mix: activation options.")
flags.DEFINE_float("mix_log10_loss_scale", 1.0, "mnist_mix: losses are scaled by 10^u, u ~ U(-x, x).",
                   lower_bound=0.0)
flags.DEFINE_enum("labels", "default", ["default", "heldout"], "CIFAR: the problem's own classes, or "
                  "'heldout' (with cifar10): classes 5-9, outside CIFAR-5/CIFAR-2, for training LSTM-sub.")
flags.register_validator("mix_activations", lambda v: bool(v) and set(v) <= {"sigmoid", "relu", "tanh"},
                         message="--mix_activations must list sigmoid, relu and/or tanh")
flags.register_validator("data_dir", lambda p: p is None or os.path.exists(p),
                         message="--data_dir must be an existing folder or file")


def family_settings(problem: str) -> dict:
    """The keyword arguments of `make_family(problem, ...)` from the flags."""
    if problem == "neural_art":
        for name in ("hidden_sizes", "activation", "batch_size"):
            if FLAGS[name].present:
                raise UserError(f"--{name} does not apply to --problem={problem}")
        return neural_art_settings()
    for name in NEURAL_ART_FLAGS:
        if FLAGS[name].present:
            raise UserError(f"--{name} does not apply to --problem={problem}")
    if problem == "mnist":
        return {"hidden_sizes": parse_int_list(FLAGS.hidden_sizes, "hidden_sizes"), "activation": FLAGS.activation,
                "batch_size": FLAGS.batch_size, "data_dir": FLAGS.data_dir}
    if problem == "mnist_mix":
        options = [parse_int_list(h, "mix_hidden_sizes") for h in FLAGS.mix_hidden_sizes.split(";")]
        return {"hidden_sizes_options": options, "activations": FLAGS.mix_activations,
                "log10_scale_range": FLAGS.mix_log10_loss_scale, "batch_size": FLAGS.batch_size,
                "data_dir": FLAGS.data_dir}
    if problem in ("cifar10", "cifar5", "cifar2"):
        for name in ("hidden_sizes", "activation"):
            if FLAGS[name].present:
                raise UserError(f"--{name} does not apply to --problem={problem}")
        return {"labels": FLAGS.labels, "batch_size": FLAGS.batch_size, "data_dir": FLAGS.data_dir}
    if FLAGS.labels != "default":
        raise UserError(f"--labels applies to the CIFAR problems, not --problem={problem}")
    for name in ("hidden_sizes", "activation", "batch_size", "data_dir"):
        if FLAGS[name].present:
            raise UserError(f"--{name} does not apply to --problem={problem}")
    return {}


def family_from_flags(problem: str) -> ProblemFamily:
    return make_family(problem, **family_settings(problem))

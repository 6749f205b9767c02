"""The paper's CIFAR-10 experiment: a small conv net as the optimizee, on label subsets.

The model follows DeepMind's original code for the paper: three 5x5 convolutions of 16
channels, each followed by batch normalization, ReLU and 2x2 max-pooling, then a fully
connected layer of 32 units with batch normalization and ReLU, and a linear softmax layer;
softmax cross-entropy on minibatches of 128. Weights are drawn afresh for every problem
(Keras' defaults: Glorot-uniform kernels, zero biases, unit BN scales).

Batch norm normalizes with batch statistics during the trajectory; its moving statistics
are optimizee state threaded along the trajectory (see `KerasProblem`), not parameters.
Their momentum is 0.9 rather than Keras' 0.99 because a trajectory is only 100-200 steps:
with 0.99 the statistics used for test accuracy would still be a third made of their
initial values.

Label subsets (the paper's Figure 7): `cifar10` uses all classes, `cifar5` classes 0-4
(airplane, automobile, bird, cat, deer), `cifar2` classes 0-1 (airplane, automobile).
`labels="heldout"` gives LSTM-sub's training problems: the classes 5-9 (dog, frog, horse,
ship, truck) that neither CIFAR-5 nor CIFAR-2 contains, so LSTM-sub never sees an image of a
class it is evaluated on. Subsets are relabelled 0..k-1 and the classifier has k outputs.
"""
from __future__ import annotations

import functools
from typing import Sequence

import keras
import tensorflow as tf

from l2l_tf.problems.datasets import ImageDataset, load_dataset
from l2l_tf.errors import UserError
from l2l_tf.problems.keras_problem import KerasProblem, array_dataset_fn

CLASS_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
#: Problem name -> the classes it uses.
SUBSETS = {"cifar10": tuple(range(10)), "cifar5": tuple(range(5)), "cifar2": (0, 1)}
#: LSTM-sub's training classes: disjoint from CIFAR-5 and CIFAR-2.
HELDOUT = tuple(range(5, 10))
LABEL_CHOICES = ("default", "heldout")
#: Parameter groups of the paper's CIFAR optimizer: one LSTM for the convolutional layers
#: (kernels, biases and their batch norms, all in layers named conv_*), one for the rest.
DEFAULT_GROUPS = "conv=^conv;fc=.*"


def conv_net(num_classes: int, conv_channels: Sequence[int] = (16, 16, 16), kernel_size: int = 5,
             dense_sizes: Sequence[int] = (32,), bn_momentum: float = 0.9) -> keras.Model:
    """The optimizee: [conv -> BN -> ReLU -> max-pool] x 3, [dense -> BN -> ReLU], logits."""
    layers = keras.layers
    inputs = keras.Input((32, 32, 3))
    x = inputs
    for i, channels in enumerate(conv_channels):
        x = layers.Conv2D(channels, kernel_size, padding="same", name=f"conv_{i}")(x)
        x = layers.BatchNormalization(momentum=bn_momentum, name=f"conv_bn_{i}")(x)
        x = layers.MaxPooling2D(2, name=f"conv_pool_{i}")(layers.ReLU(name=f"conv_relu_{i}")(x))
    x = layers.Flatten(name="flatten")(x)
    for i, units in enumerate(dense_sizes):
        x = layers.Dense(units, name=f"dense_{i}")(x)
        x = layers.ReLU(name=f"dense_relu_{i}")(layers.BatchNormalization(momentum=bn_momentum, name=f"dense_bn_{i}")(x))
    return keras.Model(inputs, layers.Dense(num_classes, name="logits")(x), name="cifar_conv_net")


@functools.lru_cache(maxsize=2)
def _cached_dataset(data_dir: str | None) -> ImageDataset:
    return load_dataset("cifar10", data_dir)


def _scale(x: tf.Tensor) -> tf.Tensor:
    return tf.cast(x, tf.float32) / 255.0


def classes_for(name: str, labels: str = "default") -> tuple[int, ...]:
    """The CIFAR-10 classes problem `name` uses under the `labels` choice."""
    if name not in SUBSETS:
        raise UserError(f"unknown CIFAR problem {name!r}; expected one of {sorted(SUBSETS)}")
    if labels not in LABEL_CHOICES:
        raise UserError(f"unknown labels {labels!r}; expected one of {LABEL_CHOICES}")
    if labels == "heldout":
        if name != "cifar10":
            raise UserError("--labels=heldout selects LSTM-sub's training classes (5-9, outside CIFAR-5 and "
                            "CIFAR-2) and applies to --problem=cifar10 only")
        return HELDOUT
    return SUBSETS[name]


class CIFARFamily(KerasProblem):
    """Conv nets on a CIFAR-10 label subset, with fresh initializations and seeded minibatches."""

    def __init__(self, name: str = "cifar10", labels: str = "default", batch_size: int = 128,
                 data_dir: str | None = None, dataset: ImageDataset | None = None):
        classes = classes_for(name, labels)
        full = dataset or _cached_dataset(data_dir)
        data = full if classes == tuple(range(full.num_classes)) else full.subset(classes)
        self.data, self.classes, self.labels, self.batch_size = data, classes, labels, int(batch_size)
        super().__init__(
            model_fn=lambda: conv_net(len(classes)),
            dataset=array_dataset_fn(data.x_train, data.y_train, self.batch_size, _scale),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            eval_data=(_scale(tf.constant(data.x_test)).numpy(), data.y_test), name=name,
            settings={"labels": labels, "classes": [CLASS_NAMES[c] for c in classes],
                      "batch_size": self.batch_size, "data_source": data.source, "num_train": int(len(data.x_train))})


def cifar_mixture(batch_size: int = 128, data_dir: str | None = None):
    """CIFAR-10, CIFAR-5 and CIFAR-2 conv nets, one drawn per problem: the training family of an
    optimizer that must serve all three (the paper trains on CIFAR-10 only and tests on the subsets).

    Losses are not rescaled: an optimizer whose step is a correction of NAG's inherits NAG's
    dependence on the loss scale, and the three problems' true losses are what it is tested on.
    """
    from l2l_tf.problems.mixture import MixtureFamily

    dataset = _cached_dataset(data_dir)
    return MixtureFamily([CIFARFamily(name, batch_size=batch_size, dataset=dataset) for name in SUBSETS],
                         0.0, name="cifar_mix")

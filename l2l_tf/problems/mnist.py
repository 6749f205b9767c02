"""The paper's MNIST experiment: an MLP classifier as the optimizee.

Default: one hidden layer of 20 sigmoid units, softmax cross-entropy, minibatches of 128,
parameters drawn afresh (Glorot-uniform kernels, zero biases: Keras' defaults) for every
problem. Every problem trains on the MNIST training set (the paper reports training loss);
the test set gives the accuracy reported at the end. Variants for the generalization
experiments: `hidden_sizes` (e.g. (40,) or (20, 20)) and `activation` ("relu", "tanh").
"""
from __future__ import annotations

import functools
from typing import Sequence

import keras
import tensorflow as tf

from l2l_tf.problems.datasets import ImageDataset, load_dataset
from l2l_tf.errors import UserError
from l2l_tf.problems.keras_problem import KerasProblem, array_dataset_fn

ACTIVATIONS = ("sigmoid", "relu", "tanh")


def mlp(input_dim: int, hidden_sizes: Sequence[int], activation: str, num_classes: int) -> keras.Model:
    """A plain MLP returning logits."""
    layers = [keras.Input((input_dim,))]
    layers += [keras.layers.Dense(h, activation=activation, name=f"hidden_{i}") for i, h in enumerate(hidden_sizes)]
    layers.append(keras.layers.Dense(num_classes, name="logits"))
    return keras.Sequential(layers)


@functools.lru_cache(maxsize=4)
def _cached_dataset(data_dir: str | None) -> ImageDataset:
    return load_dataset("mnist", data_dir)


def _flatten_scale(x: tf.Tensor) -> tf.Tensor:
    return tf.reshape(tf.cast(x, tf.float32), [tf.shape(x)[0], -1]) / 255.0


class MNISTFamily(KerasProblem):
    """MNIST MLPs with fresh initializations and seeded minibatch streams."""

    def __init__(self, hidden_sizes: Sequence[int] = (20,), activation: str = "sigmoid", batch_size: int = 128,
                 data_dir: str | None = None, dataset: ImageDataset | None = None):
        if activation not in ACTIVATIONS:
            raise UserError(f"unknown activation {activation!r}; expected one of {ACTIVATIONS}")
        hidden_sizes = tuple(int(h) for h in hidden_sizes)
        if any(h <= 0 for h in hidden_sizes):
            raise UserError(f"hidden sizes must be positive, got {list(hidden_sizes)}")
        data = dataset or _cached_dataset(data_dir)
        self.data = data
        self.hidden_sizes, self.activation, self.batch_size = hidden_sizes, activation, int(batch_size)
        x_test = _flatten_scale(tf.constant(data.x_test)).numpy()
        super().__init__(
            model_fn=lambda: mlp(28 * 28, hidden_sizes, activation, data.num_classes),
            dataset=array_dataset_fn(data.x_train, data.y_train, self.batch_size, _flatten_scale),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            eval_data=(x_test, data.y_test), name="mnist",
            settings={"hidden_sizes": list(hidden_sizes), "activation": activation, "batch_size": self.batch_size,
                      "data_source": data.source, "num_train": int(len(data.x_train))})

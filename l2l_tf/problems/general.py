"""`--problem=general`: a mixture of small Keras models, to train one optimizer for `model.fit`.

An optimizer meant for ordinary Keras models must not know one architecture's gradient
statistics. This family draws every training problem from MLPs of several widths, depths and
activations and from small conv nets with and without batch norm, on MNIST and CIFAR-10, with
losses scaled by 10^u (u ~ U(-r, r), `MixtureFamily`); combined with random parameter scaling
(`--param_scale_range`) it covers gradient and curvature scales far apart. The models an
optimizer is tested on in RESULTS.md (a Keras-examples MNIST convnet with dropout, a CIFAR conv
net with batch norm, a GRU) are deliberately not among them.
"""
from __future__ import annotations

import functools
from typing import Callable

import keras
import tensorflow as tf

from l2l_tf.problems.keras_problem import KerasProblem, array_dataset_fn
from l2l_tf.problems.mixture import MixtureFamily


def _mlp(hidden, activation):
    def build():
        layers = [keras.Input((784,))] + [keras.layers.Dense(h, activation=activation) for h in hidden]
        return keras.Sequential(layers + [keras.layers.Dense(10)])
    return build


def _conv(input_shape, channels, batch_norm: bool, dense: int = 0):
    def build():
        layers = [keras.Input(input_shape)]
        for c in channels:
            layers.append(keras.layers.Conv2D(c, 3, padding="same", use_bias=not batch_norm))
            if batch_norm:
                layers.append(keras.layers.BatchNormalization())
            layers += [keras.layers.ReLU(), keras.layers.MaxPooling2D(2)]
        layers.append(keras.layers.Flatten())
        if dense:
            layers.append(keras.layers.Dense(dense, activation="relu"))
        return keras.Sequential(layers + [keras.layers.Dense(10)])
    return build


#: (name, dataset, model builder): the training mix.
MEMBERS: tuple[tuple[str, str, Callable[[], keras.Model]], ...] = (
    ("mlp_64_relu", "mnist", _mlp((64,), "relu")),
    ("mlp_32_32_tanh", "mnist", _mlp((32, 32), "tanh")),
    ("mlp_32_sigmoid", "mnist", _mlp((32,), "sigmoid")),
    ("mnist_cnn", "mnist", _conv((28, 28, 1), (8, 16), batch_norm=False)),
    ("mnist_cnn_bn", "mnist", _conv((28, 28, 1), (8, 16), batch_norm=True, dense=32)),
    ("cifar_cnn_bn", "cifar10", _conv((32, 32, 3), (16, 16), batch_norm=True)),
)


@functools.lru_cache(maxsize=4)
def _dataset(name: str, data_dir: str | None):
    from l2l_tf.problems.datasets import load_dataset
    return load_dataset(name, data_dir)


def _inputs(name: str, flat: bool):
    def transform(x):
        x = tf.cast(x, tf.float32) / 255.0
        if name == "mnist":
            x = tf.reshape(x, [tf.shape(x)[0], 784]) if flat else tf.reshape(x, [tf.shape(x)[0], 28, 28, 1])
        return x
    return transform


def general_mixture(batch_size: int = 128, log10_scale_range: float = 1.0, data_dir: str | None = None,
                    members: tuple[str, ...] | None = None) -> MixtureFamily:
    """The mixture of `MEMBERS` (or those named by `members`), training losses scaled by 10^U(-r, r)."""
    from l2l_tf.errors import UserError

    chosen = [m for m in MEMBERS if members is None or m[0] in members]
    if not chosen:
        raise UserError(f"no general-mixture member among {members}; expected some of {[m[0] for m in MEMBERS]}")
    families = []
    for name, dataset, build in chosen:
        data = _dataset(dataset, data_dir)
        flat = name.startswith("mlp")
        transform = _inputs(dataset, flat)
        x_test = transform(tf.constant(data.x_test[:2000])).numpy()
        family = KerasProblem(model_fn=build, dataset=array_dataset_fn(data.x_train, data.y_train, batch_size, transform),
                              loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                              eval_data=(x_test, data.y_test[:2000]), name=f"general/{name}",
                              settings={"member": name, "dataset": dataset, "batch_size": batch_size,
                                        "data_source": data.source})
        families.append(family)
    return MixtureFamily(families, log10_scale_range, name="general")

#!/usr/bin/env python3
"""A learned optimizer in plain `model.fit`, against Adam at 1e-3 and at its tuned rate.

    python reproduce/keras_fit.py --data_dir=../shared/data --optimizer=general --output_dir=results/keras_fit

Three ordinary Keras models that are not in any l2l_tf training mix, each trained for one
epoch on real data:
  mnist_convnet  the Keras examples' MNIST convnet (two conv/pool blocks, dropout 0.5), 60,000
                 images, batch 128;
  cifar_bn       a CIFAR-10 conv net with batch norm (three conv/BN/ReLU/pool blocks, dense
                 64), the 20,000 training images of cifar10.npz, batch 64;
  gru_rows       a GRU(64) reading MNIST images row by row (28 steps of 28 pixels), batch 128.
Reported per model and seed: the training loss after the epoch (the whole training set, or
20,000 images of it, evaluated in inference mode after the epoch), Keras' running epoch mean,
and whether anything was NaN. Adam's rate is tuned on another seed (another initialization
and batch order) over a log grid, by the same loss. Writes results.json and report.md.
"""
from __future__ import annotations

import json
import math
import os
import shlex
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from absl import flags  # noqa: E402

from l2l_tf import cli, files  # noqa: E402
from l2l_tf.errors import UserError  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("data_dir", None, "Folder with mnist.npz and cifar10.npz.", required=True)
flags.DEFINE_string("optimizer", "general", "The learned optimizer: a bundled name, a trained directory or an export.")
flags.DEFINE_list("models", ["mnist_convnet", "cifar_bn", "gru_rows"], "Which models.")
flags.DEFINE_list("seeds", ["1", "2"], "Test seeds (initialization and batch order).")
flags.DEFINE_integer("tuning_seed", 101, "Seed of Adam's learning-rate tuning run.")
flags.DEFINE_list("adam_grid", ["1e-4", "3e-4", "1e-3", "3e-3", "1e-2"], "Adam's learning rates to tune over.")
flags.DEFINE_integer("max_examples", 0, "Use only this many training examples (0: all; for quick checks).",
                     lower_bound=0)
flags.DEFINE_string("output_dir", None, "Where results.json and report.md go.", required=True)
cli.validate_output_dirs("output_dir")

EVAL_EXAMPLES = 20000


def _data(name: str):
    import numpy as np

    from l2l_tf.problems.datasets import load_dataset

    data = load_dataset("cifar10" if name == "cifar_bn" else "mnist", FLAGS.data_dir)
    x = data.x_train.astype("float32") / 255.0
    if name == "mnist_convnet":
        x = x.reshape(-1, 28, 28, 1)
    elif name == "gru_rows":
        x = x.reshape(-1, 28, 28)
    y = data.y_train.astype("int32")
    if FLAGS.max_examples:
        x, y = x[:FLAGS.max_examples], y[:FLAGS.max_examples]
    return np.ascontiguousarray(x), y


def _model(name: str):
    import keras

    L = keras.layers
    if name == "mnist_convnet":  # keras.io/examples/vision/mnist_convnet
        return keras.Sequential([keras.Input((28, 28, 1)), L.Conv2D(32, 3, activation="relu"), L.MaxPooling2D(2),
                                 L.Conv2D(64, 3, activation="relu"), L.MaxPooling2D(2), L.Flatten(), L.Dropout(0.5),
                                 L.Dense(10)]), 128
    if name == "cifar_bn":
        layers = [keras.Input((32, 32, 3))]
        for channels in (32, 64, 64):
            layers += [L.Conv2D(channels, 3, padding="same", use_bias=False), L.BatchNormalization(), L.ReLU(),
                       L.MaxPooling2D(2)]
        return keras.Sequential(layers + [L.Flatten(), L.Dense(64, activation="relu"), L.Dense(10)]), 64
    if name == "gru_rows":
        return keras.Sequential([keras.Input((28, 28)), L.GRU(64), L.Dense(10)]), 128
    raise UserError(f"unknown model {name!r}; expected mnist_convnet, cifar_bn or gru_rows")


def one_epoch(name: str, make_optimizer, seed: int) -> dict:
    """Trains a fresh `name` model (seeded) for one epoch; returns its losses."""
    import keras
    import numpy as np

    keras.utils.set_random_seed(seed)
    x, y = _data(name)
    model, batch = _model(name)
    model.compile(optimizer=make_optimizer(), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    start = time.time()
    history = model.fit(x, y, batch_size=batch, epochs=1, shuffle=True, verbose=0)
    seconds = time.time() - start
    n = min(len(x), EVAL_EXAMPLES)
    after = float(model.evaluate(x[:n], y[:n], batch_size=512, verbose=0))
    weights_finite = all(np.all(np.isfinite(w)) for w in model.get_weights())
    return {"loss_after_epoch": after if math.isfinite(after) else None,
            "keras_epoch_mean_loss": float(history.history["loss"][0]) if math.isfinite(history.history["loss"][0])
            else None, "nan": not (math.isfinite(after) and weights_finite), "seconds": round(seconds, 1),
            "steps": int(math.ceil(len(x) / batch))}


def main(argv):
    del argv
    import keras

    from l2l_tf import LearnedOptimizer, loading
    from l2l_tf.reporting.report import format_keras_fit

    loading.resolve(FLAGS.optimizer)  # a bad --optimizer fails here, in one line
    seeds = [int(s) for s in FLAGS.seeds]
    grid = [float(v) for v in FLAGS.adam_grid]
    results = {"optimizer": FLAGS.optimizer, "seeds": seeds, "tuning_seed": FLAGS.tuning_seed, "adam_grid": grid,
               "max_examples": FLAGS.max_examples, "models": {},
               "command": " ".join(shlex.quote(a) for a in ["python", "reproduce/keras_fit.py", *sys.argv[1:]])}
    for name in FLAGS.models:
        entry = {}
        tuning = {lr: one_epoch(name, lambda lr=lr: keras.optimizers.Adam(lr), FLAGS.tuning_seed) for lr in grid}
        scores = {lr: r["loss_after_epoch"] if r["loss_after_epoch"] is not None else math.inf
                  for lr, r in tuning.items()}
        best = min(grid, key=lambda lr: scores[lr])
        entry["adam_tuned_learning_rate"] = best
        entry["adam_tuning"] = {f"{lr:g}": tuning[lr] for lr in grid}
        runs = {"learned": lambda: LearnedOptimizer(FLAGS.optimizer), "adam_1e-3": lambda: keras.optimizers.Adam(1e-3),
                "adam_tuned": lambda: keras.optimizers.Adam(best)}
        for label, make in runs.items():
            entry[label] = [one_epoch(name, make, seed) for seed in seeds]
            print(name, label, [r["loss_after_epoch"] for r in entry[label]], flush=True)
        results["models"][name] = entry
        files.write_json(os.path.join(FLAGS.output_dir, "results.json"), results)
    report = format_keras_fit(results)
    files.write_text(os.path.join(FLAGS.output_dir, "report.md"), report)
    print(report)
    print(f"results: {os.path.abspath(os.path.join(FLAGS.output_dir, 'results.json'))}")


if __name__ == "__main__":
    cli.run(main)

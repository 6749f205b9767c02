"""Saving and loading trained optimizers: a directory with `optimizer.json` and weights.

Layout of a trained optimizer directory (what `l2l_train --save_path` writes):

    optimizer.json   architecture settings, training problem, flags, library version
    best/            phi with the best validation score (a `tf.train.Checkpoint`)
    checkpoints/     full training state for `--resume` (phi, Adam moments, epoch, best phi)
    logs/            TensorBoard summaries

The JSON is what makes a directory self-describing: loaders rebuild the network from it,
then restore phi, and refuse a directory whose weights do not fit the recorded shapes.
"""
from __future__ import annotations

import json
import os
from typing import Any

import tensorflow as tf

from l2l_tf import files
from l2l_tf.errors import UserError
from l2l_tf.optimizers.coordinatewise import CoordinatewiseLSTM
from l2l_tf.version import __version__

CONFIG_FILE = "optimizer.json"
BEST_DIR = "best"


def tf_variables(variables) -> list[tf.Variable]:
    """The `tf.Variable`s behind Keras 3 variables (which `tf.train.Checkpoint` can track)."""
    return [getattr(v, "value", v) if not isinstance(v, tf.Variable) else v for v in variables]


def write_weights(prefix: str, variables) -> str:
    """Writes variables (in order) to a checkpoint prefix; returns the written path."""
    return tf.train.Checkpoint(phi=tf_variables(variables)).write(prefix)


def read_weights(prefix: str, variables) -> None:
    """Restores variables from `write_weights` output, failing loudly on any mismatch."""
    try:
        status = tf.train.Checkpoint(phi=tf_variables(variables)).read(prefix)
        status.assert_existing_objects_matched()
        status.expect_partial()
    except (tf.errors.OpError, ValueError, AssertionError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"weights at {prefix} do not fit this optimizer's architecture or are corrupt: {first}") from None


def weights_prefix(path: str, which: str = BEST_DIR) -> str:
    return os.path.join(path, which, "weights")


def save_best_weights(path: str, variables) -> None:
    """Replaces best/ with the given weights so that a crash leaves either old or new, whole."""
    tmp = os.path.join(path, BEST_DIR + ".tmp")
    old = os.path.join(path, BEST_DIR + ".old")
    for d in (tmp, old):
        if tf.io.gfile.exists(d):
            tf.io.gfile.rmtree(d)
    write_weights(weights_prefix(path, BEST_DIR + ".tmp"), variables)
    best = os.path.join(path, BEST_DIR)
    if os.path.exists(best):
        os.replace(best, old)
    os.replace(tmp, best)
    if os.path.exists(old):
        tf.io.gfile.rmtree(old)


def save_config(path: str, optimizer: CoordinatewiseLSTM, metadata: dict[str, Any]) -> None:
    """Writes optimizer.json (atomically: a crash never leaves a half-written file)."""
    os.makedirs(path, exist_ok=True)
    record = {"optimizer": optimizer.config.to_dict(), "l2l_tf_version": __version__, **metadata}
    files.write_json(os.path.join(path, CONFIG_FILE), record, sort_keys=True)


def read_config(path: str) -> dict[str, Any]:
    """Reads optimizer.json of a trained optimizer directory, with clear errors."""
    file = os.path.join(path, CONFIG_FILE)
    if not os.path.isdir(path):
        raise UserError(f"trained optimizer directory {path} does not exist")
    if not os.path.exists(file):
        raise UserError(f"{path} is not a trained optimizer directory (no {CONFIG_FILE})")
    try:
        with open(file) as f:
            record = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise UserError(f"{file} is unreadable or corrupt: {e}") from None
    if not isinstance(record, dict) or "optimizer" not in record:
        raise UserError(f"{file} has no 'optimizer' entry")
    return record


def optimizer_from_config(record: dict[str, Any], seed: int | None = None, **overrides) -> CoordinatewiseLSTM:
    from l2l_tf.optimizers.registry import config_from_dict
    from l2l_tf.optimizers.registry import make as make_learned_optimizer
    from l2l_tf.optimizers.grouped import GROUPED

    settings = dict(record["optimizer"])
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if settings.get("architecture") == GROUPED:
        config = config_from_dict(settings)
        return make_learned_optimizer(config.replace_settings(**overrides) if overrides else config, seed=seed)
    return make_learned_optimizer(config_from_dict({**settings, **overrides}), seed=seed)


def load_learned(path: str, which: str = BEST_DIR, max_update: float | None = None) -> CoordinatewiseLSTM:
    """Rebuilds a trained optimizer from its directory and restores phi (the best by default).

    `max_update` overrides the saved update clipping (e.g. to guard an out-of-distribution run).
    """
    record = read_config(path)
    optimizer = optimizer_from_config(record, max_update=max_update)
    prefix = weights_prefix(path, which)
    if not tf.io.gfile.exists(prefix + ".index"):
        raise UserError(f"{path} has no saved weights under {which}/ (was training interrupted before the first validation?)")
    read_weights(prefix, optimizer.meta_variables)
    return optimizer


def write_untrained_base(path: str, output: str) -> None:
    """Writes to `output` the trained optimizer at `path` with its learned correction removed
    (`remove_correction`): the same directory layout, loadable and evaluable like any trained
    optimizer, whose updates are exactly the scheduled NAG that training started from."""
    import shutil

    if os.path.abspath(path) == os.path.abspath(output):
        raise UserError("the untrained base must go to a new directory, not over the trained optimizer")
    optimizer = load_learned(path)
    optimizer.remove_correction()
    os.makedirs(output, exist_ok=True)
    shutil.copy(os.path.join(path, CONFIG_FILE), os.path.join(output, CONFIG_FILE))
    save_best_weights(output, optimizer.meta_variables)

"""Pretrained optimizers shipped inside the package, found by name.

Each bundled optimizer is a trained optimizer directory (what `l2l_train --save_path`
writes, minus checkpoints and logs) under `l2l_tf/pretrained/<name>/`:

    optimizer.json        architecture, training problem and flags, library version
    best/weights.index    phi (a `tf.train.Checkpoint`, a few tens of kB)
    best/weights.data-*
    MODEL_CARD.md         training problem, flags, commit, wall time, where it wins and fails

They are installed as package data (setup.py `package_data` + MANIFEST.in), so an editable
install reads them from the source tree and a normal install from site-packages: this module
only ever looks next to its own file. Nothing here imports TensorFlow, so binaries can use it
in flag validators.

Names are resolved only when a path is not an existing directory: a local directory called
"quadratic" always wins over the bundled "quadratic".
"""
from __future__ import annotations

import os

from l2l_tf.errors import UserError

#: Where bundled optimizers live (module attribute so tests can point it elsewhere).
PRETRAINED_ROOT = os.path.dirname(os.path.abspath(__file__))
CONFIG_FILE = "optimizer.json"  # the same name as l2l_tf.saving.CONFIG_FILE (no TF import here)
MODEL_CARD = "MODEL_CARD.md"
#: Headings every MODEL_CARD.md must have (checked by tests/test_pretrained.py; template in README.md here).
MODEL_CARD_SECTIONS = ("Training problem", "Flags", "Commit", "Wall time",
                       "Where it beats the tuned baselines", "Where it fails", "Zero gradients")


def _is_plain_name(name: str) -> bool:
    """A bundled name is one path component: no separators, not hidden, not empty."""
    return bool(name) and os.path.basename(name) == name and not name.startswith(".") and "/" not in name


def available() -> list[str]:
    """Names of the bundled optimizers (sub-directories holding an optimizer.json), sorted."""
    root = PRETRAINED_ROOT
    if not os.path.isdir(root):
        return []
    return sorted(d for d in os.listdir(root)
                  if _is_plain_name(d) and os.path.isfile(os.path.join(root, d, CONFIG_FILE)))


def is_bundled(name: str) -> bool:
    """Whether `name` names a bundled optimizer."""
    return _is_plain_name(str(name)) and name in available()


def bundled_path(name: str) -> str:
    """The directory of bundled optimizer `name`; a UserError listing what exists otherwise."""
    if not is_bundled(name):
        names = available()
        listing = ", ".join(names) if names else "none are installed"
        raise UserError(f"{name!r} is not a bundled pretrained optimizer (available: {listing})")
    return os.path.join(PRETRAINED_ROOT, name)


def model_card(name: str) -> str:
    """The text of a bundled optimizer's MODEL_CARD.md."""
    path = os.path.join(bundled_path(name), MODEL_CARD)
    if not os.path.isfile(path):
        raise UserError(f"bundled optimizer {name!r} has no {MODEL_CARD}")
    with open(path, encoding="utf-8") as f:
        return f.read()


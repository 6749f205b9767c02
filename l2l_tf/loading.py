"""One entry point for every form a trained optimizer comes in: `load_optimizer(path_or_name)`.

A trained optimizer is one of
  * a trained optimizer directory (optimizer.json + best/weights, what l2l_train writes),
  * an export directory (a SavedModel written by l2l_export / `l2l_tf.export`),
  * the name of a bundled pretrained optimizer (`l2l_tf/pretrained/<name>/`).

An existing directory always wins; only a path that is not a directory is looked up among the
bundled names. Whatever the source, the result is the same in-library `CoordinatewiseLSTM`
(the `init`/`update` interface), so the evaluator, the Keras wrapper and the exporter treat
all three alike.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any

from l2l_tf import pretrained
from l2l_tf.errors import UserError

TRAINED, EXPORT = "trained", "export"


@dataclasses.dataclass(frozen=True)
class Source:
    """Where a trained optimizer was found.

    Attributes:
      kind: "trained" (optimizer.json + best/) or "export" (SavedModel).
      path: absolute directory.
      name: the bundled name it was resolved from, or None for a path.
    """

    kind: str
    path: str
    name: str | None = None

    def describe(self) -> str:
        return f"bundled:{self.name}" if self.name else self.path


def resolve(path_or_name: str) -> Source:
    """Finds the directory behind a path or bundled name and tells what kind it is."""
    from l2l_tf import export, saving

    if not isinstance(path_or_name, (str, os.PathLike)) or not str(path_or_name).strip():
        raise UserError(f"a trained optimizer must be given as a path or a bundled name, got {path_or_name!r}")
    text = os.fspath(path_or_name)
    name = None
    if os.path.isdir(text):
        path = os.path.abspath(text)
    elif os.path.exists(text):
        raise UserError(f"{text} is a file, not a trained optimizer directory, export or bundled name")
    elif pretrained.is_bundled(text):
        path, name = pretrained.bundled_path(text), text
    else:
        names = pretrained.available()
        raise UserError(f"{text} is neither a directory nor a bundled pretrained optimizer "
                        f"(bundled: {', '.join(names) if names else 'none are installed'})")
    if os.path.isfile(os.path.join(path, saving.CONFIG_FILE)):
        return Source(TRAINED, path, name)
    if export.is_export(path):
        return Source(EXPORT, path, name)
    raise UserError(f"{text} is not a trained optimizer directory (no {saving.CONFIG_FILE}) "
                    f"nor an optimizer export (no {export.SAVED_MODEL_FILE})")


#: Settings a caller may change on a loaded optimizer (they do not touch phi's shapes).
OVERRIDES = ("max_update",)


def _override(optimizer, overrides: dict[str, Any]):
    """Applies `overrides` (e.g. max_update) to the optimizer and, for a grouped one, to every LSTM."""
    unknown = set(overrides) - set(OVERRIDES)
    if unknown:
        raise UserError(f"cannot override {sorted(unknown)} of a trained optimizer (only {list(OVERRIDES)})")
    changes = {k: v for k, v in overrides.items() if v is not None}
    if not changes:
        return optimizer
    for part in [optimizer, *getattr(optimizer, "optimizers", {}).values()]:
        part.config = (part.config.replace_settings(**changes) if hasattr(part.config, "replace_settings")
                       else dataclasses.replace(part.config, **changes))
    return optimizer


def load_with_info(path_or_name: str, **overrides):
    """Returns (CoordinatewiseLSTM with phi restored, info) for a path or bundled name.

    info: {"source": Source, "training": what is known about how it was trained (problem,
    flags, best epoch, library version)}. `overrides` change settings that do not touch phi
    (`OVERRIDES`, e.g. max_update=0.1 to clip the updates of an out-of-distribution run).
    """
    from l2l_tf import export, saving

    source = resolve(path_or_name)
    if source.kind == TRAINED:
        optimizer = saving.load_learned(source.path)
        record = saving.read_config(source.path)
        training: dict[str, Any] = {k: v for k, v in record.items() if k != "optimizer"}
    else:
        optimizer, metadata = export.load_exported_optimizer(source.path)
        training = dict(metadata.get("training") or {})
    return _override(optimizer, overrides), {"source": source, "training": training}


def load_optimizer(path_or_name: str, **overrides):
    """The trained optimizer at a path (trained directory or export) or of a bundled name.

    Returns an `l2l_tf.optimizers.CoordinatewiseLSTM` (or its grouped/coupled relatives):
    `init(params) -> state`, `update(grads, state, params) -> (updates, state)`. `overrides`:
    see `load_with_info`. Raises `UserError` with a one-line message for anything that is not
    a usable trained optimizer. The one loader every binary uses.
    """
    return load_with_info(path_or_name, **overrides)[0]

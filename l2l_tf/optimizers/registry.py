"""Learned optimizer architectures by name: the one place a new architecture is added.

Each entry names the architecture as optimizer.json records it, the word `--optimizer_architecture`
takes for it, its class (built from an `LSTMOptimizerConfig`), and whether its state is per
coordinate. Per-coordinate rules (the coordinatewise LSTM) can run one parameter tensor at a
time, which is what SavedModel exports and the Keras wrapper do; the coupled ones of the
paper's Appendix D share information across all coordinates of a problem and cannot.
Grouped optimizers (one LSTM per parameter group, `grouped.py`) are a composition of
coordinatewise LSTMs, not an architecture of their own: `make` and `config_from_dict` handle them.
"""
from __future__ import annotations

import dataclasses
import importlib
from typing import Any

from l2l_tf.errors import UserError


@dataclasses.dataclass(frozen=True)
class Architecture:
    """A learned optimizer architecture: `module:class` is imported when first built."""

    name: str
    cli_name: str
    class_path: str
    per_coordinate: bool
    description: str

    @property
    def cls(self):
        module, _, name = self.class_path.partition(":")
        return getattr(importlib.import_module(module), name)


ARCHITECTURES: dict[str, Architecture] = {}


def register_architecture(architecture: Architecture) -> None:
    """Makes an architecture known to configs, both binaries, exports and the Keras wrapper."""
    ARCHITECTURES[architecture.name] = architecture


register_architecture(Architecture("coordinatewise_lstm", "lstm", "l2l_tf.optimizers.coordinatewise:CoordinatewiseLSTM",
                                   True, "the paper's coordinatewise LSTM"))
register_architecture(Architecture("lstm_gac", "lstm_gac", "l2l_tf.optimizers.coupled:LSTMGAC", False,
                                   "LSTM with global averaging cells (Appendix D)"))
register_architecture(Architecture("ntm_bfgs", "ntm_bfgs", "l2l_tf.optimizers.coupled:NTMBFGS", False,
                                   "LSTM+GAC controller with an outer-product memory (Appendix D)"))

#: The hand-designed baselines' labels, in the evaluator's order (the classes are in
#: hand_designed.py, which checks it implements exactly these): the binaries' flags take them
#: without loading TensorFlow.
BASELINES = ("sgd", "nag", "rmsprop", "adam")

#: The architecture of plain `LSTMOptimizerConfig()`.
DEFAULT = "coordinatewise_lstm"


def names() -> tuple[str, ...]:
    return tuple(ARCHITECTURES)


def cli_names() -> list[str]:
    return [a.cli_name for a in ARCHITECTURES.values()]


def get(name: str) -> Architecture:
    if name not in ARCHITECTURES:
        from l2l_tf.optimizers.grouped import GROUPED

        raise UserError(f"optimizer architecture {name!r} is not supported by this version "
                        f"(known: {sorted([*ARCHITECTURES, GROUPED])})")
    return ARCHITECTURES[name]


def from_cli(cli_name: str) -> Architecture:
    """The architecture an `--optimizer_architecture` word names."""
    for architecture in ARCHITECTURES.values():
        if architecture.cli_name == cli_name:
            return architecture
    raise UserError(f"unknown --optimizer_architecture {cli_name!r}; expected one of {cli_names()}")


def make(config, seed: int | None = None):
    """Builds the learned optimizer that `config.architecture` names (a `GroupedConfig` too)."""
    from l2l_tf.optimizers.grouped import GROUPED, GroupedLSTM

    if config.architecture == GROUPED:
        return GroupedLSTM(config, seed=seed)
    return get(config.architecture).cls(config, seed=seed)


def config_from_dict(settings: dict[str, Any]):
    """The config object of a saved optimizer.json "optimizer" entry, whatever its architecture."""
    from l2l_tf.optimizers.coordinatewise import LSTMOptimizerConfig
    from l2l_tf.optimizers.grouped import GROUPED, GroupedConfig

    architecture = settings.get("architecture", DEFAULT)
    if architecture == GROUPED:
        return GroupedConfig.from_dict(settings)
    get(architecture)  # a one-line error for an unknown one
    return LSTMOptimizerConfig.from_dict(settings)


def require_per_coordinate(config, what: str) -> None:
    """Refuses an optimizer whose state is not per coordinate where `what` needs one tensor at a time."""
    from l2l_tf.optimizers.grouped import GROUPED

    if config.architecture == GROUPED:
        return
    architecture = get(config.architecture)
    if not architecture.per_coordinate:
        raise UserError(f"{what} runs optimizers with a per-coordinate state, not {architecture.name} "
                        f"({architecture.description}: it shares information across coordinates)")

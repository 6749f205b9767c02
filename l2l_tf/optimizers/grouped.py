"""Several coordinatewise LSTMs in one optimizer, one per kind of parameter.

The paper's CIFAR-10 optimizer uses one LSTM for the convolutional parameters and another
for the fully connected ones: their gradients have different statistics, and one shared
rule has to compromise between them. Which LSTM serves a parameter is decided by its name
(a Keras variable path such as "conv_0/kernel" or "dense_bn_0/gamma"): every group has a
regular expression, the first group whose expression is found in the name takes it, and a
name that no group takes is an error rather than a silent default.

Because the rule is stored with the optimizer (in optimizer.json, beside phi), a trained
optimizer applies to new models whose variable names follow the same scheme; Keras' default
layer names contain the layer type ("conv2d_3/kernel", "dense/bias"), so patterns such as
"conv2d" group by layer type.

State: one entry per parameter tensor, `{group: that tensor's LSTM state}`. The dict key is
part of the nest's structure, so the assignment is fixed when a trajectory is compiled and
`update` needs nothing but the state to send every gradient to its LSTM.
"""
from __future__ import annotations

import dataclasses
import re
from typing import Any, Sequence

from l2l_tf.errors import UserError
from l2l_tf.optimizers.base import Optimizer, Params
from l2l_tf.optimizers.coordinatewise import ARCHITECTURE, CoordinatewiseLSTM, LSTMOptimizerConfig

GROUPED = "grouped"


def parse_groups(text: str) -> tuple[tuple[str, str], ...]:
    """"conv=conv;fc=.*" -> (("conv", "conv"), ("fc", ".*")), with one-line errors."""
    groups = []
    for item in text.split(";"):
        name, sep, pattern = item.partition("=")
        name, pattern = name.strip(), pattern.strip()
        if not sep or not name or not pattern:
            raise UserError(f"parameter groups must look like NAME=REGEX;NAME=REGEX, got {item.strip()!r} in {text!r}")
        groups.append((name, pattern))
    return tuple(groups)


@dataclasses.dataclass(frozen=True)
class GroupedConfig:
    """Groups (name, regular expression) in priority order and the settings every LSTM shares."""

    groups: tuple[tuple[str, str], ...]
    optimizer: LSTMOptimizerConfig = LSTMOptimizerConfig()
    architecture: str = GROUPED

    def __post_init__(self):
        groups = tuple((str(n), str(p)) for n, p in self.groups)
        object.__setattr__(self, "groups", groups)
        if not groups:
            raise UserError("a grouped optimizer needs at least one parameter group")
        names = [n for n, _ in groups]
        if len(set(names)) != len(names):
            raise UserError(f"parameter group names must be distinct, got {names}")
        for name, pattern in groups:
            if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", name):
                raise UserError(f"parameter group name {name!r} must be a letter followed by letters, digits or _")
            try:
                re.compile(pattern)
            except re.error as e:
                raise UserError(f"parameter group {name!r}: bad regular expression {pattern!r} ({e})") from None
        if self.optimizer.architecture != ARCHITECTURE:
            raise UserError(f"parameter groups apply to the coordinatewise LSTM, not {self.optimizer.architecture}")
        if self.architecture != GROUPED:
            raise UserError(f"GroupedConfig.architecture must be {GROUPED!r}")

    @property
    def layers(self) -> tuple[int, ...]:
        return self.optimizer.layers

    @property
    def max_update(self) -> float:
        return self.optimizer.max_update

    def replace_settings(self, **changes) -> "GroupedConfig":
        """The same groups with some shared LSTM settings changed (e.g. max_update)."""
        return dataclasses.replace(self, optimizer=dataclasses.replace(self.optimizer, **changes))

    def to_dict(self) -> dict[str, Any]:
        return {"architecture": GROUPED, "groups": [{"name": n, "pattern": p} for n, p in self.groups],
                "optimizer": self.optimizer.to_dict()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "GroupedConfig":
        unknown = set(d) - {"architecture", "groups", "optimizer"}
        if unknown:
            raise UserError(f"unknown grouped optimizer settings {sorted(unknown)}")
        groups = d.get("groups")
        if not isinstance(groups, list) or not all(isinstance(g, dict) and set(g) == {"name", "pattern"}
                                                    for g in groups):
            raise UserError("grouped optimizer settings need 'groups': a list of {name, pattern}")
        if not isinstance(d.get("optimizer"), dict):
            raise UserError("grouped optimizer settings need 'optimizer': the shared LSTM settings")
        return cls(tuple((g["name"], g["pattern"]) for g in groups), LSTMOptimizerConfig.from_dict(d["optimizer"]),
                   d.get("architecture", GROUPED))


class GroupedLSTM(Optimizer):
    """One `CoordinatewiseLSTM` per parameter group; phi is theirs concatenated, in group order."""

    label = "L2L"

    def __init__(self, config: GroupedConfig, seed: int | None = None, name: str = "grouped_lstm"):
        super().__init__(name=name)
        self.config = config
        self.optimizers = {
            group: CoordinatewiseLSTM(config.optimizer, seed=None if seed is None else seed + 1000 * k,
                                      name=f"lstm_{group}")
            for k, (group, _) in enumerate(config.groups)}
        self._patterns = [(group, re.compile(pattern)) for group, pattern in config.groups]

    @property
    def meta_variables(self) -> list:
        return [v for opt in self.optimizers.values() for v in opt.meta_variables]

    def remove_correction(self) -> None:
        """Every group's LSTM falls back to its base (`CoordinatewiseLSTM.remove_correction`)."""
        for opt in self.optimizers.values():
            opt.remove_correction()

    def set_horizon(self, steps: int) -> None:
        for opt in self.optimizers.values():
            opt.set_horizon(steps)

    def group_of(self, name: str) -> str:
        """The group whose pattern is found first in `name`; a name no group takes is an error."""
        for group, pattern in self._patterns:
            if pattern.search(name):
                return group
        raise UserError(f"parameter {name!r} belongs to no group of this optimizer "
                        f"({', '.join(f'{g}={p}' for g, p in self.config.groups)})")

    def assign(self, names: Sequence[str]) -> dict[str, list[str]]:
        """{group: [parameter names]} for a model's parameters: what goes to which LSTM."""
        out = {group: [] for group in self.optimizers}
        for name in names:
            out[self.group_of(name)].append(name)
        return out

    def init(self, params: Params, num_functions: int = 1, names: Sequence[str] | None = None) -> list:
        del num_functions  # every LSTM is coordinatewise
        if names is None:
            raise UserError("a grouped optimizer assigns parameters to its LSTMs by name, and this problem's "
                            "parameters have none")
        if len(names) != len(params):
            raise ValueError(f"{len(names)} names for {len(params)} parameters")
        state = []
        for p, name in zip(params, names):
            group = self.group_of(name)
            state.append({group: self.optimizers[group].init([p])[0]})
        return state

    def update(self, grads, state, params):
        del params
        members: dict[str, list[int]] = {}
        for i, entry in enumerate(state):
            (group,) = entry.keys()
            members.setdefault(group, []).append(i)
        updates, new_state = [None] * len(grads), [None] * len(grads)
        for group, indices in members.items():
            group_updates, group_state = self.optimizers[group].update(
                [grads[i] for i in indices], [state[i][group] for i in indices], None)
            for i, u, s in zip(indices, group_updates, group_state):
                updates[i], new_state[i] = u, {group: s}
        return updates, new_state

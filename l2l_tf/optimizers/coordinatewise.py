"""The coordinatewise LSTM optimizer m(grad, h; phi) of Andrychowicz et al. (2016).

One small recurrent network (by default two stacked Keras `LSTMCell`s of 20 units and a
linear output) is applied to every coordinate of every parameter tensor: each coordinate
has its own hidden state, all share the weights phi. That keeps phi tiny, makes the rule
invariant to the order of parameters, and lets one trained optimizer run on problems of
any size. All coordinates are processed as one batch of the cell, so an update is a few
[N, 4*units] matmuls no matter how many tensors the optimizee has; on CPUs everything between
the matmuls runs in one fused C++ kernel (l2l_tf/kernels), the same math as Keras' cells.
"""
from __future__ import annotations

import dataclasses
import json
import math
from typing import Any, Sequence

import keras
import tensorflow as tf

from l2l_tf.errors import UserError
from l2l_tf.kernels import fused_lstm
from l2l_tf.optimizers.base import Optimizer, Params
from l2l_tf.optimizers.preprocessing import PREPROCESSORS, get_preprocessor

ARCHITECTURE = "coordinatewise_lstm"
#: Every architecture `LSTMOptimizerConfig` can describe (the coupled ones live in coupled.py).
ARCHITECTURES = ("coordinatewise_lstm", "lstm_gac", "ntm_bfgs")
MEMORY_KINDS = ("lbfgs", "full")


@dataclasses.dataclass(frozen=True)
class LSTMOptimizerConfig:
    """Everything needed to rebuild a coordinatewise LSTM optimizer (saved as JSON beside phi).

    Attributes:
      layers: units of each stacked LSTM layer (the paper: two layers of 20).
      preprocess: "log_sign" (the paper's log-magnitude/sign features) or "none".
      preprocess_p: p of the log/sign preprocessing (the paper: 10; DeepMind's code: 5).
      output_scale: the linear output is multiplied by this (the paper: 0.1; code: 0.01).
      max_update: if > 0, every proposed coordinate update is clipped to [-max_update,
        max_update]: a guard against explosive steps on out-of-distribution problems.
      architecture: "coordinatewise_lstm" (the paper's main optimizer), "lstm_gac" (some cells
        averaged over coordinates) or "ntm_bfgs" (LSTM+GAC controller with an outer-product
        memory), the last two from the paper's Appendix D.
      num_gac: lstm_gac/ntm_bfgs: cells per layer whose output is averaged over coordinates.
      memory: ntm_bfgs: "lbfgs" (a ring buffer of the last `memory_slots` writes, O(k n)) or
        "full" (the sum of all writes as a dense n x n matrix per function, O(n^2)).
      memory_slots: ntm_bfgs with memory="lbfgs": k.
    """

    layers: tuple[int, ...] = (20, 20)
    preprocess: str = "log_sign"
    preprocess_p: float = 10.0
    output_scale: float = 0.1
    max_update: float = 0.0
    architecture: str = ARCHITECTURE
    num_gac: int = 0
    memory: str = "lbfgs"
    memory_slots: int = 10

    def __post_init__(self):
        object.__setattr__(self, "layers", tuple(int(u) for u in self.layers))
        if not self.layers or any(u <= 0 for u in self.layers):
            raise UserError(f"LSTM layers must be positive unit counts, got {list(self.layers)}")
        if self.preprocess not in PREPROCESSORS:
            raise UserError(f"unknown preprocessing {self.preprocess!r}; expected one of {PREPROCESSORS}")
        if not self.preprocess_p > 0:
            raise UserError(f"preprocess_p must be > 0, got {self.preprocess_p}")
        if not self.output_scale > 0:
            raise UserError(f"output_scale must be > 0, got {self.output_scale}")
        if not (self.max_update >= 0 and math.isfinite(self.max_update)):
            raise UserError(f"max_update must be >= 0 (0: no clipping), got {self.max_update}")
        if self.architecture not in ARCHITECTURES:
            raise UserError(f"unknown optimizer architecture {self.architecture!r}; expected one of {ARCHITECTURES}")
        coupled = self.architecture != ARCHITECTURE
        if coupled and not 0 < self.num_gac <= min(self.layers):
            raise UserError(f"{self.architecture} needs 0 < num_gac <= the smallest layer ({min(self.layers)}), "
                            f"got {self.num_gac}")
        if not coupled and self.num_gac:
            raise UserError("num_gac applies to lstm_gac and ntm_bfgs only")
        if self.memory not in MEMORY_KINDS:
            raise UserError(f"unknown memory {self.memory!r}; expected one of {MEMORY_KINDS}")
        if self.memory_slots < 1:
            raise UserError(f"memory_slots must be >= 1, got {self.memory_slots}")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["layers"] = list(self.layers)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "LSTMOptimizerConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise UserError(f"unknown LSTM optimizer settings {sorted(unknown)}")
        try:
            return cls(**d)
        except (TypeError, ValueError) as e:
            if isinstance(e, UserError):
                raise
            raise UserError(f"invalid LSTM optimizer settings {d}: {e}") from None

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)


def _sizes(tensors: Sequence[tf.Tensor]) -> list:
    return [t.shape.num_elements() if t.shape.is_fully_defined() else tf.size(t) for t in tensors]


def _flatten(tensors: Sequence[tf.Tensor]) -> tuple[tf.Tensor, list]:
    """Concatenates tensors into one [N] vector; returns it with the sizes to split it back."""
    flat = [tf.reshape(t, [-1]) for t in tensors]
    return (flat[0] if len(flat) == 1 else tf.concat(flat, axis=0)), _sizes(tensors)


def _split(vector: tf.Tensor, sizes: list) -> list[tf.Tensor]:
    return [vector] if len(sizes) == 1 else tf.split(vector, sizes, axis=0)


#: The key of `CoordinatewiseLSTM.pack_state`'s layout: {PACKED: [[h, c] per layer]}, all coordinates joined.
PACKED = "joined_lstm_state"


def _is_packed(state) -> bool:
    return isinstance(state, dict) and PACKED in state


class CoordinatewiseLSTM(Optimizer):
    """m(grad_t, h_t; phi) -> (update_t, h_{t+1}), the same LSTM on every coordinate.

    State: one entry per parameter tensor, each a tuple over layers of (h, c) with shape
    [num_coordinates_of_that_tensor, units]. Keeping it per tensor (rather than one flat
    vector) is what the Keras wrapper needs to store it as one optimizer variable per model
    variable; `update` still concatenates all coordinates into one batch for speed.
    """

    label = "L2L"

    #: Extra per-coordinate inputs and outputs of the network beyond (gradient features, update).
    extra_inputs: int = 0
    extra_outputs: int = 0

    #: "auto": the fused C++ kernel (l2l_tf/kernels) when it builds here, else Keras' cells;
    #: "keras": always Keras' cells; "fused": the kernel. While tracing for XLA and inside
    #: `fused_lstm.disabled()` (SavedModel export) Keras' cells are used whatever this says.
    kernel: str = "auto"

    def __init__(self, config: LSTMOptimizerConfig | None = None, seed: int | None = None,
                 name: str = "coordinatewise_lstm"):
        super().__init__(name=name)
        self.config = config or LSTMOptimizerConfig()
        self._preprocess, num_features = get_preprocessor(self.config.preprocess)
        num_features += self.extra_inputs
        init = lambda k: keras.initializers.GlorotUniform(seed=None if seed is None else seed + k)
        cells = [
            keras.layers.LSTMCell(
                units, kernel_initializer=init(2 * i),
                recurrent_initializer=keras.initializers.Orthogonal(seed=None if seed is None else seed + 2 * i + 1),
                name=f"lstm_{i}")
            for i, units in enumerate(self.config.layers)
        ]
        self._cell = keras.layers.StackedRNNCells(cells, name="stacked_lstm")
        self._cell.build((None, num_features))
        self._output = keras.layers.Dense(1 + self.extra_outputs, kernel_initializer=init(100), name="output")
        self._output.build((None, self.config.layers[-1]))

    @property
    def meta_variables(self) -> list:
        """phi: the LSTM and output weights (Keras variables), in a fixed order."""
        return list(self._cell.trainable_weights) + list(self._output.trainable_weights)

    def init(self, params: Params, num_functions: int = 1, names=None) -> list:
        del num_functions  # coordinates never interact
        state = []
        for p in params:
            n = p.shape.num_elements()
            n = n if n is not None else tf.size(p)
            state.append(tuple((tf.zeros([n, u]), tf.zeros([n, u])) for u in self.config.layers))
        return state

    def _join_states(self, per_tensor: list, sizes: list) -> list:
        """Per-tensor states -> one [N, units] (h, c) pair per layer for all coordinates."""
        if len(sizes) == 1:
            return [list(hc) for hc in per_tensor[0]]
        return [[tf.concat([s[layer][k] for s in per_tensor], axis=0) for k in range(2)]
                for layer in range(len(self.config.layers))]

    def _split_states(self, layer_states: list, sizes: list) -> list:
        """The inverse of `_join_states`."""
        per_layer = [[_split(hc[k], sizes) for k in range(2)] for hc in layer_states]
        return [tuple((per_layer[layer][0][i], per_layer[layer][1][i]) for layer in range(len(self.config.layers)))
                for i in range(len(sizes))]

    def _packs(self, params) -> bool:
        """Only the plain rule packs (subclasses keep their own state layouts)."""
        return type(self).update is CoordinatewiseLSTM.update and len(params) > 1

    def pack_state(self, state, params):
        """One joined (h, c) per layer for all coordinates: no join/split at every update."""
        if not self._packs(params) or _is_packed(state):
            return state
        return {PACKED: self._join_states(state, _sizes(params))}

    def unpack_state(self, state, params):
        if not _is_packed(state):
            return state
        return self._split_states(state[PACKED], _sizes(params))

    def _use_fused_kernel(self, features: tf.Tensor, joined: list) -> bool:
        """Whether this update runs the fused kernel: asked for, built, and float32 throughout."""
        if self.kernel not in fused_lstm.CHOICES:
            raise UserError(f"kernel must be one of {fused_lstm.CHOICES}, got {self.kernel!r}")
        if self.kernel == "keras" or fused_lstm.is_disabled() or (
                self.kernel == "auto" and not fused_lstm.available()):
            return False
        tensors = [features] + [t for hc in joined for t in hc]
        return all(t.dtype == tf.float32 for t in tensors) and all(
            w.dtype == "float32" for w in self._cell.trainable_weights)

    def _scale_and_clip(self, raw: tf.Tensor) -> tf.Tensor:
        step = self.config.output_scale * raw
        if self.config.max_update > 0:
            step = tf.clip_by_value(step, -self.config.max_update, self.config.max_update)
        return step

    def update(self, grads, state, params):
        del params  # The update depends on the gradient history only.
        g, sizes = _flatten(grads)
        features = self._preprocess(g, self.config.preprocess_p)
        packed = _is_packed(state)
        joined = state[PACKED] if packed else self._join_states(state, sizes)
        if self._use_fused_kernel(features, joined):
            out, new_states = features, []
            with tf.name_scope("fused_lstm"):  # so profiles can attribute its ops
                for cell, (h, c) in zip(self._cell.cells, joined):
                    out, c = fused_lstm.lstm_step(out, h, c, cell.kernel, cell.recurrent_kernel, cell.bias)
                    new_states.append([out, c])
        else:
            out, new_states = self._cell(features, joined)
            if len(self.config.layers) == 1:
                new_states = [new_states]
        step = self._scale_and_clip(tf.reshape(self._output(out), [-1]))
        updates = [tf.reshape(u, tf.shape(p)) for u, p in zip(_split(step, sizes), grads)]
        if packed:
            return updates, {PACKED: [list(hc) for hc in new_states]}
        return updates, self._split_states(new_states, sizes)

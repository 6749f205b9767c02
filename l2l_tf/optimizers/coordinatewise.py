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

import contextlib
import dataclasses
import json
import math
from typing import Any, NamedTuple, Sequence

import keras
import numpy as np
import tensorflow as tf

from l2l_tf.errors import UserError
from l2l_tf.kernels import fused_lstm
from l2l_tf.optimizers.base import Optimizer, Params
from l2l_tf.optimizers.hand_designed import check_warmup_fraction, cosine_decay, warmup_factor
from l2l_tf.optimizers.preprocessing import PREPROCESSORS, STATEFUL, MomentFeatures, get_preprocessor

#: The architecture name of this module's optimizer (every architecture: l2l_tf/optimizers/registry.py).
ARCHITECTURE = "coordinatewise_lstm"
MEMORY_KINDS = ("lbfgs", "full")
#: The progress feature's horizon until `set_horizon` is called: the paper's MNIST trajectory length.
DEFAULT_HORIZON = 100
OUTPUTS = ("linear", "tanh", "momentum")
#: output="momentum": the read-out scales the base rate by exp(MOMENTUM_LR_RANGE * tanh(r)), a
#: per-coordinate factor between about 0.14 and 7.4.
MOMENTUM_LR_RANGE = 2.0

#: output="momentum": the schedules of the base rate (see `LSTMOptimizerConfig.base_schedule`).
BASE_SCHEDULES = ("constant", "cosine")


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
      momentum_betas: preprocess="adam": the timescales of the momentum features m_hat/sqrt(v_hat)
        (RNNprop: one, 0.95; several give momentum over short and long horizons).
      rms_beta: preprocess="adam": the timescale of the second moment v (RNNprop: 0.95).
      input_layer: if > 0, a dense layer of this many ELU units between the features and the LSTM
        (RNNprop's input layer).
      output: "linear" (the paper: output_scale times a linear read-out) or "tanh"
        (output_scale * tanh(read-out): no coordinate ever moves by more than output_scale, so an
        out-of-distribution gradient cannot produce an explosive step), or "momentum": a learned
        correction of Nesterov momentum, update = -lr * exp(2 tanh(r_1)) * (g + mu m / (1 - mu))
        + output_scale * tanh(r_2) per coordinate, with m the running average of the gradient at
        timescale mu (m / (1 - mu) is NAG's velocity exactly) and lr, mu `base_learning_rate`,
        `base_momentum`. The read-out starts at zero, so an untrained network *is* NAG at that
        rate, and meta-training only has to learn where to take larger or smaller steps than NAG
        and what to add (needs preprocess="adam").
      base_learning_rate, base_momentum: output="momentum": the learning rate lr and momentum mu of
        the NAG update the network rescales (mu must be one of `momentum_betas`, whose running
        average the rule reuses as NAG's velocity).
      base_schedule: output="momentum": "constant" (lr at every step) or "cosine": lr times
        0.1 + 0.45 (1 + cos(pi (t - 1) / T)) at step t of a horizon of T steps, the decay from lr to
        0.1 lr that `CosineNAG` follows (needs progress_feature, which keeps t and is told T). A
        tuned NAG gains 2.6% (100 steps) and 4.5% (200 steps) on MNIST from that schedule
        (RESULTS.md), so the untrained network starts from the stronger analytic rule.
      base_warmup: output="momentum": a fraction w in [0, 1) of the horizon over which the base rate
        rises linearly, times min(1, t / (w T)) on top of `base_schedule` (0: none; needs
        progress_feature). With a 5% warm-up cosine NAG tunes a higher peak rate and ends 2.4%
        lower than without at 200 MNIST steps (RESULTS.md); the untrained network is that rule.
      magnitude_feature: preprocess="adam": also feed the gradient's scale, max(0, 1 +
        log(sqrt(v_hat)) / preprocess_p) (see `MomentFeatures`): without it the network can
        only represent Adam-like rules, not steps proportional to the gradient (NAG's).
      zero_update_at_zero_gradient: the network has no bias where a bias would move a
        coordinate whose gradients were all zero (the input layer, the LSTM's cell-candidate
        gate, the read-out), so with features that vanish with the gradient ("adam") such a
        coordinate gets exactly zero updates: frozen or unused parameters stay put.
      time_features: preprocess="adam": also feed 1 - beta^t for every moment's timescale (see
        `MomentFeatures`), a saturating clock with which the network can follow a schedule.
      progress_feature: preprocess="adam": also feed min(t / T, 1), the fraction of a horizon of T
        steps done (see `MomentFeatures`); T is told with `CoordinatewiseLSTM.set_horizon` (the
        evaluator and the meta-trainer set it to the trajectory's length).
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
    momentum_betas: tuple[float, ...] = (0.95,)
    rms_beta: float = 0.95
    input_layer: int = 0
    output: str = "linear"
    base_learning_rate: float = 0.0
    base_momentum: float = 0.9
    base_schedule: str = "constant"
    base_warmup: float = 0.0
    zero_update_at_zero_gradient: bool = False
    magnitude_feature: bool = False
    time_features: bool = False
    progress_feature: bool = False

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
        from l2l_tf.optimizers import registry

        if self.architecture not in registry.names():
            raise UserError(f"unknown optimizer architecture {self.architecture!r}; expected one of {registry.names()}")
        coupled = not registry.get(self.architecture).per_coordinate
        if coupled and not 0 < self.num_gac <= min(self.layers):
            raise UserError(f"{self.architecture} needs 0 < num_gac <= the smallest layer ({min(self.layers)}), "
                            f"got {self.num_gac}")
        if not coupled and self.num_gac:
            raise UserError("num_gac applies to lstm_gac and ntm_bfgs only")
        if self.memory not in MEMORY_KINDS:
            raise UserError(f"unknown memory {self.memory!r}; expected one of {MEMORY_KINDS}")
        if self.memory_slots < 1:
            raise UserError(f"memory_slots must be >= 1, got {self.memory_slots}")
        object.__setattr__(self, "momentum_betas", tuple(float(b) for b in self.momentum_betas))
        betas = (*self.momentum_betas, self.rms_beta)
        if not self.momentum_betas or len(self.momentum_betas) > 8 or not all(0.0 < b < 1.0 for b in betas):
            raise UserError(f"momentum_betas (1 to 8 of them) and rms_beta must lie strictly between 0 and 1, got "
                            f"{list(self.momentum_betas)} and {self.rms_beta}")
        if self.input_layer < 0:
            raise UserError(f"input_layer must be >= 0 (0: none), got {self.input_layer}")
        if self.output not in OUTPUTS:
            raise UserError(f"unknown output {self.output!r}; expected one of {OUTPUTS}")
        if self.output == "momentum":
            if self.preprocess not in STATEFUL:
                raise UserError("output 'momentum' needs preprocess 'adam' (it reuses the running average of the "
                                "gradient as NAG's velocity)")
            if not (self.base_learning_rate > 0 and math.isfinite(self.base_learning_rate)):
                raise UserError(f"output 'momentum' needs base_learning_rate > 0, got {self.base_learning_rate}")
            if float(self.base_momentum) not in self.momentum_betas:
                raise UserError(f"base_momentum {self.base_momentum} must be one of momentum_betas "
                                f"{list(self.momentum_betas)}")
        if self.base_schedule not in BASE_SCHEDULES:
            raise UserError(f"unknown base_schedule {self.base_schedule!r}; expected one of {BASE_SCHEDULES}")
        if self.base_schedule != "constant" and not (self.output == "momentum" and self.progress_feature):
            raise UserError(f"base_schedule {self.base_schedule!r} needs output 'momentum' and progress_feature "
                            "(the schedule follows the fraction of the horizon done)")
        check_warmup_fraction(self.base_warmup, "base_warmup")
        if self.base_warmup > 0 and not (self.output == "momentum" and self.progress_feature):
            raise UserError("base_warmup needs output 'momentum' and progress_feature (the warm-up follows the "
                            "fraction of the horizon done)")
        if not isinstance(self.zero_update_at_zero_gradient, (bool, np.bool_)):
            raise UserError(f"zero_update_at_zero_gradient must be true or false, got {self.zero_update_at_zero_gradient!r}")
        if self.magnitude_feature and self.preprocess not in STATEFUL:
            raise UserError("magnitude_feature applies to preprocess 'adam' (the paper's log/sign features carry the "
                            "magnitude already)")
        if self.time_features and self.preprocess not in STATEFUL:
            raise UserError("time_features applies to preprocess 'adam' (the clock is read from its moments' "
                            "normalizers)")
        for name in ("time_features", "progress_feature"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise UserError(f"{name} must be true or false, got {getattr(self, name)!r}")
        if self.progress_feature and self.preprocess not in STATEFUL:
            raise UserError("progress_feature applies to preprocess 'adam' (the step count is kept with its moments)")
        if self.zero_update_at_zero_gradient and self.preprocess not in STATEFUL:
            raise UserError(f"zero_update_at_zero_gradient needs features that vanish with the gradient "
                            f"(preprocess 'adam'); {self.preprocess!r} features of a zero gradient are not zero")
        if coupled and (self.preprocess in STATEFUL or self.input_layer or self.zero_update_at_zero_gradient):
            raise UserError(f"{self.architecture} takes the paper's features only (preprocess log_sign or none, "
                            "no input layer, no zero_update_at_zero_gradient)")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["layers"] = list(self.layers)
        d["momentum_betas"] = list(self.momentum_betas)
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


#: The learned optimizer's weights and arithmetic are float32 whatever Keras' global floatx or
#: dtype policy says: phi was trained in float32, and a float16 LSTM would propose other updates
#: (and could not load the float32 weights). Inputs of other float dtypes are cast to it.
COMPUTE_DTYPE = "float32"

class JoinedState(NamedTuple):
    """`CoordinatewiseLSTM.pack_state`'s layout: every state tensor (in `state_layout()` order)
    with the coordinates of all parameter tensors joined, for many updates in one compiled loop."""

    tensors: tuple
#: The name of the moment features' state tensor (preprocess "adam").
MOMENTS = "moments"


def _is_packed(state) -> bool:
    return isinstance(state, JoinedState)


def lstm_cell_step(cell, x: tf.Tensor, h: tf.Tensor, c: tf.Tensor, bias: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """One step of a Keras `LSTMCell`'s math (gates i, f, g, o; sigmoid and tanh) with `bias` in
    place of the cell's own: for networks whose bias is partly fixed at zero."""
    z = tf.matmul(x, cell.kernel) + tf.matmul(h, cell.recurrent_kernel) + bias
    i, f, g, o = tf.split(z, 4, axis=1)
    c = tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(g)
    return tf.sigmoid(o) * tf.tanh(c), c


class CoordinatewiseLSTM(Optimizer):
    """m(grad_t, h_t; phi) -> (update_t, h_{t+1}), the same LSTM on every coordinate.

    State: one entry per parameter tensor, a tuple of [num_coordinates_of_that_tensor, width]
    tensors in the order of `state_layout()`: (h, c) of every LSTM layer, then, for the
    "adam" features, their running moments. Keeping it per tensor (rather than one flat
    vector) is what the Keras wrapper needs to store it as optimizer variables per model
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
        self.config = cfg = config or LSTMOptimizerConfig()
        if cfg.preprocess in STATEFUL:
            self._moments = MomentFeatures(cfg.momentum_betas, cfg.rms_beta,
                                           magnitude_p=cfg.preprocess_p if cfg.magnitude_feature else 0.0,
                                           time_features=cfg.time_features,
                                           progress_feature=cfg.progress_feature)
            self._preprocess, num_features = None, self._moments.num_features
        else:
            self._moments = None
            self._preprocess, num_features = get_preprocessor(cfg.preprocess)
        num_features += self.extra_inputs
        init = lambda k: keras.initializers.GlorotUniform(seed=None if seed is None else seed + k)
        no_bias = cfg.zero_update_at_zero_gradient
        self._input = None
        if cfg.input_layer:
            self._input = keras.layers.Dense(cfg.input_layer, activation="elu", use_bias=not no_bias,
                                             kernel_initializer=init(200), name="input", dtype=COMPUTE_DTYPE)
            self._input.build((None, num_features))
            num_features = cfg.input_layer
        cells = [
            keras.layers.LSTMCell(
                units, kernel_initializer=init(2 * i),
                recurrent_initializer=keras.initializers.Orthogonal(seed=None if seed is None else seed + 2 * i + 1),
                name=f"lstm_{i}", dtype=COMPUTE_DTYPE)
            for i, units in enumerate(cfg.layers)
        ]
        self._cell = keras.layers.StackedRNNCells(cells, name="stacked_lstm", dtype=COMPUTE_DTYPE)
        self._cell.build((None, num_features))
        momentum_output = cfg.output == "momentum"
        # The "momentum" read-out starts at zero: the untrained rule is NAG at the base rate.
        self._output = keras.layers.Dense((2 if momentum_output else 1) + self.extra_outputs,
                                          kernel_initializer="zeros" if momentum_output else init(100),
                                          use_bias=not no_bias,
                                          name="output", dtype=COMPUTE_DTYPE)
        self._output.build((None, cfg.layers[-1]))
        #: The horizon T of the progress feature: a variable, so that a new trajectory length
        #: (a curriculum stage, an evaluation) does not retrace compiled loops.
        self.horizon = tf.Variable(float(DEFAULT_HORIZON), trainable=False, dtype=tf.float32, name="horizon")
        self._horizon_input = None  # a tensor in place of the variable, while an export traces `step`
        # Keras' gate order is i, f, g (cell candidate), o: without the g bias, a zero input and
        # a zero state give a zero cell and hidden state, so nothing moves at zero gradient.
        self._bias_masks = [tf.constant(np.repeat([1.0, 1.0, 0.0, 1.0], u).astype(np.float32)) if no_bias else None
                            for u in cfg.layers]

    def set_horizon(self, steps: int) -> None:
        """Tells the progress feature (if the config has it) how many steps the trajectory has."""
        if not steps > 0:
            raise UserError(f"the horizon must be a positive number of steps, got {steps}")
        self.horizon.assign(float(steps))

    @contextlib.contextmanager
    def horizon_input(self, horizon: tf.Tensor):
        """Within it, the progress feature reads `horizon` (e.g. a SavedModel signature's input)
        instead of the `horizon` variable, which an export does not carry."""
        self._horizon_input = horizon
        try:
            yield
        finally:
            self._horizon_input = None

    def remove_correction(self) -> None:
        """Zeroes the read-out of an output="momentum" optimizer: it becomes exactly its base, the
        (scheduled) NAG its training started from. The control every learned correction is
        measured against ("what did training add?"); other read-outs have no base to fall back to."""
        if self.config.output != "momentum":
            from l2l_tf.errors import UserError
            raise UserError(f"only an output='momentum' optimizer has an untrained base; this one's output is "
                            f"{self.config.output!r}")
        for v in self._output.weights:
            v.assign(tf.zeros_like(v))

    @property
    def meta_variables(self) -> list:
        """phi: the LSTM and output weights (Keras variables), then the input layer's, in a fixed order.

        The LSTM's weights are read from its cells, not from `StackedRNNCells.trainable_weights`:
        that property follows Keras' automatic tracking of sub-layers, which `Model.compile`
        switches off, so an optimizer built inside `compile(optimizer="LearnedOptimizer")` would
        otherwise list no LSTM weights (and fail to load its checkpoint).
        """
        extra = list(self._input.trainable_weights) if self._input is not None else []
        return self._lstm_weights() + list(self._output.trainable_weights) + extra

    def _lstm_weights(self) -> list:
        return [w for cell in self._cell.cells for w in cell.trainable_weights]

    # -- state -------------------------------------------------------------------------------

    def state_layout(self) -> list[tuple[str, int]]:
        """(name, width) of every per-coordinate state tensor, in state order:
        lstm_0_h, lstm_0_c, lstm_1_h, ..., then "moments" for the "adam" features."""
        layout = [(f"lstm_{i}_{part}", units) for i, units in enumerate(self.config.layers) for part in ("h", "c")]
        if self._moments is not None:
            layout.append((MOMENTS, self._moments.width))
        return layout

    def init(self, params: Params, num_functions: int = 1, names=None) -> list:
        del num_functions  # coordinates never interact
        state = []
        for p in params:
            n = p.shape.num_elements()
            n = n if n is not None else tf.size(p)
            shape = (lambda w: [n, w]) if isinstance(n, int) else (lambda w: tf.stack([n, w]))
            state.append(tuple(tf.zeros(shape(width)) for _, width in self.state_layout()))
        return state

    def _pairs(self, flat) -> list[list[tf.Tensor]]:
        """The LSTM part of a state in layout order as [h, c] per layer."""
        return [[flat[2 * i], flat[2 * i + 1]] for i in range(len(self.config.layers))]

    def _join_states(self, per_tensor: list, sizes: list) -> list:
        """Per-tensor states -> every state tensor of the layout for all coordinates at once."""
        if len(sizes) == 1:
            return list(per_tensor[0])
        return [tf.concat([s[k] for s in per_tensor], axis=0) for k in range(len(per_tensor[0]))]

    def _split_states(self, joined: list, sizes: list) -> list:
        """The inverse of `_join_states`."""
        parts = [_split(t, sizes) for t in joined]
        return [tuple(part[i] for part in parts) for i in range(len(sizes))]

    def _packs(self, params) -> bool:
        """Only the plain rule packs (subclasses keep their own state layouts)."""
        return type(self).update is CoordinatewiseLSTM.update and len(params) > 1

    def pack_state(self, state, params):
        """Every state tensor joined over all coordinates: no join/split at every update."""
        if not self._packs(params) or _is_packed(state):
            return state
        return JoinedState(tuple(self._join_states(state, _sizes(params))))

    def unpack_state(self, state, params):
        if not _is_packed(state):
            return state
        return self._split_states(list(state.tensors), _sizes(params))

    # -- the network ---------------------------------------------------------------------------

    def _use_fused_kernel(self, features: tf.Tensor, joined: list) -> bool:
        """Whether this update runs the fused kernel: asked for, built, and float32 throughout."""
        if self.kernel not in fused_lstm.CHOICES:
            raise UserError(f"kernel must be one of {fused_lstm.CHOICES}, got {self.kernel!r}")
        if self.kernel == "keras" or fused_lstm.is_disabled() or (
                self.kernel == "auto" and not fused_lstm.available()):
            return False
        tensors = [features] + list(joined)
        return all(t.dtype == tf.float32 for t in tensors) and all(
            w.dtype == "float32" for w in self._lstm_weights())

    def _features(self, g: tf.Tensor, moments: tf.Tensor | None) -> tuple[tf.Tensor, tf.Tensor | None]:
        """The network's input features of a [N] gradient (and the next moments, if kept)."""
        if self._moments is None:
            return self._preprocess(g, self.config.preprocess_p), None
        return self._moments(g, moments, self._current_horizon())

    def _current_horizon(self):
        """T of the progress feature: the export's horizon input while one is traced, else the variable."""
        return self.horizon if self._horizon_input is None else self._horizon_input

    def _cell_bias(self, layer: int, cell) -> tf.Tensor:
        mask = self._bias_masks[layer]
        return cell.bias if mask is None else cell.bias * mask

    def _lstm(self, x: tf.Tensor, layers: list, fused: bool) -> tuple[tf.Tensor, list]:
        """Runs the stacked LSTM one step on every row: (top hidden state, [[h, c] per layer])."""
        masked = self.config.zero_update_at_zero_gradient
        if not fused and not masked:
            out, new_states = self._cell(x, layers)
            return out, [new_states] if len(self.config.layers) == 1 else [list(hc) for hc in new_states]
        out, new_states = x, []
        with tf.name_scope("fused_lstm" if fused else "lstm"):  # so profiles can attribute its ops
            for i, (cell, (h, c)) in enumerate(zip(self._cell.cells, layers)):
                bias = self._cell_bias(i, cell)
                if fused:
                    out, c = fused_lstm.lstm_step(out, h, c, cell.kernel, cell.recurrent_kernel, bias)
                else:
                    out, c = lstm_cell_step(cell, out, h, c, bias)
                new_states.append([out, c])
        return out, new_states

    def _scale_and_clip(self, raw: tf.Tensor) -> tf.Tensor:
        """The read-out as an update: scaled (bounded by tanh if asked), clipped to max_update."""
        return self._clip(self.config.output_scale * (tf.tanh(raw) if self.config.output == "tanh" else raw))

    def _clip(self, step: tf.Tensor) -> tf.Tensor:
        """`step` clipped to [-max_update, max_update] (unchanged when max_update is 0)."""
        if self.config.max_update > 0:
            step = tf.clip_by_value(step, -self.config.max_update, self.config.max_update)
        return step

    def _read_out(self, raw: tf.Tensor, g: tf.Tensor, moments: tf.Tensor | None) -> tf.Tensor:
        """The [N] update from the [N, outputs] read-out (and, for output="momentum", the [N]
        gradient and the updated moments)."""
        if self.config.output != "momentum":
            return self._scale_and_clip(tf.reshape(raw, [-1]))
        cfg = self.config
        mu = cfg.base_momentum
        column = cfg.momentum_betas.index(mu)
        velocity = moments[:, column] / (1.0 - mu)  # sum_k mu^(t-k) g_k: NAG's velocity
        nag = g + mu * velocity
        scale = tf.exp(MOMENTUM_LR_RANGE * tf.tanh(raw[:, 0]))
        if cfg.base_schedule == "cosine" or cfg.base_warmup > 0:
            scale = scale * self._schedule_factor(moments)
        return self._clip(-cfg.base_learning_rate * scale * nag + cfg.output_scale * tf.tanh(raw[:, 1]))

    def _schedule_factor(self, moments: tf.Tensor) -> tf.Tensor:
        """[N] factor on the base rate at step t: 0.1 + 0.45 (1 + cos(pi min((t - 1) / T, 1))) for
        base_schedule="cosine" (1 at the first step, 0.1 from the horizon T on), times the linear
        warm-up min(1, t / (base_warmup T)); t is the step count the progress feature keeps (last
        column of the updated moments)."""
        step = moments[:, -1]
        horizon = tf.cast(self._current_horizon(), moments.dtype)
        factor = warmup_factor(step, horizon, self.config.base_warmup)
        if self.config.base_schedule == "cosine":
            factor = factor * cosine_decay(tf.minimum((step - 1.0) / horizon, 1.0))
        return factor

    def step(self, g: tf.Tensor, joined: list) -> tuple[tf.Tensor, list]:
        """The rule on one [N] gradient and its joined state: ([N] update, next joined state)."""
        layers = self._pairs(joined)
        moments = joined[-1] if self._moments is not None else None
        features, moments = self._features(g, moments)
        x = self._input(features) if self._input is not None else features
        out, new_layers = self._lstm(x, layers, self._use_fused_kernel(x, joined))
        step = self._read_out(self._output(out), g, moments)
        new_state = [t for hc in new_layers for t in hc] + ([moments] if moments is not None else [])
        return step, new_state

    def update(self, grads, state, params):
        del params  # The update depends on the gradient history only.
        g, sizes = _flatten(grads)
        packed = _is_packed(state)
        joined = list(state.tensors) if packed else self._join_states(state, sizes)
        step, new_state = self.step(g, joined)
        updates = [tf.reshape(u, tf.shape(p)) for u, p in zip(_split(step, sizes), grads)]
        if packed:
            return updates, JoinedState(tuple(new_state))
        return updates, self._split_states(new_state, sizes)

"""`LearnedOptimizer`: a trained coordinatewise LSTM optimizer as a `keras.optimizers.Optimizer`.

    model.compile(optimizer=l2l_tf.LearnedOptimizer("runs/quadratic"), loss=...)
    model.fit(...)

Each model variable gets its own LSTM state, (h, c) per LSTM layer with shape
[variable size, units], kept as non-trainable optimizer variables: they are saved with the
model, restored by `keras.models.load_model`, and updated in place inside `model.fit`'s
compiled step (with or without `model.compile(jit_compile=True)`). Each `update_step` runs
the library's own `CoordinatewiseLSTM.update` on that variable's flattened gradient, so a
Keras step proposes exactly the update the in-library optimizer proposes, and adds
`learning_rate * update` to the variable; `learning_rate` (default 1) is a multiplier for
users who want to damp the learned rule, and may be any Keras schedule.

A grouped optimizer (one LSTM per kind of parameter, e.g. conv and fully connected) sends
each model variable to the LSTM its path selects, exactly as in meta-training, so the
model's layer names must follow the scheme the optimizer was trained with.

The LSTM weights phi are constants for the user's model: they live in the wrapper's own copy
of the network, which is not part of the model, so Keras never computes gradients for them
or changes them.

Two options trade exactness for memory or time; both are off by default and both are
recorded by `get_config`:

- `state_dtype="bfloat16"` or `"float16"` stores the LSTM state in half the bytes (160
  instead of 320 per parameter for the default 2x20 network, against Adam's 8). The LSTM
  still computes in float32: each step reads the state, casts it to float32, runs the
  update and rounds the new state back to the storage dtype. The rounding makes the steps
  drift from the float32 ones, so the learned rule is no longer reproduced to 1e-6: bfloat16
  keeps about 3 significant digits (over the tests' 5 steps the updates differ by about 1e-3
  of their scale), float16 about one more (1e-4) but in a smaller range (up to 65504).
- `jit_compile=True` compiles the pure per-variable update (gradient and state tensors in,
  update and next state out; not the variable reads and writes) with XLA, which fuses the
  LSTM's element-wise gate arithmetic, for devices where the fused CPU kernel does not run
  (GPUs); the price is one XLA compilation per distinct variable size, at the first step. It
  is independent of `model.compile(jit_compile=...)`, and the two can be combined. What it
  costs and saves on a CPU is measured in RESULTS.md ("The Keras wrapper").
"""
from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf

from l2l_tf import saving
from l2l_tf.errors import UserError
from l2l_tf.optimizers import registry
from l2l_tf.optimizers.coordinatewise import CoordinatewiseLSTM
from l2l_tf.optimizers.grouped import GroupedLSTM

#: The dtypes the per-coordinate LSTM state may be stored in (`LearnedOptimizer(state_dtype=...)`).
STATE_DTYPES = ("float32", "bfloat16", "float16")


def _build_lstm(settings: dict[str, Any], phi: list) -> CoordinatewiseLSTM | GroupedLSTM:
    """A fresh coordinatewise (or grouped) LSTM with the given settings and weights, in float32.

    The Keras cells take their dtype policy from the global one at construction; under
    `mixed_float16` they would compute in float16 and propose different updates from the
    ones the optimizer was trained to make, so they are built under "float32".
    """
    config = registry.config_from_dict(dict(settings))
    registry.require_per_coordinate(config, "the Keras wrapper (one model variable at a time)")
    policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32")
    try:
        optimizer = registry.make(config)
    finally:
        keras.config.set_dtype_policy(policy)
    variables = saving.tf_variables(optimizer.meta_variables)
    if len(phi) != len(variables):
        raise UserError(f"the learned optimizer's weights have {len(phi)} tensors; its architecture needs "
                        f"{len(variables)}")
    for v, value in zip(variables, phi):
        value = np.asarray(value, np.float32)
        if tuple(value.shape) != tuple(v.shape):
            raise UserError(f"a learned optimizer weight has shape {tuple(value.shape)}; its architecture needs "
                            f"{tuple(v.shape)}")
        v.assign(value)
    return optimizer


def _check_state_dtype(state_dtype: Any) -> str:
    """The storage dtype's name, or a one-line error naming the allowed ones.

    Only float dtypes that hold the state to a few digits make sense; an integer or float64
    would silently break the rule or double the memory this option exists to save. A
    `tf.DType` or NumPy dtype is accepted by its name, so `tf.bfloat16` works as well.
    """
    name = getattr(state_dtype, "name", state_dtype)
    if name not in STATE_DTYPES:
        raise UserError(f"state_dtype must be one of {', '.join(STATE_DTYPES)}; got {state_dtype!r}")
    return name


def _check_jit_compile(jit_compile: Any) -> bool:
    """`jit_compile` as a bool; anything else (e.g. the string "false" from a hand-edited
    config, which is truthy) is an error rather than a silent guess."""
    if not isinstance(jit_compile, (bool, np.bool_)):
        raise UserError(f"jit_compile must be True or False; got {jit_compile!r}")
    return bool(jit_compile)


def _lstm_step(lstm: CoordinatewiseLSTM, gradient: tf.Tensor, state: tuple, learning_rate: tf.Tensor,
               state_dtype: str) -> tuple[tf.Tensor, tuple, tf.Tensor]:
    """One variable's update as a pure function of its flat gradient and stored state:
    (flat step, next stored state, whether the gradient was finite).

    `state` is the stored state tensors (`lstm.state_layout()`: (h, c) per layer, then the
    moments of Adam-normalized features), in `state_dtype`. The LSTM runs in float32 on the
    state cast up, and the next state is rounded back to `state_dtype`: storing in a narrow
    dtype saves memory without making the rule compute in one. A NaN/Inf gradient must never
    reach the weights or the LSTM state, so then the step is zero and the stored state is
    returned bit for bit (selected, not branched, so this stays one graph under XLA).
    """
    gradient = tf.cast(gradient, tf.float32)
    finite = tf.reduce_all(tf.math.is_finite(gradient))
    gradient = tf.where(finite, gradient, tf.zeros_like(gradient))
    state32 = [tuple(tf.cast(t, tf.float32) for t in state)]
    (update,), (next_state,) = lstm.update([gradient], state32, None)
    stored = tuple(tf.where(finite, tf.cast(new, state_dtype), old) for new, old in zip(next_state, state))
    step = tf.where(finite, tf.cast(learning_rate, tf.float32) * update, tf.zeros_like(update))
    return step, stored, finite


def _check_total_steps(total_steps: Any, learned: CoordinatewiseLSTM | GroupedLSTM) -> int | None:
    """`total_steps` as an int for an optimizer with the progress feature (where it is required),
    None for the others (where giving it is an error rather than a silently ignored argument)."""
    config = learned.config
    progress = getattr(getattr(config, "optimizer", config), "progress_feature", False)
    if not progress:
        if total_steps is not None:
            raise UserError("total_steps applies to learned optimizers trained with the progress feature; "
                            "this one has none")
        return None
    if total_steps is None:
        raise UserError("this learned optimizer was trained with the progress feature: give total_steps, the "
                        "number of steps training will run (epochs x steps per epoch)")
    if isinstance(total_steps, bool) or not isinstance(total_steps, (int, np.integer)) or total_steps < 1:
        raise UserError(f"total_steps must be a positive integer, got {total_steps!r}")
    return int(total_steps)


class _StepFunction:
    """`_lstm_step` bound to one LSTM and storage dtype, XLA-compiled if asked.

    A plain object rather than a bare `tf.function` attribute: Keras optimizers track their
    attributes for saving, and a compiled function is no state to save. Under XLA each
    variable size compiles once (the gradient comes in flattened, so variables of one size
    share it); the compiled function is reused by every later step, in eager `apply` and
    inside `model.fit`'s own `tf.function` alike.
    """

    def __init__(self, lstm: CoordinatewiseLSTM, state_dtype: str, jit_compile: bool):
        def step(gradient, state, learning_rate):
            return _lstm_step(lstm, gradient, state, learning_rate, state_dtype)

        self._step = tf.function(step, jit_compile=True) if jit_compile else step

    def __call__(self, gradient: tf.Tensor, state: tuple, learning_rate: tf.Tensor) -> tuple:
        return self._step(gradient, state, learning_rate)


#: What `LearnedOptimizer()` loads without a source: the bundled optimizer for ordinary Keras models.
DEFAULT_SOURCE = "general"


@keras.saving.register_keras_serializable(package="l2l_tf", name="LearnedOptimizer")
class LearnedOptimizer(keras.optimizers.Optimizer):
    """A trained L2L optimizer for `model.compile` / `model.fit`.

    Args:
      source: a trained optimizer directory, an export directory, the name of a bundled
        pretrained optimizer, or a `CoordinatewiseLSTM` object; default: the bundled
        "general" optimizer, trained for ordinary Keras models (its model card says where it
        holds up). Its phi is copied: later changes to the source do not change this optimizer.
      learning_rate: multiplier of the proposed update (float or schedule; default 1.0,
        i.e. the learned rule as trained).
      state_dtype: "float32" (default), "bfloat16" or "float16": the dtype the LSTM state
        is stored in. The narrow ones halve the optimizer's memory; the LSTM still computes
        in float32, but rounding the stored state makes the updates differ from the float32
        ones in about the third significant digit (bfloat16).
      jit_compile: compile each variable's update math with XLA (default False; for GPUs, where
        the fused CPU kernel does not run; RESULTS.md measures it on a CPU); the first step
        compiles once per distinct variable size.
      total_steps: for optimizers trained with the progress feature (their config says
        `progress_feature`), the number of training steps `model.fit` will run (epochs x steps
        per epoch): they schedule their steps over it, as they were trained to. Required by
        them and refused by the others, whose rule has no notion of a horizon.
      name, **kwargs: as for every Keras optimizer (weight_decay, clipnorm, global_clipnorm,
        use_ema, gradient_accumulation_steps, ...).
      lstm, phi, provenance: what `get_config` records; `from_config` passes them back.
        When `phi` is given, `source` is only remembered, never read.

    Serialization. `get_config` embeds the architecture settings and phi itself (5,141
    numbers for the default 2x20 network, about 100 kB of JSON) and records the source and
    its training metadata for provenance. Embedding rather than referring to the source
    directory is what makes `keras.models.load_model` robust: a saved model stays loadable
    after the optimizer directory was moved, deleted or overwritten by further training, or
    on another machine, and it keeps the exact rule it was trained with. Keeping phi in
    optimizer variables instead would not do: Keras restores optimizer variables only when
    loading a whole model, so `from_config` alone (cloning, `keras.optimizers.deserialize`)
    would yield an optimizer with a random phi and no error.

    A process that loads a saved model must have imported this class first (e.g.
    `from l2l_tf import LearnedOptimizer`), which registers it with Keras as
    "l2l_tf>LearnedOptimizer" and as "LearnedOptimizer": then `keras.optimizers.get("LearnedOptimizer")`
    gives the default (general) optimizer, and `keras.optimizers.get({"class_name":
    "LearnedOptimizer", "config": {"source": "mnist"}})` a bundled one by name.

    Dtypes. The LSTM's weights and arithmetic are float32 whatever `keras.config.floatx()` or
    the dtype policy says (phi was trained in float32); a model variable of any float dtype
    (float16, bfloat16, float64, or float32 under mixed precision) gets its gradient cast to
    float32 and its update cast back to its own dtype.
    """

    def __init__(self, source=None, learning_rate=1.0, name: str | None = None, *,
                 state_dtype: str = "float32", jit_compile: bool = False, total_steps: int | None = None,
                 lstm: dict[str, Any] | None = None, phi: list | None = None,
                 provenance: dict[str, Any] | None = None, **kwargs):
        if isinstance(learning_rate, int) and not isinstance(learning_rate, bool):
            learning_rate = float(learning_rate)
        # Checked before anything is loaded, so a typo fails fast and in one line.
        state_dtype, jit_compile = _check_state_dtype(state_dtype), _check_jit_compile(jit_compile)
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self._state_dtype, self._jit_compile = state_dtype, jit_compile
        if phi is not None:
            if lstm is None:
                raise UserError("LearnedOptimizer(phi=...) also needs the architecture settings (lstm=...)")
            recorded = source if isinstance(source, str) else None
        elif isinstance(source, (CoordinatewiseLSTM, GroupedLSTM)):
            lstm, phi = source.config.to_dict(), [v.numpy() for v in source.meta_variables]
            recorded, provenance = None, {"source": f"{type(source).__name__} object"}
        else:
            if source is None:
                source = DEFAULT_SOURCE
            from l2l_tf import loading

            loaded, info = loading.load_with_info(source)
            lstm, phi = loaded.config.to_dict(), [v.numpy() for v in loaded.meta_variables]
            recorded = str(source)
            provenance = {"source": info["source"].describe(), "kind": info["source"].kind,
                          "training": info["training"]}
        self._learned = _build_lstm(lstm, phi)
        self._total_steps = _check_total_steps(total_steps, self._learned)
        if self._total_steps is not None:
            self._learned.set_horizon(self._total_steps)
        self._source = recorded
        self._provenance = dict(provenance or {})

    @property
    def learned_optimizer(self) -> CoordinatewiseLSTM | GroupedLSTM:
        """The wrapped in-library optimizer (phi as loaded)."""
        return self._learned

    @property
    def source(self) -> str | None:
        """The path or bundled name this optimizer was loaded from (None if built from an object)."""
        return self._source

    @property
    def total_steps(self) -> int | None:
        """The horizon a progress-feature optimizer schedules over (None for the others)."""
        return self._total_steps

    @property
    def state_dtype(self) -> str:
        """The dtype the per-coordinate LSTM state is stored in ("float32", "bfloat16", "float16")."""
        return self._state_dtype

    @property
    def jit_compile(self) -> bool:
        """Whether each variable's update math is compiled with XLA."""
        return self._jit_compile

    def build(self, var_list):
        """The LSTM's state tensors (`state_layout()`: (h, c) per layer, moments) for every model
        variable, [variable size, width] each, in `state_dtype`, and one update function per
        LSTM (one, or one per group)."""
        if self.built:
            return
        super().build(var_list)
        # Counts variable updates skipped because their gradient held a NaN/Inf.
        self.non_finite_updates = self.add_variable((), name="non_finite_updates", initializer="zeros",
                                                    dtype="float32")
        lstms = list(self._learned.optimizers.values()) if isinstance(self._learned, GroupedLSTM) else [self._learned]
        steps = {id(lstm): _StepFunction(lstm, self._state_dtype, self._jit_compile) for lstm in lstms}
        self._lstm_states, self._step_of = [], []
        for variable in var_list:
            size = int(np.prod(variable.shape))
            base = variable.path.replace("/", "_") if hasattr(variable, "path") else \
                str(variable.name).replace("/", "_").replace(":", "_")
            lstm = (self._learned.optimizers[self._learned.group_of(getattr(variable, "path", variable.name))]
                    if isinstance(self._learned, GroupedLSTM) else self._learned)
            self._lstm_states.append(tuple(
                self.add_variable((size, width), name=f"{base}_{name}", dtype=self._state_dtype)
                for name, width in lstm.state_layout()))
            self._step_of.append(steps[id(lstm)])

    def update_step(self, gradient, variable, learning_rate):
        """Reads the variable's stored state, runs the (maybe compiled) pure update, writes back."""
        index = self._get_variable_index(variable)
        stored = self._lstm_states[index]
        state = tuple(tf.convert_to_tensor(v) for v in stored)
        # Flattened here, so that under XLA all variables of one size share one compilation.
        gradient = tf.reshape(tf.convert_to_tensor(gradient), [-1])
        step, next_state, finite = self._step_of[index](gradient, state, tf.convert_to_tensor(learning_rate))
        for v, value in zip(stored, next_state):
            self.assign(v, value)
        self.assign_add(self.non_finite_updates, 1.0 - tf.cast(finite, tf.float32))
        # The rule computes in float32; a float16/bfloat16/float64 variable gets its step in its own dtype.
        self.assign_add(variable, tf.cast(tf.reshape(step, tf.shape(variable)), variable.dtype))

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update({
            "source": self._source,
            "state_dtype": self._state_dtype,
            "jit_compile": self._jit_compile,
            "total_steps": self._total_steps,
            "lstm": self._learned.config.to_dict(),
            "phi": [v.numpy().astype(np.float32).tolist() for v in self._learned.meta_variables],
            "provenance": self._provenance,
        })
        return config


# `keras.optimizers.get("LearnedOptimizer")` looks the plain name up among the global custom objects.
keras.saving.get_custom_objects().setdefault("LearnedOptimizer", LearnedOptimizer)

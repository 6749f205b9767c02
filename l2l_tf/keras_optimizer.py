"""`LearnedOptimizer`: a trained coordinatewise LSTM optimizer as a `keras.optimizers.Optimizer`.

    model.compile(optimizer=l2l_tf.LearnedOptimizer("runs/quadratic"), loss=...)
    model.fit(...)

Each model variable gets its own LSTM state, (h, c) per LSTM layer with shape
[variable size, units], kept as non-trainable optimizer variables: they are saved with the
model, restored by `keras.models.load_model`, and updated in place inside `model.fit`'s
compiled step (with or without `jit_compile`). Each `update_step` runs the library's own
`CoordinatewiseLSTM.update` on that variable's flattened gradient, so a Keras step proposes
exactly the update the in-library optimizer proposes, and adds `learning_rate * update` to
the variable; `learning_rate` (default 1) is a multiplier for users who want to damp the
learned rule, and may be any Keras schedule.

A grouped optimizer (one LSTM per kind of parameter, e.g. conv and fully connected) sends
each model variable to the LSTM its path selects, exactly as in meta-training, so the
model's layer names must follow the scheme the optimizer was trained with.

The LSTM weights phi are constants for the user's model: they live in the wrapper's own copy
of the network, which is not part of the model, so Keras never computes gradients for them
or changes them.
"""
from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf

from l2l_tf import saving
from l2l_tf.errors import UserError
from l2l_tf.optimizers.coordinatewise import ARCHITECTURE, CoordinatewiseLSTM
from l2l_tf.optimizers.coupled import config_from_dict, make_learned_optimizer
from l2l_tf.optimizers.grouped import GroupedLSTM


def _build_lstm(settings: dict[str, Any], phi: list) -> CoordinatewiseLSTM | GroupedLSTM:
    """A fresh coordinatewise (or grouped) LSTM with the given settings and weights, in float32.

    The Keras cells take their dtype policy from the global one at construction; under
    `mixed_float16` they would compute in float16 and propose different updates from the
    ones the optimizer was trained to make, so they are built under "float32".
    """
    config = config_from_dict(dict(settings))
    if config.architecture not in (ARCHITECTURE, "grouped"):
        raise UserError(f"the Keras wrapper runs coordinatewise LSTM optimizers, not {config.architecture}")
    policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32")
    try:
        optimizer = make_learned_optimizer(config)
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


@keras.saving.register_keras_serializable(package="l2l_tf", name="LearnedOptimizer")
class LearnedOptimizer(keras.optimizers.Optimizer):
    """A trained L2L optimizer for `model.compile` / `model.fit`.

    Args:
      source: a trained optimizer directory, an export directory, the name of a bundled
        pretrained optimizer, or a `CoordinatewiseLSTM` object. Its phi is copied: later
        changes to the source do not change this optimizer.
      learning_rate: multiplier of the proposed update (float or schedule; default 1.0,
        i.e. the learned rule as trained).
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
    "l2l_tf>LearnedOptimizer".
    """

    def __init__(self, source=None, learning_rate=1.0, name: str | None = None, *,
                 lstm: dict[str, Any] | None = None, phi: list | None = None,
                 provenance: dict[str, Any] | None = None, **kwargs):
        if isinstance(learning_rate, int) and not isinstance(learning_rate, bool):
            learning_rate = float(learning_rate)
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        if phi is not None:
            if lstm is None:
                raise UserError("LearnedOptimizer(phi=...) also needs the architecture settings (lstm=...)")
            recorded = source if isinstance(source, str) else None
        elif isinstance(source, (CoordinatewiseLSTM, GroupedLSTM)):
            lstm, phi = source.config.to_dict(), [v.numpy() for v in source.meta_variables]
            recorded, provenance = None, {"source": f"{type(source).__name__} object"}
        elif source is None:
            raise UserError("LearnedOptimizer needs a trained optimizer: a directory, an export or a bundled name")
        else:
            from l2l_tf import loading

            loaded, info = loading.load_with_info(source)
            lstm, phi = loaded.config.to_dict(), [v.numpy() for v in loaded.meta_variables]
            recorded = str(source)
            provenance = {"source": info["source"].describe(), "kind": info["source"].kind,
                          "training": info["training"]}
        self._learned = _build_lstm(lstm, phi)
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

    def build(self, var_list):
        """One (h, c) pair per LSTM layer for every model variable, [variable size, units] each."""
        if self.built:
            return
        super().build(var_list)
        # Counts variable updates skipped because their gradient held a NaN/Inf.
        self.non_finite_updates = self.add_variable((), name="non_finite_updates", initializer="zeros")
        self._lstm_states, self._lstm_of = [], []
        for variable in var_list:
            size = int(np.prod(variable.shape))
            base = variable.path.replace("/", "_") if hasattr(variable, "path") else \
                str(variable.name).replace("/", "_").replace(":", "_")
            self._lstm_states.append(tuple(
                (self.add_variable((size, units), name=f"{base}_lstm_{i}_h"),
                 self.add_variable((size, units), name=f"{base}_lstm_{i}_c"))
                for i, units in enumerate(self._learned.config.layers)))
            self._lstm_of.append(self._learned.optimizers[self._learned.group_of(getattr(variable, "path", variable.name))]
                                 if isinstance(self._learned, GroupedLSTM) else self._learned)

    def update_step(self, gradient, variable, learning_rate):
        index = self._get_variable_index(variable)
        layers, lstm = self._lstm_states[index], self._lstm_of[index]
        gradient = tf.reshape(tf.cast(tf.convert_to_tensor(gradient), tf.float32), [-1])
        # A NaN/Inf gradient must never reach the weights or the LSTM state: that variable's
        # update is skipped (selected away, so this stays one graph under tf.function/XLA).
        finite = tf.reduce_all(tf.math.is_finite(gradient))
        gradient = tf.where(finite, gradient, tf.zeros_like(gradient))
        state = [tuple((tf.convert_to_tensor(h), tf.convert_to_tensor(c)) for h, c in layers)]
        (update,), (next_state,) = lstm.update([gradient], state, None)
        for (h_var, c_var), (h, c), (h_old, c_old) in zip(layers, next_state, state[0]):
            self.assign(h_var, tf.where(finite, h, h_old))
            self.assign(c_var, tf.where(finite, c, c_old))
        self.assign_add(self.non_finite_updates, 1.0 - tf.cast(finite, tf.float32))
        step = tf.where(finite, tf.cast(learning_rate, tf.float32) * update, tf.zeros_like(update))
        self.assign_add(variable, tf.reshape(step, tf.shape(variable)))

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update({
            "source": self._source,
            "lstm": self._learned.config.to_dict(),
            "phi": [v.numpy().astype(np.float32).tolist() for v in self._learned.meta_variables],
            "provenance": self._provenance,
        })
        return config

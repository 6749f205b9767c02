"""A plain, unfused implementation of the coordinatewise LSTM optimizer's math.

`CoordinatewiseLSTM` is the fast path: all coordinates of all parameter tensors form one
batch, and each LSTM layer is Keras' fused cell (one input and one recurrent matmul for the
four gates together). `UnfusedLSTM` computes the same function the obvious way, tensor by
tensor and gate by gate (eight small matmuls per layer per tensor), reading the very same
weights phi. It exists so that speed-ups are measured against an honest baseline in the same
run (`bin/l2l_benchmark.py`) and so that tests can check that the fast path computes the
same updates and meta-gradients.
"""
from __future__ import annotations

import tensorflow as tf

from l2l_tf.optimizers.base import Optimizer
from l2l_tf.optimizers.coordinatewise import ARCHITECTURE, CoordinatewiseLSTM


class UnfusedLSTM(Optimizer):
    """The coordinatewise LSTM rule of `source`, per tensor and per gate; phi is `source`'s."""

    label = "L2L-unfused"

    def __init__(self, source: CoordinatewiseLSTM, name: str = "unfused_lstm"):
        super().__init__(name=name)
        if source.config.architecture != ARCHITECTURE:
            raise ValueError(f"the unfused reference implements the coordinatewise LSTM, not {source.config.architecture}")
        self.source = source
        self.config = source.config

    @property
    def meta_variables(self) -> list:
        return self.source.meta_variables

    def init(self, params, num_functions: int = 1, names=None):
        return self.source.init(params, num_functions, names)

    def _layer(self, cell, bias, x, h, c):
        units = cell.units
        gates = []
        for k in range(4):  # Keras' gate order: input, forget, cell candidate, output
            cols = slice(k * units, (k + 1) * units)
            gates.append(tf.matmul(x, cell.kernel[:, cols]) + tf.matmul(h, cell.recurrent_kernel[:, cols])
                         + bias[cols])
        i, f, o = tf.sigmoid(gates[0]), tf.sigmoid(gates[1]), tf.sigmoid(gates[3])
        c = f * c + i * tf.tanh(gates[2])
        return o * tf.tanh(c), c

    def update(self, grads, state, params):
        with tf.name_scope("unfused_lstm"):  # so profiles can attribute its ops
            return self._update(grads, state)

    def _update(self, grads, state):
        source = self.source
        cells, output = source._cell.cells, source._output
        updates, new_state = [], []
        for g, flat in zip(grads, state):
            moments = flat[-1] if source._moments is not None else None
            x, moments = source._features(tf.reshape(g, [-1]), moments)
            if source._input is not None:
                x = tf.nn.elu(tf.matmul(x, source._input.kernel) + (
                    source._input.bias if source._input.use_bias else 0.0))
            next_flat = []
            for i, (cell, (h, c)) in enumerate(zip(cells, source._pairs(flat))):
                x, c = self._layer(cell, source._cell_bias(i, cell), x, h, c)
                next_flat += [x, c]
            raw = tf.matmul(x, output.kernel) + (output.bias if output.use_bias else 0.0)
            step = source._read_out(raw, tf.reshape(g, [-1]), moments)
            updates.append(tf.reshape(step, tf.shape(g)))
            new_state.append(tuple(next_flat + ([moments] if moments is not None else [])))
        return updates, new_state

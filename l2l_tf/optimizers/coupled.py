"""Learned optimizers that share information across coordinates (the paper's Appendix D).

A coordinatewise LSTM cannot compute anything global (a gradient norm, a curvature estimate),
because each coordinate only sees its own history. Two remedies, both keeping the
coordinatewise weight sharing (and so invariance to the order of coordinates):

* **LSTM+GAC** (`LSTMGAC`): in every layer the first `num_gac` cells are Global Averaging
  Cells: their outputs are replaced by their mean over all coordinates of the same function
  before they are fed to the next layer and back into the recurrence. Means are taken per
  function, so the functions of a vectorized meta-batch never talk to each other.
* **NTM-BFGS** (`NTMBFGS`): an LSTM+GAC controller that also emits, per coordinate, a read key
  r, a write key w and a write value a. The memory is a sum of outer products a wᵀ, like the
  low-rank updates with which BFGS builds its inverse-Hessian estimate; reading returns
  M r (normalized by the number of coordinates) and is both added to the proposed update and
  fed back as an input at the next step. `memory="full"` keeps the whole n×n matrix per
  function (O(n²) memory, for small problems); `memory="lbfgs"` keeps only the last
  `memory_slots` = k writes in a ring buffer, so memory stays O(k·n) like L-BFGS.
"""
from __future__ import annotations

import tensorflow as tf

from l2l_tf.errors import UserError
from l2l_tf.optimizers.coordinatewise import CoordinatewiseLSTM, _flatten, _split
from l2l_tf.optimizers.preprocessing import log_sign

#: Largest per-function coordinate count for a dense ("full") NTM memory (64 MiB per function).
MAX_FULL_MEMORY_COORDINATES = 4096


def _num_elements(p: tf.Tensor) -> int:
    n = p.shape.num_elements()
    if n is None:
        raise UserError("coupled optimizers need parameters of static shape")
    return n


def function_segments(params, num_functions: int) -> tf.Tensor:
    """Which function each coordinate (in flattened, concatenated order) belongs to."""
    ids = []
    for p in params:
        n = _num_elements(p)
        if num_functions > 1 and (p.shape.rank == 0 or p.shape[0] != num_functions):
            raise UserError(f"with {num_functions} functions every parameter needs a leading axis of that size; "
                            f"got shape {p.shape}")
        ids.append(tf.repeat(tf.range(num_functions, dtype=tf.int32), n // num_functions))
    return tf.concat(ids, axis=0)


def segment_mean(x: tf.Tensor, segments: tf.Tensor, num_segments: tf.Tensor) -> tf.Tensor:
    """Each row replaced by the mean of its segment's rows (x: [N, d])."""
    return tf.gather(tf.math.unsorted_segment_mean(x, segments, num_segments), segments)


class LSTMGAC(CoordinatewiseLSTM):
    """Coordinatewise LSTM whose first `num_gac` cells per layer are averaged over coordinates.

    State: {"lstm": per-tensor (h, c) as in `CoordinatewiseLSTM`, "segments": int32 [N],
    "num_segments": int32 scalar}.
    """

    def init(self, params, num_functions: int = 1, names=None) -> dict:
        return {"lstm": super().init(params), "segments": function_segments(params, num_functions),
                "num_segments": tf.constant(num_functions, tf.int32)}

    def _controller(self, features, layer_states, segments, num_segments):
        k = self.config.num_gac
        x, new_states = features, []
        for cell, (h, c) in zip(self._cell.cells, layer_states):
            h, (_, c) = cell(x, [h, c])
            shared = segment_mean(h[:, :k], segments, num_segments)
            h = tf.concat([shared, h[:, k:]], axis=1)
            new_states.append([h, c])
            x = h
        return x, new_states

    def _heads(self, g, state, sizes):
        """Runs the controller; returns (network outputs [N, 1 + extra], new LSTM states)."""
        features = self._preprocess(g, self.config.preprocess_p)
        if self.extra_inputs:
            features = tf.concat([features, self._extra_features(state)], axis=1)
        out, new_states = self._controller(features, self._pairs(self._join_states(state["lstm"], sizes)),
                                           state["segments"], state["num_segments"])
        return self._output(out), [t for hc in new_states for t in hc]

    def update(self, grads, state, params):
        del params
        g, sizes = _flatten(grads)
        heads, new_states = self._heads(g, state, sizes)
        step = self._scale_and_clip(heads[:, 0])
        updates = [tf.reshape(u, tf.shape(p)) for u, p in zip(_split(step, sizes), grads)]
        return updates, {**state, "lstm": self._split_states(new_states, sizes)}


class NTMBFGS(LSTMGAC):
    """LSTM+GAC controller with an outer-product memory shared by the coordinates of a function.

    Extra state: "read" [N] (the last read, an input at the next step) and "memory":
    {"keys": [N, k], "values": [N, k], "slot": int32} for "lbfgs", or {"matrix":
    [F, n, n], "order": int32 [N]} for "full" (coordinates sorted by function).
    """

    extra_inputs = 2   # the previous read, log/sign-preprocessed like the gradient
    extra_outputs = 3  # read key, write key, write value

    def init(self, params, num_functions: int = 1, names=None) -> dict:
        state = super().init(params, num_functions)
        n = sum(_num_elements(p) for p in params)
        state["read"] = tf.zeros([n])
        if self.config.memory == "lbfgs":
            k = self.config.memory_slots
            state["memory"] = {"keys": tf.zeros([n, k]), "values": tf.zeros([n, k]), "slot": tf.constant(0)}
        else:
            per_function = n // num_functions
            if per_function > MAX_FULL_MEMORY_COORDINATES:
                raise UserError(f"memory='full' keeps an n x n matrix per function; n = {per_function} is too large "
                                f"(> {MAX_FULL_MEMORY_COORDINATES}): use memory='lbfgs'")
            order = tf.argsort(state["segments"], stable=True)
            state["memory"] = {"matrix": tf.zeros([num_functions, per_function, per_function]), "order": order}
        return state

    def _extra_features(self, state):
        return log_sign(state["read"], self.config.preprocess_p)

    def update(self, grads, state, params):
        del params
        g, sizes = _flatten(grads)
        heads, new_states = self._heads(g, state, sizes)
        proposal = heads[:, 0]
        read_key, write_key, value = tf.tanh(heads[:, 1]), tf.tanh(heads[:, 2]), heads[:, 3]
        segments, num_segments = state["segments"], state["num_segments"]
        memory = state["memory"]
        if self.config.memory == "lbfgs":
            slot = tf.one_hot(memory["slot"], self.config.memory_slots)[None, :]
            keys = memory["keys"] * (1.0 - slot) + write_key[:, None] * slot
            values = memory["values"] * (1.0 - slot) + value[:, None] * slot
            # (M r)_i = sum_j values_ij * mean over the function's coordinates of keys_.j * r_.
            coefficients = tf.math.unsorted_segment_mean(keys * read_key[:, None], segments, num_segments)
            read = tf.reduce_sum(values * tf.gather(coefficients, segments), axis=1)
            memory = {"keys": keys, "values": values, "slot": (memory["slot"] + 1) % self.config.memory_slots}
        else:
            order = memory["order"]
            shape = tf.shape(memory["matrix"])[:2]
            by_function = lambda v: tf.reshape(tf.gather(v, order), shape)  # noqa: E731
            matrix = memory["matrix"] + tf.einsum("fi,fj->fij", by_function(value), by_function(write_key))
            sorted_read = tf.einsum("fij,fj->fi", matrix, by_function(read_key)) / tf.cast(shape[1], tf.float32)
            read = tf.scatter_nd(order[:, None], tf.reshape(sorted_read, [-1]), tf.shape(order))
            memory = {"matrix": matrix, "order": order}
        step = self._scale_and_clip(proposal + read)
        updates = [tf.reshape(u, tf.shape(p)) for u, p in zip(_split(step, sizes), grads)]
        return updates, {**state, "lstm": self._split_states(new_states, sizes), "read": read, "memory": memory}


def make_learned_optimizer(config, seed: int | None = None) -> CoordinatewiseLSTM:
    """Builds the learned optimizer that `config.architecture` names (see l2l_tf/optimizers/registry.py)."""
    from l2l_tf.optimizers import registry

    return registry.make(config, seed)

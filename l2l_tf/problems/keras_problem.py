"""Any Keras model and dataset as a problem family: the optimizee is an ordinary Keras model.

`KerasProblem(model_fn, dataset, loss)` builds the model once and drives it with
`model.stateless_call(trainable, non_trainable, x)`: the parameters theta are explicit
tensors (the model's trainable variables, in order), so the meta-trainer differentiates
through T optimizer steps without any `apply_gradients` or variable assignment. Each sampled
problem re-draws every variable from the layer's own initializer with a fresh seed, and
reads its own seeded stream of minibatches.

Non-trainable variables (e.g. batch-norm moving statistics) are the problem's `data`: the
model is called with `training=True` (batch norm normalizes with batch statistics) and the
updated moving statistics it returns are threaded along the trajectory by
`loss_and_state`, so they are optimizee state, never part of theta, and the end-of-run
test accuracy (`training=False`) uses the statistics the trajectory produced.
Every parameter is named by its variable's path (e.g. "conv_0/kernel"), so optimizers can
treat parameters by layer (see `l2l_tf.optimizers.grouped`).
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import keras
import numpy as np
import tensorflow as tf

from l2l_tf.errors import UserError
from l2l_tf.problems.base import Problem, ProblemFamily, function_rng

DatasetFn = Callable[[int], tf.data.Dataset]


def _own_variables(layer) -> list:
    return list(layer._trainable_variables) + list(layer._non_trainable_variables)


def fresh_weights(model: keras.Model, seed: int) -> tuple[list[tf.Tensor], list[tf.Tensor]]:
    """New values for (trainable, non-trainable) variables, drawn from each layer's initializers.

    A variable `kernel` of a layer is re-drawn with that layer's `kernel_initializer` (the
    Keras convention for every built-in layer), seeded per variable so that two problems
    with different seeds never share weights and the same seed always gives the same ones.
    """
    initializers = {}
    for layer in model._flatten_layers(include_self=True, recursive=True):
        for v in _own_variables(layer):
            init = getattr(layer, f"{v.name}_initializer", None)
            if init is not None:
                initializers[id(v)] = init
    seeds = np.random.SeedSequence(seed).generate_state(len(model.variables) + 1)
    values = {}
    for v, s in zip(model.variables, seeds):
        init = initializers.get(id(v))
        if init is None:
            raise UserError(f"cannot re-initialize variable {v.path}: its layer has no {v.name}_initializer")
        config = init.get_config()
        if "seed" in config:
            init = init.__class__.from_config({**config, "seed": int(s) % (2**31 - 1)})
        values[id(v)] = tf.convert_to_tensor(init(shape=v.shape, dtype=v.dtype))
    return ([values[id(v)] for v in model.trainable_variables],
            [values[id(v)] for v in model.non_trainable_variables])


class _BatchStream:
    """Serves per-step batches by step index from a tf.data iterator.

    Truncations overlap by one step (the batch that scores theta_T of one unroll is the
    batch of step T of the next), so the last batch is cached; anything else must be asked
    for in order, which keeps streams reproducible (a resumed run rebuilds the same stream).

    The pipeline is built on first use and dropped by `close()`: an evaluation samples
    hundreds of problems up front, and holding a live iterator (with its prefetch thread) for
    each of them at once, then destroying them together, is what once hung evaluation inside
    tf.data's iterator destructor. tf.data's autotuning is off for these short-lived streams
    for the same reason (it starts a model thread per iterator); fixed prefetching remains.
    """

    def __init__(self, make_dataset: Callable[[], tf.data.Dataset]):
        self._make_dataset = make_dataset
        self._iterator = None
        self._closed = False
        self._next = 0
        self._last: tuple[int, Any] | None = None

    def _iter(self):
        if self._closed:
            raise ValueError("this problem's batch stream was closed after its trajectory")
        if self._iterator is None:
            options = tf.data.Options()
            options.autotune.enabled = False
            self._iterator = iter(self._make_dataset().with_options(options))
        return self._iterator

    def close(self) -> None:
        """Releases the iterator; the stream cannot be read again."""
        self._iterator, self._closed, self._last = None, True, None

    def __call__(self, start: int, count: int) -> Any:
        batches = []
        for t in range(start, start + count):
            if self._last is not None and self._last[0] == t:
                batches.append(self._last[1])
                continue
            if t != self._next:
                raise ValueError(f"batches must be read in order: asked for step {t}, next is {self._next}")
            batch = next(self._iter())
            self._next += 1
            self._last = (t, batch)
            batches.append(batch)
        return tf.nest.map_structure(lambda *b: tf.stack(b), *batches)


def array_dataset_fn(x: np.ndarray, y: np.ndarray, batch_size: int,
                     transform: Callable[[tf.Tensor], tf.Tensor] | None = None) -> DatasetFn:
    """A seeded, shuffled, repeated, prefetched minibatch pipeline over in-memory arrays.

    The arrays become constants once; each problem's pipeline shuffles indices only, so a
    new problem costs nothing like a copy of the data. Every pass over the data is a
    *stateless* permutation of (seed, pass): the batches are a function of the seed alone. A
    seeded `Dataset.shuffle` would also depend on TensorFlow's global seed, so that a process
    that called `keras.utils.set_random_seed` (l2l_train) saw other batches for the same
    problem than one that did not (l2l_evaluate), and a trainer's validation numbers could not
    be reproduced by an evaluation.
    """
    if len(x) < batch_size:
        raise UserError(f"dataset has {len(x)} examples, fewer than the batch size {batch_size}")
    x_all, y_all = tf.constant(x), tf.constant(y)
    n = len(x)

    def gather(idx):
        xb = tf.gather(x_all, idx)
        return (transform(xb) if transform else xb), tf.gather(y_all, idx)

    def make(seed: int) -> tf.data.Dataset:
        def one_pass(index):
            order = tf.random.experimental.stateless_shuffle(tf.range(n, dtype=tf.int64),
                                                             seed=tf.stack([tf.constant(seed, tf.int64), index]))
            return tf.data.Dataset.from_tensor_slices(order)

        return (tf.data.Dataset.counter().flat_map(one_pass).batch(batch_size, drop_remainder=True)
                .map(gather).prefetch(2))

    return make


class KerasProblem(ProblemFamily):
    """A problem family from a Keras model builder, a dataset and a loss.

    Args:
      model_fn: builds the (uncompiled) model; called once, with its input shape known.
      dataset: a function `seed -> tf.data.Dataset` of (x, y) minibatches (repeated), or a
        `tf.data.Dataset` (then every problem reads it in the same order).
      loss: a Keras loss (object, name or function of (y_true, y_pred)) reduced to a scalar.
      eval_data: optional (x, y) arrays for end-of-trajectory metrics (accuracy).
      name: the family's name in results.
    """

    vectorized = False

    def __init__(self, model_fn: Callable[[], keras.Model], dataset: DatasetFn | tf.data.Dataset, loss,
                 eval_data: tuple[np.ndarray, np.ndarray] | None = None, name: str = "keras_problem",
                 settings: dict | None = None):
        self.name = name
        self.model = model_fn()
        if not self.model.built:
            raise UserError("model_fn must return a built model (give it an Input or call build())")
        self._dataset_fn = dataset if callable(dataset) else (lambda seed: dataset.repeat())
        self.loss_fn = keras.losses.get(loss) if isinstance(loss, str) else loss
        self.eval_data = eval_data
        self._settings = dict(settings or {})
        self._accuracy_fn = None

    def sample(self, split: str, seed: int, indices: Sequence[int]) -> Problem:
        if len(indices) != 1:
            raise ValueError(f"{self.name} problems hold one function each; got {len(indices)} indices")
        rng = function_rng(split, seed, indices[0], self.name)
        init_seed, data_seed = (int(s) for s in rng.integers(0, 2**31 - 1, size=2))
        trainable, non_trainable = fresh_weights(self.model, init_seed)
        stream = _BatchStream(lambda: self._dataset_fn(data_seed))
        return Problem(params=trainable, data=tuple(non_trainable), num_functions=1, batch_fn=stream,
                       param_names=self.param_names)

    @property
    def param_names(self) -> tuple[str, ...]:
        """The trainable variables' paths, in the order of `Problem.params`."""
        return tuple(v.path for v in self.model.trainable_variables)

    def loss_and_state(self, params, data, batch):
        x, y = batch
        y_pred, non_trainable = self.model.stateless_call(list(params), list(data), x, training=True)
        losses = tf.reshape(tf.reduce_mean(self._per_example_loss(y, y_pred)), [1])  # averaged over the batch
        return losses, tuple(non_trainable)

    def loss(self, params, data, batch):
        return self.loss_and_state(params, data, batch)[0]

    def _per_example_loss(self, y, y_pred):
        """The loss of every example, unreduced.

        A `keras.losses.Loss` object's `__call__` divides by the number of replicas when it runs
        inside a tf.distribute replica (Keras' convention for summing replica losses); each
        replica here optimizes its own problem, whose loss must not depend on how many other
        replicas there are, so the unreduced `call` is used instead.
        """
        if isinstance(self.loss_fn, keras.losses.Loss):
            return self.loss_fn.call(y, y_pred)
        return self.loss_fn(y, y_pred)

    def metrics(self, params: Sequence[tf.Tensor], problem: Problem) -> dict[str, float]:
        """End-of-trajectory metrics: accuracy on `eval_data` (e.g. the test set)."""
        if self.eval_data is None:
            return {}
        if self._accuracy_fn is None:
            x_eval, y_eval = (tf.constant(a) for a in self.eval_data)

            @tf.function(reduce_retracing=True)
            def accuracy(params, data):
                y_pred, _ = self.model.stateless_call(list(params), list(data), x_eval, training=False)
                hits = tf.equal(tf.argmax(y_pred, axis=-1, output_type=tf.int32), tf.cast(y_eval, tf.int32))
                return tf.reduce_mean(tf.cast(hits, tf.float32))

            self._accuracy_fn = accuracy
        return {"test_accuracy": float(self._accuracy_fn(list(params), problem.data))}

    def describe(self) -> dict:
        return {"name": self.name, "num_params": int(sum(np.prod(v.shape) for v in self.model.trainable_variables)),
                **self._settings}

"""Experiment: is the fused gate matmul (one [N, 4u] matmul, then a split) the fast layout on CPU?

Profiles of meta-training (`bin/l2l_benchmark.py`) show the LSTM's time in element-wise ops,
Split and ConcatV2 (the split's gradient), not in matmuls. This compares, in one process pinned to
one thread, MNIST meta-training epochs (default MLP, 100 steps, unroll 20) of three layouts of
the same math and the same phi: `fast` (Keras' fused LSTMCell on all coordinates at once, the
library's path), `unfused` (the reference: per tensor and per gate, `UnfusedLSTM`) and `per_gate`
(all coordinates at once, but four per-gate matmuls, so no split and no concat in the backward
pass). Run from the repository root:

    python benchmarks/experiments/per_gate_lstm.py --data_dir=../shared/data

It prints steps per second (the median of 5 epochs after 3 warm-up epochs), two rounds.
"""
from __future__ import annotations

import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

flags.DEFINE_string("data_dir", None, "Folder holding mnist.npz.")
flags.DEFINE_integer("threads", 1, "Intra-op threads.")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    tf.config.threading.set_intra_op_parallelism_threads(FLAGS.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    import keras

    from l2l_tf.meta import MetaTrainConfig, MetaTrainer
    from l2l_tf.optimizers import CoordinatewiseLSTM
    from l2l_tf.optimizers.coordinatewise import _flatten, _split
    from l2l_tf.optimizers.reference import UnfusedLSTM
    from l2l_tf.problems.registry import make_family

    class PerGateLSTM(CoordinatewiseLSTM):
        """All coordinates as one batch, but one matmul per gate (no split of the gate matrix)."""

        def _layer(self, cell, x, h, c):
            u = cell.units
            z = [tf.matmul(x, cell.kernel[:, j * u:(j + 1) * u]) + tf.matmul(h, cell.recurrent_kernel[:, j * u:(j + 1) * u])
                 + cell.bias[j * u:(j + 1) * u] for j in range(4)]
            c = tf.sigmoid(z[1]) * c + tf.sigmoid(z[0]) * tf.tanh(z[2])
            return tf.sigmoid(z[3]) * tf.tanh(c), c

        def update(self, grads, state, params):
            g, sizes = _flatten(grads)
            x = self._preprocess(g, self.config.preprocess_p)
            new = []
            for cell, (h, c) in zip(self._cell.cells, self._pairs(self._join_states(state, sizes))):
                x, c = self._layer(cell, x, h, c)
                new += [x, c]
            step = self._scale_and_clip(tf.reshape(self._output(x), [-1]))
            return ([tf.reshape(u, tf.shape(p)) for u, p in zip(_split(step, sizes), grads)],
                    self._split_states(new, sizes))

    def steps_per_second(kind: str) -> float:
        keras.utils.set_random_seed(0)
        family = make_family("mnist", data_dir=FLAGS.data_dir)
        fast = PerGateLSTM(seed=0) if kind == "per_gate" else CoordinatewiseLSTM(seed=0)
        trainer = MetaTrainer(family, UnfusedLSTM(fast) if kind == "unfused" else fast,
                              MetaTrainConfig(num_steps=100, unroll_length=20))
        for epoch in range(3):
            trainer.run_epoch(epoch)
        times = []
        for epoch in range(3, 8):
            start = time.perf_counter()
            trainer.run_epoch(epoch)
            times.append(time.perf_counter() - start)
        return 100 / statistics.median(times)

    for round_index in range(2):
        print(f"round {round_index + 1}:", {k: round(steps_per_second(k), 1) for k in ("fast", "unfused", "per_gate")},
              flush=True)


if __name__ == "__main__":
    app.run(main)

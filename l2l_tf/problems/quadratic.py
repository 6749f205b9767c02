"""The paper's 10-dimensional quadratic functions f(theta) = ||W theta - y||^2.

W (10x10) and y (10) have i.i.d. N(0, 1) entries, drawn afresh for every function.
theta_0 ~ N(0, 0.01^2) i.i.d., as in DeepMind's released code (`problems.simple_multi_
optimizer`'s quadratic used `random_normal_initializer(stddev=0.01)`). The loss is the
squared norm, not a mean, so gradients are of order 10-100 at the start.

Functions are vectorized: a problem of B functions has W: [B,10,10], y: [B,10] and one
parameter tensor theta: [B,10]; the paper's meta-batch of 128 is one such problem.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import tensorflow as tf

from l2l_tf.problems.base import Problem, ProblemFamily, function_rng


class QuadraticFamily(ProblemFamily):
    """Random quadratics ||W theta - y||^2 of a given dimension."""

    name = "quadratic"
    vectorized = True

    def __init__(self, num_dims: int = 10, init_stddev: float = 0.01):
        self.num_dims = int(num_dims)
        self.init_stddev = float(init_stddev)

    def sample_function(self, split: str, seed: int, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(W, y, theta_0) of one function, from its own generator."""
        rng = function_rng(split, seed, index, self.name)
        d = self.num_dims
        w = rng.standard_normal((d, d)).astype(np.float32)
        y = rng.standard_normal(d).astype(np.float32)
        theta = (self.init_stddev * rng.standard_normal(d)).astype(np.float32)
        return w, y, theta

    def sample(self, split: str, seed: int, indices: Sequence[int]) -> Problem:
        ws, ys, thetas = zip(*(self.sample_function(split, seed, i) for i in indices))
        data = (tf.constant(np.stack(ws)), tf.constant(np.stack(ys)))
        return Problem(params=[tf.constant(np.stack(thetas))], data=data, num_functions=len(indices))

    def loss(self, params, data, batch):
        del batch
        w, y = data
        (theta,) = params
        residual = tf.linalg.matvec(w, theta) - y
        return tf.reduce_sum(tf.square(residual), axis=-1)

    def describe(self) -> dict:
        return {"name": self.name, "num_dims": self.num_dims, "init_stddev": self.init_stddev}

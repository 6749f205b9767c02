"""Gradient preprocessing for coordinatewise learned optimizers (the paper's Appendix A).

Gradients of different coordinates and problems span many orders of magnitude, which an
LSTM with saturating gates handles badly. The paper feeds each gradient as two numbers:

    g  ->  (log|g| / p, sgn(g))   if |g| >= exp(-p)
           (-1, exp(p) * g)       otherwise

Both components lie in [-1, 1] for |g| <= exp(p), and the map is continuous at
|g| = exp(-p). DeepMind's released code wrote it as `clamp(log(|g|)/k, min=-1)` and
`clamp(g * exp(k), -1, 1)`, which is the same function with p = k (that code used k = 5).
"""
from __future__ import annotations

import math

import tensorflow as tf

PREPROCESSORS = ("log_sign", "none")


def log_sign(grads: tf.Tensor, p: float = 10.0) -> tf.Tensor:
    """Maps a [N] or [N, 1] gradient tensor to [N, 2] features (log-magnitude, sign).

    Zero and subnormal gradients take the small-gradient branch, so no log(0) is ever
    evaluated where its value is used; `tf.where` on a safe argument keeps gradients of
    this function (needed with second derivatives) free of NaN too.
    """
    g = tf.reshape(grads, [-1, 1])
    threshold = math.exp(-p)
    big = tf.abs(g) >= threshold
    safe_abs = tf.where(big, tf.abs(g), tf.ones_like(g))
    log_part = tf.where(big, tf.math.log(safe_abs) / p, -tf.ones_like(g))
    sign_part = tf.where(big, tf.sign(g), math.exp(p) * g)
    return tf.concat([log_part, sign_part], axis=1)


def identity(grads: tf.Tensor, p: float = 10.0) -> tf.Tensor:
    """No preprocessing: the raw gradient as a single feature."""
    del p
    return tf.reshape(grads, [-1, 1])


def get_preprocessor(name: str):
    """Returns (function, number of features) for a preprocessing name."""
    if name == "log_sign":
        return log_sign, 2
    if name == "none":
        return identity, 1
    from l2l_tf.errors import UserError
    raise UserError(f"unknown preprocessing {name!r}; expected one of {PREPROCESSORS}")

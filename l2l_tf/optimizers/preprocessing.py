"""Gradient preprocessing for coordinatewise learned optimizers (the paper's Appendix A).

Gradients of different coordinates and problems span many orders of magnitude, which an
LSTM with saturating gates handles badly. The paper feeds each gradient as two numbers:

    g  ->  (log|g| / p, sgn(g))   if |g| >= exp(-p)
           (-1, exp(p) * g)       otherwise

Both components lie in [-1, 1] for |g| <= exp(p), and the map is continuous at
|g| = exp(-p). DeepMind's released code wrote it as `clamp(log(|g|)/k, min=-1)` and
`clamp(g * exp(k), -1, 1)`, which is the same function with p = k (that code used k = 5).

`MomentFeatures` is the other family of inputs (Lv et al. 2017, "RNNprop"; Wichrowska et al.
2017): running moments kept in the optimizer state, and the gradient and its momenta divided
by the root of the second moment, g/sqrt(v) and m_beta/sqrt(v) for one or several timescales
beta. They are invariant to the scale of the loss (the paper's features are not: a loss ten
times larger shifts every log-magnitude), bounded (|g|/sqrt(v) <= 1/sqrt(1 - beta_v)), and
exactly zero for a coordinate whose gradients were all zero.
"""
from __future__ import annotations

import math

import tensorflow as tf

PREPROCESSORS = ("log_sign", "none", "adam")
#: Preprocessings that keep running moments in the optimizer state (see `MomentFeatures`).
STATEFUL = ("adam",)


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
    """Returns (function, number of features) for a stateless preprocessing name."""
    if name == "log_sign":
        return log_sign, 2
    if name == "none":
        return identity, 1
    if name in STATEFUL:
        from l2l_tf.errors import UserError
        raise UserError(f"preprocessing {name!r} keeps running moments: use MomentFeatures")
    from l2l_tf.errors import UserError
    raise UserError(f"unknown preprocessing {name!r}; expected one of {PREPROCESSORS}")


class MomentFeatures:
    """Adam-normalized inputs: g/sqrt(v_hat) and m_hat_k/sqrt(v_hat) for every momentum timescale.

    Per coordinate the state holds, in one [N, 2 (K + 1)] tensor, the exponential moving
    averages m_k of the gradient (one per beta_k of `momentum_betas`) and v of its square
    (`rms_beta`), followed by their normalizers n = sum of the weights so far, so that
    m_hat = m / n is the bias-corrected average (Adam's 1 - beta^t) without a step counter:
    every column updates as x <- beta x + (1 - beta) target, which keeps the state one plain
    per-coordinate tensor (joined, split and stored like the LSTM's own state).

    Features (K + 1 of them): g / (sqrt(v_hat) + epsilon), then m_hat_k / (sqrt(v_hat) + epsilon).
    RNNprop used K = 1 with beta = 0.95 for both; several timescales (e.g. 0.5, 0.9, 0.99, 0.999)
    let the network build momentum over short and long horizons, as Wichrowska et al. do.

    These ratios say nothing about how large the gradient is, so a network fed only them can
    represent Adam-like rules (a step of about the same size for every coordinate) but not
    momentum SGD's steps proportional to the gradient, which win on some problems (NAG beats
    Adam on the paper's MNIST MLP). `magnitude_p` > 0 adds one feature that carries the scale,
    max(0, 1 + log(sqrt(v_hat)) / p): 0 for gradients below e^-p (and exactly 0 for a zero
    gradient, like the others), 1 at sqrt(v_hat) = 1, log-linear in between (the paper's
    log-magnitude, shifted and clamped so that it vanishes with the gradient).

    `time_features` adds the normalizers themselves, 1 - beta^t for every timescale (K + 1 of
    them): a clock at several timescales (about 2 to 100 steps for betas 0.5 ... 0.99) that
    saturates instead of growing, so steps past the training horizon look like its last ones.
    Without a clock the LSTM has to count steps in its own state to follow a learning-rate
    schedule, and a schedule is worth having: NAG with a cosine-decaying rate ends MNIST training
    2.6% lower at 100 steps and 4.5% at 200 than the same NAG at its tuned constant rate
    (RESULTS.md, `reproduce/nag_schedules.py`). Learned optimizers since
    Metz et al. (2020) feed such time features. They are multiplied by [v > 0], so a coordinate
    whose gradients were all zero still sees all-zero features (`zero_update_at_zero_gradient`
    still holds).

    `progress_feature` adds the fraction of training done, min(t / T, 1), for a horizon T the
    caller gives (the optimizer's `set_horizon`; VeLO, Metz et al. 2022, takes the same input).
    A constant-rate baseline is tuned for its horizon (NAG's best MNIST rate is 1 at 100 steps
    and 0.56 at 200), and the best schedule depends on it: a cosine decay over the horizon beats
    the tuned constant rate at 100 and at 200 steps, while no horizon-free decay helps at both
    (RESULTS.md). The step count t is one more state column; the feature is gated like the clock.
    """

    def __init__(self, momentum_betas: tuple[float, ...] = (0.95,), rms_beta: float = 0.95, epsilon: float = 1e-8,
                 magnitude_p: float = 0.0, time_features: bool = False, progress_feature: bool = False):
        self.momentum_betas, self.rms_beta, self.epsilon = tuple(momentum_betas), float(rms_beta), float(epsilon)
        self.magnitude_p = float(magnitude_p)
        self.time_features = bool(time_features)
        k = len(self.momentum_betas)
        self.progress_feature = bool(progress_feature)
        self.num_features = (k + 1 + (1 if self.magnitude_p > 0 else 0) + (k + 1 if self.time_features else 0)
                             + (1 if self.progress_feature else 0))
        self.width = 2 * (k + 1) + (1 if self.progress_feature else 0)  # the step count last

    def init(self, n) -> tf.Tensor:
        return tf.zeros(tf.stack([n, self.width]) if isinstance(n, tf.Tensor) else [n, self.width])

    def __call__(self, grads: tf.Tensor, moments: tf.Tensor,
                 horizon: tf.Tensor | float | None = None) -> tuple[tf.Tensor, tf.Tensor]:
        """(features [N, num_features], next moments [N, width]) for a [N] gradient; `horizon`
        (T > 0) is needed with `progress_feature`."""
        g = tf.reshape(grads, [-1, 1])
        k = len(self.momentum_betas)
        betas = tf.constant([*self.momentum_betas, self.rms_beta] * 2, tf.float32)
        ones = tf.ones_like(g)
        targets = tf.concat([tf.tile(g, [1, k]), tf.square(g), tf.tile(ones, [1, k + 1])], axis=1)
        count = None
        if self.progress_feature:
            count = moments[:, 2 * (k + 1):] + 1.0
            moments = moments[:, : 2 * (k + 1)]
        moments = betas * moments + (1.0 - betas) * targets
        averages = moments[:, : k + 1] / moments[:, k + 1:]  # bias-corrected: normalizers > 0 after one step
        rms = tf.sqrt(averages[:, k:])
        features = tf.concat([g, averages[:, :k]], axis=1) / (rms + self.epsilon)
        if self.magnitude_p > 0:
            tiny = math.exp(-self.magnitude_p)
            magnitude = tf.maximum(0.0, 1.0 + tf.math.log(tf.maximum(rms, tiny)) / self.magnitude_p)
            features = tf.concat([features, magnitude], axis=1)
        if self.time_features:
            seen = tf.cast(moments[:, k: k + 1] > 0.0, features.dtype)  # any nonzero gradient so far
            features = tf.concat([features, moments[:, k + 1:] * seen], axis=1)  # 1 - beta^t per timescale
        if self.progress_feature:
            if horizon is None:
                raise ValueError("the progress feature needs the horizon (set_horizon)")
            seen = tf.cast(moments[:, k: k + 1] > 0.0, features.dtype)
            progress = tf.minimum(count / tf.cast(horizon, features.dtype), 1.0)
            features = tf.concat([features, progress * seen], axis=1)
            moments = tf.concat([moments, count], axis=1)
        return features, moments

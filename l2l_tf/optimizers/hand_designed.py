"""Hand-designed baselines: SGD, NAG, RMSprop and Adam with Torch7's defaults.

The paper compared against Torch7's `optim` package, so every hyperparameter except the
learning rate (which the evaluator tunes per problem family) follows Torch7:

| rule    | Torch7 function | defaults                                         |
|---------|-----------------|--------------------------------------------------|
| sgd     | optim.sgd       | learningRate 1e-3                                |
| nag     | optim.nag       | learningRate 1e-3, momentum 0.9                  |
| rmsprop | optim.rmsprop   | learningRate 1e-2, alpha 0.99, epsilon 1e-8      |
| adam    | optim.adam      | learningRate 1e-3, beta1 0.9, beta2 0.999, eps 1e-8 |

The learning rate is a non-trainable `tf.Variable`, so a learning-rate sweep reuses one
compiled trajectory loop instead of retracing it for every grid point.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import tensorflow as tf

from l2l_tf.optimizers import registry
from l2l_tf.optimizers.base import Optimizer, Params


class _HandDesigned(Optimizer):
    """Shared plumbing: a learning-rate variable and a per-parameter zero state."""

    default_learning_rate: float = 1e-3

    def __init__(self, learning_rate: float | None = None, name: str | None = None):
        super().__init__(name=name or self.label)
        lr = self.default_learning_rate if learning_rate is None else learning_rate
        self.learning_rate = tf.Variable(float(lr), trainable=False, dtype=tf.float32, name="learning_rate")

    def set_learning_rate(self, value: float) -> None:
        self.learning_rate.assign(float(value))

    @staticmethod
    def _zeros(params: Params) -> list[tf.Tensor]:
        return [tf.zeros_like(p) for p in params]


class SGD(_HandDesigned):
    """Plain gradient descent: u = -lr * g."""

    label = "sgd"

    def init(self, params: Params, num_functions: int = 1, names=None) -> tuple:
        return ()

    def update(self, grads, state, params):
        return [-self.learning_rate * g for g in grads], state


class NAGState(NamedTuple):
    velocity: list


class NAG(_HandDesigned):
    """Nesterov's accelerated gradient (Sutskever et al. 2013), Torch7 `optim.nag`.

    Torch7 evaluates the gradient at the look-ahead point theta + mu*v. With the gradient
    taken at the current iterate (our interface), the same trajectory is produced by the
    reformulation Keras uses (Bengio et al. 2012):
        v <- mu*v - lr*g ;   u = mu*v - lr*g
    which the tests check against `keras.optimizers.SGD(nesterov=True)`.
    """

    label = "nag"

    def __init__(self, learning_rate: float | None = None, momentum: float = 0.9, name: str | None = None):
        super().__init__(learning_rate, name)
        self.momentum = float(momentum)

    def init(self, params: Params, num_functions: int = 1, names=None) -> NAGState:
        return NAGState(self._zeros(params))

    def update(self, grads, state, params):
        lr, mu = self.learning_rate, self.momentum
        velocity = [mu * v - lr * g for v, g in zip(state.velocity, grads)]
        updates = [mu * v - lr * g for v, g in zip(velocity, grads)]
        return updates, NAGState(velocity)


class RMSpropState(NamedTuple):
    mean_square: list


class RMSprop(_HandDesigned):
    """Torch7 `optim.rmsprop`: m <- a*m + (1-a)*g^2 ;  u = -lr * g / (sqrt(m) + eps)."""

    label = "rmsprop"
    default_learning_rate = 1e-2

    def __init__(self, learning_rate: float | None = None, decay: float = 0.99, epsilon: float = 1e-8,
                 name: str | None = None):
        super().__init__(learning_rate, name)
        self.decay = float(decay)
        self.epsilon = float(epsilon)

    def init(self, params: Params, num_functions: int = 1, names=None) -> RMSpropState:
        return RMSpropState(self._zeros(params))

    def update(self, grads, state, params):
        a = self.decay
        mean_square = [a * m + (1.0 - a) * tf.square(g) for m, g in zip(state.mean_square, grads)]
        updates = [-self.learning_rate * g / (tf.sqrt(m) + self.epsilon) for g, m in zip(grads, mean_square)]
        return updates, RMSpropState(mean_square)


class AdamState(NamedTuple):
    step: tf.Tensor
    m: list
    v: list


class Adam(_HandDesigned):
    """Torch7 `optim.adam` (Kingma & Ba 2015, with the bias correction folded into the step size)."""

    label = "adam"

    def __init__(self, learning_rate: float | None = None, beta1: float = 0.9, beta2: float = 0.999,
                 epsilon: float = 1e-8, name: str | None = None):
        super().__init__(learning_rate, name)
        self.beta1, self.beta2, self.epsilon = float(beta1), float(beta2), float(epsilon)

    def init(self, params: Params, num_functions: int = 1, names=None) -> AdamState:
        return AdamState(tf.constant(0.0), self._zeros(params), self._zeros(params))

    def update(self, grads, state, params):
        b1, b2 = self.beta1, self.beta2
        step = state.step + 1.0
        m = [b1 * m_ + (1.0 - b1) * g for m_, g in zip(state.m, grads)]
        v = [b2 * v_ + (1.0 - b2) * tf.square(g) for v_, g in zip(state.v, grads)]
        step_size = self.learning_rate * tf.sqrt(1.0 - tf.pow(b2, step)) / (1.0 - tf.pow(b1, step))
        updates = [-step_size * m_ / (tf.sqrt(v_) + self.epsilon) for m_, v_ in zip(m, v)]
        return updates, AdamState(step, m, v)


def cosine_decay(progress: tf.Tensor) -> tf.Tensor:
    """The factor on the rate at `progress` in [0, 1] of a run: a cosine from 1 down to 0.1.

    One definition for `CosineNAG` and the coordinatewise LSTM's cosine base schedule, so the
    learned rule starts from the same schedule the teacher follows."""
    return 0.1 + 0.45 * (1.0 + tf.cos(math.pi * progress))


def check_warmup_fraction(fraction: float, name: str) -> None:
    """Refuses a warm-up that is not a fraction of the horizon in [0, 1) (`name`: how the caller
    calls it), one check for `CosineNAG` and the LSTM's `base_warmup`."""
    if not 0.0 <= fraction < 1.0:
        from l2l_tf.errors import UserError
        raise UserError(f"{name} must be a fraction of the horizon in [0, 1), got {fraction}")


def warmup_factor(step: tf.Tensor, horizon: tf.Tensor, fraction: float) -> tf.Tensor:
    """The factor on the rate at 1-based `step` of a linear warm-up over the first `fraction` of a
    `horizon`-step run: step / (fraction * horizon) until it reaches 1 (1 throughout for fraction 0).

    Why: a short warm-up lets a decaying schedule start from a higher peak rate without the first,
    largest gradients throwing the net into saturation; on the MNIST MLP at 200 steps, cosine NAG
    with a 5% warm-up tuned its peak at 1.33 (not 0.75) and ended 2.4% lower than without, 7.6%
    below tuned constant-rate NAG at momentum 0.8 (RESULTS.md). One definition for `CosineNAG` and
    the coordinatewise LSTM's base schedule."""
    if fraction <= 0:
        return tf.ones_like(step)
    return tf.minimum(step / (fraction * horizon), 1.0)


class CosineNAGState(NamedTuple):
    step: tf.Tensor
    velocity: list


class CosineNAG(NAG):
    """NAG whose learning rate follows a cosine from lr down to 0.1 lr over `horizon` steps.

    Not one of the paper's baselines (those keep a constant, tuned rate): a teacher for
    imitation (l2l_tf/imitation.py) that shows the LSTM a schedule, and a stronger reference
    than constant-rate NAG where RESULTS.md reports it. The horizon is a variable, so changing
    it (a curriculum stage's trajectory length) does not retrace compiled loops.
    """

    label = "nag_cosine"

    def __init__(self, learning_rate: float | None = None, momentum: float = 0.9, horizon: int = 100,
                 name: str | None = None, warmup: float = 0.0):
        super().__init__(learning_rate, momentum, name)
        check_warmup_fraction(warmup, "warmup")
        self.warmup = float(warmup)
        self.horizon = tf.Variable(float(horizon), trainable=False, dtype=tf.float32, name="horizon")

    def set_horizon(self, steps: int) -> None:
        self.horizon.assign(float(steps))

    def init(self, params: Params, num_functions: int = 1, names=None) -> CosineNAGState:
        return CosineNAGState(tf.constant(0.0), self._zeros(params))

    def rate(self, step: tf.Tensor) -> tf.Tensor:
        """The learning rate at 0-based `step`: the one place a scheduled NAG's schedule lives, so a
        variant (reproduce/nag_schedules.py's decays) overrides this and keeps NAG's step."""
        progress = tf.minimum(step / self.horizon, 1.0)
        return self.learning_rate * cosine_decay(progress) * warmup_factor(step + 1.0, self.horizon, self.warmup)

    def update(self, grads, state, params):
        lr = self.rate(state.step)
        mu = self.momentum
        velocity = [mu * v - lr * g for v, g in zip(state.velocity, grads)]
        updates = [mu * v - lr * g for v, g in zip(velocity, grads)]
        return updates, CosineNAGState(state.step + 1.0, velocity)


HAND_DESIGNED = {cls.label: cls for cls in (SGD, NAG, RMSprop, Adam)}
assert tuple(HAND_DESIGNED) == registry.BASELINES, "registry.BASELINES must name exactly these"
#: Rules imitation may use as teachers: the baselines and the scheduled NAG.
TEACHERS = {**HAND_DESIGNED, CosineNAG.label: CosineNAG}


def make_hand_designed(name: str, learning_rate: float | None = None) -> _HandDesigned:
    """Builds a baseline by its label ("sgd", "nag", "rmsprop", "adam"; "nag_cosine" too)."""
    try:
        cls = TEACHERS[name]
    except KeyError:
        from l2l_tf.errors import UserError
        raise UserError(f"unknown optimizer {name!r}; expected one of {sorted(HAND_DESIGNED)}") from None
    return cls(learning_rate)

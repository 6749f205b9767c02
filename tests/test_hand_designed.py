"""Hand-designed rules against Keras' optimizers and Torch7's published update equations."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from l2l_tf.optimizers import NAG, SGD, Adam, RMSprop, make_hand_designed

RNG = np.random.default_rng(0)
PARAMS = [RNG.standard_normal((3, 4)).astype(np.float32), RNG.standard_normal(5).astype(np.float32)]
GRADS = [[RNG.standard_normal(p.shape).astype(np.float32) for p in PARAMS] for _ in range(5)]


def run_ours(opt):
    params = [tf.constant(p) for p in PARAMS]
    state = opt.init(params)
    for grads in GRADS:
        params, state = opt.apply([tf.constant(g) for g in grads], state, params)
    return [p.numpy() for p in params]


def run_keras(opt):
    variables = [keras.Variable(p) for p in PARAMS]
    for grads in GRADS:
        opt.apply_gradients(zip([tf.constant(g) for g in grads], variables))
    return [v.numpy() for v in variables]


@pytest.mark.parametrize("ours, theirs", [
    (lambda: SGD(0.1), lambda: keras.optimizers.SGD(0.1)),
    (lambda: NAG(0.05), lambda: keras.optimizers.SGD(0.05, momentum=0.9, nesterov=True)),
    (lambda: Adam(0.01), lambda: keras.optimizers.Adam(0.01, beta_1=0.9, beta_2=0.999, epsilon=1e-8)),
    # Keras divides by sqrt(v + eps), Torch7 by sqrt(v) + eps: equal to ~1e-7 for these gradients.
    (lambda: RMSprop(0.01), lambda: keras.optimizers.RMSprop(0.01, rho=0.99, epsilon=1e-8)),
], ids=["sgd", "nag", "adam", "rmsprop"])
def test_steps_match_keras(ours, theirs):
    for a, b in zip(run_ours(ours()), run_keras(theirs())):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_rmsprop_and_adam_match_torch7_equations():
    lr = 0.01
    x = PARAMS[0].astype(np.float64)
    m = np.zeros_like(x)
    xs = x.copy()
    for grads in GRADS:  # Torch7 optim.rmsprop
        g = grads[0]
        m = 0.99 * m + 0.01 * g * g
        xs = xs - lr * g / (np.sqrt(m) + 1e-8)
    np.testing.assert_allclose(run_ours(RMSprop(lr))[0], xs, rtol=1e-5, atol=1e-6)

    m = np.zeros_like(x); v = np.zeros_like(x); xa = x.copy()
    for t, grads in enumerate(GRADS, start=1):  # Torch7 optim.adam
        g = grads[0]
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        step = lr * np.sqrt(1 - 0.999 ** t) / (1 - 0.9 ** t)
        xa = xa - step * m / (np.sqrt(v) + 1e-8)
    np.testing.assert_allclose(run_ours(Adam(lr))[0], xa, rtol=1e-5, atol=1e-6)


def test_torch7_defaults_and_learning_rate_variable():
    assert SGD().learning_rate.numpy() == pytest.approx(1e-3)
    assert RMSprop().learning_rate.numpy() == pytest.approx(1e-2)
    assert NAG().momentum == 0.9 and RMSprop().decay == 0.99 and Adam().epsilon == 1e-8
    opt = make_hand_designed("sgd", 0.5)
    opt.set_learning_rate(0.25)
    assert run_ours(opt)[1] == pytest.approx(PARAMS[1] - 0.25 * sum(g[1] for g in GRADS), rel=1e-5)
    with pytest.raises(ValueError, match="unknown optimizer"):
        make_hand_designed("lbfgs")


@pytest.mark.parametrize("warmup", [0.0, 0.3])
def test_cosine_nag_warms_its_rate_up_then_decays_it_from_lr_to_a_tenth_over_the_horizon(warmup):
    """Over a horizon of 10 steps the rate is lr (0.1 + 0.45 (1 + cos(pi t / 10))) at 0-based step t,
    times min(1, (t + 1) / 3) with a 30% warm-up (lr/3, 2 lr/3, then the cosine's)."""
    import math

    from l2l_tf.optimizers.hand_designed import CosineNAG

    opt = CosineNAG(0.5, momentum=0.0, horizon=10, warmup=warmup)  # without momentum the update is -lr_t * g
    params = [tf.zeros([2])]
    state = opt.init(params)
    rates = []
    for _ in range(12):
        (u,), state = opt.update([tf.ones([2])], state, params)
        rates.append(-float(u[0]))
    expected = [0.5 * (min(1.0, (t + 1) / (warmup * 10)) if warmup else 1.0)
                * (0.1 + 0.45 * (1 + math.cos(math.pi * min(t / 10, 1.0)))) for t in range(12)]
    np.testing.assert_allclose(rates, expected, rtol=1e-5)
    assert rates[0] == pytest.approx(0.5 / 3 if warmup else 0.5) and rates[-1] == pytest.approx(0.05)
    opt.set_horizon(20)  # a variable: the compiled loop's schedule follows it
    assert float(opt.horizon.numpy()) == 20.0


def test_cosine_nag_refuses_a_warmup_that_is_not_a_fraction_of_the_horizon():
    from l2l_tf.errors import UserError
    from l2l_tf.optimizers.hand_designed import CosineNAG

    with pytest.raises(UserError, match="warmup must be a fraction"):
        CosineNAG(0.5, warmup=1.0)

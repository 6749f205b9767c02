"""The fast coordinatewise LSTM and the plain unfused reference compute the same rule."""
import numpy as np
import tensorflow as tf

from l2l_tf.meta import meta_gradient
from l2l_tf.optimizers import CoordinatewiseLSTM, LSTMOptimizerConfig
from l2l_tf.optimizers.reference import UnfusedLSTM
from l2l_tf.problems import QuadraticFamily

#: float32 matmuls summed in a different order: agreement to about 1e-6 of the values' scale.
TOLERANCE = 1e-5


def _trained_looking(seed):
    """An optimizer whose phi is perturbed away from its initialization (biases included)."""
    fast = CoordinatewiseLSTM(LSTMOptimizerConfig(layers=(20, 7)), seed=seed)
    rng = np.random.default_rng(seed)
    for v in fast.meta_variables:
        v.assign(v.numpy() + rng.normal(scale=0.3, size=v.shape).astype(np.float32))
    return fast


def test_same_updates_and_states_over_several_steps():
    fast = _trained_looking(0)
    slow = UnfusedLSTM(fast)
    shapes = [(3, 4), (7,), (2, 2, 5)]
    params = [tf.zeros(s) for s in shapes]
    s_fast, s_slow = fast.init(params), slow.init(params)
    rng = np.random.default_rng(1)
    for _ in range(4):
        grads = [tf.constant(rng.normal(size=s).astype(np.float32) * 10.0 ** rng.uniform(-6, 1)) for s in shapes]
        u_fast, s_fast = fast.update(grads, s_fast, params)
        u_slow, s_slow = slow.update(grads, s_slow, params)
        for a, b in zip(u_fast, u_slow):
            assert a.shape == b.shape
            np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=TOLERANCE, atol=TOLERANCE * 1e-2)
    for a, b in zip(tf.nest.flatten(s_fast), tf.nest.flatten(s_slow)):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=TOLERANCE, atol=TOLERANCE)


def test_same_meta_gradient_through_a_truncation():
    family = QuadraticFamily()
    problem = family.sample("train", 0, range(4))
    fast = _trained_looking(2)
    weights = tf.ones(5)
    out = {}
    for opt in (fast, UnfusedLSTM(fast)):
        _, _, _, _, meta_loss, grads = meta_gradient(family.loss_and_state, opt, problem.params,
                                                     opt.init(problem.params, 4), problem.data, (), weights)
        out[opt.label] = (float(meta_loss), [g.numpy() for g in grads])
    (loss_a, grads_a), (loss_b, grads_b) = out.values()
    np.testing.assert_allclose(loss_a, loss_b, rtol=TOLERANCE)
    scale = max(np.abs(g).max() for g in grads_a)
    assert scale > 0
    for a, b in zip(grads_a, grads_b):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * scale)

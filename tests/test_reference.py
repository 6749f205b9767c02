"""The fast coordinatewise LSTM and the plain unfused reference compute the same rule."""
import numpy as np
import tensorflow as tf
from conftest import trained_looking_lstm

from l2l_tf.meta import meta_gradient
from l2l_tf.optimizers.coordinatewise import JoinedState
from l2l_tf.optimizers.reference import UnfusedLSTM
from l2l_tf.problems import QuadraticFamily

#: float32 matmuls summed in a different order: agreement to about 1e-6 of the values' scale.
TOLERANCE = 1e-5


def test_same_updates_and_states_over_several_steps():
    fast = trained_looking_lstm(0)
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
    fast = trained_looking_lstm(2)
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


def test_packed_state_gives_the_same_updates_and_unpacks_to_the_per_tensor_layout():
    fast = trained_looking_lstm(3)
    shapes = [(3, 4), (7,), (2, 2, 5)]
    params = [tf.zeros(s) for s in shapes]
    per_tensor = fast.init(params)
    packed = fast.pack_state(per_tensor, params)
    assert isinstance(packed, JoinedState) and packed.tensors[0].shape == (3 * 4 + 7 + 20, 20)
    assert fast.pack_state(packed, params) is packed  # packing twice is a no-op
    rng = np.random.default_rng(4)
    for _ in range(3):
        grads = [tf.constant(rng.normal(size=s).astype(np.float32)) for s in shapes]
        u_a, per_tensor = fast.update(grads, per_tensor, params)
        u_b, packed = fast.update(grads, packed, params)
        for a, b in zip(u_a, u_b):
            np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-9)
    unpacked = fast.unpack_state(packed, params)
    assert tf.nest.map_structure(lambda t: t.shape, unpacked) == tf.nest.map_structure(lambda t: t.shape, per_tensor)
    for a, b in zip(tf.nest.flatten(unpacked), tf.nest.flatten(per_tensor)):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-9)
    # Optimizers with their own state layout are left alone.
    unfused = UnfusedLSTM(fast)
    assert unfused.pack_state(per_tensor, params) is per_tensor


def test_same_meta_gradient_on_a_several_tensor_problem():
    """MNIST's four tensors: the fast path packs the state once per truncation, the reference
    keeps it per tensor; the meta-gradients and the states handed on agree."""
    import os

    from l2l_tf.problems.mnist import MNISTFamily

    fixture = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "testdata", "mnist_subset.npz")
    family = MNISTFamily(data_dir=fixture)
    fast = trained_looking_lstm(6)
    out = []
    for opt in (fast, UnfusedLSTM(fast)):
        problem = family.sample("train", 0, [0])  # the same problem afresh (its batches are read once)
        _, state, _, _, meta_loss, grads = meta_gradient(
            family.loss_and_state, opt, problem.params, opt.init(problem.params), problem.data,
            problem.batches(0, 5), tf.ones(4))  # T + 1 batches: the loss at theta_T too
        out.append((float(meta_loss), [g.numpy() for g in grads], state))
    (loss_a, grads_a, state_a), (loss_b, grads_b, state_b) = out
    np.testing.assert_allclose(loss_a, loss_b, rtol=TOLERANCE)
    scale = max(np.abs(g).max() for g in grads_a)
    for a, b in zip(grads_a, grads_b):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * scale)
    assert len(state_a) == 4  # handed on per tensor, as init made it
    for a, b in zip(tf.nest.flatten(state_a), tf.nest.flatten(state_b)):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=TOLERANCE, atol=TOLERANCE)

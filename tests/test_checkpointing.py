"""Gradient checkpointing and XLA compile the same meta-gradient as the plain unroll."""
import os

import numpy as np
import pytest
import tensorflow as tf

from l2l_tf.errors import UserError
from l2l_tf.meta import MetaTrainConfig, MetaTrainer, meta_gradient
from l2l_tf.optimizers import CoordinatewiseLSTM
from l2l_tf.problems.registry import make_family

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = {"mnist": "mnist_subset.npz", "cifar2": "cifar10_subset.npz"}
#: Recomputation repeats the same float32 ops in the same order; only the gradient's summation
#: order may differ, so agreement to ~1e-6 of each value's scale.
TOLERANCE = 1e-5


def _family(name):
    if name == "quadratic":
        return make_family(name)
    return make_family(name, data_dir=os.path.join(ROOT, "testdata", FIXTURES[name]), batch_size=8)


def _truncation(family, optimizer, steps, **kwargs):
    problem = family.sample("train", 0, range(4) if family.vectorized else [0])
    batches = problem.batches(0, steps + 1)
    state = optimizer.init(problem.params, problem.num_functions)
    fn = tf.function(lambda p, s, d, b: meta_gradient(family.loss_and_state, optimizer, p, s, d, b, tf.ones(steps),
                                                      **kwargs))
    out = fn(problem.params, state, problem.data, batches)
    problem.release()
    return out


def _assert_same(a, b):
    np.testing.assert_allclose(a[3].numpy(), b[3].numpy(), rtol=TOLERANCE)  # losses of every step
    np.testing.assert_allclose(float(a[4]), float(b[4]), rtol=TOLERANCE)  # meta-loss
    scale = max(float(np.abs(g).max()) for g in a[5])
    assert scale > 0
    for x, y in zip(a[5], b[5]):
        np.testing.assert_allclose(x.numpy(), y.numpy(), rtol=TOLERANCE, atol=TOLERANCE * scale)
    for x, y in zip(a[0], b[0]):  # theta_T
        np.testing.assert_allclose(x.numpy(), y.numpy(), rtol=TOLERANCE, atol=1e-6)
    for x, y in zip(tf.nest.flatten(a[2]), tf.nest.flatten(b[2])):  # evolved data (BN statistics)
        np.testing.assert_allclose(x.numpy(), y.numpy(), rtol=TOLERANCE, atol=1e-6)


@pytest.mark.parametrize("name,segment", [("quadratic", 1), ("quadratic", 3), ("mnist", 1), ("mnist", 3),
                                          ("cifar2", 3)])  # cifar2: batch-norm statistics cross segments
def test_recomputed_segments_give_the_plain_meta_gradient(name, segment):
    family = _family(name)
    optimizer = CoordinatewiseLSTM(seed=1)
    plain = _truncation(family, optimizer, 7)
    recomputed = _truncation(family, optimizer, 7, checkpoint_segment=segment)
    _assert_same(plain, recomputed)


def test_second_derivatives_survive_recomputation():
    family = _family("quadratic")
    optimizer = CoordinatewiseLSTM(seed=2)
    plain = _truncation(family, optimizer, 4, second_derivatives=True)
    first_order = _truncation(family, optimizer, 4)
    recomputed = _truncation(family, optimizer, 4, second_derivatives=True, checkpoint_segment=2)
    _assert_same(plain, recomputed)
    # ...and the Hessian terms really are there, so the comparison above means something.
    assert any(not np.allclose(a.numpy(), b.numpy(), rtol=1e-3) for a, b in zip(plain[5], first_order[5]))


def _train(config, epochs=2):
    family = _family("quadratic")
    trainer = MetaTrainer(family, CoordinatewiseLSTM(seed=3), config)
    for epoch in range(epochs):
        trainer.run_epoch(epoch)
    return trainer


def test_trainer_with_checkpointing_or_xla_trains_the_same_phi():
    base = dict(num_steps=10, unroll_length=5, meta_batch_size=8)
    plain = _train(MetaTrainConfig(**base))
    for changed in (MetaTrainConfig(**base, gradient_checkpointing=2), MetaTrainConfig(**base, jit_compile=True)):
        other = _train(changed)
        for a, b in zip(plain.phi, other.phi):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6)
        assert sum(other.traces.values()) == 1


@pytest.mark.parametrize("segment", [-1, 6])
def test_checkpoint_segment_must_fit_the_unroll(segment):
    with pytest.raises(UserError, match="gradient_checkpointing"):
        MetaTrainConfig(num_steps=10, unroll_length=5, gradient_checkpointing=segment)

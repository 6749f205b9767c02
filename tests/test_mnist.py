"""The MNIST MLP problem family and the KerasProblem adapter, on the real-data fixture."""
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import ROOT
from l2l_tf import evaluation
from l2l_tf.meta import MetaTrainConfig, MetaTrainer
from l2l_tf.optimizers import SGD, CoordinatewiseLSTM
from l2l_tf.problems.keras_problem import KerasProblem, array_dataset_fn
from l2l_tf.problems.mixture import mnist_mixture
from l2l_tf.problems.mnist import MNISTFamily

FIXTURE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "testdata", "mnist_subset.npz")


@pytest.fixture(scope="module")
def family():
    return MNISTFamily(data_dir=FIXTURE)


def softmax_xent_and_grads(x, y, w1, b1, w2, b2):
    """The default MLP's loss and gradients, by hand in float64."""
    h = 1 / (1 + np.exp(-(x @ w1 + b1)))
    z = h @ w2 + b2
    z = z - z.max(1, keepdims=True)
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    n = len(y)
    loss = -np.mean(np.log(p[np.arange(n), y]))
    dz = p.copy()
    dz[np.arange(n), y] -= 1
    dz /= n
    dh = dz @ w2.T * h * (1 - h)
    return loss, [x.T @ dh, dh.sum(0), h.T @ dz, dz.sum(0)]


def test_mlp_loss_and_gradients_for_known_weights(family):
    rng = np.random.default_rng(0)
    weights = [rng.normal(0, 0.1, s) for s in [(784, 20), (20,), (20, 10), (10,)]]
    problem = family.sample("test", 0, [0])
    x, y = (b[0].numpy() for b in problem.batches(0, 1))
    assert x.shape == (128, 784) and 0 <= x.min() and x.max() <= 1
    params = [tf.constant(w, tf.float32) for w in weights]
    with tf.GradientTape() as tape:
        tape.watch(params)
        loss = family.loss(params, problem.data, (tf.constant(x), tf.constant(y)))
    grads = tape.gradient(loss, params)
    expected_loss, expected_grads = softmax_xent_and_grads(x.astype(np.float64), y, *weights)
    assert loss.shape == (1,)
    assert float(loss[0]) == pytest.approx(expected_loss, rel=1e-5)
    for g, e in zip(grads, expected_grads):
        np.testing.assert_allclose(g.numpy(), e, rtol=1e-3, atol=1e-6)


def test_fresh_initializations_and_seeded_batches(family):
    a, b = family.sample("train", 0, [0]), family.sample("train", 0, [0])
    c = family.sample("train", 0, [1])
    for pa, pb in zip(a.params, b.params):
        np.testing.assert_array_equal(pa.numpy(), pb.numpy())
    assert not np.array_equal(a.params[0].numpy(), c.params[0].numpy())
    assert np.all(a.params[1].numpy() == 0)  # Keras' default zero biases
    limit = np.sqrt(6 / (784 + 20))  # Glorot uniform
    assert np.abs(a.params[0].numpy()).max() <= limit and a.params[0].numpy().std() > 0.5 * limit / np.sqrt(3)
    xa = a.batches(0, 3)[0].numpy()
    xb = b.batches(0, 2)[0].numpy()
    np.testing.assert_array_equal(xa[:2], xb)
    np.testing.assert_array_equal(a.batches(2, 2)[0].numpy()[0], xa[2])  # the overlap step is cached
    with pytest.raises(ValueError, match="in order"):
        a.batches(10, 1)


def test_batch_streams_start_lazily_and_are_released_after_their_trajectory(family):
    """Evaluation holds many sampled problems; each keeps no tf.data iterator until it runs,
    and none after, and the batches are those of a stream read straight through."""
    problems = evaluation.sample_problems(family, "test", 0, 3)
    assert all(p.batch_fn._iterator is None for p in problems)
    first = family.sample("test", 0, [0]).batches(0, 11)[0].numpy()
    curves = evaluation.run_trajectories(family, SGD(0.1), problems, 10)
    assert curves.shape == (11, 3) and np.all(np.isfinite(curves))
    assert all(p.batch_fn._closed and p.batch_fn._iterator is None for p in problems)
    with pytest.raises(ValueError, match="closed"):
        problems[0].batches(11, 1)
    again = family.sample("test", 0, [0])
    x0 = tf.constant(first[0])
    loss_direct = float(family.loss(again.params, again.data, (x0, again.batches(0, 1)[1][0]))[0])
    assert loss_direct == pytest.approx(float(curves[0, 0]), rel=1e-5)  # step 0 scored on the stream's first batch


def test_variants_and_accuracy_metric(family):
    deep = MNISTFamily(hidden_sizes=(40, 20), activation="relu", data_dir=FIXTURE)
    assert [tuple(p.shape) for p in deep.sample("test", 0, [0]).params] == [
        (784, 40), (40,), (40, 20), (20,), (20, 10), (10,)]
    metrics = {}
    curves = evaluation.run_trajectories(family, SGD(0.5), [family.sample("test", 0, [0])], 150, metrics)
    assert curves.shape == (151, 1) and curves[-1, 0] < 0.6 * curves[0, 0]
    assert metrics["test_accuracy"][0] > 0.5  # 150 SGD steps on real digits learn something


def test_keras_problem_adapter_with_a_user_model():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(512, 5)).astype(np.float32)
    y = (x @ rng.normal(size=(5, 1))).astype(np.float32)
    family = KerasProblem(lambda: keras.Sequential([keras.Input((5,)), keras.layers.Dense(1)]),
                          array_dataset_fn(x, y, 64), "mse", name="linear_regression")
    curves = evaluation.run_trajectories(family, SGD(0.1), [family.sample("test", 0, [0])], 100)
    assert curves[-1, 0] < 0.01 * curves[0, 0]


def test_a_few_meta_training_steps_on_the_fixture_lower_the_meta_loss(family):
    opt = CoordinatewiseLSTM(seed=0)
    cfg = MetaTrainConfig(num_epochs=12, num_steps=40, unroll_length=20, evaluation_period=100,
                          evaluation_epochs=1, log_period=100, seed=0, learning_rate=3e-3)
    trainer = MetaTrainer(family, opt, cfg)
    before = trainer.validate()
    result = trainer.train()
    assert trainer.validate() < before
    losses = [r.meta_loss for r in result.history]
    assert np.mean(losses[-4:]) < np.mean(losses[:4])


def test_mixture_draws_members_reproducibly_and_scales_only_training_losses():
    mix = mnist_mixture(((8,), (8, 8)), ("sigmoid", "relu"), log10_scale_range=1.0, data_dir=FIXTURE)
    shapes = {len(mix.sample("train", 0, [i]).params) for i in range(12)}
    assert shapes == {4, 6}
    a, b = mix.sample("train", 0, [3]), mix.sample("train", 0, [3])
    assert a.family is b.family and float(a.data[1]) == float(b.data[1])
    scales = [float(mix.sample("train", 0, [i]).data[1]) for i in range(12)]
    assert min(scales) >= 0.1 and max(scales) <= 10 and len(set(scales)) > 1
    assert all(float(mix.sample("test", 0, [i]).data[1]) == 1.0 for i in range(5))


def test_a_problems_batches_depend_on_its_seed_alone():
    """Not on TensorFlow's global seed: l2l_train sets one, l2l_evaluate does not, and both must see
    the same batches for the same problem (else a trainer's validation cannot be reproduced)."""
    import tensorflow as tf

    from l2l_tf.problems.mnist import MNISTFamily

    family = MNISTFamily(batch_size=16, data_dir=os.path.join(ROOT, "testdata", "mnist_subset.npz"))
    first = family.sample("validation", 0, [3]).batches(0, 70)  # 70 batches: more than one pass over 1,000 images
    tf.random.set_seed(1234)
    again = family.sample("validation", 0, [3]).batches(0, 70)
    np.testing.assert_array_equal(first[1].numpy(), again[1].numpy())
    other = family.sample("validation", 0, [4]).batches(0, 70)
    assert not np.array_equal(first[1].numpy(), other[1].numpy())
    labels = first[1].numpy().reshape(-1)[:992]  # the first 62 batches: one pass, each image once
    assert len(labels) == 992

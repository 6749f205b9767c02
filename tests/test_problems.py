import numpy as np
import pytest
import tensorflow as tf

from l2l_tf.errors import UserError
from l2l_tf.problems import QuadraticFamily, make_family, problem_names


def test_quadratic_loss_and_gradient_are_the_closed_form():
    family = QuadraticFamily()
    problem = family.sample("test", 0, range(3))
    w, y = (d.numpy() for d in problem.data)
    theta = problem.params[0]
    with tf.GradientTape() as tape:
        tape.watch(theta)
        losses = family.loss([theta], problem.data, ())
        total = tf.reduce_sum(losses)
    grad = tape.gradient(total, theta).numpy()
    th = theta.numpy()
    for i in range(3):
        r = w[i] @ th[i] - y[i]
        assert losses.numpy()[i] == pytest.approx(r @ r, rel=1e-5)
        np.testing.assert_allclose(grad[i], 2 * w[i].T @ r, rtol=1e-4, atol=1e-5)


def test_functions_depend_only_on_split_seed_index():
    family = QuadraticFamily()
    batch = family.sample("train", 7, [4, 5, 6])
    single = family.sample("train", 7, [5])
    np.testing.assert_array_equal(batch.data[0].numpy()[1], single.data[0].numpy()[0])
    np.testing.assert_array_equal(batch.params[0].numpy()[1], single.params[0].numpy()[0])
    splits = [family.sample(s, 7, [5]).data[0].numpy() for s in ("train", "validation", "test")]
    assert not np.array_equal(splits[0], splits[1]) and not np.array_equal(splits[1], splits[2])
    assert not np.array_equal(family.sample("test", 8, [5]).data[0].numpy(), splits[2])


def test_paper_distribution():
    family = QuadraticFamily()
    problem = family.sample("train", 0, range(2000))
    w = problem.data[0].numpy()
    assert problem.data[0].shape == (2000, 10, 10) and problem.params[0].shape == (2000, 10)
    assert abs(w.mean()) < 0.01 and abs(w.std() - 1) < 0.01
    assert abs(problem.params[0].numpy().std() - 0.01) < 0.001


def test_registry():
    assert "quadratic" in problem_names()
    assert isinstance(make_family("quadratic"), QuadraticFamily)
    with pytest.raises(UserError, match="unknown problem"):
        make_family("imagenet")

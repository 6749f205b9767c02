"""The meta-gradient against hand-computed first- and second-order formulas.

A learned SGD whose only meta-parameter is its step size phi makes both derivatives easy to
write out: theta_{t+1} = theta_t - phi * g_t with g_t = H theta_t - b on f = ||W theta - y||^2
(H = 2 W^T W, b = 2 W^T y). With J_t = d theta_t / d phi:
    first order  (g_t a constant):  J_{t+1} = J_t - g_t
    second order (through g_t):     J_{t+1} = J_t - phi * H J_t - g_t
and dL/dphi = sum_{t=1..T} w_t * grad f(theta_t) . J_t.
"""
import numpy as np
import tensorflow as tf

from l2l_tf.meta import meta_gradient
from l2l_tf.optimizers.base import Optimizer
from l2l_tf.problems import QuadraticFamily


class LearnedStepSGD(Optimizer):
    """SGD with a trainable step size: the smallest learned optimizer there is."""

    label = "learned_sgd"

    def __init__(self, phi: float):
        super().__init__()
        self.phi = tf.Variable(phi)

    @property
    def meta_variables(self):
        return [self.phi]

    def init(self, params, num_functions=1, names=None):
        return ()

    def update(self, grads, state, params):
        return [-self.phi * g for g in grads], state


def hand_computed(w, y, theta0, phi, weights, second_order):
    h, b = 2 * w.T @ w, 2 * w.T @ y
    theta, jac, total = theta0.copy(), np.zeros_like(theta0), 0.0
    for wt in weights:
        g = h @ theta - b
        jac = jac - (phi * h @ jac if second_order else 0) - g
        theta = theta - phi * g
        total += wt * (h @ theta - b) @ jac
    return total


def test_first_order_meta_gradient_matches_hand_computation_and_differs_from_second_order():
    family = QuadraticFamily(num_dims=3, init_stddev=1.0)
    problem = family.sample("train", 0, [0])
    w, y = (d.numpy().astype(np.float64)[0] for d in problem.data)
    theta0 = problem.params[0].numpy().astype(np.float64)[0]
    phi = 0.3 / np.linalg.eigvalsh(2 * w.T @ w).max()
    weights = np.array([1.0, 0.5, 2.0, 1.0, 1.0], np.float32)

    results = {}
    for second in (False, True):
        opt = LearnedStepSGD(float(phi))
        _, _, _, losses, meta_loss, grads = meta_gradient(
            family.loss_and_state, opt, problem.params, opt.init(problem.params), problem.data, (), weights, second)
        results[second] = float(grads[0].numpy())
        assert losses.shape == (len(weights) + 1, 1)

    first = hand_computed(w, y, theta0, phi, weights, second_order=False)
    second = hand_computed(w, y, theta0, phi, weights, second_order=True)
    np.testing.assert_allclose(results[False], first, rtol=2e-3)
    np.testing.assert_allclose(results[True], second, rtol=2e-3)
    assert abs(first - second) > 0.05 * abs(second)  # the two really are different quantities
    assert abs(results[False] - second) > 0.05 * abs(second)


def test_meta_loss_is_weighted_sum_of_mean_losses_after_each_update():
    family = QuadraticFamily()
    problem = family.sample("train", 1, range(4))
    opt = LearnedStepSGD(0.01)
    weights = np.array([0.0, 1.0, 3.0], np.float32)
    _, _, _, losses, meta_loss, _ = meta_gradient(family.loss_and_state, opt, problem.params, (), problem.data, (), weights)
    expected = np.sum(weights * losses.numpy()[1:].mean(axis=1))
    np.testing.assert_allclose(meta_loss.numpy(), expected, rtol=1e-6)


def test_relative_meta_loss_divides_each_function_by_its_starting_loss_and_scales_the_gradient():
    family = QuadraticFamily()
    problem = family.sample("train", 2, range(4))
    weights = np.array([1.0, 2.0, 1.0], np.float32)
    out = {}
    for relative in (False, True):
        opt = LearnedStepSGD(0.01)
        out[relative] = meta_gradient(family.loss_and_state, opt, problem.params, (), problem.data, (), weights,
                                      relative=relative)
    losses = out[True][3].numpy()
    expected = np.sum(weights * (losses[1:] / losses[0]).mean(axis=1))
    np.testing.assert_allclose(out[True][4].numpy(), expected, rtol=1e-6)
    np.testing.assert_allclose(out[False][3].numpy(), losses)  # the trajectory is the same
    # The starting loss is a constant: with one function, the gradient is just rescaled by it.
    single = family.sample("train", 3, [0])
    grads = {}
    for relative in (False, True):
        opt = LearnedStepSGD(0.01)
        result = meta_gradient(family.loss_and_state, opt, single.params, (), single.data, (), weights,
                               relative=relative)
        grads[relative], start = float(result[5][0]), float(result[3][0, 0])
    np.testing.assert_allclose(grads[True], grads[False] / start, rtol=1e-5)

import math

import numpy as np
import pytest
import tensorflow as tf

from l2l_tf.optimizers.preprocessing import get_preprocessor, identity, log_sign


def reference(g: float, p: float):
    """The paper's Appendix A formula, written out independently."""
    if abs(g) >= math.exp(-p):
        return math.log(abs(g)) / p, float(np.sign(g))
    return -1.0, math.exp(p) * g


@pytest.mark.parametrize("p", [10.0, 5.0])
def test_log_sign_matches_the_paper_formula(p):
    values = [0.0, 1e-30, -1e-30, 1e-6, -3e-5, math.exp(-p) * 0.999, math.exp(-p) * 1.001, 0.5, -2.0, 1e4, -1e8]
    out = log_sign(tf.constant(values, tf.float32), p).numpy()
    assert out.shape == (len(values), 2)
    for g, (a, b) in zip(values, out):
        ea, eb = reference(float(np.float32(g)), p)
        assert a == pytest.approx(ea, rel=1e-5, abs=1e-6)
        assert b == pytest.approx(eb, rel=1e-5, abs=1e-6)


def test_log_sign_is_continuous_at_threshold_and_bounded():
    p = 10.0
    t = math.exp(-p)
    out = log_sign(tf.constant([t * (1 - 1e-6), t * (1 + 1e-6)], tf.float32), p).numpy()
    np.testing.assert_allclose(out[0], out[1], atol=1e-4)
    big = log_sign(tf.constant(np.logspace(-40, 4, 200).astype(np.float32)), p).numpy()
    assert np.all(np.abs(big) <= 1.0 + 1e-6)


def test_log_sign_has_finite_gradients_at_zero():
    g = tf.constant([0.0, 1e-12, 3.0])
    with tf.GradientTape() as tape:
        tape.watch(g)
        y = tf.reduce_sum(log_sign(g))
    assert np.all(np.isfinite(tape.gradient(y, g).numpy()))


def test_identity_and_registry():
    assert identity(tf.constant([[1.0], [2.0]])).shape == (2, 1)
    fn, n = get_preprocessor("log_sign")
    assert fn is log_sign and n == 2
    with pytest.raises(ValueError, match="unknown preprocessing"):
        get_preprocessor("bogus")

"""Property-based tests of preprocessing and updates on extreme values (hypothesis)."""
import math

import numpy as np
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from l2l_tf.optimizers import NAG, SGD, Adam, CoordinatewiseLSTM, RMSprop
from l2l_tf.optimizers.preprocessing import log_sign

EXTREMES = [0.0, -0.0, 1e-45, -1e-45, 1e-38, 1e-30, -1e-30, 1e30, -1e30, 3.4e38, -3.4e38]
BOUND = float(np.float32(1e30))
finite = st.one_of(st.sampled_from(EXTREMES), st.floats(-BOUND, BOUND, width=32, allow_subnormal=True))
finite_vectors = arrays(np.float32, st.integers(1, 40), elements=finite)

settings.register_profile("l2l", max_examples=60, deadline=None)
settings.load_profile("l2l")
LSTM = CoordinatewiseLSTM(seed=0)


@given(finite_vectors, st.sampled_from([1.0, 5.0, 10.0]))
def test_preprocessing_of_finite_gradients_is_finite_and_well_formed(g, p):
    out = log_sign(tf.constant(g), p).numpy()
    assert np.all(np.isfinite(out))
    log_part, sign_part = out[:, 0], out[:, 1]
    assert np.all(log_part >= -1.0) and np.all(np.abs(sign_part) <= 1.0 + 1e-6)
    # TensorFlow's CPU kernels flush subnormals to zero, so a subnormal gradient may become a
    # zero feature; every other gradient keeps its sign.
    normal = np.abs(g) >= np.finfo(np.float32).tiny
    assert np.all(np.sign(sign_part[normal]) == np.sign(g[normal]))
    assert np.all((np.sign(sign_part) == np.sign(g)) | (sign_part == 0))
    small = np.abs(g) < math.exp(-p)
    np.testing.assert_allclose(sign_part[small], (math.exp(p) * g[small].astype(np.float64)), rtol=1e-5, atol=1e-30)


def test_preprocessing_passes_nan_and_inf_through_visibly():
    out = log_sign(tf.constant([np.nan, np.inf, -np.inf])).numpy()
    assert np.isnan(out[0]).any()  # a NaN gradient must not turn into a plausible feature
    assert out[1, 0] == np.inf and out[1, 1] == 1 and out[2, 1] == -1


@given(finite_vectors)
def test_learned_update_of_finite_gradients_is_finite(g):
    params = [tf.zeros_like(g)]
    state = LSTM.init(params)
    for _ in range(2):
        updates, state = LSTM.update([tf.constant(g)], state, params)
    assert np.all(np.isfinite(updates[0].numpy()))


@given(finite_vectors, st.sampled_from([SGD, NAG, RMSprop, Adam]))
def test_hand_designed_updates_of_finite_gradients_are_finite(g, cls):
    opt = cls(1e-3)
    params = [tf.zeros_like(g)]
    state = opt.init(params)
    for _ in range(3):
        updates, state = opt.update([tf.constant(g)], state, params)
    assert np.all(np.isfinite(updates[0].numpy()))  # neither NaN nor an infinite step

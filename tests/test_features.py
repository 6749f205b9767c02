"""The input features and output forms beyond the paper's: Adam-normalized moments at several
timescales, an ELU input layer, a tanh-bounded output, and a network that cannot move a
coordinate whose gradients were all zero."""
import numpy as np
import pytest
import tensorflow as tf

from l2l_tf.errors import UserError
from l2l_tf.optimizers import CoordinatewiseLSTM, LSTMOptimizerConfig
from l2l_tf.optimizers.preprocessing import MomentFeatures
from l2l_tf.optimizers.reference import UnfusedLSTM

#: RNNprop-like: Adam-normalized inputs at two timescales, an ELU input layer, a bounded output.
MODERN = dict(preprocess="adam", momentum_betas=(0.5, 0.95), rms_beta=0.9, input_layer=8, output="tanh",
              output_scale=0.05, magnitude_feature=True)


def _perturbed(config: LSTMOptimizerConfig, seed: int) -> CoordinatewiseLSTM:
    """An optimizer whose every weight (biases included) is moved off its initialization."""
    opt = CoordinatewiseLSTM(config, seed=seed)
    rng = np.random.default_rng(seed)
    for v in opt.meta_variables:
        v.assign(v.numpy() + rng.normal(scale=0.5, size=v.shape).astype(np.float32))
    return opt


def test_moment_features_are_bias_corrected_adam_ratios():
    rng = np.random.default_rng(0)
    betas, rms = (0.5, 0.9), 0.8
    features = MomentFeatures(betas, rms, epsilon=1e-8)
    moments = features.init(6)
    grads = [rng.normal(size=6).astype(np.float64) * 10.0 ** rng.uniform(-3, 2) for _ in range(5)]
    for t, g in enumerate(grads, start=1):
        out, moments = features(tf.constant(g, tf.float32), moments)
        v_hat = sum((1 - rms) * rms ** (t - k) * grads[k - 1] ** 2 for k in range(1, t + 1)) / (1 - rms ** t)
        expected = [g]
        for b in betas:
            expected.append(sum((1 - b) * b ** (t - k) * grads[k - 1] for k in range(1, t + 1)) / (1 - b ** t))
        expected = np.stack(expected, axis=1) / (np.sqrt(v_hat) + 1e-8)[:, None]
        np.testing.assert_allclose(out.numpy(), expected, rtol=2e-5, atol=1e-6)
    # Invariant to the loss scale, and zero for a zero gradient history.
    scaled, _ = features(tf.constant(1e4 * grads[0], tf.float32), features.init(6))
    first, _ = features(tf.constant(grads[0], tf.float32), features.init(6))
    np.testing.assert_allclose(scaled.numpy(), first.numpy(), rtol=1e-5)
    zero, _ = features(tf.zeros([6]), features.init(6))
    assert np.all(zero.numpy() == 0.0)
    # The magnitude feature: the scale the ratios hide, log-linear, 0 for a zero gradient.
    with_magnitude = MomentFeatures(betas, rms, magnitude_p=5.0)
    g = np.array([0.0, 1e-4, 1e-2, 1.0, 10.0, -3.0], np.float32)
    out, _ = with_magnitude(tf.constant(g), with_magnitude.init(6))
    expected = np.maximum(0.0, 1.0 + np.log(np.maximum(np.abs(g), np.exp(-5.0))) / 5.0)
    np.testing.assert_allclose(out.numpy()[:, -1], expected, rtol=1e-5, atol=1e-6)
    assert out.shape == (6, 4)


def test_the_state_holds_the_moments_and_every_implementation_agrees():
    opt = _perturbed(LSTMOptimizerConfig(**MODERN), seed=1)
    assert [n for n, _ in opt.state_layout()][-1] == "moments" and opt.state_layout()[-1][1] == 2 * 3
    shapes = [(3, 4), (5,)]
    params = [tf.zeros(s) for s in shapes]
    rng = np.random.default_rng(2)
    grads_seq = [[tf.constant(rng.normal(size=s).astype(np.float32)) for s in shapes] for _ in range(4)]
    keras_cells = _perturbed(LSTMOptimizerConfig(**MODERN), seed=1)
    keras_cells.kernel = "keras"
    unfused = UnfusedLSTM(opt)
    states = {k: o.init(params) for k, o in (("fast", opt), ("keras", keras_cells), ("unfused", unfused))}
    packed = opt.pack_state(opt.init(params), params)
    for grads in grads_seq:
        ups = {}
        for key, o in (("fast", opt), ("keras", keras_cells), ("unfused", unfused)):
            ups[key], states[key] = o.update(grads, states[key], params)
        up_packed, packed = opt.update(grads, packed, params)
        for key in ("keras", "unfused"):
            for a, b in zip(ups["fast"], ups[key]):
                np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-7, err_msg=key)
        for a, b in zip(ups["fast"], up_packed):
            np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-9)
    for u in ups["fast"]:
        assert np.all(np.abs(u.numpy()) < MODERN["output_scale"])  # tanh-bounded
    assert len(opt.meta_variables) == 3 * 2 + 2 + 2  # two LSTM layers, read-out, input layer


def test_a_tanh_output_never_exceeds_the_output_scale():
    opt = _perturbed(LSTMOptimizerConfig(output="tanh", output_scale=0.02), seed=3)
    params = [tf.zeros([2000])]
    updates, _ = opt.update([tf.random.normal([2000], stddev=1e3, seed=1)], opt.init(params), params)
    u = np.abs(updates[0].numpy())
    assert u.max() <= 0.02 and u.max() > 0.01


@pytest.mark.parametrize("kernel", ["auto", "keras"])
def test_zero_gradients_never_move_a_coordinate(kernel):
    """With zero_update_at_zero_gradient, 100 zero-gradient steps give updates of exactly 0, whatever
    phi is; a gradient afterwards moves the coordinate again."""
    opt = _perturbed(LSTMOptimizerConfig(**MODERN, zero_update_at_zero_gradient=True), seed=4)
    opt.kernel = kernel
    params = [tf.zeros([50]), tf.zeros([3, 3])]
    state = opt.init(params)
    zeros = [tf.zeros_like(p) for p in params]
    step = tf.function(lambda g, s: opt.update(g, s, params))
    for _ in range(100):
        updates, state = step(zeros, state)
        assert all(np.all(u.numpy() == 0.0) for u in updates)
    updates, _ = step([tf.ones_like(p) for p in params], state)
    assert all(np.all(np.abs(u.numpy()) > 0) for u in updates)
    # Without the option the same kind of network drifts at zero gradient.
    drifting = _perturbed(LSTMOptimizerConfig(**MODERN), seed=4)
    updates, _ = drifting.update(zeros, drifting.init(params), params)
    assert np.abs(updates[0].numpy()).max() > 1e-4


def test_feature_settings_are_validated():
    with pytest.raises(UserError, match="strictly between 0 and 1"):
        LSTMOptimizerConfig(preprocess="adam", momentum_betas=(0.9, 1.0))
    with pytest.raises(UserError, match="features that vanish"):
        LSTMOptimizerConfig(zero_update_at_zero_gradient=True)  # log/sign features of 0 are (-1, 0)
    with pytest.raises(UserError, match="unknown output"):
        LSTMOptimizerConfig(output="softsign")
    with pytest.raises(UserError, match="magnitude_feature applies"):
        LSTMOptimizerConfig(magnitude_feature=True)
    with pytest.raises(UserError, match="paper's features only"):
        LSTMOptimizerConfig(architecture="lstm_gac", num_gac=2, preprocess="adam")
    config = LSTMOptimizerConfig(**MODERN, zero_update_at_zero_gradient=True)
    assert LSTMOptimizerConfig.from_dict(config.to_dict()) == config


def test_export_and_the_keras_wrapper_carry_the_moments(tmp_path):
    import keras

    from l2l_tf import LearnedOptimizer
    from l2l_tf.export import export_optimizer, load_exported_optimizer

    opt = _perturbed(LSTMOptimizerConfig(**MODERN, zero_update_at_zero_gradient=True), seed=5)
    meta = export_optimizer(opt, str(tmp_path / "export"))  # verifies exported steps against the library
    assert [s["name"] for s in meta["groups"][0]["state"]][-1] == "moments"
    reloaded, _ = load_exported_optimizer(str(tmp_path / "export"))
    assert reloaded.config == opt.config
    g = [tf.constant(np.linspace(-1, 1, 12).astype(np.float32))]
    np.testing.assert_array_equal(opt.update(g, opt.init(g), g)[0][0].numpy(),
                                  reloaded.update(g, reloaded.init(g), g)[0][0].numpy())
    # In Keras: the same updates as the library, step after step, the moments stored per variable.
    wrapper = LearnedOptimizer(opt)
    variable = keras.Variable(np.zeros(12, np.float32))
    state, theta = opt.init([tf.zeros([12])]), np.zeros(12, np.float32)
    rng = np.random.default_rng(6)
    for _ in range(3):
        grad = rng.normal(size=12).astype(np.float32)
        wrapper.apply([tf.constant(grad)], [variable])
        (u,), state = opt.update([tf.constant(grad)], state, None)
        theta = theta + u.numpy()
        np.testing.assert_allclose(variable.numpy(), theta, rtol=1e-6, atol=1e-8)
    assert any(v.name.endswith("_moments") and tuple(v.shape) == (12, 6) for v in wrapper.variables)

"""output="momentum": the LSTM rescales Nesterov momentum per coordinate and adds a bounded term.

Untrained (its read-out starts at zero) the rule must be NAG at the base rate exactly, so that
meta-training starts from a tuned analytic optimizer; trained, the fast path, the unfused
reference, exports and the Keras wrapper must all compute the same rule.
"""
import numpy as np
import pytest
import tensorflow as tf

from l2l_tf.errors import UserError
from l2l_tf.optimizers import CoordinatewiseLSTM, LSTMOptimizerConfig
from l2l_tf.optimizers.coordinatewise import MOMENTUM_LR_RANGE
from l2l_tf.optimizers.hand_designed import NAG
from l2l_tf.optimizers.reference import UnfusedLSTM
from test_features import _perturbed

SCALED = dict(preprocess="adam", momentum_betas=(0.5, 0.9), rms_beta=0.95, input_layer=6, magnitude_feature=True,
              output="momentum", base_learning_rate=0.3, base_momentum=0.9, output_scale=0.05,
              zero_update_at_zero_gradient=True)


def _grads(rng, shapes):
    return [tf.constant(rng.normal(size=s).astype(np.float32)) for s in shapes]


def test_the_untrained_network_is_nag_at_the_base_rate():
    opt = CoordinatewiseLSTM(LSTMOptimizerConfig(**SCALED), seed=0)
    nag = NAG(0.3, momentum=0.9)
    shapes = [(3, 4), (5,)]
    params = [tf.zeros(s) for s in shapes]
    state, nag_state = opt.init(params), nag.init(params)
    rng = np.random.default_rng(0)
    for _ in range(8):
        grads = _grads(rng, shapes)
        updates, state = opt.update(grads, state, params)
        expected, nag_state = nag.update(grads, nag_state, params)
        for u, e in zip(updates, expected):
            np.testing.assert_allclose(u.numpy(), e.numpy(), rtol=1e-5, atol=1e-6)


def test_a_trained_network_rescales_nag_within_its_range_and_the_reference_agrees():
    config = LSTMOptimizerConfig(**{**SCALED, "output_scale": 1e-9})  # the additive term negligible
    opt = _perturbed(config, seed=1)
    nag = NAG(0.3, momentum=0.9)
    reference = UnfusedLSTM(opt)
    shapes = [(4, 2), (3,)]
    params = [tf.zeros(s) for s in shapes]
    state, nag_state, ref_state = opt.init(params), nag.init(params), reference.init(params)
    rng = np.random.default_rng(1)
    ratios = []
    for _ in range(6):
        grads = _grads(rng, shapes)
        updates, state = opt.update(grads, state, params)
        expected, nag_state = nag.update(grads, nag_state, params)
        ref, ref_state = reference.update(grads, ref_state, params)
        for u, e, r in zip(updates, expected, ref):
            np.testing.assert_allclose(u.numpy(), r.numpy(), rtol=1e-5, atol=1e-7)
            ratios.append((u.numpy() / e.numpy()).ravel())
    ratios = np.concatenate(ratios)
    bound = np.exp(MOMENTUM_LR_RANGE)
    assert np.all(ratios > 1 / bound * 0.999) and np.all(ratios < bound * 1.001)
    assert np.std(ratios) > 0.05  # per coordinate, not one global rate


def test_zero_gradients_never_move_and_settings_are_validated():
    opt = _perturbed(LSTMOptimizerConfig(**SCALED), seed=2)
    params = [tf.zeros([5])]
    state = opt.init(params)
    for _ in range(3):
        (u,), state = opt.update([tf.zeros([5])], state, params)
        assert np.all(u.numpy() == 0.0)
    with pytest.raises(UserError, match="needs preprocess 'adam'"):
        LSTMOptimizerConfig(output="momentum", base_learning_rate=1.0)
    with pytest.raises(UserError, match="base_learning_rate > 0"):
        LSTMOptimizerConfig(**{**SCALED, "base_learning_rate": 0.0})
    with pytest.raises(UserError, match="must be one of momentum_betas"):
        LSTMOptimizerConfig(**{**SCALED, "base_momentum": 0.8})
    config = LSTMOptimizerConfig(**SCALED)
    assert LSTMOptimizerConfig.from_dict(config.to_dict()) == config


def test_the_export_and_the_keras_wrapper_compute_the_same_rule(tmp_path):
    import keras

    from l2l_tf import LearnedOptimizer
    from l2l_tf.export import export_optimizer

    opt = _perturbed(LSTMOptimizerConfig(**SCALED), seed=3)
    export_optimizer(opt, str(tmp_path / "export"))  # verifies the exported steps against the library
    wrapper = LearnedOptimizer(opt)
    # Gradients well away from zero: Adam-normalized features turn rounding noise on a zero
    # gradient (1e-8 here, exactly 0 there) into features of order one.
    x = np.random.default_rng(3).normal(size=(6, 2)).astype(np.float32)
    y = x @ np.array([[1.0], [-2.0]], np.float32) + 0.5
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, kernel_initializer="zeros")])
    model.compile(optimizer=wrapper, loss="mse")
    model.fit(x, y, batch_size=6, epochs=3, verbose=0, shuffle=False)
    # The same three updates by hand on the same full-batch gradients.
    params = [tf.Variable(tf.zeros([2, 1])), tf.Variable(tf.zeros([1]))]
    ref = _perturbed(LSTMOptimizerConfig(**SCALED), seed=3)
    state = ref.init([p.read_value() for p in params])
    for _ in range(3):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(tf.matmul(x, params[0]) + params[1] - y))
        updates, state = ref.update(tape.gradient(loss, params), state, [p.read_value() for p in params])
        for p, u in zip(params, updates):
            p.assign_add(u)
    for w, p in zip(model.trainable_weights, params):
        np.testing.assert_allclose(w.numpy(), p.numpy(), rtol=1e-4, atol=1e-6)


COSINE = {**SCALED, "progress_feature": True, "base_schedule": "cosine"}


@pytest.mark.parametrize("warmup", [0.0, 0.4])
def test_the_untrained_cosine_base_is_nag_with_its_rate_warmed_up_then_decayed_to_a_tenth(warmup):
    """With base_schedule="cosine" step t (1-based) of a horizon of T steps is NAG's with the rate
    lr (0.1 + 0.45 (1 + cos(pi min((t - 1) / T, 1)))) min(1, t / (w T)): with no warm-up (w = 0) lr at
    the first step, 0.1 lr from step T + 1 on; with w = 0.4 of T = 5 steps, lr/2 at the first."""
    opt = CoordinatewiseLSTM(LSTMOptimizerConfig(**COSINE, base_warmup=warmup), seed=0)
    horizon, mu, lr = 5, 0.9, 0.3
    opt.set_horizon(horizon)
    shapes = [(3, 4), (5,)]
    params = [tf.zeros(s) for s in shapes]
    state = opt.init(params)
    velocity = [np.zeros(s, np.float32) for s in shapes]
    rng = np.random.default_rng(4)
    factors = []
    for t in range(1, horizon + 4):
        grads = _grads(rng, shapes)
        updates, state = opt.update(grads, state, params)
        factor = 0.1 + 0.45 * (1.0 + np.cos(np.pi * min((t - 1) / horizon, 1.0)))
        if warmup:
            factor *= min(1.0, t / (warmup * horizon))
        factors.append(factor)
        for i, (u, g) in enumerate(zip(updates, grads)):
            velocity[i] = mu * velocity[i] + g.numpy()
            np.testing.assert_allclose(u.numpy(), -lr * factor * (g.numpy() + mu * velocity[i]), rtol=1e-5, atol=1e-6)
    assert factors[0] == (0.5 if warmup else 1.0) and factors[-1] == pytest.approx(0.1)


def test_the_cosine_base_needs_the_momentum_output_and_the_progress_feature_and_exports(tmp_path):
    from l2l_tf.export import export_optimizer

    with pytest.raises(UserError, match="needs output 'momentum' and progress_feature"):
        LSTMOptimizerConfig(**{**COSINE, "progress_feature": False})
    with pytest.raises(UserError, match="needs output 'momentum' and progress_feature"):
        LSTMOptimizerConfig(preprocess="adam", progress_feature=True, base_schedule="cosine")
    with pytest.raises(UserError, match="unknown base_schedule 'linear'"):
        LSTMOptimizerConfig(**{**COSINE, "base_schedule": "linear"})
    with pytest.raises(UserError, match="base_warmup needs output 'momentum' and progress_feature"):
        LSTMOptimizerConfig(**{**SCALED, "base_warmup": 0.1})
    with pytest.raises(UserError, match=r"base_warmup must be a fraction of the horizon in \[0, 1\), got 1.0"):
        LSTMOptimizerConfig(**{**COSINE, "base_warmup": 1.0})
    config = LSTMOptimizerConfig(**COSINE, base_warmup=0.2)
    assert LSTMOptimizerConfig.from_dict(config.to_dict()) == config
    export_optimizer(_perturbed(config, seed=5), str(tmp_path / "export"))  # verifies its steps against the library


def _nag_trajectory_error(opt, seed):
    """Largest |update - NAG's update| over a few steps of random gradients."""
    nag = NAG(0.3, momentum=0.9)
    shapes = [(3, 2), (4,)]
    params = [tf.zeros(s) for s in shapes]
    state, nag_state = opt.init(params), nag.init(params)
    rng, error = np.random.default_rng(seed), 0.0
    for _ in range(5):
        grads = _grads(rng, shapes)
        updates, state = opt.update(grads, state, params)
        expected, nag_state = nag.update(grads, nag_state, params)
        error = max(error, *(float(np.max(np.abs(u.numpy() - e.numpy()))) for u, e in zip(updates, expected)))
    return error


def test_the_untrained_base_of_a_trained_directory_is_nag_again(tmp_path):
    from l2l_tf import saving

    trained = _perturbed(LSTMOptimizerConfig(**SCALED), seed=3)
    assert _nag_trajectory_error(trained, 0) > 1e-3  # training moved it off NAG
    saving.save_config(str(tmp_path / "lstm"), trained, {})
    saving.save_best_weights(str(tmp_path / "lstm"), trained.meta_variables)
    saving.write_untrained_base(str(tmp_path / "lstm"), str(tmp_path / "base"))
    assert _nag_trajectory_error(saving.load_learned(str(tmp_path / "base")), 0) < 1e-6
    assert _nag_trajectory_error(saving.load_learned(str(tmp_path / "lstm")), 0) > 1e-3  # the source untouched
    with pytest.raises(UserError, match="new directory"):
        saving.write_untrained_base(str(tmp_path / "lstm"), str(tmp_path / "lstm"))
    plain = CoordinatewiseLSTM(LSTMOptimizerConfig(preprocess="adam", output="tanh"), seed=0)
    with pytest.raises(UserError, match="only an output='momentum' optimizer"):
        plain.remove_correction()

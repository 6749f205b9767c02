"""The clock and progress features: 1 - beta^t per moment timescale, and min(t / T, 1) for a
horizon T that evaluations, meta-training, exports and the Keras wrapper all pass on."""
import numpy as np
import pytest
import tensorflow as tf

from l2l_tf.errors import UserError
from l2l_tf.optimizers import CoordinatewiseLSTM, LSTMOptimizerConfig
from l2l_tf.optimizers.preprocessing import MomentFeatures
from test_features import _perturbed

TIMED = dict(preprocess="adam", momentum_betas=(0.5, 0.9), rms_beta=0.95, input_layer=8, output="tanh",
             output_scale=0.05, magnitude_feature=True, zero_update_at_zero_gradient=True, time_features=True,
             progress_feature=True)


def test_the_clock_is_one_minus_beta_to_the_t_and_zero_until_a_gradient_was_seen():
    betas, rms = (0.5, 0.9), 0.95
    features = MomentFeatures(betas, rms, time_features=True)
    assert features.num_features == 3 + 3 and features.width == 6
    moments = features.init(3)
    g = tf.constant([0.0, 2.0, -1e-3])
    for t in range(1, 8):
        out, moments = features(g, moments)
        clock = out.numpy()[:, 3:]
        np.testing.assert_allclose(clock[1:], np.tile([1 - b ** t for b in (*betas, rms)], (2, 1)), rtol=1e-5)
        assert np.all(clock[0] == 0.0)  # never a nonzero gradient: every feature stays 0


def test_the_progress_feature_counts_steps_against_the_horizon():
    features = MomentFeatures((0.9,), 0.95, progress_feature=True)
    assert features.num_features == 3 and features.width == 5  # one state column more: the step count
    moments = features.init(2)
    g = tf.constant([0.0, 1.0])
    for t in range(1, 7):
        out, moments = features(g, moments, horizon=4.0)
        np.testing.assert_allclose(out.numpy()[:, -1], [0.0, min(t / 4, 1.0)], rtol=1e-6)
        assert moments.numpy()[1, -1] == t
    with pytest.raises(ValueError, match="horizon"):
        features(g, moments)


def test_the_horizon_changes_updates_without_retracing_and_zero_gradients_still_never_move():
    opt = _perturbed(LSTMOptimizerConfig(**TIMED), seed=1)
    params = [tf.zeros([6]), tf.zeros([2, 3])]
    traces = []

    @tf.function
    def run(grads, steps):
        traces.append(1)
        state = opt.init(params)
        for _ in range(steps):
            updates, state = opt.update(grads, state, params)
        return updates

    grads = [tf.constant(np.linspace(-1, 1, 6).astype(np.float32)), tf.zeros([2, 3])]
    opt.set_horizon(5)
    short = run(grads, 5)
    opt.set_horizon(500)
    long = run(grads, 5)
    assert len(traces) == 1  # the horizon is a variable
    assert not np.allclose(short[0].numpy(), long[0].numpy())
    assert np.all(short[1].numpy() == 0.0) and np.all(long[1].numpy() == 0.0)
    with pytest.raises(UserError, match="positive"):
        opt.set_horizon(0)


def test_settings_are_validated_and_round_trip():
    with pytest.raises(UserError, match="time_features applies"):
        LSTMOptimizerConfig(time_features=True)
    with pytest.raises(UserError, match="progress_feature applies"):
        LSTMOptimizerConfig(progress_feature=True)
    with pytest.raises(UserError, match="true or false"):
        LSTMOptimizerConfig(preprocess="adam", progress_feature="yes")
    config = LSTMOptimizerConfig(**TIMED)
    assert LSTMOptimizerConfig.from_dict(config.to_dict()) == config
    old = {k: v for k, v in config.to_dict().items() if k not in ("time_features", "progress_feature")}
    assert not LSTMOptimizerConfig.from_dict(old).progress_feature  # files written before the options


def test_evaluation_tells_the_optimizer_its_horizon():
    from l2l_tf.evaluation import run_trajectories, sample_problems
    from l2l_tf.problems.quadratic import QuadraticFamily

    family = QuadraticFamily()
    opt = _perturbed(LSTMOptimizerConfig(**TIMED), seed=2)
    problems = sample_problems(family, "test", 0, 4)
    curves = {n: run_trajectories(family, opt, problems, n) for n in (7, 13)}
    assert float(opt.horizon.numpy()) == 13.0
    # The same first steps, scheduled for another horizon, are other steps.
    assert not np.allclose(curves[7][1:8], curves[13][1:8])


def test_export_takes_the_horizon_as_an_input(tmp_path):
    from l2l_tf.export import HORIZON, check_export, export_optimizer, load_saved_model

    opt = _perturbed(LSTMOptimizerConfig(**TIMED), seed=3)
    opt.set_horizon(77)
    meta = export_optimizer(opt, str(tmp_path / "export"))  # verifies exported steps against the library
    assert float(opt.horizon.numpy()) == 77.0  # the check does not move the optimizer's own horizon
    assert meta["groups"][0]["state"][-1] == {"name": "moments", "units": 2 * 3 + 1}
    check_export(str(tmp_path / "export"))
    loaded = load_saved_model(str(tmp_path / "export"))
    step = loaded.signatures["step"]
    assert HORIZON in step.structured_input_signature[1]
    g = tf.constant(np.linspace(-1, 1, 9).astype(np.float32))
    state = loaded.signatures["init_state"](params=tf.zeros([9]))
    ref_state = opt.init([tf.zeros([9])])
    opt.set_horizon(3)
    for _ in range(4):
        out = step(gradients=g, horizon=tf.constant(3.0), **state)
        (ref,), ref_state = opt.update([g], ref_state, [g])
        np.testing.assert_allclose(out.pop("update").numpy(), ref.numpy(), atol=1e-6)
        state = out


def test_the_keras_wrapper_needs_total_steps_for_a_progress_feature_optimizer():
    import keras

    from l2l_tf import LearnedOptimizer

    opt = _perturbed(LSTMOptimizerConfig(**TIMED), seed=4)
    with pytest.raises(UserError, match="give total_steps"):
        LearnedOptimizer(opt)
    with pytest.raises(UserError, match="positive integer"):
        LearnedOptimizer(opt, total_steps=2.5)
    with pytest.raises(UserError, match="has none"):
        LearnedOptimizer(CoordinatewiseLSTM(LSTMOptimizerConfig()), total_steps=10)
    wrapper = LearnedOptimizer(opt, total_steps=6)
    assert wrapper.get_config()["total_steps"] == 6
    clone = LearnedOptimizer.from_config(wrapper.get_config())
    assert clone.total_steps == 6 and float(clone.learned_optimizer.horizon.numpy()) == 6.0
    # model.fit takes the library's steps, scheduled over the 6 steps it was told.
    x = np.linspace(-1, 1, 12).reshape(6, 2).astype(np.float32)
    y = x.sum(axis=1, keepdims=True)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, kernel_initializer="ones")])
    model.compile(optimizer=wrapper, loss="mse")
    w0 = [w.numpy().copy() for w in model.trainable_weights]
    model.fit(x, y, batch_size=6, epochs=6, verbose=0, shuffle=False)
    ref = _perturbed(LSTMOptimizerConfig(**TIMED), seed=4)
    ref.set_horizon(6)
    params = [tf.constant(w) for w in w0]
    state = ref.init(params)
    for _ in range(6):
        with tf.GradientTape() as tape:
            tape.watch(params)
            pred = tf.matmul(x, params[0]) + params[1]
            loss = tf.reduce_mean(tf.square(pred - y))
        grads = tape.gradient(loss, params)
        updates, state = ref.update(grads, state, params)
        params = [p + u for p, u in zip(params, updates)]
    for w, p in zip(model.trainable_weights, params):
        np.testing.assert_allclose(w.numpy(), p.numpy(), atol=1e-5)


def test_meta_training_schedules_each_epoch_over_its_own_length():
    """With random trajectory lengths every epoch tells the learner its length before it runs."""
    from l2l_tf.meta import MetaTrainConfig, MetaTrainer
    from l2l_tf.problems.quadratic import QuadraticFamily

    cfg = MetaTrainConfig(num_epochs=6, num_steps=20, unroll_length=10, num_steps_range=(10, 40), evaluation_period=6,
                          evaluation_epochs=1, meta_batch_size=4, seed=6)
    trainer = MetaTrainer(QuadraticFamily(), _perturbed(LSTMOptimizerConfig(**TIMED), seed=6), cfg)
    seen = []
    for epoch in range(6):
        record = trainer.run_epoch(epoch)
        seen.append((record.num_steps, int(trainer.optimizer.horizon.numpy())))
    assert all(steps == horizon for steps, horizon in seen) and len({s for s, _ in seen}) > 1

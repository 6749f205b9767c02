"""LearnedOptimizer: the library's updates inside Keras, model.fit on MNIST, jit_compile,
serialization and model.save / load_model with the optimizer state intact, state stored in
bfloat16/float16, and the XLA-compiled update."""
import json
import os
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import ROOT, trajectory_updates
from l2l_tf import LearnedOptimizer, loading
from l2l_tf.errors import UserError

RNG = np.random.default_rng(0)
SHAPES = [(3, 4), (7,), (2, 1, 3)]


def grad_sequence(steps=4, shapes=SHAPES):
    # Magnitudes from 1e-7 to 1e2 exercise both branches of the log/sign preprocessing.
    return [[(RNG.standard_normal(s) * 10.0 ** RNG.uniform(-7, 2, s)).astype(np.float32) for s in shapes]
            for _ in range(steps)]


def keras_deltas(optimizer, grads_seq, compiled=True):
    """Per step, what the optimizer adds to each variable (variables start at zero)."""
    variables = [keras.Variable(np.zeros(g.shape, np.float32)) for g in grads_seq[0]]
    optimizer.build(variables)
    def apply(grads):
        optimizer.apply(grads, variables)

    apply = tf.function(apply) if compiled else apply
    deltas = []
    for grads in grads_seq:
        before = [v.numpy() for v in variables]
        apply([tf.constant(g) for g in grads])
        deltas.append([v.numpy() - b for v, b in zip(variables, before)])
    return deltas


@pytest.mark.parametrize("compiled", [True, False])
def test_keras_steps_are_the_library_updates(tiny_trained, compiled):
    grads = grad_sequence()
    expected = trajectory_updates(loading.load_optimizer(tiny_trained), grads, SHAPES)
    got = keras_deltas(LearnedOptimizer(tiny_trained), grads, compiled)
    for t in range(len(grads)):
        for e, g in zip(expected[t], got[t]):
            np.testing.assert_allclose(g, e, rtol=0, atol=1e-6, err_msg=f"step {t}")


def test_an_export_and_its_training_directory_give_the_same_keras_steps(tiny_trained, tiny_export):
    grads = grad_sequence(3)
    from_export = LearnedOptimizer(tiny_export)
    assert from_export.get_config()["provenance"]["kind"] == "export"
    for a, b in zip(keras_deltas(LearnedOptimizer(tiny_trained), grads), keras_deltas(from_export, grads)):
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)


def test_learning_rate_multiplies_the_update_and_phi_stays_fixed(tiny_trained):
    grads = grad_sequence(2)
    full = keras_deltas(LearnedOptimizer(tiny_trained), grads)
    damped_opt = LearnedOptimizer(tiny_trained, learning_rate=0.25)
    phi = [v.numpy() for v in damped_opt.learned_optimizer.meta_variables]
    damped = keras_deltas(damped_opt, grads)
    for t in range(2):
        for f, d in zip(full[t], damped[t]):
            np.testing.assert_allclose(d, 0.25 * f, rtol=1e-5, atol=1e-9)
    for before, after in zip(phi, damped_opt.learned_optimizer.meta_variables):
        np.testing.assert_array_equal(before, after.numpy())
    # Optimizer variables: iterations, learning rate, the non-finite counter, then (h, c) per
    # LSTM layer per model variable.
    states = [v for v in damped_opt.variables if "_lstm_" in v.name]
    assert len(damped_opt.variables) == 3 + len(states) and len(states) == 2 * 2 * len(SHAPES)
    assert sorted(tuple(v.shape) for v in states) == sorted((int(np.prod(s)), 20) for s in SHAPES for _ in range(4))


def mnist(n=None):
    with np.load(os.path.join(ROOT, "testdata", "mnist_subset.npz")) as d:
        x, y = d["x_train"].reshape(-1, 784).astype("float32") / 255, d["y_train"].astype("int32")
    return (x[:n], y[:n]) if n else (x, y)


def mlp(seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((784,)), keras.layers.Dense(32, activation="relu"), keras.layers.Dense(10)])


LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def test_model_fit_on_mnist_reduces_the_loss(tiny_trained):
    """320 steps of model.fit on the 1,000-image MNIST fixture.

    The tiny optimizer was meta-trained for seconds on 10-d quadratics, whose gradients are
    100x larger than an MLP's. It makes nearly sign-like steps of about 0.1 per coordinate,
    which overshoot on the MLP at the default multiplier (loss 2.4 -> 85 in 6 epochs) and
    still oscillate at 0.1 (down to 0.44, back up to 1.5): the paper's quadratic-to-network
    transfer limit, see README. Damped by 0.01 it descends steadily.
    """
    x, y = mnist()
    model = mlp()
    model.compile(optimizer=LearnedOptimizer(tiny_trained, learning_rate=0.01), loss=LOSS)
    before = model.evaluate(x, y, verbose=0, batch_size=500)
    history = model.fit(x, y, batch_size=32, epochs=10, verbose=0, shuffle=True)
    after = model.evaluate(x, y, verbose=0, batch_size=500)
    assert int(model.optimizer.iterations.numpy()) == 320
    assert after < 0.5 * before, (before, after, history.history["loss"])


def test_jit_compiled_fit_matches_the_plain_one(tiny_trained):
    x, y = mnist(64)
    weights = []
    for jit in (False, True):
        model = mlp(seed=1)
        model.compile(optimizer=LearnedOptimizer(tiny_trained, learning_rate=0.1), loss=LOSS, jit_compile=jit)
        model.fit(x, y, batch_size=32, epochs=2, verbose=0, shuffle=False)
        weights.append(model.get_weights())
    for a, b in zip(*weights):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_config_round_trip_embeds_phi_and_provenance(tiny_trained):
    opt = LearnedOptimizer(tiny_trained, learning_rate=0.5, clipnorm=1.0)
    config = json.loads(json.dumps(opt.get_config()))  # JSON-serializable
    assert config["source"] == tiny_trained and config["lstm"]["layers"] == [20, 20]
    assert config["provenance"]["kind"] == "trained" and config["provenance"]["training"]["problem"]["name"] == "quadratic"
    assert sum(np.asarray(w).size for w in config["phi"]) == 5141
    for clone in (LearnedOptimizer.from_config(config),
                  keras.optimizers.deserialize(keras.optimizers.serialize(opt))):
        assert isinstance(clone, LearnedOptimizer) and clone.clipnorm == 1.0
        assert float(clone.learning_rate.numpy()) == 0.5
        for a, b in zip(opt.learned_optimizer.meta_variables, clone.learned_optimizer.meta_variables):
            np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_saved_model_keeps_the_optimizer_state_even_without_the_source(tiny_trained, tmp_path):
    source = str(tmp_path / "optimizer_copy")
    shutil.copytree(tiny_trained, source)
    x, y = mnist(96)
    model = mlp()
    model.compile(optimizer=LearnedOptimizer(source, learning_rate=0.1), loss=LOSS)
    model.fit(x, y, batch_size=32, epochs=2, verbose=0, shuffle=False)
    model.save(str(tmp_path / "model.keras"))
    shutil.rmtree(source)  # the saved model must not need the optimizer's directory

    loaded = keras.models.load_model(str(tmp_path / "model.keras"))
    assert isinstance(loaded.optimizer, LearnedOptimizer) and loaded.optimizer.source == source
    assert len(loaded.optimizer.variables) == len(model.optimizer.variables)
    for a, b in zip(model.optimizer.variables, loaded.optimizer.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert int(loaded.optimizer.iterations.numpy()) == 6
    assert np.any(np.abs([v.numpy() for v in loaded.optimizer.variables if "_lstm_1_h" in v.name][0]) > 0)
    # Both continue identically: same LSTM state, same phi, same multiplier.
    for m in (model, loaded):
        m.train_on_batch(x[:32], y[:32])
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)


def test_mixed_precision_keeps_the_learned_rule_in_float32(tiny_trained):
    grads = grad_sequence(2)
    expected = trajectory_updates(loading.load_optimizer(tiny_trained), grads, SHAPES)
    keras.config.set_dtype_policy("mixed_float16")
    try:
        opt = LearnedOptimizer(tiny_trained)
    finally:
        keras.config.set_dtype_policy("float32")
    got = keras_deltas(opt, grads)
    for t in range(2):
        for e, g in zip(expected[t], got[t]):
            np.testing.assert_allclose(g, e, rtol=0, atol=1e-6)


def test_bad_sources_give_one_line_errors(tiny_trained, tmp_path):
    cases = [("/no/such/optimizer", "neither a directory nor a bundled"),
             (str(tmp_path), "not a trained optimizer directory")]
    for source, expected in cases:
        with pytest.raises(UserError, match=expected) as info:
            LearnedOptimizer(source)
        assert "\n" not in str(info.value)
    config = LearnedOptimizer(tiny_trained).get_config()
    config["phi"] = config["phi"][:-1]
    with pytest.raises(UserError, match="7 tensors"):
        LearnedOptimizer.from_config(config)


def test_a_non_finite_gradient_never_reaches_weights_or_state(tiny_trained):
    """The bad variable's step is skipped and counted; the other variables update as usual,
    and later steps continue exactly as if the bad step had not happened for that variable."""
    grads = grad_sequence(3)
    poisoned = [list(g) for g in grads]
    poisoned[1][0] = np.full(SHAPES[0], np.nan, np.float32)
    opt = LearnedOptimizer(tiny_trained)
    got = keras_deltas(opt, poisoned)
    assert all(np.all(np.isfinite(d)) for step in got for d in step)
    np.testing.assert_array_equal(got[1][0], 0.0)
    assert float(opt.non_finite_updates.numpy()) == 1.0
    clean = keras_deltas(LearnedOptimizer(tiny_trained), [grads[0], grads[2]])
    np.testing.assert_allclose(got[2][0], clean[1][0], rtol=0, atol=1e-6)  # variable 0 saw steps 0 and 2 only
    np.testing.assert_allclose(got[1][1], keras_deltas(LearnedOptimizer(tiny_trained), grads[:2])[1][1],
                               rtol=0, atol=1e-6)


# -- state_dtype and jit_compile ------------------------------------------------------------------


def state_variables(optimizer):
    return [v for v in optimizer.variables if "_lstm_" in v.name]


def state_bytes(optimizer):
    return sum(int(np.prod(v.shape)) * tf.as_dtype(v.dtype).size for v in state_variables(optimizer))


def flat(step):
    return np.concatenate([np.ravel(d) for d in step])


@pytest.mark.parametrize("dtype, tolerance", [("bfloat16", 1e-2), ("float16", 1e-3)])
def test_narrow_state_storage_halves_the_memory_and_nearly_keeps_the_updates(tiny_trained, dtype, tolerance):
    """The state is stored in `dtype`, the LSTM still computes in float32.

    The first step starts from a zero state, exact in any dtype, so it must equal the float32
    run bit for bit (a computation in the narrow dtype would not). Later steps read a rounded
    state: they must differ from the float32 run (the storage dtype is really used) but stay
    within `tolerance` of the update scale. bfloat16 keeps 8 significant bits (~2.4 digits),
    float16 11 (~3.3); over these 5 steps the drift measured 1e-3 and 1e-4 of the scale.
    """
    grads = grad_sequence(5)
    wide, narrow = LearnedOptimizer(tiny_trained), LearnedOptimizer(tiny_trained, state_dtype=dtype)
    expected, got = keras_deltas(wide, grads), keras_deltas(narrow, grads)
    assert narrow.state_dtype == dtype and {str(v.dtype) for v in state_variables(narrow)} == {dtype}
    assert {str(v.dtype) for v in state_variables(wide)} == {"float32"}
    params = sum(int(np.prod(s)) for s in SHAPES)
    assert state_bytes(wide) == 320 * params and 2 * state_bytes(narrow) == state_bytes(wide)
    np.testing.assert_array_equal(flat(got[0]), flat(expected[0]))
    for t in range(1, len(grads)):
        e, g = flat(expected[t]), flat(got[t])
        scale = np.max(np.abs(e))
        assert scale > 1e-3  # the comparison is about real steps, not zeros
        assert np.max(np.abs(g - e)) <= tolerance * scale, (t, np.max(np.abs(g - e)) / scale)
        assert not np.array_equal(g, e), f"step {t}: no trace of {dtype} rounding"


def test_a_narrow_state_survives_save_and_load_model(tiny_trained, tmp_path):
    x, y = mnist(64)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((784,)), keras.layers.Dense(10)])
    model.compile(optimizer=LearnedOptimizer(tiny_trained, learning_rate=0.1, state_dtype="bfloat16"), loss=LOSS)
    model.fit(x, y, batch_size=32, epochs=1, verbose=0, shuffle=False)
    model.save(str(tmp_path / "model.keras"))
    loaded = keras.models.load_model(str(tmp_path / "model.keras"))
    assert loaded.optimizer.state_dtype == "bfloat16"
    for a, b in zip(state_variables(model.optimizer), state_variables(loaded.optimizer)):
        assert str(b.dtype) == "bfloat16"
        np.testing.assert_array_equal(np.float32(a.numpy()), np.float32(b.numpy()))
    assert any(np.any(np.float32(v.numpy()) != 0) for v in state_variables(loaded.optimizer))
    for m in (model, loaded):
        m.train_on_batch(x[:32], y[:32])
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_xla_compiled_update_matches_the_plain_one(tiny_trained):
    """jit_compile=True changes how the update is computed (XLA fuses the gate arithmetic and
    brings its own tanh/sigmoid), not what: 4 eager `apply` steps agree to float32 precision.
    All three variables have 12 coordinates, so XLA compiles once and the test stays fast."""
    grads = grad_sequence(4, shapes=[(3, 4), (12,), (2, 6)])
    plain = keras_deltas(LearnedOptimizer(tiny_trained), grads, compiled=False)
    xla_opt = LearnedOptimizer(tiny_trained, jit_compile=True)
    xla = keras_deltas(xla_opt, grads, compiled=False)
    assert xla_opt.jit_compile
    for t in range(len(grads)):
        e, g = flat(plain[t]), flat(xla[t])
        np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-5 * np.max(np.abs(e)), err_msg=f"step {t}")
    # XLA's own transcendental functions round differently: bit-identical runs would mean it was not used.
    assert any(not np.array_equal(flat(a), flat(b)) for a, b in zip(plain, xla))


def test_xla_compiled_update_works_in_model_fit(tiny_trained):
    """Inside Keras' train function (a tf.function); 3 steps give the plain run's weights.

    The tolerance is looser than for `apply` with fixed gradients: here each step's float32
    differences change the next step's gradients, whose log/sign preprocessing amplifies them
    for tiny gradients (one weight in 7,840 differed by 2e-5 of the step scale)."""
    x, y = mnist(96)
    runs = {}
    for jit in (False, True):
        keras.utils.set_random_seed(1)
        model = keras.Sequential([keras.Input((784,)), keras.layers.Dense(10)])
        initial = model.get_weights()
        # Model-level XLA off, so the optimizer's compiled update runs inside a plain graph.
        model.compile(optimizer=LearnedOptimizer(tiny_trained, learning_rate=0.1, jit_compile=jit), loss=LOSS,
                      jit_compile=False)
        model.fit(x, y, batch_size=32, epochs=1, verbose=0, shuffle=False)
        assert int(model.optimizer.iterations.numpy()) == 3
        runs[jit] = [w - w0 for w, w0 in zip(model.get_weights(), initial)]
    plain, xla = runs[False], runs[True]
    scale = max(np.max(np.abs(d)) for d in plain)
    assert scale > 1e-3
    for a, b in zip(plain, xla):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-4 * scale)


def test_config_round_trip_keeps_state_dtype_and_jit_compile(tiny_trained):
    opt = LearnedOptimizer(tiny_trained, state_dtype="bfloat16", jit_compile=True)
    config = json.loads(json.dumps(opt.get_config()))
    assert config["state_dtype"] == "bfloat16" and config["jit_compile"] is True
    for clone in (LearnedOptimizer.from_config(config), keras.optimizers.deserialize(keras.optimizers.serialize(opt))):
        assert clone.state_dtype == "bfloat16" and clone.jit_compile is True
        clone.build([keras.Variable(np.zeros(5, np.float32))])
        assert {str(v.dtype) for v in state_variables(clone)} == {"bfloat16"}
    default = LearnedOptimizer(tiny_trained).get_config()
    assert default["state_dtype"] == "float32" and default["jit_compile"] is False
    # A config saved before these options existed loads with the defaults.
    del config["state_dtype"], config["jit_compile"]
    old = LearnedOptimizer.from_config(config)
    assert old.state_dtype == "float32" and old.jit_compile is False
    assert LearnedOptimizer(tiny_trained, state_dtype=tf.float16).state_dtype == "float16"  # a DType by name


@pytest.mark.parametrize("bad", ["float64", "int8", "bf16", "", None])
def test_an_unknown_state_dtype_is_a_one_line_error_naming_the_allowed_ones(bad):
    # Checked before the source is read: the nonexistent path is never reached.
    with pytest.raises(UserError, match=r"state_dtype must be one of float32, bfloat16, float16; got") as info:
        LearnedOptimizer("/no/such/optimizer", state_dtype=bad)
    assert "\n" not in str(info.value) and repr(bad) in str(info.value)


def test_jit_compile_must_be_a_bool():
    with pytest.raises(UserError, match="jit_compile must be True or False; got 'false'"):
        LearnedOptimizer("/no/such/optimizer", jit_compile="false")

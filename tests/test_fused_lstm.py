"""The fused C++ LSTM kernel computes Keras' LSTMCell step and its gradient, and is kept out of
the graphs that cannot hold it (XLA, SavedModel exports)."""
import concurrent.futures
import json
import os
import platform
import subprocess

import numpy as np
import pytest
import tensorflow as tf
from conftest import KERNEL_OPT_OUT, kernel_not_expected, trained_looking_lstm

from l2l_tf.kernels import fused_lstm
from l2l_tf.meta import meta_gradient
from l2l_tf.optimizers import CoordinatewiseLSTM
from l2l_tf.problems import QuadraticFamily

#: The kernel sums its matmuls in another order than oneDNN, and computes tanh as
#: 2 sigmoid(2x) - 1: its float32 rounding differs from Keras' cell by about as much as Keras'
#: own differs from exact (float64) arithmetic. So both are compared with a float64 step: the
#: kernel may be at most ACCURACY_FACTOR times as far from it as Keras' cell is (plus a floor
#: of FLOOR times the quantity's scale, for values Keras happens to hit almost exactly).
ACCURACY_FACTOR = 3.0
FLOOR = 2e-7
#: Updates of the default optimizer (output scale 0.1, values ~1e-3) on the kernel and on Keras'
#: cells: their float32 roundings differ by up to ~1e-8 (1.1e-8 over 40 seeds); a wrong gate,
#: weight or bias moves them by 1e-5 or more.
UPDATE_ATOL = 1e-7


pytestmark = pytest.mark.skipif(kernel_not_expected() is not None, reason=str(kernel_not_expected()))


@pytest.fixture(autouse=True)
def _kernel_must_be_available():
    """Every test here runs on the kernel: a failed build fails them all, with the reason."""
    try:
        fused_lstm.check_environment()
        fused_lstm._load()
    except fused_lstm.KernelUnavailable as e:
        pytest.fail(f"a C++ compiler is present but the fused kernel is unavailable: {e} "
                    f"(set ${KERNEL_OPT_OUT}=skip to opt out)")
    assert fused_lstm.available()


def test_the_kernel_is_built_for_this_cpu():
    """-march=native (minus the extensions TensorFlow's headers cannot compile), not the portable build."""
    info = fused_lstm.build_info()
    assert info["build"] in fused_lstm.NATIVE_BUILDS, info
    assert "-march=native" in info["flags"]


def _cell(inputs, units, seed):
    """A Keras LSTMCell with weights drawn from numpy (Keras' seeded Orthogonal init is not
    reproducible across processes) at the scale of Keras' own initializers, and a non-zero bias."""
    import keras

    cell = keras.layers.LSTMCell(units)
    cell.build((None, inputs))
    rng = np.random.default_rng(seed)
    for weight, fan_in in ((cell.kernel, inputs), (cell.recurrent_kernel, units), (cell.bias, 1)):
        weight.assign(rng.normal(scale=fan_in ** -0.5, size=weight.shape).astype(np.float32))
    return cell


def _step_and_gradients(step, x, h, c, weights, dh, dc):
    with tf.GradientTape() as tape:
        tape.watch([x, h, c])
        h_new, c_new = step()
        loss = tf.reduce_sum(h_new * dh) + tf.reduce_sum(c_new * dc)
    return [h_new, c_new] + tape.gradient(loss, [x, h, c] + weights)


@pytest.mark.parametrize("rows,inputs,units", [(1, 2, 20), (130, 22, 20), (65, 20, 7), (300, 40, 40)])
def test_step_and_gradients_equal_the_keras_cell(rows, inputs, units):
    cell = _cell(inputs, units, seed=rows)
    rng = np.random.default_rng(rows)
    x, h, c, dh, dc = (tf.constant(rng.normal(scale=2.0, size=(rows, n)).astype(np.float32))
                       for n in (inputs, units, units, units, units))
    weights = [w.value for w in cell.trainable_weights]  # kernel, recurrent_kernel, bias
    keras_out = _step_and_gradients(lambda: (lambda o: (o[0], o[1][1]))(cell(x, [h, c])), x, h, c, weights, dh, dc)
    fused_out = _step_and_gradients(
        lambda: fused_lstm.lstm_step(x, h, c, cell.kernel, cell.recurrent_kernel, cell.bias), x, h, c, weights, dh, dc)
    x64, h64, c64, dh64, dc64 = (tf.cast(t, tf.float64) for t in (x, h, c, dh, dc))
    weights64 = [tf.Variable(tf.cast(w, tf.float64)) for w in weights]
    exact = _step_and_gradients(lambda: _lstm_step_float64(x64, h64, c64, *weights64), x64, h64, c64, weights64,
                                dh64, dc64)
    names = ["h'", "c'", "dx", "dh", "dc", "dkernel", "drecurrent", "dbias"]
    for name, a, b, e in zip(names, keras_out, fused_out, exact):
        assert a.shape == b.shape == e.shape, name
        e = e.numpy()
        keras_error, fused_error = np.abs(a.numpy() - e).max(), np.abs(b.numpy() - e).max()
        scale = max(1.0, float(np.abs(e).max()))
        assert fused_error <= ACCURACY_FACTOR * keras_error + FLOOR * scale, (name, fused_error, keras_error)


def _lstm_step_float64(x, h, c, kernel, recurrent_kernel, bias):
    """Keras' LSTMCell step (gates i, f, g, o) written out, for float64 tensors."""
    i, f, g, o = tf.split(x @ kernel + h @ recurrent_kernel + bias, 4, axis=1)
    c_new = tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(g)
    return tf.sigmoid(o) * tf.tanh(c_new), c_new


def test_results_are_bitwise_reproducible_and_nan_propagates():
    cell = _cell(22, 20, seed=3)
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(1000, 22)).astype(np.float32))
    h, c = tf.zeros([1000, 20]), tf.zeros([1000, 20])
    weights = [w.value for w in cell.trainable_weights]
    runs = [_step_and_gradients(lambda: fused_lstm.lstm_step(x, h, c, cell.kernel, cell.recurrent_kernel, cell.bias),
                                x, h, c, weights, tf.ones([1000, 20]), tf.ones([1000, 20])) for _ in range(2)]
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    # The inference variant (no tape) computes the very same step.
    h_new, c_new = fused_lstm.lstm_step(x, h, c, cell.kernel, cell.recurrent_kernel, cell.bias)
    np.testing.assert_array_equal(h_new.numpy(), runs[0][0].numpy())
    np.testing.assert_array_equal(c_new.numpy(), runs[0][1].numpy())
    # A NaN gradient must reach the trainer (which skips such steps), never turn into a number.
    x_nan = tf.tensor_scatter_nd_update(x, [[5, 0]], [np.nan])
    h_new, c_new = fused_lstm.lstm_step(x_nan, h, c, cell.kernel, cell.recurrent_kernel, cell.bias)
    assert np.isnan(h_new.numpy()[5]).all() and np.isnan(c_new.numpy()[5]).all()
    assert np.isfinite(np.delete(h_new.numpy(), 5, axis=0)).all()
    # Saturated gates stay exact: sigmoid -> 0/1, tanh -> -1/1, no inf or NaN.
    big = tf.fill([4, 22], 1e4) * tf.constant([[1.0], [-1.0], [1.0], [-1.0]])
    h_big, c_big = fused_lstm.lstm_step(big, tf.zeros([4, 20]), tf.zeros([4, 20]), cell.kernel, cell.recurrent_kernel,
                                        cell.bias)
    assert np.isfinite(h_big.numpy()).all() and np.abs(h_big.numpy()).max() <= 1.0


def test_the_optimizer_gives_the_same_updates_and_meta_gradient_on_either_kernel():
    family = QuadraticFamily()
    problem = family.sample("train", 0, range(4))
    optimizer = trained_looking_lstm(5)
    out = {}
    for kernel in ("fused", "keras"):
        optimizer.kernel = kernel
        _, state, _, losses, meta_loss, grads = meta_gradient(
            family.loss_and_state, optimizer, problem.params, optimizer.init(problem.params, 4), problem.data, (),
            tf.ones(5))
        out[kernel] = (float(meta_loss), [g.numpy() for g in grads], [s.numpy() for s in tf.nest.flatten(state)])
    (loss_a, grads_a, state_a), (loss_b, grads_b, state_b) = out.values()
    np.testing.assert_allclose(loss_a, loss_b, rtol=1e-5)
    scale = max(np.abs(g).max() for g in grads_b)
    assert scale > 0
    for a, b in zip(grads_a, grads_b):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * scale)
    for a, b in zip(state_a, state_b):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def _op_types(concrete_function) -> set:
    graph = concrete_function.graph.as_graph_def()
    types = {node.op for node in graph.node}
    for function in graph.library.function:
        types |= {node.op for node in function.node_def}
    return types


def test_the_kernel_is_used_by_default_and_kept_out_of_xla_and_exports(tmp_path):
    from l2l_tf.export import export_optimizer, load_exported_optimizer

    optimizer = CoordinatewiseLSTM(seed=0)
    grads = [tf.constant(np.random.default_rng(0).normal(size=50).astype(np.float32))]
    state = optimizer.init(grads)
    plain = tf.function(lambda g, s: optimizer.update(g, s, g)).get_concrete_function(grads, state)
    # Nothing differentiates a plain update: the variant that saves no cache for a backward pass.
    assert "L2LLstmLayerInference" in _op_types(plain) and "L2LLstmLayer" not in _op_types(plain)

    def differentiated(g, s):
        with tf.GradientTape() as tape:
            (u,), _ = optimizer.update(g, s, g)
            loss = tf.reduce_sum(u)
        return tape.gradient(loss, optimizer.meta_variables[0])

    taped = tf.function(differentiated).get_concrete_function(grads, state)
    assert {"L2LLstmLayer", "L2LLstmLayerGrad"} <= _op_types(taped)
    with fused_lstm.disabled():
        inside = tf.function(lambda g, s: optimizer.update(g, s, g)).get_concrete_function(grads, state)
    assert not any(t.startswith("L2LLstm") for t in _op_types(inside)) and "MatMul" in _op_types(inside)
    assert not fused_lstm.is_disabled()  # the context ends with its block

    export_optimizer(optimizer, str(tmp_path / "export"))
    saved = (tmp_path / "export" / "saved_model.pb").read_bytes()  # graphs and function library
    assert b"L2LLstm" not in saved and b"MatMul" in saved
    reloaded, _ = load_exported_optimizer(str(tmp_path / "export"))
    (a,), _ = optimizer.update(grads, state, grads)
    (b,), _ = reloaded.update(grads, reloaded.init(grads), grads)
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=0, atol=UPDATE_ATOL)


def test_kernel_choice_from_the_environment(monkeypatch):
    monkeypatch.setenv(fused_lstm.ENV_CHOICE, "sometimes")
    with pytest.raises(fused_lstm.KernelUnavailable, match="L2L_TF_LSTM_KERNEL must be one of"):
        fused_lstm.choice()
    monkeypatch.setenv(fused_lstm.ENV_CHOICE, "Keras")
    assert fused_lstm.choice() == "keras"
    monkeypatch.delenv(fused_lstm.ENV_CHOICE)
    assert fused_lstm.choice() == "auto"


def test_a_failed_build_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("CXX", "false")  # a "compiler" that always fails
    with pytest.raises(fused_lstm.KernelUnavailable, match="building lstm_kernel.cc failed"):
        fused_lstm._build(tmp_path / "lib.so")
    assert not os.listdir(tmp_path)  # no half-written library left behind
    monkeypatch.setenv("CXX", str(tmp_path / "no_such_compiler"))
    with pytest.raises(fused_lstm.KernelUnavailable):
        fused_lstm._build(tmp_path / "lib.so")


def test_xla_compilation_started_elsewhere_falls_back_to_keras_cells():
    """E.g. Keras' model.compile(jit_compile=True) tracing the optimizer into its train step."""
    optimizer = CoordinatewiseLSTM(seed=1)
    rng = np.random.default_rng(1)
    grads = [tf.constant(rng.normal(size=n).astype(np.float32)) for n in (30, 4)]
    state = optimizer.init(grads)
    compiled = tf.function(lambda g, s: optimizer.update(g, s, g), jit_compile=True)
    (a, b), _ = compiled(grads, state)
    (a_ref, b_ref), _ = optimizer.update(grads, state, grads)
    np.testing.assert_allclose(a.numpy(), a_ref.numpy(), rtol=0, atol=UPDATE_ATOL)
    np.testing.assert_allclose(b.numpy(), b_ref.numpy(), rtol=0, atol=UPDATE_ATOL)


def test_an_unwritable_cache_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(fused_lstm.KernelUnavailable, match="cannot write the kernel cache"):
        fused_lstm._build(blocker / "cache" / "lib.so")


@pytest.mark.slow
def test_binaries_reject_a_bad_kernel_choice_up_front_in_one_line(monkeypatch):
    from conftest import run_binary

    monkeypatch.setenv(fused_lstm.ENV_CHOICE, "sometimes")
    proc = run_binary("l2l_train", "--num_epochs=1", "--save_path=unused")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == (
        "l2l_train.py: error: $L2L_TF_LSTM_KERNEL must be one of ('auto', 'fused', 'keras'), got 'sometimes'")
    assert "Traceback" not in proc.stderr


def _fake_compiler(tmp_path, fails_when: str) -> str:
    """A 'compiler' that fails (like Eigen's AVX512-FP16 header does) when its arguments match
    the shell pattern `fails_when`, and otherwise writes its -o file."""
    script = tmp_path / "fake-g++"
    script.write_text(f'''#!/bin/sh
case "$*" in {fails_when}) echo "PacketMathFP16.h:740:49: error: expected initializer before '<' token" >&2; exit 1;; esac
while [ $# -gt 0 ]; do if [ "$1" = "-o" ]; then echo built > "$2"; fi; shift; done
''')
    script.chmod(0o755)
    return str(script)


def test_a_failed_native_build_is_retried_and_says_which_flags_were_used(monkeypatch, tmp_path):
    monkeypatch.setenv("CXX", _fake_compiler(tmp_path, "*-march=native*"))
    built = fused_lstm._build(tmp_path / "cache" / "lib.so")
    assert built["build"] == "portable" and built["flags"] == []
    assert [f["build"] for f in built["failed"]] == ["native", "native without AVX512-FP16"]
    assert "expected initializer" in built["failed"][0]["error"]
    # The record is kept beside the library, for build_info() of a cached build.
    assert json.loads((tmp_path / "cache" / "lib.json").read_text()) == built
    monkeypatch.setenv("CXX", _fake_compiler(tmp_path, "*-march=native\\ -I*"))
    built = fused_lstm._build(tmp_path / "cache2" / "lib.so")
    assert built["build"] == "native without AVX512-FP16"
    assert built["flags"] == ["-march=native", "-mno-avx512fp16"]


@pytest.mark.slow
@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="x86-64 targets")
def test_the_source_compiles_for_every_x86_64_level(tmp_path):
    """The machine of a later run may be any x86 CPU: the kernel must compile for the baseline
    (SSE2), v2, v3 (AVX2) and v4 (AVX-512), not only for this machine's -march=native.

    At -O0: what breaks across ISA levels (the headers' intrinsics failing to parse, always_inline
    target mismatches) fails at -O0 too, in half the time of the real build's -O3."""
    compiler = fused_lstm._compiler()
    levels = ["x86-64", "x86-64-v2", "x86-64-v3", "x86-64-v4"]
    flags = [f for f in fused_lstm._OPT_FLAGS if f != "-shared" and not f.startswith("-O")] + ["-O0"]

    def compile_for(level):
        command = ([compiler, str(fused_lstm.SOURCE), "-c", "-o", str(tmp_path / f"{level}.o"), f"-march={level}"]
                   + flags + tf.sysconfig.get_compile_flags())
        done = subprocess.run(command, capture_output=True, text=True, timeout=600)
        return level, done.returncode, done.stderr[-2000:]

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        failures = [(level, err) for level, code, err in pool.map(compile_for, levels) if code]
    assert not failures, failures

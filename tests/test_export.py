"""SavedModel export: the same updates as the library in a process without l2l_tf, any size,
saved_model_cli, the metadata contract, and one-line errors for foreign or corrupt exports."""
import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import tensorflow as tf

from conftest import BLOCK_L2L_TF, ROOT, run_binary, run_python
from l2l_tf import export, loading
from l2l_tf.errors import UserError
from l2l_tf.optimizers import CoordinatewiseLSTM, LSTMOptimizerConfig
from l2l_tf.problems import QuadraticFamily
from l2l_tf.version import __version__

RAW_TRAJECTORY = BLOCK_L2L_TF + '''
import json
import numpy as np
import tensorflow as tf

opt = tf.saved_model.load({export!r})
meta = json.loads(tf.io.read_file(opt.metadata.asset_path).numpy())
init_state, step = opt.signatures["init_state"], opt.signatures["step"]
problem = np.load({problem!r})
w, y = tf.constant(problem["w"]), tf.constant(problem["y"])
theta = tf.Variable(problem["theta"])
state = init_state(params=theta)
grads, updates, losses = [], [], []
for _ in range(100):
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.square(tf.linalg.matvec(w, theta) - y))
    g = tape.gradient(loss, theta)
    out = step(gradients=g, **state)
    update = out.pop("update")
    state = out
    theta.assign_add(update)
    grads.append(g.numpy()); updates.append(update.numpy()); losses.append(float(loss))
np.savez({out!r}, grads=np.stack(grads), updates=np.stack(updates), losses=np.array(losses))
assert not any(m == "l2l_tf" or m.startswith("l2l_tf.") for m in sys.modules)
print(json.dumps(meta["groups"][0]["optimizer"]))
'''


@pytest.mark.slow
def test_export_gives_the_library_updates_in_a_process_without_l2l_tf(tiny_trained, tiny_export, tmp_path):
    w, y, theta = QuadraticFamily().sample_function("train", 0, 0)  # a function it was trained on
    np.savez(tmp_path / "problem.npz", w=w, y=y, theta=theta)
    code = RAW_TRAJECTORY.format(export=tiny_export, problem=str(tmp_path / "problem.npz"),
                                 out=str(tmp_path / "trajectory.npz"))
    proc = run_python(code, cwd=str(tmp_path))  # no PYTHONPATH: l2l_tf is not even importable
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1])["layers"] == [20, 20]
    raw = np.load(tmp_path / "trajectory.npz")
    assert raw["losses"][-1] < 0.5 * raw["losses"][0], raw["losses"][[0, -1]]

    # Replay the recorded gradients through the in-library optimizer loaded from the training run.
    optimizer = loading.load_optimizer(tiny_trained)
    params = [tf.constant(theta)]
    state = optimizer.init(params)
    for t in range(100):
        updates, state = optimizer.update([tf.constant(raw["grads"][t])], state, params)
        np.testing.assert_allclose(raw["updates"][t], updates[0].numpy(), rtol=0, atol=1e-6, err_msg=f"step {t}")


def test_one_export_serves_any_number_of_coordinates(tiny_export):
    loaded = export.load_saved_model(tiny_export)
    init, step = loaded.signatures["init_state"], loaded.signatures["step"]
    rng = np.random.default_rng(0)
    big = tf.constant(rng.standard_normal(200_000) * 10.0 ** rng.uniform(-6, 2, 200_000), tf.float32)
    small = big[:10]
    state_big, state_small = init(params=tf.zeros([200_000])), init(params=tf.zeros([10]))
    assert {k: tuple(v.shape) for k, v in state_small.items()} == {
        "lstm_0_h": (10, 20), "lstm_0_c": (10, 20), "lstm_1_h": (10, 20), "lstm_1_c": (10, 20)}
    for _ in range(3):
        out_big, out_small = step(gradients=big, **state_big), step(gradients=small, **state_small)
        assert out_big["update"].shape == (200_000,) and out_small["update"].shape == (10,)
        np.testing.assert_allclose(out_big["update"].numpy()[:10], out_small["update"].numpy(), rtol=0, atol=1e-6)
        state_big = {k: v for k, v in out_big.items() if k != "update"}
        state_small = {k: v for k, v in out_small.items() if k != "update"}


@pytest.mark.slow
def test_saved_model_cli_shows_and_runs_the_step_signature(tiny_trained, tiny_export, tmp_path):
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    show = subprocess.run([cli, "show", "--dir", tiny_export, "--all"], capture_output=True, text=True, env=env,
                          timeout=300)
    assert show.returncode == 0, show.stderr[-2000:]
    for expected in ("signature_def['init_state']", "signature_def['step']", "inputs['gradients']",
                     "inputs['params']", "inputs['lstm_1_c']", "outputs['update']", "outputs['lstm_0_h']"):
        assert expected in show.stdout, expected

    g = np.array([3.0, -0.2, 1e-6, 0.0, -40.0], np.float32)
    inputs = {"gradients": g, **{name: np.zeros((5, 20), np.float32)
                                 for name, _ in export.state_layout(LSTMOptimizerConfig())}}
    args = []
    for name, value in inputs.items():
        np.save(tmp_path / f"{name}.npy", value)
        args.append(f"{name}={tmp_path / f'{name}.npy'}")
    out_dir = tmp_path / "out"
    run = subprocess.run([cli, "run", "--dir", tiny_export, "--tag_set", "serve", "--signature_def", "step",
                          "--inputs", ";".join(args), "--outdir", str(out_dir)],
                         capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    optimizer = loading.load_optimizer(tiny_trained)
    ref, ref_state = optimizer.update([tf.constant(g)], optimizer.init([tf.zeros([5])]), None)
    np.testing.assert_allclose(np.load(out_dir / "update.npy"), ref[0].numpy(), rtol=0, atol=1e-6)
    np.testing.assert_allclose(np.load(out_dir / "lstm_1_c.npy"), ref_state[0][3].numpy(), rtol=0, atol=1e-6)  # lstm_0_h, lstm_0_c, lstm_1_h, lstm_1_c


def test_metadata_records_what_a_loader_needs(tiny_trained, tiny_export):
    meta = export.check_export(tiny_export)
    assert meta["format"] == export.EXPORT_FORMAT and meta["format_version"] == export.FORMAT_VERSION
    assert meta["l2l_tf_version"] == __version__ and meta["tensorflow_version"] == tf.__version__
    (group,) = meta["groups"]
    assert group["name"] == meta["default_group"] == "default"
    assert group["optimizer"] == {"architecture": "coordinatewise_lstm", "layers": [20, 20], "preprocess": "log_sign",
                                  "preprocess_p": 10.0, "output_scale": 0.1, "max_update": 0.0, "num_gac": 0,
                                  "memory": "lbfgs", "memory_slots": 10, "momentum_betas": [0.95], "rms_beta": 0.95,
                                  "input_layer": 0, "output": "linear", "zero_update_at_zero_gradient": False,
                                  "magnitude_feature": False, "time_features": False, "progress_feature": False,
                                  "base_learning_rate": 0.0, "base_momentum": 0.9, "base_schedule": "constant",
                                  "base_warmup": 0.0}
    assert group["signatures"] == {"init_state": ["init_state"], "step": ["step"]}
    assert [s["name"] for s in group["state"]] == ["lstm_0_h", "lstm_0_c", "lstm_1_h", "lstm_1_c"]
    assert group["num_meta_parameters"] == 5141
    assert meta["training"]["problem"]["name"] == "quadratic" and meta["training"]["best_epoch"] > 0
    assert meta["source"] == tiny_trained
    # load_optimizer on the export rebuilds the very same phi.
    a, b = loading.load_optimizer(tiny_trained), loading.load_optimizer(tiny_export)
    assert a.config == b.config
    for va, vb in zip(a.meta_variables, b.meta_variables):
        np.testing.assert_array_equal(va.numpy(), vb.numpy())


def test_several_groups_get_suffixed_signatures_and_are_refused_by_this_loader(tmp_path):
    groups = {"default": CoordinatewiseLSTM(seed=0), "conv": CoordinatewiseLSTM(LSTMOptimizerConfig(layers=(4,)))}
    assert export.signature_names(list(groups)) == {
        "default": {"init_state": ["init_state", "init_state_default"], "step": ["step", "step_default"]},
        "conv": {"init_state": ["init_state_conv"], "step": ["step_conv"]}}
    meta = export.build_metadata(groups)
    (tmp_path / "meta").mkdir()
    meta_file = tmp_path / "meta" / export.METADATA_FILE
    meta_file.write_text(json.dumps(meta))
    module, signatures = export._build_module(groups, str(meta_file))
    tf.saved_model.save(module, str(tmp_path / "two"), signatures=signatures)
    assert export.check_export(str(tmp_path / "two"))["groups"][1]["state"] == [
        {"name": "lstm_0_h", "units": 4}, {"name": "lstm_0_c", "units": 4}]
    loaded = tf.saved_model.load(str(tmp_path / "two"))
    out = loaded.signatures["step_conv"](gradients=tf.ones([3]), lstm_0_h=tf.zeros([3, 4]), lstm_0_c=tf.zeros([3, 4]))
    assert out["update"].shape == (3,) and out["lstm_0_h"].shape == (3, 4)
    with pytest.raises(UserError, match="several optimizer groups"):
        loading.load_optimizer(str(tmp_path / "two"))


# -- foreign and corrupt exports -------------------------------------------------------------------


def _foreign(path):
    module = tf.Module()
    module.v = tf.Variable(1.0)
    module.f = tf.function(lambda x: x * module.v, input_signature=[tf.TensorSpec([None], tf.float32)])
    tf.saved_model.save(module, path)


def _edit_metadata(path, edit):
    file = os.path.join(path, "assets", export.METADATA_FILE)
    meta = json.load(open(file))
    edit(meta)
    json.dump(meta, open(file, "w"))


def _truncate(file, keep=0.5):
    data = open(file, "rb").read()
    open(file, "wb").write(data[:int(len(data) * keep)])


def _garble(file):
    data = bytearray(open(file, "rb").read())
    data[:] = bytes(len(data))
    open(file, "wb").write(bytes(data))


BAD_EXPORTS = {
    "foreign SavedModel": (None, "not an l2l_tf optimizer export"),
    "truncated saved_model.pb": (lambda p: _truncate(os.path.join(p, "saved_model.pb")), "corrupt"),
    "zeroed weights file": (lambda p: _garble(os.path.join(p, "variables", "variables.data-00000-of-00001")),
                            "corrupt"),
    "missing weights": (lambda p: os.remove(os.path.join(p, "variables", "variables.index")), "corrupt"),
    "corrupt metadata": (lambda p: open(os.path.join(p, "assets", export.METADATA_FILE), "w").write("{oops"),
                         "corrupt"),
    "newer format": (lambda p: _edit_metadata(p, lambda m: m.update(format_version=99)), "upgrade l2l_tf"),
    "unknown architecture": (lambda p: _edit_metadata(p, lambda m: m["groups"][0]["optimizer"].update(
        architecture="transformer")), "transformer"),
    "metadata does not fit the graph": (lambda p: _edit_metadata(p, lambda m: m["groups"][0]["optimizer"].update(
        layers=[20, 20, 20])), "signature"),
    "metadata does not fit the weights": (lambda p: _edit_metadata(p, lambda m: m["groups"][0]["optimizer"].update(
        layers=[7, 7])), "do not fit"),
}


@pytest.fixture(scope="module")
def bad_exports(tiny_export, tmp_path_factory):
    root = tmp_path_factory.mktemp("bad_exports")
    paths = {}
    for name, (damage, _) in BAD_EXPORTS.items():
        path = str(root / name.replace(" ", "_"))
        if damage is None:
            _foreign(path)
        else:
            shutil.copytree(tiny_export, path)
            damage(path)
        paths[name] = path
    return paths


@pytest.mark.parametrize("case", list(BAD_EXPORTS))
def test_foreign_or_corrupt_export_is_refused_in_one_line(bad_exports, case):
    from l2l_tf import LearnedOptimizer

    for load in (loading.load_optimizer, LearnedOptimizer):
        with pytest.raises(UserError) as info:
            load(bad_exports[case])
        message = str(info.value)
        assert "\n" not in message and BAD_EXPORTS[case][1] in message, message


@pytest.mark.slow
def test_binaries_export_evaluate_exports_and_report_bad_ones_in_one_line(tiny_trained, tiny_export, bad_exports,
                                                                          tmp_path):
    target = str(tmp_path / "export")
    runs = {"export": ("l2l_export", f"--path={tiny_trained}", f"--export_dir={target}"),
            "evaluate export": ("l2l_evaluate", f"--path={tiny_export}", "--optimizer=L2L", "--num_steps=20",
                                "--num_problems=4", f"--output_dir={tmp_path / 'eval'}"),
            "evaluate corrupt": ("l2l_evaluate", f"--path={bad_exports['zeroed weights file']}", "--optimizer=L2L",
                                 f"--output_dir={tmp_path / 'eval2'}"),
            "export foreign": ("l2l_export", f"--path={bad_exports['foreign SavedModel']}",
                               f"--export_dir={tmp_path / 'e1'}")}
    with ThreadPoolExecutor(max_workers=2) as pool:
        procs = dict(zip(runs, pool.map(lambda args: run_binary(*args), runs.values())))

    assert procs["export"].returncode == 0, procs["export"].stderr[-3000:]
    assert "init_state(params)" in procs["export"].stdout and export.check_export(target)["source"] == tiny_trained
    assert procs["evaluate export"].returncode == 0, procs["evaluate export"].stderr[-3000:]
    results = json.load(open(tmp_path / "eval" / "results.json"))
    assert results["learned_optimizer_path"] == tiny_export and "L2L" in results["optimizers"]
    for case in ("evaluate corrupt", "export foreign"):
        proc = procs[case]
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
        errors = [line for line in proc.stderr.splitlines() if ": error: " in line]
        assert len(errors) == 1 and proc.stderr.strip().endswith(errors[0]), proc.stderr[-2000:]


def test_export_refuses_to_clobber_and_leaves_nothing_half_written(tiny_trained, tmp_path):
    optimizer = loading.load_optimizer(tiny_trained)
    target = tmp_path / "export"
    target.mkdir()
    (target / "precious.txt").write_text("keep me")
    with pytest.raises(UserError, match="--overwrite"):
        export.export_optimizer(optimizer, str(target))
    assert os.listdir(target) == ["precious.txt"]
    (tmp_path / "a_file").write_text("")
    with pytest.raises(UserError, match="not a directory"):
        export.export_optimizer(optimizer, str(tmp_path / "a_file"))
    export.export_optimizer(optimizer, str(target), overwrite=True)
    assert "precious.txt" not in os.listdir(target) and export.check_export(str(target))
    assert sorted(os.listdir(tmp_path)) == ["a_file", "export"]  # no temporary directories left behind

"""CIFAR-10: loading, label subsets, batch-norm state, and the two-LSTM (conv / fc) optimizer."""
import json
import os
import pickle

import numpy as np
import pytest
import tensorflow as tf

from conftest import ROOT, run_binary
from l2l_tf import evaluation, loading, saving
from l2l_tf.problems.datasets import load_dataset
from l2l_tf.errors import UserError
from l2l_tf.meta import MetaTrainConfig, MetaTrainer
from l2l_tf.optimizers import Adam, LSTMOptimizerConfig
from l2l_tf.optimizers.grouped import GroupedConfig, GroupedLSTM, parse_groups
from l2l_tf.problems.cifar import DEFAULT_GROUPS, HELDOUT, CIFARFamily

FIXTURE = os.path.join(ROOT, "testdata", "cifar10_subset.npz")
GROUPS = parse_groups(DEFAULT_GROUPS)


@pytest.fixture(scope="module")
def dataset():
    return load_dataset("cifar10", FIXTURE)


@pytest.fixture(scope="module")
def cifar2(dataset):
    return CIFARFamily("cifar2", batch_size=8, dataset=dataset)


def grouped_optimizer(seed=0):
    return GroupedLSTM(GroupedConfig(GROUPS, LSTMOptimizerConfig(preprocess_p=5.0, output_scale=0.01)), seed=seed)


def test_npz_fixture_loads_in_keras_layout(dataset):
    assert dataset.x_train.shape == (120, 32, 32, 3) and dataset.x_train.dtype == np.uint8
    assert dataset.x_test.shape == (40, 32, 32, 3)
    assert np.bincount(dataset.y_train, minlength=10).tolist() == [12] * 10
    assert dataset.x_train[0, 0, 0].tolist() == [59, 62, 63]  # official train image 0, exact pixels


def _write_python_release(folder, dataset):
    """The official cifar-10-batches-py layout: pickled dicts, rows of 3072 channel-first bytes."""
    os.makedirs(folder)
    chunks = np.array_split(np.arange(len(dataset.x_train)), 5)

    def dump(name, x, y):
        rows = x.transpose(0, 3, 1, 2).reshape(len(x), -1)
        with open(os.path.join(folder, name), "wb") as f:
            pickle.dump({b"batch_label": name.encode(), b"labels": [int(v) for v in y], b"data": rows}, f)

    for i, idx in enumerate(chunks, start=1):
        dump(f"data_batch_{i}", dataset.x_train[idx], dataset.y_train[idx])
    dump("test_batch", dataset.x_test, dataset.y_test)


def test_the_official_python_release_loads_identically(tmp_path, dataset):
    _write_python_release(str(tmp_path / "cifar-10-batches-py"), dataset)
    for where in (tmp_path, tmp_path / "cifar-10-batches-py"):
        loaded = load_dataset("cifar10", str(where))
        np.testing.assert_array_equal(loaded.x_train, dataset.x_train)
        np.testing.assert_array_equal(loaded.y_test, dataset.y_test)


def test_a_batch_file_that_would_run_code_is_refused(tmp_path, dataset):
    folder = tmp_path / "cifar-10-batches-py"
    _write_python_release(str(folder), dataset)

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    with open(folder / "test_batch", "wb") as f:
        pickle.dump({b"data": Evil(), b"labels": []}, f)
    with pytest.raises(UserError, match="not a CIFAR-10 python batch"):
        load_dataset("cifar10", str(tmp_path))


def test_missing_cifar_data_names_the_options(tmp_path):
    with pytest.raises(UserError, match="cifar10.npz.*cifar-10-batches-py"):
        load_dataset("cifar10", str(tmp_path))


def test_label_subsets(dataset):
    for name, classes in (("cifar10", range(10)), ("cifar5", range(5)), ("cifar2", (0, 1))):
        family = CIFARFamily(name, batch_size=8, dataset=dataset)
        assert family.classes == tuple(classes)
        assert sorted(set(family.data.y_train)) == list(range(len(classes)))  # relabelled 0..k-1
        assert len(family.data.x_train) == 12 * len(classes)
        assert family.model.output_shape == (None, len(classes))
        # Every kept image is one of the chosen classes, in the original order.
        keep = np.isin(dataset.y_train, list(classes))
        np.testing.assert_array_equal(family.data.x_train, dataset.x_train[keep])
    sub = CIFARFamily("cifar10", labels="heldout", batch_size=8, dataset=dataset)
    assert sub.classes == HELDOUT and not set(sub.classes) & set(range(5))  # disjoint from CIFAR-5 and CIFAR-2
    np.testing.assert_array_equal(sub.data.x_train, dataset.x_train[dataset.y_train >= 5])
    np.testing.assert_array_equal(sub.data.y_train, dataset.y_train[dataset.y_train >= 5] - 5)
    with pytest.raises(UserError, match="heldout"):
        CIFARFamily("cifar5", labels="heldout", dataset=dataset)


def test_the_cifar_mixture_draws_all_three_subsets_reproducibly_with_true_losses():
    from l2l_tf.problems.registry import make_family

    mix = make_family("cifar_mix", data_dir=FIXTURE, batch_size=8)
    problems = [mix.sample("train", 0, [i]) for i in range(12)]
    names = [p.family.name for p in problems]
    assert set(names) == {"cifar10", "cifar5", "cifar2"}
    assert [mix.sample("train", 0, [i]).family.name for i in range(12)] == names
    for p in problems:
        assert float(p.data[1]) == 1.0  # the loss is not rescaled
        assert p.params[-1].shape[-1] == {"cifar10": 10, "cifar5": 5, "cifar2": 2}[p.family.name]
        assert {m for m in p.param_names if m.startswith("conv")}  # the conv LSTM's parameters are there


def test_batch_norm_statistics_follow_the_trajectory_but_not_theta(cifar2):
    problem = cifar2.sample("test", 0, [0])
    names = dict(zip((v.path for v in cifar2.model.non_trainable_variables), problem.data))
    assert set(names) == {f"{l}/{s}" for l in ("conv_bn_0", "conv_bn_1", "conv_bn_2", "dense_bn_0")
                          for s in ("moving_mean", "moving_variance")}
    assert not any("moving" in n for n in problem.param_names)
    batch = tf.nest.map_structure(lambda b: b[0], problem.batches(0, 1))
    losses, data = cifar2.loss_and_state(problem.params, problem.data, batch)
    # Training-mode loss uses batch statistics: the moving statistics do not change it ...
    shifted = tuple(d + 5.0 for d in problem.data)
    np.testing.assert_allclose(cifar2.loss(problem.params, shifted, batch), losses, rtol=1e-6)
    # ... and one step moves them 10% (momentum 0.9) toward the batch's statistics.
    mean0, new_mean0 = problem.data[0].numpy(), data[0].numpy()
    assert np.all(mean0 == 0) and np.all(np.abs(new_mean0) > 0)
    problem.release()

    curves, end = evaluation.run_problem(cifar2, Adam(1e-2), cifar2.sample("test", 0, [1]), 6)
    assert curves.shape == (7, 1)
    assert not np.allclose(end.data[0].numpy(), 0)  # the evaluator hands metrics the evolved statistics
    accuracy = cifar2.metrics(end.params, end)["test_accuracy"]
    assert 0.0 <= accuracy <= 1.0


def test_conv_and_fc_parameters_go_to_their_own_lstm(cifar2):
    opt = grouped_optimizer()
    groups = opt.assign(cifar2.param_names)
    assert groups["conv"] == [n for n in cifar2.param_names if n.startswith("conv")]
    assert groups["fc"] == [n for n in cifar2.param_names if n.startswith(("dense", "logits"))]
    assert {g for names in groups.values() for g in names} == set(cifar2.param_names)
    # The two LSTMs have their own weights ...
    conv_phi, fc_phi = opt.optimizers["conv"].meta_variables, opt.optimizers["fc"].meta_variables
    assert len(opt.meta_variables) == len(conv_phi) + len(fc_phi)
    assert not np.allclose(conv_phi[0].numpy(), fc_phi[0].numpy())
    # ... and each parameter's update is exactly its group's LSTM applied to it.
    problem = cifar2.sample("test", 0, [0])
    rng = np.random.default_rng(0)
    grads = [tf.constant(rng.normal(size=p.shape).astype(np.float32)) for p in problem.params]
    updates, state = opt.update(grads, opt.init(problem.params, names=problem.param_names), problem.params)
    for group, member_names in groups.items():
        idx = [problem.param_names.index(n) for n in member_names]
        sub = opt.optimizers[group]
        expected, _ = sub.update([grads[i] for i in idx], sub.init([problem.params[i] for i in idx]), None)
        for i, e in zip(idx, expected):
            np.testing.assert_allclose(updates[i].numpy(), e.numpy(), rtol=1e-6, atol=1e-9)
            assert list(state[i]) == [group]


def test_a_parameter_in_no_group_and_unnamed_parameters_are_errors():
    opt = GroupedLSTM(GroupedConfig((("conv", "^conv"),)))
    with pytest.raises(UserError, match="belongs to no group"):
        opt.init([tf.zeros([3])], names=["dense_0/kernel"])
    with pytest.raises(UserError, match="by name"):
        opt.init([tf.zeros([3])])
    for bad in ("conv", "conv=(", "=x", "a=x;a=y"):
        with pytest.raises(UserError):
            GroupedConfig(parse_groups(bad))


def test_a_saved_two_lstm_optimizer_reloads_with_identical_updates(tmp_path, cifar2):
    path = str(tmp_path / "cifar")
    config = MetaTrainConfig(num_epochs=2, num_steps=4, unroll_length=2, evaluation_period=1, evaluation_epochs=1,
                             log_period=100, seed=0)
    trained = grouped_optimizer(seed=3)
    MetaTrainer(cifar2, trained, config, save_path=path, metadata={"problem": cifar2.describe()}).train()
    record = json.load(open(os.path.join(path, saving.CONFIG_FILE)))
    assert record["optimizer"]["architecture"] == "grouped"
    assert [g["name"] for g in record["optimizer"]["groups"]] == ["conv", "fc"]

    loaded = loading.load_optimizer(path)
    assert isinstance(loaded, GroupedLSTM) and loaded.config == trained.config
    best = saving.load_learned(path)
    problem = cifar2.sample("test", 0, [0])
    rng = np.random.default_rng(1)
    states = {id(o): o.init(problem.params, names=problem.param_names) for o in (loaded, best)}
    for _ in range(3):  # several steps, so the LSTM states are compared too
        grads = [tf.constant(rng.normal(size=p.shape).astype(np.float32)) for p in problem.params]
        (u1, states[id(loaded)]), (u2, states[id(best)]) = (
            o.update(grads, states[id(o)], problem.params) for o in (loaded, best))
        for a, b in zip(u1, u2):
            np.testing.assert_array_equal(a.numpy(), b.numpy())
    # The reloaded phi is the saved best phi, not a fresh initialization.
    fresh = grouped_optimizer(seed=3)
    assert any(not np.array_equal(a.numpy(), b.numpy()) for a, b in zip(loaded.meta_variables, fresh.meta_variables))


@pytest.mark.slow
def test_train_and_evaluate_binaries_on_the_fixture(tmp_path):
    save = str(tmp_path / "opt")
    proc = run_binary("l2l_train", "--problem=cifar2", f"--data_dir={FIXTURE}", f"--save_path={save}",
                      "--param_groups=conv=^conv;fc=.*", "--batch_size=8", "--num_epochs=2", "--num_steps=4",
                      "--unroll_length=2", "--evaluation_period=1", "--evaluation_epochs=1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "parameter group conv: conv_0/kernel" in proc.stderr
    out = str(tmp_path / "eval")
    proc = run_binary("l2l_evaluate", "--problem=cifar2", f"--data_dir={FIXTURE}", f"--path={save}",
                      "--batch_size=8", "--num_steps=4", "--num_problems=2", "--num_tuning_problems=1",
                      "--lr_grid_min=0.01", "--lr_grid_max=0.1", "--lr_grid_per_decade=1", f"--output_dir={out}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.load(open(os.path.join(out, "results.json")))
    assert set(results["optimizers"]) >= {"L2L", "adam", "nag", "rmsprop", "sgd"}
    assert results["problem"] == "cifar2" and results["problem_settings"]["classes"] == ["airplane", "automobile"]


def test_grouped_optimizer_exports_and_runs_in_keras_with_its_own_lstm_per_variable(tmp_path, cifar2):
    from l2l_tf import export
    from l2l_tf.keras_optimizer import LearnedOptimizer

    opt = grouped_optimizer(seed=5)
    for v in opt.optimizers["fc"].meta_variables:  # make the two LSTMs clearly different rules
        v.assign(v * 1.5)
    meta = export.export_optimizer(opt, str(tmp_path / "export"))
    assert [(g["name"], g["pattern"]) for g in meta["groups"]] == list(GROUPS)
    loaded, _ = export.load_exported_optimizer(str(tmp_path / "export"))
    assert isinstance(loaded, GroupedLSTM) and loaded.config == opt.config

    problem = cifar2.sample("test", 0, [0])
    rng = np.random.default_rng(2)
    grads = [tf.constant(rng.normal(size=p.shape).astype(np.float32)) for p in problem.params]
    expected, _ = opt.update(grads, opt.init(problem.params, names=problem.param_names), problem.params)
    again, _ = loaded.update(grads, loaded.init(problem.params, names=problem.param_names), problem.params)
    for a, b in zip(expected, again):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-9)

    wrapper = LearnedOptimizer(opt)
    variables = cifar2.model.trainable_variables
    before = [v.numpy().copy() for v in variables]
    wrapper.apply_gradients(zip(grads, variables))
    for v, b, e in zip(variables, before, expected):
        np.testing.assert_allclose(v.numpy() - b, e.numpy(), rtol=1e-4, atol=1e-7)
    restored = LearnedOptimizer.from_config(wrapper.get_config())
    assert isinstance(restored.learned_optimizer, GroupedLSTM)

"""Meta-training: it learns, it checkpoints, and resuming reproduces an uninterrupted run."""
import json
import os

import numpy as np
import pytest

from l2l_tf import saving
from l2l_tf.errors import UserError
from l2l_tf.meta import MetaTrainConfig, MetaTrainer
from l2l_tf.optimizers import CoordinatewiseLSTM, LSTMOptimizerConfig
from l2l_tf.problems import QuadraticFamily

SMALL = dict(num_steps=40, unroll_length=20, meta_batch_size=32, evaluation_epochs=2, log_period=1000)


def phi(opt):
    return [np.array(v.numpy()) for v in opt.meta_variables]


def test_short_meta_training_lowers_the_validation_loss():
    family = QuadraticFamily()
    opt = CoordinatewiseLSTM(seed=0)
    trainer = MetaTrainer(family, opt, MetaTrainConfig(num_epochs=60, evaluation_period=60, seed=0, **SMALL))
    before = trainer.validate()
    result = trainer.train()
    after = trainer.validate()
    assert after < 0.7 * before, (before, after)
    early = np.mean([r.meta_loss for r in result.history[:10]])
    late = np.mean([r.meta_loss for r in result.history[-10:]])
    assert late < early


def test_resume_reproduces_the_uninterrupted_run(tmp_path):
    family = QuadraticFamily()
    cfg = dict(evaluation_period=2, checkpoint_every=2, seed=1, **SMALL)
    straight = CoordinatewiseLSTM(seed=1)
    MetaTrainer(family, straight, MetaTrainConfig(num_epochs=6, **cfg), save_path=str(tmp_path / "a")).train()

    first = CoordinatewiseLSTM(seed=1)
    MetaTrainer(family, first, MetaTrainConfig(num_epochs=4, **cfg), save_path=str(tmp_path / "b")).train()
    resumed = CoordinatewiseLSTM(seed=99)  # different init: everything must come from the checkpoint
    trainer = MetaTrainer(family, resumed, MetaTrainConfig(num_epochs=6, **cfg), save_path=str(tmp_path / "b"))
    result = trainer.train(resume=True)
    assert result.epochs_run == 2
    for a, b in zip(phi(straight), phi(resumed)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)

    # The best phi on disk reloads into an equivalent optimizer.
    loaded_a = saving.load_learned(str(tmp_path / "a"))
    loaded_b = saving.load_learned(str(tmp_path / "b"))
    for a, b in zip(phi(loaded_a), phi(loaded_b)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    record = json.load(open(tmp_path / "a" / "optimizer.json"))
    assert record["optimizer"]["layers"] == [20, 20] and record["best_epoch"] > 0


def test_resume_refuses_another_architecture(tmp_path):
    family = QuadraticFamily()
    cfg = MetaTrainConfig(num_epochs=2, evaluation_period=2, checkpoint_every=2, **SMALL)
    MetaTrainer(family, CoordinatewiseLSTM(seed=0), cfg, save_path=str(tmp_path)).train()
    other = CoordinatewiseLSTM(LSTMOptimizerConfig(layers=(8,)), seed=0)
    with pytest.raises(UserError, match="cannot resume"):
        MetaTrainer(family, other, cfg, save_path=str(tmp_path)).train(resume=True)


def test_resume_accepts_a_run_saved_before_newer_settings_existed(tmp_path):
    """optimizer.json from an older version lacks settings added since (at their defaults)."""
    family = QuadraticFamily()
    cfg = dict(evaluation_period=2, checkpoint_every=2, **SMALL)
    MetaTrainer(family, CoordinatewiseLSTM(seed=0), MetaTrainConfig(num_epochs=2, **cfg), save_path=str(tmp_path)).train()
    record = json.load(open(tmp_path / "optimizer.json"))
    for newer in ("max_update", "num_gac", "memory", "memory_slots"):
        record["optimizer"].pop(newer)
    (tmp_path / "optimizer.json").write_text(json.dumps(record))
    trainer = MetaTrainer(family, CoordinatewiseLSTM(seed=0), MetaTrainConfig(num_epochs=4, **cfg), save_path=str(tmp_path))
    assert trainer.train(resume=True).epochs_run == 2


def test_loading_checks_the_directory(tmp_path):
    with pytest.raises(UserError, match="not a trained optimizer"):
        saving.load_learned(str(tmp_path))
    (tmp_path / "optimizer.json").write_text("{not json")
    with pytest.raises(UserError, match="corrupt"):
        saving.load_learned(str(tmp_path))


def test_config_validation():
    with pytest.raises(UserError, match="multiple of unroll_length"):
        MetaTrainConfig(num_steps=50, unroll_length=20)
    with pytest.raises(UserError, match="loss_weights"):
        MetaTrainConfig(unroll_length=3, num_steps=3, loss_weights=(1.0, 2.0))
    assert list(MetaTrainConfig(unroll_length=2, num_steps=4).weights) == [1.0, 1.0]


def test_meta_training_traces_each_truncation_once_whatever_the_epochs():
    from conftest import ROOT
    from l2l_tf.problems.mnist import MNISTFamily

    for family, steps in ((QuadraticFamily(), 20), (MNISTFamily(batch_size=16, data_dir=os.path.join(
            ROOT, "testdata", "mnist_subset.npz")), 10)):
        trainer = MetaTrainer(family, CoordinatewiseLSTM(seed=0), MetaTrainConfig(
            num_epochs=4, num_steps=steps, unroll_length=5, meta_batch_size=4, evaluation_period=2,
            evaluation_epochs=1, log_period=100))
        trainer.train()
        assert dict(trainer.traces) == {family.name: 1}

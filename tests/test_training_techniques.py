"""The meta-training techniques beyond the paper: a validation-gated curriculum over trajectory
length, imitation of analytic teachers, random scaling and a convex term, the log-ratio
meta-loss and randomised trajectory lengths."""
import math

import numpy as np
import pytest
import tensorflow as tf

from l2l_tf.curriculum import Curriculum, CurriculumState
from l2l_tf.errors import UserError
from l2l_tf.imitation import imitation_gradient, parse_teachers
from l2l_tf.meta import MetaTrainConfig, MetaTrainer, meta_gradient
from l2l_tf.optimizers import SGD, Adam, CoordinatewiseLSTM, LSTMOptimizerConfig
from l2l_tf.problems import QuadraticFamily
from l2l_tf.problems.augment import Augmentation, augment
from l2l_tf.problems.base import function_rng
from l2l_tf.unroll import loss_and_grads

SMALL = dict(unroll_length=10, meta_batch_size=16, evaluation_epochs=1, log_period=1000)
MODERN = LSTMOptimizerConfig(preprocess="adam", output="tanh", output_scale=0.1, input_layer=8)


def phi(opt):
    return [np.array(v.numpy()) for v in opt.meta_variables]


def test_the_curriculum_moves_on_when_a_stage_stops_improving():
    state = CurriculumState(Curriculum((100, 200, 500), patience=2))
    assert state.curriculum.validation_steps(0) == 200 and state.curriculum.validation_steps(2) == 500
    assert state.record(1.0) == (True, "keep training")
    assert state.record(0.9) == (True, "keep training")
    assert state.record(0.95) == (False, "keep training")  # one stall of two
    assert state.record(0.91) == (False, "next stage")
    state.advance(0.8)
    assert (state.stage, state.best, state.stalls) == (1, 0.8, 0)
    assert state.record(0.85) == (False, "keep training")  # the restored phi's value is the bar
    state.advance(0.7)
    assert state.record(0.7) == (False, "keep training") and state.record(0.71) == (False, "done")
    with pytest.raises(UserError, match="must increase"):
        Curriculum((200, 100))


def test_a_curriculum_run_trains_each_stage_restores_the_best_and_ends(tmp_path):
    family = QuadraticFamily()
    cfg = MetaTrainConfig(num_epochs=200, curriculum=(10, 20, 40), curriculum_patience=1, evaluation_period=2,
                          checkpoint_every=2, seed=3, **SMALL)
    trainer = MetaTrainer(family, CoordinatewiseLSTM(seed=3), cfg, save_path=str(tmp_path))
    seen = []
    result = trainer.train(on_epoch=lambda r: seen.append((r.epoch, r.num_steps)))
    assert result.finished_curriculum and result.epochs_run < 200
    assert [stage for _, stage, *_ in result.stages] == [1, 2]
    assert [(steps, horizon) for _, _, steps, horizon, _ in result.stages] == [(20, 40), (40, 40)]
    first_switch = result.stages[0][0]
    assert {n for e, n in seen if e < first_switch} == {10} and {n for e, n in seen if e >= result.stages[1][0]} == {40}
    # best/ holds the last stage's best phi, validated on its horizon.
    from l2l_tf import saving

    best = saving.load_learned(str(tmp_path))
    for a, b in zip(phi(best), [v.numpy() for v in trainer.best_phi]):
        np.testing.assert_array_equal(a, b)
    record = saving.read_config(str(tmp_path))
    assert record["curriculum"] == {"stages": [10, 20, 40], "stage": 2, "num_steps": 40, "validation_steps": 40}
    # The last stage's bar was the restored phi's score; nothing it kept is worse.
    assert result.best_validation <= result.stages[1][4]


def test_a_resumed_curriculum_run_repeats_the_uninterrupted_one(tmp_path):
    family = QuadraticFamily()
    cfg = dict(curriculum=(10, 20), curriculum_patience=1, evaluation_period=2, checkpoint_every=2, seed=4, **SMALL)
    straight = CoordinatewiseLSTM(seed=4)
    a = MetaTrainer(family, straight, MetaTrainConfig(num_epochs=12, **cfg), save_path=str(tmp_path / "a")).train()
    MetaTrainer(family, CoordinatewiseLSTM(seed=4), MetaTrainConfig(num_epochs=6, **cfg),
                save_path=str(tmp_path / "b")).train()
    resumed = CoordinatewiseLSTM(seed=5)
    trainer = MetaTrainer(family, resumed, MetaTrainConfig(num_epochs=12, **cfg), save_path=str(tmp_path / "b"))
    trainer.train(resume=True)
    assert int(trainer.stage.numpy()) == (a.stages[-1][1] if a.stages else 0)
    for x, y in zip(phi(straight), phi(resumed)):
        np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7)


def test_the_imitation_loss_is_the_relative_error_of_the_proposals_and_max_takes_the_worst():
    family = QuadraticFamily()
    problem = family.sample("train", 0, range(4))
    learner = CoordinatewiseLSTM(seed=1)
    teachers = [SGD(0.01), Adam(0.05)]
    batches = problem.batches(0, 4)
    losses = {}
    for mode in ("mean", "max"):
        out = imitation_gradient(family.loss_and_state, learner, teachers, [problem.params] * 2,
                                 [learner.init(problem.params)] * 2, [t.init(problem.params) for t in teachers],
                                 [problem.data] * 2, batches, 3, mode)
        losses[mode] = float(out[5])
        assert all(np.all(np.isfinite(g.numpy())) for g in out[6]) and any(np.any(g.numpy() != 0) for g in out[6])
    # By hand, per teacher: the teacher's trajectory, the learner fed its gradients.
    errors = []
    for teacher in teachers:
        params, ls, ts, error = list(problem.params), learner.init(problem.params), teacher.init(problem.params), 0.0
        for _ in range(3):
            _, grads = loss_and_grads(family.loss, params, problem.data, ())
            target, ts = teacher.update(grads, ts, params)
            proposal, ls = learner.update(grads, ls, params)
            error += float(sum(tf.reduce_sum((a - b) ** 2) for a, b in zip(proposal, target))
                           / sum(tf.reduce_sum(b ** 2) for b in target))
            params = [p + u for p, u in zip(params, target)]
        errors.append(error / 3)
    assert losses["mean"] == pytest.approx(np.mean(errors), rel=1e-4)
    assert losses["max"] == pytest.approx(max(errors), rel=1e-4)


def test_imitation_epochs_teach_the_lstm_its_teacher():
    family = QuadraticFamily()
    cfg = MetaTrainConfig(num_epochs=60, num_steps=20, imitation_teachers=("sgd:0.01",), imitation_ratio=(1.0,),
                          evaluation_period=60, seed=2, learning_rate=3e-3, **SMALL)
    trainer = MetaTrainer(family, CoordinatewiseLSTM(LSTMOptimizerConfig(preprocess="adam", input_layer=8), seed=2), cfg)
    result = trainer.train()
    assert all(r.kind == "imitation" for r in result.history)
    early = np.mean([r.meta_loss for r in result.history[:5]])
    late = np.mean([r.meta_loss for r in result.history[-5:]])
    assert late < 0.4 * early, (early, late)
    assert trainer.teacher_rates(0) == {"sgd": 0.01}
    # A mixed schedule has both kinds of epochs, chosen per epoch from the seed.
    mixed = MetaTrainer(family, CoordinatewiseLSTM(seed=2), MetaTrainConfig(
        num_epochs=10, num_steps=20, imitation_teachers=("nag:0.01",), imitation_ratio=(0.5,), evaluation_period=10,
        seed=2, **SMALL)).train()
    assert {r.kind for r in mixed.history} == {"meta", "imitation"}


def test_untuned_teachers_get_the_best_rate_of_the_grid():
    from l2l_tf.imitation import tune_teachers

    rates = tune_teachers(QuadraticFamily(), parse_teachers(["adam", "nag:0.3"]), 20, seed=0, num_problems=16,
                          grid=[1e-3, 1e-2, 1e-1, 1.0])
    assert rates["nag"] == 0.3 and rates["adam"] in (1e-2, 1e-1)
    with pytest.raises(UserError, match="unknown imitation teacher"):
        parse_teachers(["lbfgs"])
    with pytest.raises(UserError, match="positive number"):
        parse_teachers(["adam:-1"])


class _SteepQuadratic(QuadraticFamily):
    """Quadratics 100x as curved: SGD's best rate is about 100x smaller than on the plain ones."""

    name = "steep_quadratic"

    def loss(self, params, data, batch):
        return 100.0 * super().loss(params, data, batch)


def _quadratic_mixture():
    from l2l_tf.problems.mixture import MixtureFamily

    return MixtureFamily([QuadraticFamily(), _SteepQuadratic()], name="quadratic_mix")


def test_teachers_tuned_per_member_fit_each_member_and_member_best_keeps_the_better_one():
    from l2l_tf.imitation import tune_teacher_groups

    mix, grid = _quadratic_mixture(), [1e-5, 1e-4, 1e-3, 1e-2, 1e-1]
    (label, rates), = tune_teacher_groups(mix, parse_teachers(["sgd"]), 20, seed=0, grid=grid)
    assert label == ""
    groups = tune_teacher_groups(mix, parse_teachers(["sgd", "adam:0.1"]), 20, seed=0, tuning="member", grid=grid)
    assert [g[0] for g in groups] == ["quadratic(num_dims=10, init_stddev=0.01)",
                                      "steep_quadratic(num_dims=10, init_stddev=0.01)"]
    plain, steep = (g[1] for g in groups)
    assert steep["sgd"] <= plain["sgd"] / 10 and plain["adam"] == steep["adam"] == 0.1
    # A teacher that cannot move (lr 1e-9) is never the best; the tuned one is kept on both members.
    best = tune_teacher_groups(mix, parse_teachers(["adam:1e-9", "sgd"]), 20, seed=0, tuning="member_best", grid=grid)
    assert [g[1] for g in best] == [{"sgd": plain["sgd"]}, {"sgd": steep["sgd"]}]
    with pytest.raises(UserError, match="needs a mixture"):
        tune_teacher_groups(QuadraticFamily(), parse_teachers(["sgd"]), 20, seed=0, tuning="member")


def test_member_tuned_imitation_uses_each_members_own_teacher_and_records_the_rates(tmp_path):
    import json

    mix = _quadratic_mixture()
    cfg = MetaTrainConfig(num_epochs=6, num_steps=20, imitation_teachers=("nag", "adam:1e-9"), imitation_ratio=(1.0,),
                          imitation_tuning="member_best", evaluation_period=6, checkpoint_every=6, seed=1, **SMALL)
    trainer = MetaTrainer(mix, CoordinatewiseLSTM(MODERN, seed=1), cfg, save_path=str(tmp_path))
    result = trainer.train()
    assert all(r.kind == "imitation" and math.isfinite(r.meta_loss) for r in result.history)
    plain, steep = trainer.teacher_rates(0, 0), trainer.teacher_rates(0, 1)
    assert set(plain) == set(steep) == {"nag"} and steep["nag"] < plain["nag"]
    # One teacher trajectory per epoch (only the member's best teacher runs), one step per member and teacher set.
    assert {r.optimizee_steps for r in result.history} == {20}
    assert {names for _, names in trainer._imitation_steps} == {("nag",)}
    recorded = json.loads((tmp_path / "optimizer.json").read_text())["imitation_teachers"]["0"]
    assert recorded == {"quadratic(num_dims=10, init_stddev=0.01)": plain,
                        "steep_quadratic(num_dims=10, init_stddev=0.01)": steep}
    with pytest.raises(UserError, match="needs a mixture"):
        MetaTrainer(QuadraticFamily(), CoordinatewiseLSTM(seed=1), MetaTrainConfig(
            imitation_teachers=("nag",), imitation_ratio=(1.0,), imitation_tuning="member", **SMALL))


def test_random_scaling_and_the_convex_term_keep_the_problem_and_change_its_geometry():
    family = QuadraticFamily()
    problem = family.sample("train", 0, range(3))
    rng = function_rng("train", 0, 0, "augment")
    scaled = augment(problem, family, Augmentation(param_scale_range=2.0, convex_coordinates=5), rng)
    assert len(scaled.params) == len(problem.params) + 1 and scaled.params[-1].shape == (3, 5)
    losses, _ = scaled.family.loss_and_state(scaled.params, scaled.data, ())
    target = scaled.data[2].numpy()
    original = family.loss(problem.params, problem.data, ()).numpy()
    np.testing.assert_allclose(losses.numpy(), original + np.mean(np.clip(target ** 2, 0, 10), axis=1), rtol=1e-5)
    # d/dtheta' f(c * theta') = c * f'(c theta'): the gradient scales with c.
    _, g_scaled = loss_and_grads(scaled.family.loss, scaled.params, scaled.data, ())
    _, g = loss_and_grads(family.loss, problem.params, problem.data, ())
    c = scaled.data[1][0].numpy()
    np.testing.assert_allclose(g_scaled[0].numpy(), c * g[0].numpy(), rtol=1e-4, atol=1e-6)
    assert c.min() < 0.5 and c.max() > 2.0 and np.all((c >= math.exp(-2)) & (c <= math.exp(2)))


def test_a_trainer_with_augmentation_and_random_lengths_trains():
    family = QuadraticFamily()
    cfg = MetaTrainConfig(num_epochs=8, num_steps=20, num_steps_range=(10, 40), param_scale_range=1.0, convex_term=4,
                          meta_loss="log_ratio", evaluation_period=8, seed=6, **SMALL)
    result = MetaTrainer(family, CoordinatewiseLSTM(MODERN, seed=6), cfg).train()
    lengths = [r.num_steps for r in result.history]
    assert set(lengths) <= {10, 20, 30, 40} and len(set(lengths)) > 1
    assert lengths == [cfg.epoch_num_steps(e) for e in range(8)]  # a pure function of (seed, epoch)
    assert math.isfinite(result.best_validation)


def test_the_log_ratio_meta_loss_is_the_sum_of_log_progress():
    family = QuadraticFamily()
    problem = family.sample("train", 0, range(4))
    opt = CoordinatewiseLSTM(seed=0)
    weights = np.array([1.0, 2.0, 0.5], np.float32)
    *_, losses, loss, grads = meta_gradient(family.loss_and_state, opt, problem.params, opt.init(problem.params),
                                            problem.data, (), weights, meta_loss="log_ratio")
    f = losses.numpy()
    expected = np.sum(weights * np.mean(np.log(f[1:]) - np.log(f[0]), axis=1))
    assert float(loss) == pytest.approx(expected, rel=1e-5)
    assert all(np.all(np.isfinite(g.numpy())) for g in grads)


def test_training_settings_are_validated():
    with pytest.raises(UserError, match="multiples of unroll_length"):
        MetaTrainConfig(num_steps=20, unroll_length=10, curriculum=(20, 25))
    with pytest.raises(UserError, match="needs imitation_teachers"):
        MetaTrainConfig(imitation_ratio=(0.5,))
    with pytest.raises(UserError, match="meta_loss must be one of"):
        MetaTrainConfig(meta_loss="squared")
    with pytest.raises(UserError, match="num_steps_range"):
        MetaTrainConfig(num_steps_range=(30, 10))
    with pytest.raises(UserError, match="imitation_tuning must be one of"):
        MetaTrainConfig(imitation_tuning="problem")
    assert MetaTrainConfig(relative_meta_loss=True).meta_loss == "relative"


def test_every_training_flag_is_the_config_field_of_the_same_name_and_default():
    """MetaTrainConfig's fields are l2l_train's flags one to one: same names, same defaults."""
    import copy
    import dataclasses

    from absl import flags

    from l2l_tf.cli import train

    values = flags.FlagValues()
    for name in [f.name for f in dataclasses.fields(MetaTrainConfig)]:
        assert name in flags.FLAGS, f"MetaTrainConfig.{name} has no --{name} flag"
        flag = copy.deepcopy(flags.FLAGS[name])
        flag.value = flag.default
        values[name] = flag
    values.mark_as_parsed()
    assert train.meta_config_from_flags(values) == MetaTrainConfig()


def test_several_problems_per_epoch_average_their_meta_gradients():
    import os

    from conftest import ROOT
    from l2l_tf.problems.mnist import MNISTFamily

    family = MNISTFamily(hidden_sizes=(4,), batch_size=16, data_dir=os.path.join(ROOT, "testdata", "mnist_subset.npz"))
    cfg = MetaTrainConfig(num_epochs=1, num_steps=3, unroll_length=3, problems_per_epoch=2, evaluation_period=1,
                          evaluation_epochs=1, seed=1)
    opt = CoordinatewiseLSTM(seed=1)
    trainer = MetaTrainer(family, opt, cfg)
    applied = []
    trainer._apply = lambda grads: applied.append([g.numpy() for g in grads])
    record = trainer.run_epoch(0)
    assert len(applied) == 1 and math.isfinite(record.meta_loss)
    singles = []
    for j in range(2):
        problem = trainer._train_problem(j)
        *_, grads = meta_gradient(family.loss_and_state, opt, problem.params, opt.init(problem.params), problem.data,
                                  problem.batches(0, 4), cfg.weights)
        singles.append([g.numpy() for g in grads])
    for mean, a, b in zip(applied[0], *singles):
        np.testing.assert_allclose(mean, (a + b) / 2, rtol=1e-4, atol=1e-7)
    with pytest.raises(UserError, match="problems_per_epoch"):
        MetaTrainer(QuadraticFamily(), CoordinatewiseLSTM(seed=0), MetaTrainConfig(problems_per_epoch=2))


def test_es_estimates_the_gradient_of_a_quadratic_and_drops_diverged_pairs():
    from l2l_tf.meta import es_gradient

    a = np.array([1.0, -2.0, 0.5, 3.0, 0.0], np.float32)
    x0 = np.array([0.3, 0.1, -0.2, 0.0, 1.0], np.float32)
    score = lambda values, j: float(a @ values[0] + 0.5 * values[0] @ values[0])  # noqa: E731
    grads, scores = es_gradient(score, [x0], pairs=3000, sigma=0.1, rng=np.random.default_rng(0))
    true = a + x0
    cosine = float(grads[0] @ true / np.linalg.norm(grads[0]) / np.linalg.norm(true))
    assert cosine > 0.98 and np.linalg.norm(grads[0]) == pytest.approx(np.linalg.norm(true), rel=0.05)
    assert len(scores) == 3000
    broken = lambda values, j: math.inf if j == 0 else score(values, j)  # noqa: E731
    grads, scores = es_gradient(broken, [x0], pairs=2, sigma=0.1, rng=np.random.default_rng(0))
    assert grads is not None and not math.isfinite(scores[0][0])
    assert es_gradient(lambda v, j: math.nan, [x0], pairs=2, sigma=0.1, rng=np.random.default_rng(0))[0] is None


def test_the_trajectory_meta_loss_adds_up_its_truncations_from_the_trajectory_start():
    from l2l_tf.meta import trajectory_meta_loss

    curves = np.array([[4.0, 2.0], [2.0, 2.0], [1.0, 1.0], [0.5, 1.0], [0.25, 0.5]], np.float32)
    w = np.array([0.0, 1.0], np.float32)  # the last step of each 2-step truncation
    expected = np.mean(np.log([1.0 / 4.0, 1.0 / 2.0])) + np.mean(np.log([0.25 / 4.0, 0.5 / 2.0]))  # from the start
    assert trajectory_meta_loss(curves, w, "log_ratio") == pytest.approx(expected, rel=1e-5)
    assert trajectory_meta_loss(curves, w, "sum") == pytest.approx(1.0 + 0.375, rel=1e-6)
    assert trajectory_meta_loss(np.where(curves > 3, np.nan, curves), w) == math.inf


def test_es_training_is_deterministic_moves_phi_and_a_fine_tune_keeps_its_start(tmp_path):
    family = QuadraticFamily()
    cfg = MetaTrainConfig(num_epochs=3, num_steps=20, meta_gradient="es", es_pairs=2, es_sigma=0.05,
                          meta_loss="log_ratio", evaluation_period=3, validate_start=True, seed=4, **SMALL)
    runs = []
    for k in range(2):
        opt = CoordinatewiseLSTM(MODERN, seed=4)
        start = phi(opt)
        trainer = MetaTrainer(family, opt, cfg, save_path=str(tmp_path / str(k)))
        result = trainer.train()
        runs.append((phi(opt), result))
    (phi_a, result), (phi_b, _) = runs
    assert any(np.max(np.abs(a - s)) > 1e-5 for a, s in zip(phi_a, start))  # ES updated phi
    for a, b in zip(phi_a, phi_b):
        np.testing.assert_array_equal(a, b)  # a pure function of (seed, epoch)
    assert [e for e, _ in result.validation] == [0, 3]  # the starting phi was scored first
    assert result.best_epoch in (0, 3) and result.best_validation == min(v for _, v in result.validation)
    assert all(r.optimizee_steps == 20 * 2 * 2 and math.isfinite(r.meta_loss) for r in result.history)
    with pytest.raises(UserError, match="meta_gradient must be one of"):
        MetaTrainConfig(meta_gradient="reinforce")
    with pytest.raises(UserError, match="es_sigma"):
        MetaTrainConfig(es_sigma=0.0)


def test_a_stage_budget_ends_a_stage_that_keeps_improving():
    state = CurriculumState(Curriculum((100, 200), patience=5, stage_epochs=(50, 0)))
    assert state.record(1.0, 25) == (True, "keep training")
    assert state.record(0.9, 50) == (True, "next stage")  # improving, but its 50 epochs are spent
    state.advance(0.95)
    assert state.record(0.5, 500) == (True, "keep training")  # the last stage has no budget
    with pytest.raises(UserError, match="one budget >= 0 per stage"):
        Curriculum((100, 200), stage_epochs=(50,))
    with pytest.raises(UserError, match="need a curriculum"):
        MetaTrainConfig(curriculum_epochs=(10,))
    with pytest.raises(UserError, match="need a curriculum"):
        MetaTrainConfig(meta_gradient=("backprop", "es"))


def test_a_backprop_then_es_curriculum_switches_on_budget_and_resumes_exactly(tmp_path):
    family = QuadraticFamily()
    cfg = dict(curriculum=(10, 20), curriculum_patience=50, curriculum_epochs=(4, 0), meta_gradient=("backprop", "es"),
               es_pairs=2, es_sigma=0.05, meta_loss="log_ratio", evaluation_period=2, checkpoint_every=2, seed=7,
               **SMALL)
    straight = CoordinatewiseLSTM(MODERN, seed=7)
    seen = []
    result = MetaTrainer(family, straight, MetaTrainConfig(num_epochs=8, **cfg), save_path=str(tmp_path / "a")).train(
        on_epoch=lambda r: seen.append((r.epoch, r.num_steps, r.optimizee_steps)))
    assert [(e, stage) for e, stage, *_ in result.stages] == [(4, 1)]  # ended by its budget, not its patience
    assert seen[:4] == [(e, 10, 10) for e in range(4)]  # backprop: one trajectory per epoch
    assert seen[4:] == [(e, 20, 20 * 2 * 2) for e in range(4, 8)]  # ES: two pairs of trajectories
    MetaTrainer(family, CoordinatewiseLSTM(MODERN, seed=7), MetaTrainConfig(num_epochs=6, **cfg),
                save_path=str(tmp_path / "b")).train()
    resumed = CoordinatewiseLSTM(MODERN, seed=8)
    trainer = MetaTrainer(family, resumed, MetaTrainConfig(num_epochs=8, **cfg), save_path=str(tmp_path / "b"))
    trainer.train(resume=True)
    for x, y in zip(phi(straight), phi(resumed)):
        np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7)

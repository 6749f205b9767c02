import json
import math

import numpy as np
import pytest
import tensorflow as tf

from l2l_tf import evaluation
from l2l_tf.reporting import plotting, report
from l2l_tf.optimizers import SGD, Adam, CoordinatewiseLSTM
from l2l_tf.problems import QuadraticFamily


def test_learning_rate_grid_is_log_spaced_and_inclusive():
    grid = evaluation.learning_rate_grid(1e-4, 1.0, 4)
    assert len(grid) == 17
    assert grid[0] == pytest.approx(1e-4) and grid[-1] == pytest.approx(1.0)
    np.testing.assert_allclose(np.diff(np.log10(grid)), 0.25)


def test_summary_statistics():
    curves = np.array([[4.0, 4.0, 4.0], [1.0, 2.0, 3.0], [0.5, 1.0, 3.0]])
    s = evaluation.summarize(curves, 0.1)
    assert s["final_loss_mean"] == pytest.approx(1.5)
    assert s["final_loss_std"] == pytest.approx(np.std([0.5, 1, 3], ddof=1))
    half = 1.96 * s["final_loss_std"] / math.sqrt(3)
    assert s["final_loss_ci95"] == pytest.approx([1.5 - half, 1.5 + half])
    assert s["loss_sum_mean"] == pytest.approx(np.mean([1.5, 3.0, 6.0]))
    assert s["loss_mean_per_step"] == pytest.approx([4.0, 2.0, 1.5])
    diverged = evaluation.summarize(np.array([[1.0, 1.0], [np.inf, 0.5]]), 1.0)
    assert diverged["final_loss_mean"] is None and diverged["num_diverged"] == 1


def test_trajectories_match_a_python_loop():
    family = QuadraticFamily()
    problems = evaluation.sample_problems(family, "test", 0, 5)
    opt = Adam(0.1)
    curves = evaluation.run_trajectories(family, opt, problems, 7)
    assert curves.shape == (8, 5)
    params = problems[0].params
    state = opt.init(params)
    for t in range(7):
        with tf.GradientTape() as tape:
            tape.watch(params)
            losses = family.loss(params, problems[0].data, ())
            total = tf.reduce_sum(losses)
        np.testing.assert_allclose(curves[t], losses.numpy(), rtol=1e-5)
        params, state = opt.apply(tape.gradient(total, params), state, params)


def test_tuning_picks_the_best_rate_on_validation_and_evaluate_schema(tmp_path):
    family = QuadraticFamily()
    grid = evaluation.learning_rate_grid(1e-3, 1.0, 1)
    tuning = evaluation.sample_problems(family, "validation", 0, 20)
    opt = SGD()
    best, scores = evaluation.tune_learning_rate(family, opt, grid, tuning, 30)
    assert scores[best] == min(scores.values())
    assert scores[1.0] == math.inf  # SGD at lr 1 diverges on these quadratics
    assert opt.learning_rate.numpy() == pytest.approx(best)

    results = evaluation.evaluate(family, {"L2L": CoordinatewiseLSTM(seed=0)}, {"sgd": SGD(), "adam": Adam()},
                                  num_steps=20, num_problems=10, seed=3, grid=grid, log=lambda *_: None)
    path = evaluation.write_results(results, str(tmp_path))
    loaded = json.load(open(path))
    assert {"problem", "num_steps", "num_problems", "seed", "optimizers"} <= set(loaded)
    assert set(loaded["optimizers"]) == {"L2L", "sgd", "adam"}
    for name, e in loaded["optimizers"].items():
        assert {"learning_rate", "final_loss_mean", "final_loss_std", "final_loss_ci95", "loss_sum_mean",
                "loss_mean_per_step"} <= set(e)
        assert len(e["loss_mean_per_step"]) == 21
        assert (e["learning_rate"] is None) == (name == "L2L")
    png = plotting.plot_loss_curves(loaded, str(tmp_path / "curves.png"))
    assert open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    md = open(report.write_report(loaded, str(tmp_path), png, "cmd")).read()
    assert "| L2L | learned |" in md and "curves.png" in md


def test_paired_comparison_statistics():
    from l2l_tf.statistics import paired_comparison, t_quantile_975

    assert t_quantile_975(9) == pytest.approx(2.262, abs=1e-3) and t_quantile_975(99) == pytest.approx(1.984, abs=1e-3)
    assert t_quantile_975(30) == pytest.approx(2.042, abs=1e-3)
    learned, baseline = [1.0, 2.0, 3.0, 4.0], [1.5, 2.5, 2.9, 4.6]
    p = paired_comparison(learned, baseline)
    d = np.subtract(learned, baseline)
    half = 3.182 * np.std(d, ddof=1) / 2
    assert p["mean_difference"] == pytest.approx(d.mean()) and p["ci95"] == pytest.approx([d.mean() - half, d.mean() + half])
    assert p["win_rate"] == 0.75 and p["ratio"] == pytest.approx(10 / 11.5)
    diverged = paired_comparison([1.0, math.inf], [2.0, 1.0])
    assert diverged["mean_difference"] is None and diverged["win_rate"] == 0.5
    assert paired_comparison([1.0, 2.0], [1.0, 3.0])["win_rate"] == 0.75  # a tie counts half


def test_evaluate_pairs_every_learned_optimizer_with_every_baseline_and_can_reuse_baselines(tmp_path):
    family = QuadraticFamily()
    grid = evaluation.learning_rate_grid(1e-3, 1.0, 1)
    first = evaluation.evaluate(family, {"L2L": CoordinatewiseLSTM(seed=0)}, {"sgd": SGD(), "adam": Adam()},
                                num_steps=15, num_problems=8, seed=2, grid=grid, log=lambda *_: None)
    assert set(first["paired"]["L2L"]) == {"sgd", "adam"}
    finals = {k: np.array(e["final_losses"]) for k, e in first["optimizers"].items()}
    assert finals["L2L"].shape == (8,)
    assert first["paired"]["L2L"]["adam"]["mean_difference"] == pytest.approx(np.mean(finals["L2L"] - finals["adam"]))
    path = evaluation.write_results(first, str(tmp_path))
    md = open(report.write_report(first, str(tmp_path), "curves.png", "cmd")).read()
    assert "| L2L | adam |" in md and "win rate" in md
    # The same baselines, reused for another learned optimizer on the same test problems.
    reused, reused_grid = evaluation.reusable_baselines(path, family, 15, 8, 2)
    assert reused_grid == pytest.approx(grid)  # the grid they were tuned on, for the report
    second = evaluation.evaluate(family, {"L2L": CoordinatewiseLSTM(seed=1)}, {}, num_steps=15, num_problems=8, seed=2,
                                 grid=grid, log=lambda *_: None, reused=reused)
    assert second["optimizers"]["adam"]["final_losses"] == first["optimizers"]["adam"]["final_losses"]
    assert second["optimizers"]["adam"]["reused_from"] == path and set(second["paired"]["L2L"]) == {"sgd", "adam"}
    from l2l_tf.errors import UserError

    with pytest.raises(UserError, match="other test problems"):
        evaluation.reusable_baselines(path, family, 15, 8, seed=3)


def test_reused_baselines_match_the_same_data_file_by_any_path_and_not_another_file(tmp_path, monkeypatch):
    """results.json records data_source as given: ../data/x.npz in one run, /abs/data/x.npz in the
    next is the same data, and must not be refused; another file of the same name must be."""
    import json
    import shutil

    from l2l_tf.errors import UserError

    class Located(QuadraticFamily):
        def __init__(self, source):
            super().__init__()
            self.source = source

        def describe(self):
            return {**super().describe(), "data_source": self.source}

    (tmp_path / "data").mkdir()
    (tmp_path / "run").mkdir()
    (tmp_path / "data" / "x.npz").write_bytes(b"data")
    shutil.copytree(tmp_path / "data", tmp_path / "other")
    monkeypatch.chdir(tmp_path / "run")
    earlier = {"problem": "quadratic", "problem_settings": Located("../data/x.npz").describe(), "num_steps": 5,
               "num_problems": 2, "seed": 0, "learning_rate_grid": [0.1],
               "optimizers": {"sgd": {"learning_rate": 0.1, "final_losses": [1.0, 2.0]}}}
    path = tmp_path / "results.json"
    path.write_text(json.dumps(earlier))
    reused, _ = evaluation.reusable_baselines(str(path), Located(str(tmp_path / "data" / "x.npz")), 5, 2, 0)
    assert reused["sgd"]["final_losses"] == [1.0, 2.0]
    with pytest.raises(UserError, match="other test problems"):
        evaluation.reusable_baselines(str(path), Located(str(tmp_path / "other" / "x.npz")), 5, 2, 0)

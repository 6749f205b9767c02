"""Update histories and response curves are consistent with the optimizers they show."""
import os

import numpy as np
import pytest
import tensorflow as tf

from conftest import run_binary
from l2l_tf.reporting import visualization
from l2l_tf.optimizers import SGD, Adam, CoordinatewiseLSTM
from l2l_tf.problems import QuadraticFamily


def test_history_and_response_curves_agree_with_the_optimizers(tmp_path):
    family = QuadraticFamily()
    opt = CoordinatewiseLSTM(seed=0)
    problem = family.sample("test", 0, [0])
    coords = [0, 3, 7]
    h = visualization.update_history(family, opt, problem, 12, coords, {"sgd": SGD(0.01), "adam": Adam(0.1)},
                                     keep_states=(0, 5))
    assert h.gradients.shape == (12, 3) and h.losses.shape == (13,)
    np.testing.assert_allclose(h.updates["sgd"], -0.01 * h.gradients, rtol=1e-5)
    adam, state, expected = Adam(0.1), None, []
    for g in h.gradients:  # Adam fed the same gradient sequence, coordinate by coordinate
        params = [tf.zeros(3)]
        state = state or adam.init(params)
        (u,), state = adam.update([tf.constant(g)], state, params)
        expected.append(u.numpy())
    np.testing.assert_allclose(h.updates["adam"], np.array(expected), rtol=1e-4, atol=1e-7)
    for t in (0, 5):  # the frozen state answers the real gradient with the real update
        for i, c in enumerate(coords):
            u = visualization.response_curve(opt, h.states[t], c, np.array([h.gradients[t, i]], np.float32))
            np.testing.assert_allclose(u[0], h.updates["L2L"][t, i], rtol=1e-4, atol=1e-7)
    paths = visualization.write_pngs(h, opt, coords, str(tmp_path))
    assert len(paths) == 4 and all(open(p, "rb").read(4) == b"\x89PNG" for p in paths)


@pytest.mark.slow
def test_visualize_binary_and_its_errors(tmp_path):
    from l2l_tf.meta import MetaTrainConfig, MetaTrainer
    path = str(tmp_path / "opt")
    MetaTrainer(QuadraticFamily(), CoordinatewiseLSTM(seed=0),
                MetaTrainConfig(num_epochs=2, num_steps=20, unroll_length=10, meta_batch_size=4,
                                evaluation_period=2, evaluation_epochs=1), save_path=path).train()
    out = str(tmp_path / "viz")
    proc = run_binary("l2l_visualize", f"--path={path}", f"--output_dir={out}", "--num_steps=20",
                      "--response_steps=0,19", "--coordinates=1,2")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert sorted(os.listdir(out)) == ["response_1.png", "response_2.png", "update_history.png"]
    bad = run_binary("l2l_visualize", f"--path={path}", f"--output_dir={out}", "--coordinates=10")
    assert bad.returncode != 0 and "out of range" in bad.stderr and "Traceback" not in bad.stderr

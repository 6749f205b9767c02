"""The coordinatewise LSTM: shapes, per-coordinate independence, shared weights."""
import numpy as np
import pytest
import tensorflow as tf

from conftest import trajectory_updates
from l2l_tf.optimizers import CoordinatewiseLSTM, LSTMOptimizerConfig

RNG = np.random.default_rng(1)


def test_handles_several_tensors_of_any_shape():
    opt = CoordinatewiseLSTM(seed=0)
    shapes = [(3, 4), (5,), (2, 1, 3), ()]
    grads = [[RNG.standard_normal(s).astype(np.float32) for s in shapes] for _ in range(3)]
    ups = trajectory_updates(opt, grads, shapes)
    for step in ups:
        assert [u.shape for u in step] == [tuple(s) for s in shapes]
        assert all(np.all(np.isfinite(u)) for u in step)


def test_each_coordinate_has_its_own_state_and_shared_weights():
    """A coordinate's update depends only on its own gradient history, whatever else is optimized."""
    opt = CoordinatewiseLSTM(seed=3)
    g_all = [[RNG.standard_normal(6).astype(np.float32), RNG.standard_normal((2, 2)).astype(np.float32)]
             for _ in range(4)]
    together = trajectory_updates(opt, g_all, [(6,), (2, 2)])
    alone = trajectory_updates(opt, [[g[0][2:3]] for g in g_all], [(1,)])
    for t in range(4):
        np.testing.assert_allclose(together[t][0][2], alone[t][0][0], rtol=1e-5, atol=1e-7)


def test_permuting_coordinates_permutes_updates():
    opt = CoordinatewiseLSTM(seed=5)
    perm = RNG.permutation(50)
    grads = [[RNG.standard_normal(50).astype(np.float32)] for _ in range(3)]
    a = trajectory_updates(opt, grads, [(50,)])
    b = trajectory_updates(opt, [[g[0][perm]] for g in grads], [(50,)])
    for t in range(3):
        np.testing.assert_allclose(a[t][0][perm], b[t][0], rtol=1e-5, atol=1e-7)


def test_output_scale_scales_updates_and_state_shapes():
    g = [[RNG.standard_normal(7).astype(np.float32)]]
    small = CoordinatewiseLSTM(LSTMOptimizerConfig(output_scale=0.01), seed=2)
    large = CoordinatewiseLSTM(LSTMOptimizerConfig(output_scale=0.1), seed=2)
    np.testing.assert_allclose(trajectory_updates(large, g, [(7,)])[0][0],
                               10 * trajectory_updates(small, g, [(7,)])[0][0], rtol=1e-5)
    opt = CoordinatewiseLSTM(LSTMOptimizerConfig(layers=(8, 4, 3)))
    state = opt.init([tf.zeros((2, 5))])
    assert [tuple(t.shape) for t in state[0]] == [(10, 8), (10, 8), (10, 4), (10, 4), (10, 3), (10, 3)]
    assert [name for name, _ in opt.state_layout()] == [f"lstm_{i}_{p}" for i in range(3) for p in "hc"]
    assert len(opt.meta_variables) == 3 * 3 + 2


def test_config_round_trip_and_validation():
    cfg = LSTMOptimizerConfig(layers=(10,), preprocess="none", output_scale=0.5)
    assert LSTMOptimizerConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError):
        LSTMOptimizerConfig(layers=(0,))
    with pytest.raises(ValueError):
        LSTMOptimizerConfig.from_dict({**cfg.to_dict(), "mystery": 1})


def test_single_layer_network_works():
    opt = CoordinatewiseLSTM(LSTMOptimizerConfig(layers=(5,)), seed=1)
    ups = trajectory_updates(opt, [[np.ones(3, np.float32)]] * 2, [(3,)])
    assert ups[1][0].shape == (3,)

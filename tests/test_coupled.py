"""LSTM+GAC and NTM-BFGS: coupling within a function, never across functions, bounded memory."""
import numpy as np
import pytest
import tensorflow as tf

from l2l_tf import saving
from l2l_tf.errors import UserError
from l2l_tf.meta import MetaTrainConfig, MetaTrainer
from l2l_tf.optimizers import CoordinatewiseLSTM, LSTMOptimizerConfig
from l2l_tf.optimizers.coupled import LSTMGAC, NTMBFGS, make_learned_optimizer
from l2l_tf.problems import QuadraticFamily

RNG = np.random.default_rng(0)
CONFIGS = {
    "lstm": LSTMOptimizerConfig(),
    "lstm_gac": LSTMOptimizerConfig(architecture="lstm_gac", num_gac=5),
    "ntm_bfgs": LSTMOptimizerConfig(architecture="ntm_bfgs", num_gac=5, memory_slots=3),
    "ntm_bfgs_full": LSTMOptimizerConfig(architecture="ntm_bfgs", num_gac=5, memory="full"),
}


def updates_for(opt, grads_seq, num_functions=1):
    params = [tf.zeros(grads_seq[0].shape)]
    state = opt.init(params, num_functions)
    for g in grads_seq:
        (u,), state = opt.update([tf.constant(g)], state, params)
    return u.numpy(), state


@pytest.mark.parametrize("name", ["lstm_gac", "ntm_bfgs", "ntm_bfgs_full"])
def test_coupled_optimizers_share_information_and_the_lstm_does_not(name):
    grads = [RNG.standard_normal(30).astype(np.float32) for _ in range(3)]
    changed = [g.copy() for g in grads]
    for g in changed:
        g[7] *= 50.0
    coupled = make_learned_optimizer(CONFIGS[name], seed=1)
    a, _ = updates_for(coupled, grads)
    b, _ = updates_for(coupled, changed)
    assert np.max(np.abs(np.delete(a - b, 7))) > 1e-6  # other coordinates noticed coordinate 7
    plain = CoordinatewiseLSTM(seed=1)
    a, _ = updates_for(plain, grads)
    b, _ = updates_for(plain, changed)
    np.testing.assert_array_equal(np.delete(a, 7), np.delete(b, 7))


@pytest.mark.parametrize("name", list(CONFIGS))
def test_permuting_coordinates_permutes_updates(name):
    opt = make_learned_optimizer(CONFIGS[name], seed=2)
    perm = RNG.permutation(40)
    grads = [RNG.standard_normal(40).astype(np.float32) for _ in range(4)]
    a, _ = updates_for(opt, grads)
    b, _ = updates_for(opt, [g[perm] for g in grads])
    np.testing.assert_allclose(a[perm], b, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name", ["lstm_gac", "ntm_bfgs", "ntm_bfgs_full"])
def test_functions_of_a_meta_batch_never_interact(name):
    opt = make_learned_optimizer(CONFIGS[name], seed=3)
    grads = [RNG.standard_normal((3, 10)).astype(np.float32) for _ in range(3)]
    changed = [g.copy() for g in grads]
    for g in changed:
        g[0] *= 30.0
    a, _ = updates_for(opt, grads, num_functions=3)
    b, _ = updates_for(opt, changed, num_functions=3)
    np.testing.assert_array_equal(a[1:], b[1:])
    assert np.abs(a[0] - b[0]).max() > 1e-6
    alone, _ = updates_for(opt, [g[1] for g in grads])  # function 1 on its own behaves the same
    np.testing.assert_allclose(a[1], alone, rtol=1e-4, atol=1e-6)


def state_floats(state):
    return sum(int(np.prod(t.shape)) for t in tf.nest.flatten(state))


def test_lbfgs_memory_stays_bounded_and_full_memory_is_quadratic():
    grads = [RNG.standard_normal(50).astype(np.float32) for _ in range(25)]
    lbfgs = NTMBFGS(CONFIGS["ntm_bfgs"], seed=0)
    _, early = updates_for(lbfgs, grads[:1])
    _, late = updates_for(lbfgs, grads)
    assert state_floats(early) == state_floats(late)
    assert tuple(late["memory"]["keys"].shape) == (50, 3)  # O(k n)
    assert int(late["memory"]["slot"]) == 25 % 3
    _, full = updates_for(NTMBFGS(CONFIGS["ntm_bfgs_full"], seed=0), grads[:2])
    assert tuple(full["memory"]["matrix"].shape) == (1, 50, 50)
    with pytest.raises(UserError, match="lbfgs"):
        NTMBFGS(CONFIGS["ntm_bfgs_full"]).init([tf.zeros([5000])])


@pytest.mark.parametrize("name", ["lstm_gac", "ntm_bfgs", "ntm_bfgs_full"])
def test_each_variant_meta_trains_without_nan_and_round_trips(name, tmp_path):
    opt = make_learned_optimizer(CONFIGS[name], seed=0)
    cfg = MetaTrainConfig(num_epochs=4, num_steps=20, unroll_length=10, meta_batch_size=8, evaluation_period=4,
                          evaluation_epochs=1, log_period=100)
    result = MetaTrainer(QuadraticFamily(), opt, cfg, save_path=str(tmp_path)).train()
    assert all(np.isfinite(r.meta_loss) for r in result.history) and result.skipped_steps == 0
    assert all(np.all(np.isfinite(v.numpy())) for v in opt.meta_variables)
    loaded = saving.load_learned(str(tmp_path))
    assert type(loaded) is type(opt) and loaded.config == opt.config
    g = [RNG.standard_normal(12).astype(np.float32)] * 2
    np.testing.assert_allclose(updates_for(loaded, g)[0], updates_for(opt, g)[0], rtol=1e-6)


def test_config_validation_for_coupled_architectures():
    with pytest.raises(UserError, match="num_gac"):
        LSTMOptimizerConfig(architecture="lstm_gac")
    with pytest.raises(UserError, match="num_gac"):
        LSTMOptimizerConfig(num_gac=3)
    with pytest.raises(UserError, match="memory"):
        LSTMOptimizerConfig(architecture="ntm_bfgs", num_gac=2, memory="tape")
    assert isinstance(make_learned_optimizer(CONFIGS["lstm_gac"]), LSTMGAC)

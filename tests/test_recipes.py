"""`--recipe`: each family's default recipe is a valid set of l2l_train flags, the command line
wins over it, and `--recipe=paper` is the flags' own defaults."""
import os

import pytest
from absl import flags

from conftest import ROOT
from l2l_tf.cli import recipes, train
from l2l_tf.errors import UserError
from l2l_tf.meta import MetaTrainConfig
from l2l_tf.problems import problem_names

FLAGS = flags.FLAGS


@pytest.fixture
def parsed():
    """Parses an l2l_train command line into the global flags, and unparses it afterwards."""
    def parse(*args):
        FLAGS.unparse_flags()
        FLAGS(["l2l_train", "--save_path=/nonexistent/run", *args])
        return FLAGS
    yield parse
    FLAGS.unparse_flags()


@pytest.mark.parametrize("problem", sorted(recipes.DEFAULTS))
def test_a_default_recipe_sets_valid_flags_that_build_its_configs(parsed, problem):
    assert problem in problem_names()
    values = parsed(f"--problem={problem}")
    applied = recipes.apply(values, "default", problem)
    assert applied == recipes.DEFAULTS[problem]
    for name, value in applied.items():
        assert value != values[name].default, f"{problem}'s recipe repeats --{name}'s default"
        assert values[name].value == value
    values.validate_all_flags()
    config = train.meta_config_from_flags(values)
    assert isinstance(config, MetaTrainConfig) and config.num_steps % config.unroll_length == 0
    optimizer = train.optimizer_config_from_flags(values)
    assert optimizer.preprocess == applied.get("preprocess", "log_sign")
    assert optimizer.zero_update_at_zero_gradient == applied.get("zero_update_at_zero_gradient", False)


def test_the_command_line_wins_over_the_recipe(parsed):
    values = parsed("--problem=mnist", "--learning_rate=0.01", "--nozero_update_at_zero_gradient")
    applied = recipes.apply(values, "default", "mnist")
    assert "learning_rate" not in applied and values.learning_rate == 0.01
    assert "zero_update_at_zero_gradient" not in applied and values.zero_update_at_zero_gradient is False
    assert values.preprocess == "adam"  # the rest of the recipe still applies


def test_the_paper_recipe_and_families_without_a_recipe_keep_the_flags_defaults(parsed):
    values = parsed("--problem=mnist")
    assert recipes.apply(values, "paper", "mnist") == {}
    assert values.preprocess == "log_sign" and values.unroll_length == 20 and values.num_epochs == 2000
    assert recipes.recipe_settings("default", "cifar10") == {}
    with pytest.raises(UserError, match="unknown recipe"):
        recipes.recipe_settings("best", "mnist")


def test_every_recipe_is_documented_in_results():
    results = open(os.path.join(ROOT, "RESULTS.md"), encoding="utf-8").read()
    for problem in recipes.DEFAULTS:
        assert f"`--problem={problem}` default recipe" in results, problem


def test_ramp_loss_weights_rise_linearly_with_mean_one(parsed):
    values = parsed("--loss_weights=ramp", "--unroll_length=4", "--num_steps=8")
    config = train.meta_config_from_flags(values)
    assert config.loss_weights == pytest.approx((0.4, 0.8, 1.2, 1.6))
    assert train.loss_weights_from_flag("", 4) is None
    assert list(train.loss_weights_from_flag("1,2", 2)) == [1.0, 2.0]
    with pytest.raises(flags.IllegalFlagValueError):
        parsed("--loss_weights=ramps")


def test_last_k_loss_weights_count_only_the_end_of_each_unroll_with_mean_one(parsed):
    values = parsed("--loss_weights=last:2", "--unroll_length=5", "--num_steps=10")
    assert train.meta_config_from_flags(values).loss_weights == pytest.approx((0, 0, 0, 2.5, 2.5))
    assert train.loss_weights_from_flag("last:5", 5) == pytest.approx([1.0] * 5)
    for bad in ("last:0", "last:6"):
        with pytest.raises(UserError, match=r"needs K from 1 to --unroll_length \(5\)"):
            train.loss_weights_from_flag(bad, 5)
    with pytest.raises(flags.IllegalFlagValueError):
        parsed("--loss_weights=last:x")

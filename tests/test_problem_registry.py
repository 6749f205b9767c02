"""A problem family is one `register` call: every binary then takes it and its flags, and refuses
the flags of other families."""
import copy
import json
import os
import textwrap

import pytest
from absl import flags

from conftest import ROOT, run_binary
from l2l_tf.cli import problem_flags
from l2l_tf.errors import UserError
from l2l_tf.problems import registry

TOY_PLUGIN = '''
import tensorflow as tf
from l2l_tf.problems import Problem, ProblemFamily, register
from l2l_tf.problems.registry import FlagSpec


class Toy(ProblemFamily):
    """sum (theta - 3)^2 over `dim` coordinates, from theta_0 = 0."""
    name, vectorized = "toy", False

    def __init__(self, dim):
        self.dim = dim

    def sample(self, split, seed, indices):
        return Problem(params=[tf.zeros([self.dim])], data=(), num_functions=1)

    def loss(self, params, data, batch):
        return tf.reshape(tf.reduce_sum(tf.square(params[0] - 3.0)), [1])


register("toy", Toy, [FlagSpec("toy_dim", "integer", 3, "toy: coordinates.", lower_bound=1)],
         settings=lambda v: {"dim": v["toy_dim"]})
'''


@pytest.mark.slow
def test_a_family_registered_by_a_plugin_trains_through_the_binary(tmp_path):
    (tmp_path / "toy_family.py").write_text(TOY_PLUGIN)
    env_path = os.environ.get("PYTHONPATH", "")
    os.environ["PYTHONPATH"] = f"{tmp_path}{os.pathsep}{env_path}" if env_path else str(tmp_path)
    try:
        save = str(tmp_path / "run")
        proc = run_binary("l2l_train", "--plugin=toy_family", "--problem=toy", "--toy_dim=5", f"--save_path={save}",
                          "--num_epochs=2", "--num_steps=10", "--unroll_length=5", "--evaluation_period=2",
                          "--evaluation_epochs=1")
        assert proc.returncode == 0, proc.stderr[-2000:]
        record = json.load(open(os.path.join(save, "optimizer.json")))
        assert record["problem"] == {"name": "toy"} and record["train_flags"]["problem"] == "toy"
        wrong = run_binary("l2l_train", "--plugin=toy_family", "--problem=quadratic", "--toy_dim=5",
                           f"--save_path={tmp_path / 'other'}")
        assert wrong.returncode == 2
        assert wrong.stderr.strip().splitlines()[-1] == "l2l_train.py: error: --toy_dim does not apply to --problem=quadratic"
    finally:
        if env_path:
            os.environ["PYTHONPATH"] = env_path
        else:
            del os.environ["PYTHONPATH"]


def _values_with(flag: str, value: str) -> flags.FlagValues:
    """A fresh FlagValues with every family flag defined and `--flag=value` parsed."""
    values = flags.FlagValues()
    problem_flags.define_family_flags(values)
    values(["prog", f"--{flag}={value}"])
    return values


def _a_valid_value(spec) -> str:
    if spec.kind == "list":
        return ",".join(spec.default)
    if spec.kind == "bool":
        return "true"
    if spec.default is not None:
        return str(spec.default)
    return ROOT  # path flags: an existing folder


@pytest.mark.parametrize("problem", registry.problem_names())
def test_every_flag_of_another_family_is_refused(problem):
    own = set(registry.family_spec(problem).flags)
    foreign = [name for name in registry.FLAG_SPECS if name not in own]
    assert foreign, problem
    for name in foreign:
        values = _values_with(name, _a_valid_value(registry.FLAG_SPECS[name]))
        with pytest.raises(UserError, match=f"--{name} does not apply to --problem={problem}"):
            problem_flags.family_from_flags(problem, values)


def test_flag_specs_are_one_definition_per_name():
    spec = copy.copy(registry.FLAG_SPECS["batch_size"])
    registry.declare_flag(spec)  # the same flag again: fine
    with pytest.raises(ValueError, match="already declared differently"):
        registry.declare_flag(registry.FlagSpec("batch_size", "integer", 64, "another default"))
    with pytest.raises(ValueError, match="unknown family flag"):
        registry.register("nothing", lambda: None, ["no_such_flag"])


def test_readme_registration_example_is_this_api():
    readme = open(os.path.join(ROOT, "README.md")).read()
    assert "l2l_tf.problems.register(" in readme and "--plugin=" in readme
    assert textwrap.dedent(TOY_PLUGIN).count("register(") == 1

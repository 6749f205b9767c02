"""The Keras wrapper under every dtype policy, by string name, and at zero gradient (the default
`LearnedOptimizer()` is the bundled "general" optimizer)."""
import json
import os
import re

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import ROOT, run_python
from l2l_tf import LearnedOptimizer, pretrained
from l2l_tf.evaluation import zero_gradient_drift
from l2l_tf.loading import load_optimizer

FIT_UNDER_POLICIES = '''
import json, sys
import keras, numpy as np
sys.path.insert(0, ROOT)
from l2l_tf import LearnedOptimizer
data = np.load(ROOT + "/testdata/mnist_subset.npz")
x, y = data["x_train"].reshape(-1, 784).astype("float32") / 255, data["y_train"]
out = {}
for mode in ("floatx=float16", "floatx=bfloat16", "floatx=float64", "policy=mixed_float16", "policy=mixed_bfloat16"):
    keras.config.set_floatx("float32"); keras.config.set_dtype_policy("float32")
    kind, value = mode.split("=")
    # A fresh process that only set floatx would build layers in it; once a policy was set
    # (the reset above), the policy wins, so floatx mode sets the matching policy too.
    if kind == "floatx":
        keras.config.set_floatx(value)
    keras.config.set_dtype_policy(value)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((784,)), keras.layers.Dense(32, activation="relu"), keras.layers.Dense(10)])
    model.compile(optimizer=LearnedOptimizer(), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = model.fit(x, y, batch_size=32, epochs=3, verbose=0)
    out[mode] = {"losses": [float(v) for v in history.history["loss"]], "dtype": str(model.weights[0].dtype),
                 "finite": bool(all(np.all(np.isfinite(np.asarray(w, np.float64))) for w in model.get_weights()))}
print(json.dumps(out))
'''


@pytest.mark.slow
def test_model_fit_under_every_float_dtype_and_mixed_precision_policy(tmp_path):
    proc = run_python(f"ROOT = {ROOT!r}\n" + FIT_UNDER_POLICIES, cwd=str(tmp_path), timeout=600)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    runs = json.loads(proc.stdout.strip().splitlines()[-1])
    expected_dtype = {"floatx=float16": "float16", "floatx=bfloat16": "bfloat16", "floatx=float64": "float64",
                      "policy=mixed_float16": "float32", "policy=mixed_bfloat16": "float32"}
    for mode, run in runs.items():
        assert run["dtype"] == expected_dtype[mode], (mode, run)
        assert run["finite"] and all(np.isfinite(run["losses"])), (mode, run)
        assert run["losses"][-1] < 0.8 * run["losses"][0], (mode, run)  # it trains


def test_the_optimizer_weights_stay_float32_whatever_floatx_says():
    # Keras caches the global dtype policy from floatx the first time it is read, so both are
    # restored (a float16 policy left behind would build every later test's layers in float16).
    before, before_policy = keras.config.floatx(), keras.config.dtype_policy()
    try:
        keras.config.set_floatx("float16")
        optimizer = load_optimizer("general")  # the weights load (no "corrupt" misdiagnosis)
        assert all(v.dtype == "float32" for v in optimizer.meta_variables)
        assert LearnedOptimizer("general").learned_optimizer.meta_variables[0].dtype == "float32"
    finally:
        keras.config.set_floatx(before)
        keras.config.set_dtype_policy(before_policy)


def test_keras_finds_the_learned_optimizer_by_name():
    default = keras.optimizers.get("LearnedOptimizer")
    assert isinstance(default, LearnedOptimizer) and default.source == "general"
    bundled = keras.optimizers.get({"class_name": "LearnedOptimizer", "config": {"source": "mnist", "learning_rate": 0.5}})
    assert bundled.source == "mnist" and float(bundled.learning_rate) == 0.5
    assert isinstance(keras.optimizers.deserialize(keras.optimizers.serialize(bundled)), LearnedOptimizer)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    model.compile(optimizer="LearnedOptimizer", loss="mse")
    assert isinstance(model.optimizer, LearnedOptimizer)


def _stated_bound(name: str) -> float:
    card = open(os.path.join(pretrained.bundled_path(name), "MODEL_CARD.md"), encoding="utf-8").read()
    match = re.search(r"Zero-gradient drift:.*?at\s+most\s+([0-9.eE+-]+)", card, re.DOTALL)
    assert match, f"{name}'s model card states no zero-gradient bound"
    return float(match.group(1))


@pytest.mark.parametrize("name", pretrained.available())
def test_zero_gradients_move_no_parameter_more_than_the_model_card_says(name):
    assert zero_gradient_drift(load_optimizer(name), num_steps=100) <= _stated_bound(name)


def test_the_default_optimizer_leaves_a_parameter_without_gradient_exactly_where_it_is():
    variable = keras.Variable(np.ones(50, np.float32))
    optimizer = LearnedOptimizer()
    apply = tf.function(lambda g: optimizer.apply([g], [variable]))
    for _ in range(100):
        apply(tf.zeros([50]))
    np.testing.assert_array_equal(variable.numpy(), np.ones(50, np.float32))

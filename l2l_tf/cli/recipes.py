"""Training recipes: the settings `l2l_train --problem=X` uses unless told otherwise.

`--recipe=paper` is Andrychowicz et al. (2016) exactly: the flags' own defaults (log/sign
features with p = 10, a linear read-out x0.1, 100-step trajectories truncated every 20 steps,
the sum of losses, Adam 1e-3 on phi, 2,000 epochs). `--recipe=default` (the default) is, per
problem family, the best recipe measured in RESULTS.md: the features and training techniques of
the later literature (l2l_tf/optimizers/preprocessing.py, l2l_tf/curriculum.py,
l2l_tf/imitation.py, l2l_tf/problems/augment.py) where they were measured to help, the paper's
settings where nothing measured better. A family without a recipe of its own trains with the
paper's. Any flag given on the command line wins over its recipe's value; the recipe and the
values it set are recorded in optimizer.json.
"""
from __future__ import annotations

from typing import Any

RECIPES = ("default", "paper")

#: The features every recipe below uses: Adam-normalized gradient and momentum features at three
#: timescales (second moment at 0.95) with their magnitude (RNNprop, Lv et al. 2017; Wichrowska et
#: al. 2017), an ELU input layer, a bounded read-out 0.1*tanh, and no bias that could move a
#: coordinate whose gradients are all zero.
FEATURES: dict[str, Any] = {
    "preprocess": "adam", "momentum_betas": ["0.5", "0.9", "0.99"], "magnitude_feature": True,
    "input_layer": 20, "output": "tanh", "zero_update_at_zero_gradient": True,
}

#: Per family, the flag values of `--recipe=default` that differ from the paper's. Each entry is
#: the recipe of a RESULTS.md section (see there for its ablation and measured numbers).
DEFAULTS: dict[str, dict[str, Any]] = {
    # RESULTS.md, "`--problem=mnist` default recipe": the LSTM as a learned per-coordinate correction
    # of scheduled NAG (momentum 0.8; its rate warms up over the first 5% of the horizon to 1.78, then
    # falls on a cosine to a tenth; untrained it is that NAG, 3-7% below tuned constant-rate NAG),
    # told the trajectory's horizon. A 100 -> 200-step curriculum: first 200 epochs of backprop through
    # whole 100-step unrolls (two problems per meta-gradient, Adam 5e-4), validated at 200 steps; then,
    # from the best of those, 150 epochs of ES on whole 200-step trajectories (4 antithetic pairs,
    # sigma 0.01, its own Adam at 1e-3), where backprop through 200 steps only made things worse.
    # Log-ratio meta-loss on the last 20 steps of each 100 (the final loss is what evaluations
    # measure); no imitation (it starts at the teacher). Its momentum features are at 0.5, 0.8 and
    # 0.99 (the base momentum must be one of them). 3,099 s on 2 cores shared with other runs.
    # Bundled as `mnist_es`; the previous defaults are the bundled `mnist_warmup` (the same without
    # the ES stage, 300 backprop epochs), `mnist_cosine` (cosine NAG at lr 1, momentum 0.9, no
    # warm-up) and `mnist` (horizon-free, a 0.1*tanh read-out; flags in reproduce/mnist_recipe.sh).
    "mnist": {**FEATURES, "momentum_betas": ["0.5", "0.8", "0.99"], "output": "momentum", "base_learning_rate": 1.78,
              "base_momentum": 0.8, "base_schedule": "cosine", "base_warmup": 0.05, "progress_feature": True,
              "curriculum": "100,200", "curriculum_patience": 12, "curriculum_epochs": ["200", "0"],
              "meta_gradient": ["backprop", "es"],
              "meta_loss": "log_ratio", "loss_weights": "last:20", "learning_rate": 5e-4, "problems_per_epoch": 2,
              "unroll_length": 100, "num_epochs": 350, "evaluation_period": 25, "evaluation_epochs": 20,
              "checkpoint_every": 25},
    # RESULTS.md, "model.fit": the bundled `general` optimizer's recipe, imitation of tuned Adam and
    # random parameter scales on top of the general mixture's random loss scales.
    "general": {**FEATURES, "curriculum": "100,200", "curriculum_patience": 3, "imitation_teachers": ["adam"],
                "imitation_ratio": ["0.5", "0.2"], "meta_loss": "log_ratio", "learning_rate": 5e-4,
                "problems_per_epoch": 2, "param_scale_range": 1.0, "num_epochs": 600, "evaluation_period": 25,
                "evaluation_epochs": 12, "checkpoint_every": 25},
}


def recipe_settings(recipe: str, problem: str) -> dict[str, Any]:
    """{flag name: value} that `recipe` sets for `problem` (empty: the paper's settings)."""
    if recipe not in RECIPES:
        from l2l_tf.errors import UserError

        raise UserError(f"unknown recipe {recipe!r}; expected one of {RECIPES}")
    return {} if recipe == "paper" else dict(DEFAULTS.get(problem, {}))


def apply(flag_values, recipe: str, problem: str) -> dict[str, Any]:
    """Sets the recipe's values on the absl flags the command line did not give; returns them."""
    applied = {}
    for name, value in recipe_settings(recipe, problem).items():
        if not flag_values[name].present:
            flag_values[name].value = value
            applied[name] = value
    return applied

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

#: Per family, the flag values of `--recipe=default` that differ from the paper's. Each entry is
#: the recipe of a RESULTS.md section (see there for its ablation and measured numbers).
DEFAULTS: dict[str, dict[str, Any]] = {}


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

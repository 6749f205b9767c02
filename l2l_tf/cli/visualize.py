"""Plots what a trained optimizer does: per-coordinate update histories and response curves.

    python bin/l2l_visualize.py --path=runs/quadratic --coordinates=0,1,2,3 --output_dir=runs/quadratic/viz

Follows one trajectory of the learned optimizer on a test problem and writes
update_history.png (its updates beside SGD's and Adam's at the same iterates) and, for the
coordinatewise LSTM, response_<coordinate>.png (update vs. input gradient at --response_steps).
"""
from __future__ import annotations

import json
import os


from absl import flags

from l2l_tf import cli
from l2l_tf.cli import problem_flags
from l2l_tf.errors import UserError
from l2l_tf.problems import problem_names

FLAGS = flags.FLAGS
flags.DEFINE_enum("problem", "quadratic", problem_names(), "Problem family of the test problem.")
flags.DEFINE_string("path", None, "Trained optimizer: a directory from l2l_train, an export or a bundled name.",
                    required=True)
flags.DEFINE_string("output_dir", None, "Where the PNGs go.", required=True)
flags.DEFINE_integer("num_steps", 100, "Steps of the trajectory.", lower_bound=1)
flags.DEFINE_string("coordinates", "0,1,2,3", "Flattened coordinate indices to plot.")
flags.DEFINE_string("response_steps", "0,10,50,99", "Steps at which to draw response curves.")
flags.DEFINE_integer("seed", 0, "Seed of the test problem.", lower_bound=0)
flags.DEFINE_integer("problem_index", 0, "Which test function of the seed.", lower_bound=0)
flags.DEFINE_float("sgd_learning_rate", None, "SGD's rate (default: from --results, else 0.01).", lower_bound=0)
flags.DEFINE_float("adam_learning_rate", None, "Adam's rate (default: from --results, else 0.1).", lower_bound=0)
flags.DEFINE_string("results", None, "results.json of l2l_evaluate on this problem: take the tuned rates.")
cli.validate_optimizer_location("path")
flags.register_validator("results", lambda p: p is None or os.path.isfile(p), message="--results must be a file")
cli.validate_output_dirs("output_dir")


def _rate(name: str, flag_value, fallback: float) -> float:
    if flag_value is not None:
        return flag_value
    if FLAGS.results:
        try:
            rate = json.load(open(FLAGS.results))["optimizers"][name]["learning_rate"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise UserError(f"--results {FLAGS.results} has no tuned rate for {name} ({e})") from None
        if rate is not None:
            return float(rate)
    return fallback


def main(argv):
    del argv
    coordinates = [int(c) for c in cli.parse_float_list(FLAGS.coordinates, "coordinates")]
    steps = tuple(int(s) for s in cli.parse_float_list(FLAGS.response_steps, "response_steps"))
    if not coordinates or any(c < 0 for c in coordinates) or any(s < 0 or s >= FLAGS.num_steps for s in steps):
        raise UserError("--coordinates must be >= 0 and --response_steps within [0, num_steps)")
    problem_flags.check_family_flags(FLAGS.problem)
    from l2l_tf import loading  # TensorFlow loads from here on
    from l2l_tf.reporting import visualization
    from l2l_tf.optimizers import SGD, Adam

    family = problem_flags.family_from_flags(FLAGS.problem)
    optimizer = loading.load_optimizer(FLAGS.path)
    baselines = {"sgd": SGD(_rate("sgd", FLAGS.sgd_learning_rate, 0.01)),
                 "adam": Adam(_rate("adam", FLAGS.adam_learning_rate, 0.1))}
    problem = family.sample("test", FLAGS.seed, [FLAGS.problem_index])
    history = visualization.update_history(family, optimizer, problem, FLAGS.num_steps, coordinates, baselines,
                                           keep_states=steps)
    for path in visualization.write_pngs(history, optimizer, coordinates, FLAGS.output_dir):
        print(f"wrote {os.path.abspath(path)}")


def run() -> None:
    """The `l2l_visualize` program: bin/l2l_visualize.py and the `l2l-visualize` command."""
    cli.run(main)


if __name__ == "__main__":
    run()

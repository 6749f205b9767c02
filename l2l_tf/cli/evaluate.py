"""Evaluates a trained optimizer against tuned hand-designed baselines on fresh test problems.

    python bin/l2l_evaluate.py --problem=quadratic --optimizer=all --path=runs/quadratic \
        --output_dir=runs/quadratic/eval

Writes results.json, loss_curves.png and report.md to --output_dir.
"""
from __future__ import annotations

import math
import os
import shlex
import sys


from absl import flags

from l2l_tf import cli
from l2l_tf.cli import problem_flags
from l2l_tf.errors import UserError
from l2l_tf.optimizers import registry as architectures
from l2l_tf.problems import problem_names

LEARNED = "L2L"
FLAGS = flags.FLAGS
flags.DEFINE_enum("problem", "quadratic", problem_names(), "Problem family of the test problems.")
flags.DEFINE_enum("optimizer", "all", [LEARNED, *architectures.BASELINES, "all"],
                  "Optimizer to evaluate; 'all' = the learned one (if --path) and every baseline.")
flags.DEFINE_string("path", None, "Trained optimizer: a directory from l2l_train --save_path, an export from "
                    "l2l_export, or the name of a bundled pretrained optimizer.")
flags.DEFINE_integer("num_steps", 100, "Optimization steps per test problem.", lower_bound=1)
flags.DEFINE_integer("num_problems", 100, "Fresh test problems (the same for every optimizer).", lower_bound=1)
flags.DEFINE_integer("num_tuning_problems", 0, "Validation problems for learning-rate tuning (0: --num_problems).",
                     lower_bound=0)
flags.DEFINE_string("output_dir", None, "Where results.json, loss_curves.png and report.md go.", required=True)
flags.DEFINE_integer("seed", 0, "Seed of the test and tuning problems.", lower_bound=0)
flags.DEFINE_float("lr_grid_min", 1e-4, "Smallest learning rate tried for baselines.", lower_bound=1e-12)
flags.DEFINE_float("lr_grid_max", 1.0, "Largest learning rate tried for baselines.", lower_bound=1e-12)
flags.DEFINE_integer("lr_grid_per_decade", 4, "Learning rates per factor of 10 in the grid.", lower_bound=1)
flags.DEFINE_float("max_update", None, "Override the learned optimizer's update clipping (0: off).",
                   lower_bound=0.0)
flags.DEFINE_enum("optimizer_architecture", None, architectures.cli_names(),
                  "If set, the optimizer at --path must be of this architecture.")
flags.DEFINE_string("baselines_from", None, "results.json of an earlier evaluation of the same test problems "
                    "(problem, settings, --num_steps, --num_problems, --seed): its tuned baselines are reused, not "
                    "re-tuned and re-run, and the learned optimizers are compared with them problem by problem.")
flags.register_validator("baselines_from", lambda p: p is None or os.path.isfile(p),
                         message="--baselines_from must be a results.json file")
flags.DEFINE_list("compare", [], "More trained optimizers on the same test problems, as NAME=PATH pairs "
                  "(comma-separated); each is reported as L2L-NAME beside L2L and the baselines.")
cli.validate_flags_nonempty("output_dir")
cli.validate_output_dirs("output_dir")


def _parse_compare(items: list[str]) -> dict[str, str] | None:
    """{name: path} from NAME=PATH items, or None if any is malformed, repeated or missing."""
    pairs = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or name in pairs or not path or not cli.is_optimizer_location(path):
            return None
        pairs[name] = path
    return pairs


flags.register_validator(
    "compare", lambda items: _parse_compare(items) is not None,
    message="--compare takes NAME=PATH pairs with distinct names, each PATH a trained optimizer directory, "
            "an export directory or a bundled name")
cli.validate_optimizer_location("path")
flags.register_multi_flags_validator(
    ["lr_grid_min", "lr_grid_max"], lambda f: f["lr_grid_min"] <= f["lr_grid_max"],
    message="--lr_grid_min must not exceed --lr_grid_max")
flags.register_multi_flags_validator(
    ["optimizer", "path"], lambda f: f["optimizer"] != LEARNED or f["path"] is not None,
    message="--optimizer=L2L needs --path to a trained optimizer")


def _reused_baselines_and_their_grid(family, flags_grid: list[float]) -> tuple[dict, list[float]]:
    """--baselines_from's baselines and the grid they were tuned on, which replaces the --lr_grid_*
    flags' (so the report names the right grid, and a baseline tuned here is tuned like them);
    grid flags given on the command line that describe another grid are refused."""
    from l2l_tf import evaluation

    reused, grid = evaluation.reusable_baselines(FLAGS.baselines_from, family, FLAGS.num_steps, FLAGS.num_problems,
                                                 FLAGS.seed)
    given = [f"--{name}" for name in ("lr_grid_min", "lr_grid_max", "lr_grid_per_decade") if FLAGS[name].present]
    same = len(grid) == len(flags_grid) and all(math.isclose(a, b, rel_tol=1e-9) for a, b in zip(grid, flags_grid))
    if given and not same:
        raise UserError(f"{', '.join(given)} describe another learning-rate grid than the {len(grid)} rates "
                        f"{grid[0]:.3g} .. {grid[-1]:.3g} the baselines of {FLAGS.baselines_from} were tuned on; "
                        "drop them (the reused baselines' grid is used)")
    return reused, grid


def main(argv):
    del argv
    problem_flags.check_family_flags(FLAGS.problem)
    from l2l_tf import evaluation, loading
    from l2l_tf.reporting import plotting, report
    from l2l_tf.optimizers import make_hand_designed

    family = problem_flags.family_from_flags(FLAGS.problem)
    source = loading.resolve(FLAGS.path) if FLAGS.path else None
    learned = {}

    def load(path: str):
        return loading.load_optimizer(path, max_update=FLAGS.max_update)

    if FLAGS.optimizer in (LEARNED, "all") and source:
        optimizer = load(source.path)
        found = optimizer.config.architecture
        wanted = architectures.from_cli(FLAGS.optimizer_architecture).name if FLAGS.optimizer_architecture else None
        if wanted and found != wanted:
            raise UserError(f"--path {FLAGS.path} holds a {found} optimizer, not --optimizer_architecture="
                            f"{FLAGS.optimizer_architecture}")
        learned[LEARNED] = optimizer
    compared = {f"{LEARNED}-{name}": loading.resolve(path) for name, path in _parse_compare(FLAGS.compare).items()}
    for name, compared_source in compared.items():
        learned[name] = load(compared_source.path)
    names = list(architectures.BASELINES) if FLAGS.optimizer == "all" else [FLAGS.optimizer] if FLAGS.optimizer != LEARNED else []
    reused = {}
    grid = evaluation.learning_rate_grid(FLAGS.lr_grid_min, FLAGS.lr_grid_max, FLAGS.lr_grid_per_decade)
    if FLAGS.baselines_from:
        reused, grid = _reused_baselines_and_their_grid(family, grid)
        reused = {k: v for k, v in reused.items() if k in names or FLAGS.optimizer == LEARNED}
    baselines = {name: make_hand_designed(name) for name in names if name not in reused}
    results = evaluation.evaluate(family, learned, baselines, FLAGS.num_steps, FLAGS.num_problems, FLAGS.seed,
                                  grid, FLAGS.num_tuning_problems or None, reused=reused)
    if compared:
        results["compared_optimizer_paths"] = {name: src.path for name, src in compared.items()}
    if source:
        results["learned_optimizer_path"] = source.path
        if source.name:
            results["learned_optimizer_bundled_name"] = source.name
    command = " ".join(shlex.quote(a) for a in ["python", "bin/l2l_evaluate.py", *sys.argv[1:]])
    results["command"] = command
    json_path = evaluation.write_results(results, FLAGS.output_dir)
    plot = plotting.plot_loss_curves(results, os.path.join(FLAGS.output_dir, "loss_curves.png"))
    report_path = report.write_report(results, FLAGS.output_dir, plot, command)
    print(report.results_table(results))
    print(f"results: {os.path.abspath(json_path)}")
    print(f"plot:    {os.path.abspath(plot)}")
    print(f"report:  {os.path.abspath(report_path)}")


def run() -> None:
    """The `l2l_evaluate` program: bin/l2l_evaluate.py and the `l2l-evaluate` command."""
    cli.run(main)


if __name__ == "__main__":
    run()

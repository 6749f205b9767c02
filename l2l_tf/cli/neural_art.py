"""Neural art with a trained optimizer: evaluate it against tuned baselines, or style one image.

    # held-out test content at 64x64, at 128x128, and with a second style at 128x128
    python bin/l2l_neural_art.py --mode=evaluate --path=runs/art --data_dir=DATA --output_dir=runs/art/eval
    # one content image, with the learned optimizer and with tuned Adam
    python bin/l2l_neural_art.py --mode=stylize --path=runs/art --content_image=photo.jpg \
        --style_image=DATA/art/starry_night.jpg --vgg_weights=DATA/vgg19_conv_block1-3.npz \
        --image_size=128 --num_steps=100 --output_dir=out

evaluate writes, per setting (64/, 128/, second_style_128/), results.json in l2l_evaluate's
schema, loss_curves.png, report.md and images.png (content, style, L2L result, Adam result
for the first --grid_images test images), plus loss_curves.png with the three settings side
by side (log scale, like the paper's Figure 8). Baselines are tuned per setting on
validation content, exactly as l2l_evaluate does.

stylize writes L2L.png and <baseline>.png (default: adam, its learning rate tuned on this
very image: the most favourable choice for the baseline), stylize.png (all of them beside
the content and style) and results.json for the one image.
"""
from __future__ import annotations

import os
import shlex
import sys


import numpy as np
from absl import flags, logging

from l2l_tf import cli
from l2l_tf.problems import neural_art_settings
from l2l_tf.cli import problem_flags  # noqa: F401 - defines --data_dir and the neural_art flags
from l2l_tf.errors import UserError
from l2l_tf.optimizers import registry as architectures

LEARNED = "L2L"
FLAGS = flags.FLAGS
flags.DEFINE_enum("mode", "evaluate", ["evaluate", "stylize"], "evaluate on test content, or style one image.")
flags.DEFINE_string("path", None, "Trained optimizer: a directory from l2l_train, an export, or a bundled name.",
                    required=True)
flags.DEFINE_string("output_dir", None, "Where results, images and plots go.", required=True)
flags.DEFINE_integer("num_steps", 100, "Optimization steps per image.", lower_bound=1)
flags.DEFINE_list("baselines", None, "Hand-designed baselines, tuned (default: all of "
                  f"{','.join(architectures.BASELINES)} for evaluate, adam for stylize).")
flags.DEFINE_float("lr_grid_min", 1e-3, "Smallest learning rate tried for baselines.", lower_bound=1e-12)
flags.DEFINE_float("lr_grid_max", 100.0, "Largest learning rate tried for baselines (SGD needs ~10 here).",
                   lower_bound=1e-12)
flags.DEFINE_integer("lr_grid_per_decade", 2, "Learning rates per factor of 10 in the grid.", lower_bound=1)
# evaluate
flags.DEFINE_integer("num_problems", 20, "evaluate: test content images per setting.", lower_bound=1)
flags.DEFINE_integer("num_tuning_problems", 5, "evaluate: validation content images for tuning baselines.",
                     lower_bound=1)
flags.DEFINE_integer("seed", 0, "evaluate: seed of the test and validation images; noise init's seed.",
                     lower_bound=0)
flags.DEFINE_integer("test_image_size", 128, "evaluate: the larger size of the generalization settings.",
                     lower_bound=8)
flags.DEFINE_string("test_style_image", None, "evaluate: the second style (default: DATA_DIR/art/the_scream.jpg).")
flags.DEFINE_integer("grid_images", 4, "evaluate: test images shown in each setting's images.png (0: none).",
                     lower_bound=0)
flags.DEFINE_list("settings", ["64", "128", "second_style_128"], "evaluate: which of the three settings to run.")
# stylize
flags.DEFINE_string("content_image", None, "stylize: the content image (any size; centre square crop, resized).")
cli.validate_flags_nonempty("output_dir", "path")
cli.validate_output_dirs("output_dir")

SETTINGS = ("64", "128", "second_style_128")
cli.validate_optimizer_location("path")
cli.validate_subset("baselines", architectures.BASELINES, allow_none=True)
cli.validate_subset("settings", SETTINGS)
flags.register_multi_flags_validator(["lr_grid_min", "lr_grid_max"], lambda f: f["lr_grid_min"] <= f["lr_grid_max"],
                                     message="--lr_grid_min must not exceed --lr_grid_max")
flags.register_multi_flags_validator(
    ["mode", "content_image"], lambda f: (f["mode"] == "stylize") == (f["content_image"] is not None),
    message="--mode=stylize needs --content_image, and --content_image applies to --mode=stylize only")
flags.register_validator("content_image", lambda p: p is None or os.path.isfile(p),
                         message="--content_image must be an existing image file")
flags.register_validator("test_style_image", lambda p: p is None or os.path.isfile(p),
                         message="--test_style_image must be an existing image file")


def _command() -> str:
    return " ".join(shlex.quote(a) for a in ["python", "bin/l2l_neural_art.py", *sys.argv[1:]])


def _art_values() -> dict:
    """The neural-art family flags' values (l2l_tf/problems/neural_art_settings.py)."""
    return problem_flags.family_values("neural_art")


def _family_kwargs() -> dict:
    """Loss settings shared by every family this binary builds (weights, layers, init)."""
    return {"vgg_weights": neural_art_settings.neural_art_paths(_art_values())["vgg_weights"], "content_weight": FLAGS.content_weight,
            "style_weight": FLAGS.style_weight, "content_layers": FLAGS.content_layers,
            "style_layers": FLAGS.style_layers, "init": FLAGS.art_init}


def _baselines(default: list[str]) -> dict:
    from l2l_tf.optimizers import make_hand_designed

    return {name: make_hand_designed(name) for name in (FLAGS.baselines or default)}


def _grid() -> list[float]:
    from l2l_tf import evaluation

    return evaluation.learning_rate_grid(FLAGS.lr_grid_min, FLAGS.lr_grid_max, FLAGS.lr_grid_per_decade)



def evaluate_mode(optimizer, source) -> None:
    """The three settings against tuned baselines, with plots and image grids."""
    from l2l_tf import evaluation
    from l2l_tf.reporting import art_plots, plotting, report
    from l2l_tf.problems import art_images
    from l2l_tf.problems.neural_art import NeuralArtFamily, content_pool

    paths = neural_art_settings.neural_art_paths(_art_values())
    pool = content_pool(paths["content_dir"], paths["content_exclude"], paths["content_cifar"])
    if pool is None:
        raise UserError("--mode=evaluate needs content images: --content_dir, --content_cifar or --data_dir")
    style = neural_art_settings.default_style_image(_art_values())
    second = FLAGS.test_style_image or neural_art_settings.in_data_dir(FLAGS.data_dir, "art", "the_scream.jpg")
    if "second_style_128" in FLAGS.settings and not second:
        raise UserError("the second_style_128 setting needs --test_style_image (or --data_dir holding "
                        "art/the_scream.jpg)")
    sizes = {"64": (style, FLAGS.image_size), "128": (style, FLAGS.test_image_size),
             "second_style_128": (second, FLAGS.test_image_size)}
    titles = {}
    baselines, grid, kwargs = _baselines(list(architectures.BASELINES)), _grid(), _family_kwargs()
    all_results = {}
    for key in [s for s in SETTINGS if s in FLAGS.settings]:
        style_image, size = sizes[key]
        family = NeuralArtFamily(style_image, pool, image_size=size, **kwargs)
        titles[key] = f"{os.path.basename(style_image)}, {size}x{size}"
        logging.info("setting %s: %s", key, titles[key])
        results = evaluation.evaluate(family, {LEARNED: optimizer}, baselines, FLAGS.num_steps, FLAGS.num_problems,
                                      FLAGS.seed, grid, FLAGS.num_tuning_problems, log=logging.info)
        results.update(setting=key, command=_command(), learned_optimizer_path=source.path)
        out = os.path.join(FLAGS.output_dir, key)
        evaluation.write_results(results, out)
        plot = plotting.plot_loss_curves(results, os.path.join(out, "loss_curves.png"),
                                         title=f"neural art, {titles[key]}: {FLAGS.num_steps} steps")
        report.write_report(results, out, plot, results["command"])
        if FLAGS.grid_images:
            # Baselines keep the learning rate tuned for this setting (tune_learning_rate sets it).
            shown = {LEARNED: optimizer, **({"adam": baselines["adam"]} if "adam" in baselines else {})}
            style_shown = art_images.shorter_side_to(art_images.read_image(style_image), size)
            rows, labels = [], []
            for i in range(min(FLAGS.grid_images, FLAGS.num_problems)):
                content, where = family.content_of("test", FLAGS.seed, i)
                finals = [evaluation.run_problem(family, opt, family.sample("test", FLAGS.seed, [i]),
                                                 FLAGS.num_steps)[1].params[0].numpy() for opt in shown.values()]
                rows.append([content, style_shown] + finals)
                labels.append(where)
            art_plots.plot_image_grid(rows, ["content", "style"] + [f"{n} ({FLAGS.num_steps} steps)" for n in shown],
                                      os.path.join(out, "images.png"), labels)
        all_results[key] = results
        print(f"## {key} ({titles[key]})\n{report.results_table(results)}\n", flush=True)
    figure = art_plots.plot_settings(all_results, titles, os.path.join(FLAGS.output_dir, "loss_curves.png"))
    print(f"results: {os.path.abspath(FLAGS.output_dir)}/<setting>/results.json")
    print(f"plot:    {os.path.abspath(figure)}")


def stylize_mode(optimizer, source) -> None:
    """One content image: the learned optimizer and tuned baselines, PNGs and results.json."""
    from l2l_tf import evaluation
    from l2l_tf.reporting import art_plots
    from l2l_tf.problems import art_images
    from l2l_tf.problems.neural_art import NeuralArtFamily

    style_image = neural_art_settings.default_style_image(_art_values())
    family = NeuralArtFamily(style_image, None, image_size=FLAGS.image_size, **_family_kwargs())
    content = art_images.center_square(art_images.read_image(FLAGS.content_image), FLAGS.image_size)
    new_problem = lambda: family.problem_for(content, np.random.default_rng(FLAGS.seed))  # noqa: E731
    results = {"problem": family.name, "problem_settings": {**family.describe(),
                                                            "content_image": os.path.abspath(FLAGS.content_image)},
               "num_steps": FLAGS.num_steps, "num_problems": 1, "seed": FLAGS.seed, "learning_rate_grid": _grid(),
               "learning_rates_tuned_on": "this content image", "optimizers": {}, "images": {}}
    finals = {}
    for name, opt in {LEARNED: optimizer, **_baselines(["adam"])}.items():
        lr = None
        if name != LEARNED:
            lr, scores = evaluation.tune_learning_rate(family, opt, results["learning_rate_grid"],
                                                       lambda: [new_problem()], FLAGS.num_steps)
            logging.info("%s: tuned learning rate %.3g on this image", name, lr)
        curve, final = evaluation.run_problem(family, opt, new_problem(), FLAGS.num_steps)
        entry = evaluation.summarize(curve, lr)
        for metric, value in family.metrics(final.params, final).items():
            entry[f"final_{metric}_mean"] = value
        if lr is not None:
            entry["tuning_final_loss"] = {f"{k:.6g}": v if np.isfinite(v) else None for k, v in scores.items()}
        results["optimizers"][name] = entry
        finals[name] = final.params[0].numpy()
        png = art_images.write_png(finals[name], os.path.join(FLAGS.output_dir, f"{name}.png"))
        results["images"][name] = os.path.basename(png)
        logging.info("%s: final loss %.4g -> %s", name, float(curve[-1].mean()), png)
    results.update(command=_command(), learned_optimizer_path=source.path)
    path = evaluation.write_results(results, FLAGS.output_dir)
    style_shown = art_images.shorter_side_to(art_images.read_image(style_image), FLAGS.image_size)
    art_plots.plot_image_grid([[content, style_shown, *finals.values()]], ["content", "style", *finals],
                              os.path.join(FLAGS.output_dir, "stylize.png"))
    for name, entry in results["optimizers"].items():
        print(f"{name}: final loss {entry['final_loss_mean']:.4g} -> {os.path.join(FLAGS.output_dir, name + '.png')}")
    print(f"results: {os.path.abspath(path)}")


def main(argv):
    del argv
    from l2l_tf import loading

    source = loading.resolve(FLAGS.path)
    optimizer = loading.load_optimizer(source.path)
    (evaluate_mode if FLAGS.mode == "evaluate" else stylize_mode)(optimizer, source)


def run() -> None:
    """The `l2l_neural_art` program: bin/l2l_neural_art.py and the `l2l-neural-art` command."""
    cli.run(main)


if __name__ == "__main__":
    run()

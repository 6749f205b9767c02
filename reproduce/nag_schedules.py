"""How much a learning-rate schedule is worth on the MNIST MLP: tuned NAG at a constant rate
against the same NAG with a decaying rate, each tuned per horizon, on the same test problems.

Usage:
    python reproduce/nag_schedules.py --data_dir=../shared/data --output=results/mnist_schedules/nag_schedules.md

Why it exists: a learned optimizer beats tuned constant-rate NAG by learning *something* NAG
cannot do. A schedule is one such thing, and this measures its size, and whether a schedule
needs to know the horizon: `cosine` decays from lr to 0.1 lr over the trajectory (it knows T);
`inv_sqrt_TAU` is lr / sqrt(1 + t / TAU), which does not. RESULTS.md quotes the table this
writes (the reason for `--progress_feature`). `cosine_warmup` adds a linear warm-up over the first
5% of the run, `_mu0.8` means momentum 0.8 instead of 0.9 (the base of today's default MNIST
recipe, `--base_warmup=0.05 --base_momentum=0.8`); `constant_mu0.8` shows what the lower momentum
alone is worth. `linear_warmup_*` and `cosine0_warmup_mu0.8` decay to zero instead of to a tenth
(linear decay: Defazio et al. 2023); on the MNIST MLP both end above `cosine_warmup_mu0.8`
(results/mnist_schedules/decay_to_zero.md). `--schedules` picks a subset (the constant rate is
always run, the reference).
"""
from __future__ import annotations

import math
import os
import sys
import time

from absl import app, flags

flags.DEFINE_string("data_dir", None, "Directory holding mnist.npz (or a tfds data_dir).")
flags.DEFINE_list("horizons", ["100", "200"], "Trajectory lengths to compare at.")
flags.DEFINE_integer("num_problems", 100, "Test problems per horizon.", lower_bound=2)
flags.DEFINE_integer("num_tuning_problems", 10, "Validation problems the rates are tuned on.", lower_bound=1)
flags.DEFINE_integer("seed", 11, "Seed of the test and validation problems.")
flags.DEFINE_string("output", "nag_schedules.md", "Markdown report to write.")
flags.DEFINE_list("schedules", [], "Schedules to compare with the constant rate (default: all).")
FLAGS = flags.FLAGS

#: Learning rates every schedule is tuned over (NAG's best MNIST rates lie in 0.3 ... 1.5).
GRID = (0.1, 10.0, 8)


def _schedules():
    import tensorflow as tf

    from l2l_tf.optimizers.hand_designed import NAG, CosineNAG, warmup_factor

    class InverseSqrtNAG(CosineNAG):
        """NAG at lr / sqrt(1 + t / tau): a decay that does not know the horizon."""

        def __init__(self, tau: float):
            super().__init__(horizon=1)
            self.tau = float(tau)

        def rate(self, step):
            return self.learning_rate / tf.sqrt(1.0 + step / self.tau)

    class DecayNAG(CosineNAG):
        """NAG with a warm-up and a decay to zero over the horizon: `shape` "linear" (1 - progress,
        the schedule Defazio et al. 2023 find beats cosine) or "cosine0" (a cosine down to 0, not 0.1)."""

        def __init__(self, shape: str, momentum: float, warmup: float):
            super().__init__(momentum=momentum, warmup=warmup)
            self.shape = shape

        def rate(self, step):
            progress = tf.minimum(step / self.horizon, 1.0)
            decay = 1.0 - progress if self.shape == "linear" else 0.5 * (1.0 + tf.cos(math.pi * progress))
            return self.learning_rate * decay * warmup_factor(step + 1.0, self.horizon, self.warmup)

    return {"constant": NAG(), "cosine": CosineNAG(), "inv_sqrt_10": InverseSqrtNAG(10),
            "inv_sqrt_30": InverseSqrtNAG(30), "cosine_warmup": CosineNAG(warmup=0.05),
            "cosine_warmup_mu0.8": CosineNAG(momentum=0.8, warmup=0.05), "constant_mu0.8": NAG(momentum=0.8),
            "linear_warmup_mu0.8": DecayNAG("linear", 0.8, 0.05), "cosine0_warmup_mu0.8": DecayNAG("cosine0", 0.8, 0.05),
            "linear_warmup_mu0.9": DecayNAG("linear", 0.9, 0.05)}


def main(argv):
    del argv
    try:
        horizons = [int(h) for h in FLAGS.horizons]
    except ValueError:
        sys.exit(f"--horizons must be integers, got {FLAGS.horizons}")
    if any(h < 1 for h in horizons):
        sys.exit(f"--horizons must be positive, got {horizons}")
    known = sorted(_schedules())
    unknown = sorted(set(FLAGS.schedules) - set(known))
    if unknown:
        sys.exit(f"unknown --schedules {unknown}; expected some of {known}")
    from l2l_tf import evaluation
    from l2l_tf.errors import UserError
    from l2l_tf.optimizers.base import set_horizon
    from l2l_tf.problems.mnist import MNISTFamily
    from l2l_tf.statistics import paired_comparison

    try:
        family = MNISTFamily(data_dir=FLAGS.data_dir)
    except UserError as e:
        sys.exit(f"error: {e}")
    grid = evaluation.learning_rate_grid(*GRID)
    rows = []
    for horizon in horizons:
        finals, rates = {}, {}
        chosen = {name: opt for name, opt in _schedules().items()
                  if name == "constant" or not FLAGS.schedules or name in FLAGS.schedules}
        for name, opt in chosen.items():
            start = time.time()
            set_horizon(opt, horizon)
            val = lambda: evaluation.sample_problems(family, "validation", FLAGS.seed, FLAGS.num_tuning_problems)  # noqa: E731
            rates[name], _ = evaluation.tune_learning_rate(family, opt, grid, val, horizon)
            test = evaluation.sample_problems(family, "test", FLAGS.seed, FLAGS.num_problems)
            finals[name] = evaluation.run_trajectories(family, opt, test, horizon)[-1]
            print(f"{horizon} steps, {name}: lr {rates[name]:.3g}, mean final loss {finals[name].mean():.4f} "
                  f"({time.time() - start:.0f} s)", flush=True)
        for name in finals:
            paired = paired_comparison(finals[name], finals["constant"])
            rows.append((horizon, name, rates[name], float(finals[name].mean()), paired))
    lines = ["# NAG: constant rate against decaying rates, each tuned per horizon", "",
             f"MNIST MLP (20 sigmoid units), {FLAGS.num_problems} test problems of seed {FLAGS.seed}, rates tuned on "
             f"{FLAGS.num_tuning_problems} validation problems over {len(grid)} rates {grid[0]:g} ... {grid[-1]:g}.",
             "", "| steps | schedule | tuned lr | mean final loss | ratio to constant | paired difference, 95% CI | win rate |",
             "|---:|---|---:|---:|---:|---|---:|"]
    for horizon, name, lr, mean, p in rows:
        low, high = p["ci95"]
        ci = "—" if name == "constant" else f"{p['mean_difference']:+.4f} [{low:+.4f}, {high:+.4f}]"
        lines.append(f"| {horizon} | {name} | {lr:.3g} | {mean:.4f} | {p['ratio']:.3f} | {ci} | {p['win_rate']:.0%} |")
    lines += ["", "Command: `python reproduce/nag_schedules.py " + " ".join(sys.argv[1:]) + "`", ""]
    os.makedirs(os.path.dirname(os.path.abspath(FLAGS.output)), exist_ok=True)
    with open(FLAGS.output, "w") as f:
        f.write("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    app.run(main)

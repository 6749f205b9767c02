"""The binaries end to end: a tiny train + evaluate run, and clean one-line errors on bad input."""
import json
import os
import re
import shutil
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import ROOT, run_binary

pytestmark = pytest.mark.slow  # every test runs binaries in subprocesses

FIXTURE = os.path.join(ROOT, "testdata", "mnist_subset.npz")
CIFAR_FIXTURE = os.path.join(ROOT, "testdata", "cifar10_subset.npz")

TINY_TRAIN = ["--num_epochs=4", "--num_steps=20", "--unroll_length=10", "--meta_batch_size=8",
              "--evaluation_period=2", "--evaluation_epochs=1", "--checkpoint_every=2"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("run") / "opt")
    proc = run_binary("l2l_train", f"--save_path={path}", *TINY_TRAIN)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "trained optimizer:" in proc.stdout
    return path


def test_train_writes_a_loadable_optimizer_and_logs(trained):
    assert os.path.exists(os.path.join(trained, "optimizer.json"))
    assert os.path.exists(os.path.join(trained, "best", "weights.index"))
    assert os.listdir(os.path.join(trained, "logs"))  # TensorBoard event files
    summary = json.load(open(os.path.join(trained, "training_summary.json")))
    assert summary["epochs_run"] == 4 and summary["best_epoch"] in (2, 4)


def test_evaluate_all_writes_results_plot_and_report(trained, tmp_path):
    out = str(tmp_path / "eval")
    proc = run_binary("l2l_evaluate", f"--path={trained}", "--optimizer=all", "--num_steps=20",
                      "--num_problems=6", "--lr_grid_per_decade=1", f"--output_dir={out}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.load(open(os.path.join(out, "results.json")))
    assert set(results["optimizers"]) == {"L2L", "sgd", "nag", "rmsprop", "adam"}
    assert results["num_steps"] == 20 and results["num_problems"] == 6 and results["problem"] == "quadratic"
    assert os.path.exists(os.path.join(out, "loss_curves.png"))
    assert "report:" in proc.stdout and os.path.exists(os.path.join(out, "report.md"))

    # Its baselines reused for the learned optimizer alone: their grid (5 rates, 1 per decade),
    # not this run's default one, is what the new results and report name.
    again = str(tmp_path / "again")
    proc = run_binary("l2l_evaluate", f"--path={trained}", "--optimizer=L2L", "--num_steps=20", "--num_problems=6",
                      f"--baselines_from={out}/results.json", f"--output_dir={again}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    reused = json.load(open(os.path.join(again, "results.json")))
    assert reused["learning_rate_grid"] == results["learning_rate_grid"] and len(results["learning_rate_grid"]) == 5
    assert reused["optimizers"]["adam"]["final_losses"] == results["optimizers"]["adam"]["final_losses"]
    assert "over 5 log-spaced rates" in open(os.path.join(again, "report.md")).read()
    # A grid flag describing another grid than the reused baselines' is refused in one line.
    proc = run_binary("l2l_evaluate", f"--path={trained}", "--optimizer=L2L", "--num_steps=20", "--num_problems=6",
                      "--lr_grid_per_decade=3", f"--baselines_from={out}/results.json", f"--output_dir={again}2")
    errors = [line for line in proc.stderr.splitlines() if line.startswith("l2l_evaluate.py: error:")]
    assert proc.returncode == 2 and len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert "--lr_grid_per_decade describe another learning-rate grid than the 5 rates" in errors[0]


def test_evaluate_compares_several_learned_optimizers_on_the_same_problems(trained, tmp_path):
    out = str(tmp_path / "compare")
    proc = run_binary("l2l_evaluate", f"--path={trained}", "--optimizer=L2L", f"--compare=again={trained},paper=quadratic",
                      "--num_steps=20", "--num_problems=4", f"--output_dir={out}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.load(open(os.path.join(out, "results.json")))
    assert set(results["optimizers"]) == {"L2L", "L2L-again", "L2L-paper"}
    same, again = results["optimizers"]["L2L"], results["optimizers"]["L2L-again"]
    assert same["loss_mean_per_step"] == again["loss_mean_per_step"]  # same weights, same problems
    assert results["optimizers"]["L2L-paper"]["final_loss_mean"] != same["final_loss_mean"]
    assert set(results["compared_optimizer_paths"]) == {"L2L-again", "L2L-paper"}


def test_evaluate_mnist_reports_test_accuracy(tmp_path):
    out = str(tmp_path / "mnist_eval")
    proc = run_binary("l2l_evaluate", "--problem=mnist", f"--data_dir={FIXTURE}", "--optimizer=adam",
                      "--num_steps=30", "--num_problems=2", "--lr_grid_min=1e-2", "--lr_grid_max=1e-1",
                      "--lr_grid_per_decade=1", f"--output_dir={out}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    entry = json.load(open(os.path.join(out, "results.json")))["optimizers"]["adam"]
    assert 0.1 < entry["final_test_accuracy_mean"] <= 1.0
    assert "test accuracy" in open(os.path.join(out, "report.md")).read()


def test_train_init_from_starts_phi_at_the_given_optimizer(trained, tmp_path):
    """A warm start: with a vanishing learning rate, the fine-tuned phi is the loaded one."""
    from l2l_tf.loading import load_optimizer

    path = str(tmp_path / "finetuned")
    proc = run_binary("l2l_train", f"--save_path={path}", f"--init_from={trained}", "--learning_rate=1e-12",
                      "--seed=3", *TINY_TRAIN)
    assert proc.returncode == 0, proc.stderr[-3000:]
    source, tuned = load_optimizer(trained), load_optimizer(path)
    assert tuned.config.to_dict() == source.config.to_dict()
    for a, b in zip(source.meta_variables, tuned.meta_variables):
        assert abs(a.numpy() - b.numpy()).max() < 1e-9
    assert json.load(open(os.path.join(path, "optimizer.json")))["train_flags"]["init_from"] == trained


#: Every bad command line of the battery: (case, [binary, arguments...], a phrase stderr's one
#: line must contain). Arguments are templates: {tmp} is the battery's scratch directory,
#: {trained} a trained optimizer, {out} an --output_dir flag, {train} expands to
#: "l2l_train --save_path=<fresh>", {tiny} to TINY_TRAIN, {ro} a read-only directory and
#: {full} a directory on a full disk, {nearly_full} one on a disk with two blocks left (see
#: `_prepare`). The phrase is the part of the message
#: that says what is wrong, not just the flag's name (which absl prints anyway).
CASES = [
    ("export without export_dir", ["l2l_export", "--path={trained}"], "Flag --export_dir must have a value other than None"),
    ("export missing path", ["l2l_export", "--path=/no/such/optimizer", "--export_dir={tmp}/e"],
     "/no/such/optimizer is neither a directory nor a bundled pretrained optimizer"),
    ("benchmark bad sizes", ["l2l_benchmark", "--sizes=abc", "--output={tmp}/b.json"], "--sizes must be comma-separated numbers, got 'abc'"),
    ("benchmark zero repeats", ["l2l_benchmark", "--repeats=0", "--output={tmp}/b.json"], "--repeats=0: 0 is not"),
    ("benchmark unknown section", ["l2l_benchmark", "--benchmarks=speed", "--output={tmp}/b.json"], "speed"),
    ("benchmark without mnist", ["l2l_benchmark", "--benchmarks=memory", "--data_dir={tmp}", "--output={tmp}/b.json"],
     "mnist.npz"),
    ("benchmark unknown keras optimizer", ["l2l_benchmark", "--keras_optimizers=learned,sgd", "--output={tmp}/b.json"],
     "--keras_optimizers must list some of learned, learned_xla, learned_bfloat16, adam"),
    ("benchmark unknown update case", ["l2l_benchmark", "--update_implementations=xla", "--output={tmp}/b.json"],
     "--update_implementations must list some of fast, keras_cells, fast_xla, unfused, adam"),
    ("benchmark markdown output", ["l2l_benchmark", "--output={tmp}/b.md"], "markdown"),
    ("bad gradient checkpointing", ["{train}", "--gradient_checkpointing=half"], "must be 'off', 'sqrt' or a segment length"),
    ("checkpoint segment over unroll", ["{train}", "--unroll_length=5", "--num_steps=10", "--gradient_checkpointing=6"],
     "segment length from 1 to --unroll_length (5), got '6'"),
    ("visualize bad coordinates", ["l2l_visualize", "--path={trained}", "--output_dir={tmp}/v", "--coordinates=a,b"],
     "--coordinates must be comma-separated numbers, got 'a,b'"),
    ("momentum output without base rate", ["{train}", "--preprocess=adam", "--output=momentum"],
     "output 'momentum' needs base_learning_rate > 0, got 0.0"),
    ("momentum output off the betas", ["{train}", "--preprocess=adam", "--output=momentum", "--base_learning_rate=1",
                                       "--base_momentum=0.8"], "base_momentum 0.8 must be one of momentum_betas [0.95]"),
    ("cosine base without the horizon", ["{train}", "--preprocess=adam", "--output=momentum", "--base_learning_rate=1",
                                         "--base_momentum=0.95", "--base_schedule=cosine"],
     "base_schedule 'cosine' needs output 'momentum' and progress_feature (the schedule follows the fraction of the "
     "horizon done)"),
    ("warm-up without the horizon", ["{train}", "--preprocess=adam", "--output=momentum", "--base_learning_rate=1",
                                     "--base_momentum=0.95", "--base_warmup=0.05"],
     "base_warmup needs output 'momentum' and progress_feature"),
    ("warm-up past the horizon", ["{train}", "--base_warmup=1"], "--base_warmup=1: 1.0 is not"),
    ("negative seed", ["{train}", "--seed=-1"], "-1 is not a non-negative integer"),
    ("zero learning rate", ["{train}", "--learning_rate=0"], "--learning_rate=0: 0.0 is not number >= 1e-12"),
    ("zero clip norm", ["{train}", "--clip_norm=0"], "--clip_norm=0: 0.0 is not number >= 1e-12"),
    ("zero output scale", ["{train}", "--output_scale=0"], "--output_scale=0: 0.0 is not number >= 1e-12"),
    ("unknown preprocessing", ["{train}", "--preprocess=bogus"], "value should be one of"),
    ("negative max update", ["{train}", "--max_update=-1"], "--max_update=-1: -1.0 is not a non-negative number"),
    ("zero unroll", ["{train}", "--unroll_length=0"], "--unroll_length=0: 0 is not"),
    ("zero evaluation period", ["{train}", "--evaluation_period=0"], "--evaluation_period=0: 0 is not"),
    ("zero skips", ["{train}", "--max_consecutive_skips=0"], "--max_consecutive_skips=0: 0 is not"),
    ("non-numeric loss weights", ["{train}", "--loss_weights=1,x"], "must be comma-separated numbers"),
    ("member tuning without teachers", ["{train}", "--problem=mnist_mix", "--imitation_tuning=member"],
     "--imitation_tuning=member tunes imitation teachers; give --imitation_teachers"),
    ("member tuning of one family", ["{train}", "--imitation_teachers=nag", "--imitation_tuning=member_best"],
     "--imitation_tuning=member_best needs a mixture of problem families (cifar_mix, general, mnist_mix); "
     "--problem=quadratic is one family"),
    ("unknown mix activation", ["{train}", "--problem=mnist_mix", "--mix_activations=swish"],
     "must list sigmoid, relu and/or tanh"),
    ("resume corrupt checkpoint", ["l2l_train", "--save_path={corrupt_ckpt}", "--resume", "{tiny}"],
     "does not match this optimizer or is corrupt"),
    ("zero grid density", ["l2l_evaluate", "--lr_grid_per_decade=0", "{out}"], "--lr_grid_per_decade=0: 0 is not"),
    ("negative tuning problems", ["l2l_evaluate", "--num_tuning_problems=-1", "{out}"], "-1 is not"),
    ("corrupt weights", ["l2l_evaluate", "--path={corrupt_best}", "{out}"], "do not fit this optimizer's architecture or are corrupt"),
    ("foreign architecture", ["l2l_evaluate", "--path={wrong_arch}", "{out}"], "architecture 'ntm_bfgs_v9' is not supported"),
    ("invalid settings", ["l2l_evaluate", "--path={bad_settings}", "{out}"], "invalid LSTM optimizer settings"),
    ("unknown problem", ["l2l_train", "--problem=imagenet", "--save_path={tmp}/x"], "value should be one of"),
    ("zero epochs", ["l2l_train", "--num_epochs=0", "--save_path={tmp}/x"], "--num_epochs=0: 0 is not"),
    ("negative steps", ["l2l_train", "--num_steps=-5", "--save_path={tmp}/x"], "--num_steps=-5: -5 is not"),
    ("missing save_path", ["l2l_train"], "Flag --save_path must have a value other than None"),
    ("steps not multiple of unroll", ["l2l_train", "--num_steps=50", "--save_path={tmp}/s1"], "multiple of unroll_length"),
    ("bad layers", ["l2l_train", "--lstm_layers=20,x", "--save_path={tmp}/s2"], "must be comma-separated integers"),
    ("bad loss weights", ["l2l_train", "--loss_weights=1,2", "--save_path={tmp}/s3"], "loss_weights has 2 entries"),
    ("save_path is a file", ["l2l_train", "--save_path={a_file}"], "is a file, not a directory"),
    ("existing run without resume", ["l2l_train", "--save_path={trained}"], "already holds a training run; pass --resume"),
    ("resume other architecture", ["l2l_train", "--save_path={trained}", "--resume", "--lstm_layers=7", "{tiny}"],
     "cannot resume"),
    ("positional argument", ["l2l_train", "--save_path={tmp}/x", "oops"], "unexpected positional arguments"),
    ("missing path", ["l2l_evaluate", "--path=/no/such/dir", "{out}"],
     "--path must be a trained optimizer directory, an export directory or a bundled pretrained optimizer name"),
    ("L2L without path", ["l2l_evaluate", "--optimizer=L2L", "{out}"], "needs --path"),
    ("not a trained dir", ["l2l_evaluate", "--path={not_trained}", "{out}"], "not a trained optimizer directory"),
    ("zero problems", ["l2l_evaluate", "--num_problems=0", "{out}"], "--num_problems=0: 0 is not"),
    ("inverted grid", ["l2l_evaluate", "--lr_grid_min=1", "--lr_grid_max=0.1", "{out}"], "--lr_grid_min must not exceed --lr_grid_max"),
    ("unknown optimizer", ["l2l_evaluate", "--optimizer=lbfgs", "{out}"], "lbfgs"),
    ("compare without a name", ["l2l_evaluate", "--compare={trained}", "{out}"], "NAME=PATH"),
    ("compare missing path", ["l2l_evaluate", "--compare=x=/no/such/dir", "{out}"], "/no/such/dir"),
    ("compare repeated name", ["l2l_evaluate", "--compare=x={trained},x={trained}", "{out}"], "NAME=PATH pairs with distinct names"),
    ("missing output_dir", ["l2l_evaluate"], "Flag --output_dir must have a value other than None"),
    ("missing data dir", ["l2l_train", "--problem=mnist", "--data_dir=/no/such/data", "--save_path={tmp}/x"],
     "must be an existing folder or file"),
    ("data dir without mnist", ["l2l_evaluate", "--problem=mnist", "--data_dir={not_trained}", "{out}"], "mnist.npz"),
    ("bad hidden sizes", ["l2l_evaluate", "--problem=mnist", "--data_dir={fixture}", "--hidden_sizes=20,0", "{out}"],
     "must list positive integers"),
    ("unknown activation", ["l2l_train", "--problem=mnist", "--activation=swish", "--save_path={tmp}/x"],
     "value should be one of"),
    ("mnist flag on quadratic", ["l2l_evaluate", "--hidden_sizes=40", "{out}"], "--hidden_sizes does not apply to --problem=quadratic"),
    ("corrupt data file", ["l2l_evaluate", "--problem=mnist", "--data_dir={a_file}", "{out}"], "not a readable .npz"),
    ("heldout labels on cifar5", ["l2l_evaluate", "--problem=cifar5", "--labels=heldout", "--data_dir={cifar_fixture}",
                                  "{out}"], "heldout"),
    ("labels on quadratic", ["l2l_evaluate", "--labels=heldout", "{out}"], "--labels does not apply to --problem=quadratic"),
    ("data dir without cifar", ["l2l_evaluate", "--problem=cifar10", "--data_dir={not_trained}", "{out}"],
     "cifar-10-batches-py"),
    ("bad param groups", ["l2l_train", "--param_groups=conv", "--save_path={tmp}/s4"], "must look like NAME=REGEX"),
    ("bad group regex", ["l2l_train", "--param_groups=conv=(", "--save_path={tmp}/s5"], "bad regular expression"),
    ("parameter in no group", ["l2l_train", "--problem=cifar2", "--data_dir={cifar_fixture}", "--batch_size=8",
                               "--param_groups=conv=^conv", "--save_path={tmp}/s6"], "belongs to no group"),
    ("init_from missing", ["{train}", "--init_from=/no/such/optimizer"], "/no/such/optimizer is neither a directory"),
    ("init_from with architecture flag", ["{train}", "--init_from={trained}", "--lstm_layers=7"], "drop --lstm_layers"),
    ("cpu replicas without mirrored", ["l2l_train", "--cpu_replicas=2", "--save_path={tmp}/s7"],
     "--cpu_replicas applies to --strategy=mirrored"),
    ("multi worker without TF_CONFIG", ["l2l_train", "--strategy=multi_worker", "--save_path={tmp}/s8"],
     "needs $TF_CONFIG"),
    ("meta batch not divisible by replicas", ["l2l_train", "--strategy=mirrored", "--cpu_replicas=3",
                                              "--meta_batch_size=8", "--save_path={tmp}/s9"], "multiple of the 3 replicas"),
    # Output paths that cannot be written: under a regular file, in a read-only directory, on a full disk.
    ("train save_path under a file", ["l2l_train", "--save_path={a_file}/run"], "is a file, not a directory"),
    ("train save_path read-only", ["l2l_train", "--save_path={ro}/run"], "is not writable"),
    ("train save_path on a full disk", ["l2l_train", "--save_path={full}/run", "{tiny}"], "No space left on device"),
    ("evaluate output under a file", ["l2l_evaluate", "--output_dir={a_file}/eval"], "is a file, not a directory"),
    ("evaluate output read-only", ["l2l_evaluate", "--output_dir={ro}/eval"], "is not writable"),
    ("evaluate output on a full disk", ["l2l_evaluate", "--optimizer=sgd", "--num_problems=2", "--num_steps=5",
                                        "--lr_grid_per_decade=1", "--output_dir={full}/eval"], "No space left on device"),
    # A disk with two blocks left passes the up-front check and fills while the results are written.
    ("evaluate output fills the disk", ["l2l_evaluate", "--optimizer=sgd", "--num_problems=2", "--num_steps=5",
                                        "--lr_grid_per_decade=1", "--output_dir={nearly_full}/eval"],
     "No space left on device"),
    ("export dir under a file", ["l2l_export", "--path={trained}", "--export_dir={a_file}/e"], "is a file, not a directory"),
    ("export dir read-only", ["l2l_export", "--path={trained}", "--export_dir={ro}/e"], "is not writable"),
    ("export dir on a full disk", ["l2l_export", "--path={trained}", "--export_dir={full}/e"], "No space left on device"),
    ("benchmark output under a file", ["l2l_benchmark", "--output={a_file}/b.json"], "is a file, not a directory"),
    ("benchmark output is a directory", ["l2l_benchmark", "--output={tmp}"], "is a directory, not a file"),
    ("benchmark output read-only", ["l2l_benchmark", "--output={ro}/b.json"], "is not writable"),
    ("benchmark output on a full disk", ["l2l_benchmark", "--benchmarks=update", "--update_sizes=1000", "--repeats=1",
                                         "--warmup=1", "--output={full}/b.json"],
     "No space left on device"),
    ("visualize output under a file", ["l2l_visualize", "--path={trained}", "--output_dir={a_file}/v"],
     "is a file, not a directory"),
    ("visualize output read-only", ["l2l_visualize", "--path={trained}", "--output_dir={ro}/v"], "is not writable"),
    ("visualize output on a full disk", ["l2l_visualize", "--path={trained}", "--num_steps=5", "--coordinates=0",
                                         "--response_steps=0", "--output_dir={full}/v"], "No space left on device"),
    ("neural art output under a file", ["l2l_neural_art", "--path={trained}", "--output_dir={a_file}/n"],
     "is a file, not a directory"),
    ("neural art output read-only", ["l2l_neural_art", "--path={trained}", "--output_dir={ro}/n"], "is not writable"),
    ("art flag on quadratic", ["{train}", "--image_size=32"], "--image_size does not apply"),
    ("art unknown layer", ["{train}", "--problem=neural_art", "--style_layers=block9_conv1"], "block9_conv1"),
    ("art zero weights", ["{train}", "--problem=neural_art", "--content_weight=0", "--style_weight=0"], "cannot both be 0"),
    ("art tiny image", ["{train}", "--problem=neural_art", "--image_size=4"], "--image_size=4: 4 is not"),
    ("art missing weights file", ["{train}", "--problem=neural_art", "{art_data}", "--vgg_weights=/no/such/vgg.npz"],
     "does not exist"),
    ("art weights lack a layer", ["{train}", "--problem=neural_art", "{art_data}", "--vgg_weights={vgg}"],
     "lacks layer block1_conv2"),
    ("art no content", ["{train}", "--problem=neural_art", "--style_image={style}"], "content images"),
    ("art stylize without content image", ["l2l_neural_art", "--path={trained}", "{out}", "--mode=stylize"],
     "content_image"),
    ("art unknown baseline", ["l2l_neural_art", "--path={trained}", "{out}", "--baselines=lbfgs"], "lbfgs"),
    ("art evaluate without content", ["l2l_neural_art", "--path={trained}", "{out}", "--style_image={style}"],
     "content images"),
]
CASE_NAMES = [name for name, _, _ in CASES]
#: Cases that need a read-only directory or a full disk: skipped where neither can be made.
NEEDS = {name: need for name, args, _ in CASES for need in ("ro", "full", "nearly_full")
         if any(f"{{{need}}}" in a for a in args)}


def _mount_tmpfs(target: str, options: str) -> bool:
    import subprocess

    os.makedirs(target, exist_ok=True)
    return subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", target], capture_output=True).returncode == 0


def _prepare(trained, tmp) -> dict:
    """The files and directories the battery's templates name; {ro}/{full} are None when they cannot be made."""
    paths = {"tmp": tmp, "trained": trained, "fixture": FIXTURE, "cifar_fixture": CIFAR_FIXTURE,
             "not_trained": os.path.join(tmp, "empty_dir"), "a_file": os.path.join(tmp, "a_file")}
    os.makedirs(paths["not_trained"], exist_ok=True)
    open(paths["a_file"], "w").close()
    for name in ("corrupt_best", "wrong_arch", "bad_settings", "corrupt_ckpt"):
        paths[name] = os.path.join(tmp, name)
        shutil.copytree(trained, paths[name])
    with open(os.path.join(paths["corrupt_best"], "best", "weights.index"), "wb") as f:
        f.write(b"\x00garbage" * 10)
    for d, change in ((paths["wrong_arch"], {"architecture": "ntm_bfgs_v9"}), (paths["bad_settings"], {"layers": "abc"})):
        record = json.load(open(os.path.join(d, "optimizer.json")))
        record["optimizer"].update(change)
        json.dump(record, open(os.path.join(d, "optimizer.json"), "w"))
    for name in os.listdir(os.path.join(paths["corrupt_ckpt"], "checkpoints")):
        if name.endswith(".index"):
            with open(os.path.join(paths["corrupt_ckpt"], "checkpoints", name), "wb") as f:
                f.write(b"not a checkpoint")
    paths.update(_tiny_art_files(tmp))
    # A read-only directory: a read-only mount as root (who may write anywhere else), else mode 555.
    ro = os.path.join(tmp, "read_only")
    if os.geteuid() == 0:
        paths["ro"] = ro if _mount_tmpfs(ro, "ro,size=64k") else None
    else:
        os.makedirs(ro)
        os.chmod(ro, 0o555)
        paths["ro"] = ro
    # A full disk: a small tmpfs filled to the last block (root only); and one with two blocks left.
    for name, left in (("full", 0), ("nearly_full", 2 * 4096)):
        disk = os.path.join(tmp, f"{name}_disk")
        paths[name] = disk if os.geteuid() == 0 and _mount_tmpfs(disk, "size=256k") else None
        if paths[name]:
            _fill(os.path.join(disk, "filler"), left)
    return paths


def _fill(filler: str, leave: int) -> None:
    """Writes `filler` until its disk is full, then frees its last `leave` bytes."""
    with open(filler, "wb", buffering=0) as f:  # unbuffered: close() has nothing left to write
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError:
            pass
    if leave:
        os.truncate(filler, os.path.getsize(filler) - leave)


def _command(args: list[str], paths: dict) -> list[str]:
    """A case's concrete command line from its templates."""
    out = []
    for a in args:
        if a == "{train}":
            out += ["l2l_train", "--save_path=" + os.path.join(paths["tmp"], "fresh")]
        elif a == "{tiny}":
            out += TINY_TRAIN
        elif a == "{out}":
            out.append("--output_dir=" + os.path.join(paths["tmp"], "out"))
        elif a == "{art_data}":
            out += [f"--style_image={paths['style']}", f"--content_cifar={paths['cifar']}"]
        else:
            out.append(a.format(**paths))
    return out


def _tiny_art_files(tmp):
    """A style PNG, a CIFAR-like content npz and VGG weights holding block1_conv1 only."""
    import matplotlib.pyplot as plt
    import numpy as np

    files = {"style": os.path.join(tmp, "style.png"), "cifar": os.path.join(tmp, "cifar.npz"),
             "vgg": os.path.join(tmp, "vgg_block1_conv1.npz")}
    plt.imsave(files["style"], np.random.default_rng(0).uniform(size=(16, 16, 3)))
    np.savez(files["cifar"], x_train=np.zeros((4, 8, 8, 3), np.uint8), x_test=np.zeros((4, 8, 8, 3), np.uint8))
    np.savez(files["vgg"], **{"block1_conv1/kernel": np.zeros((3, 3, 3, 4), np.float32),
                              "block1_conv1/bias": np.zeros(4, np.float32)})
    return files


@pytest.fixture(scope="module")
def bad_runs(trained, tmp_path_factory):
    import subprocess

    tmp = str(tmp_path_factory.mktemp("bad"))
    paths = _prepare(trained, tmp)
    runnable = [(name, args) for name, args, _ in CASES if paths.get(NEEDS.get(name, "tmp"))]
    try:
        with ThreadPoolExecutor(max_workers=4) as pool:
            procs = dict(zip([n for n, _ in runnable], pool.map(lambda c: run_binary(*_command(c[1], paths)), runnable)))
    finally:
        for mount in (paths["ro"], paths["full"], paths["nearly_full"]):
            if mount and os.geteuid() == 0:
                subprocess.run(["umount", mount], capture_output=True)
    return procs, paths


#: Lines TensorFlow and absl print on their own (logs), which are not the program's message.
_LOG_LINE = re.compile(r"^([IWEF]\d{4} |(INFO|WARNING|ERROR):tensorflow:|WARNING: All log messages before "
                       r"absl::InitializeLog|To enable the following instructions|\s)")


def test_the_battery_covers_every_binary_and_output_flag():
    """Every binary in bin/ has bad command lines in the battery, and every output flag its path cases."""
    binaries = {f[:-3] for f in os.listdir(os.path.join(ROOT, "bin")) if f.endswith(".py")}
    covered = {args[0] for _, args, _ in CASES if not args[0].startswith("{")} | {"l2l_train"}
    assert binaries <= covered, binaries - covered
    for flag in ("--save_path={a_file}/", "--output_dir={a_file}/", "--export_dir={a_file}/", "--output={a_file}/",
                 "--save_path={ro}", "--output_dir={ro}", "--export_dir={ro}", "--output={ro}",
                 "--save_path={full}", "--output_dir={full}", "--export_dir={full}", "--output={full}"):
        assert any(a.startswith(flag) for _, args, _ in CASES for a in args), flag
    assert len(set(CASE_NAMES)) == len(CASE_NAMES)


@pytest.mark.parametrize("case", CASE_NAMES)
def test_bad_input_gives_a_one_line_error(bad_runs, case):
    procs, paths = bad_runs
    if case not in procs:
        pytest.skip(f"needs a {'read-only directory' if NEEDS[case] == 'ro' else 'full disk'}, which cannot be "
                    "made here (no mount permission)")
    proc, phrase = procs[case], dict((n, p) for n, _, p in CASES)[case]
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    message = [line for line in proc.stderr.splitlines() if line.strip() and not _LOG_LINE.match(line)]
    assert len(message) == 1, proc.stderr[-2000:]
    assert message[0].startswith(f"{_command(next(a for n, a, _ in CASES if n == case), paths)[0]}.py: error: "), \
        message
    assert phrase.format(**{k: v for k, v in paths.items() if isinstance(v, str)}) in message[0], message[0]

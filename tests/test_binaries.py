"""The binaries end to end: a tiny train + evaluate run, and clean one-line errors on bad input."""
import json
import os
import shutil
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import ROOT, run_binary

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


def _bad_cases(trained, tmp):
    not_trained = os.path.join(tmp, "empty_dir")
    os.makedirs(not_trained, exist_ok=True)
    a_file = os.path.join(tmp, "a_file")
    open(a_file, "w").close()
    out = f"--output_dir={os.path.join(tmp, 'out')}"
    corrupt_best, wrong_arch, bad_settings, corrupt_ckpt = (os.path.join(tmp, n) for n in (
        "corrupt_best", "wrong_arch", "bad_settings", "corrupt_ckpt"))
    for d in (corrupt_best, wrong_arch, bad_settings, corrupt_ckpt):
        if not os.path.exists(d):
            shutil.copytree(trained, d)
    with open(os.path.join(corrupt_best, "best", "weights.index"), "wb") as f:
        f.write(b"\x00garbage" * 10)
    for d, change in ((wrong_arch, {"architecture": "ntm_bfgs_v9"}), (bad_settings, {"layers": "abc"})):
        record = json.load(open(os.path.join(d, "optimizer.json")))
        record["optimizer"].update(change)
        json.dump(record, open(os.path.join(d, "optimizer.json"), "w"))
    for name in os.listdir(os.path.join(corrupt_ckpt, "checkpoints")):
        if name.endswith(".index"):
            with open(os.path.join(corrupt_ckpt, "checkpoints", name), "wb") as f:
                f.write(b"not a checkpoint")
    train = ["l2l_train", "--save_path=" + os.path.join(tmp, "fresh")]
    art = _tiny_art_files(tmp)
    return {
        **_neural_art_cases(train, art, trained, out),
        "export without export_dir": (["l2l_export", f"--path={trained}"], "export_dir"),
        "export missing path": (["l2l_export", "--path=/no/such/optimizer", f"--export_dir={tmp}/e"], "/no/such"),
        "benchmark bad sizes": (["l2l_benchmark", "--sizes=abc", f"--output={tmp}/b.json"], "sizes"),
        "benchmark zero repeats": (["l2l_benchmark", "--repeats=0", f"--output={tmp}/b.json"], "repeats"),
        "benchmark unknown section": (["l2l_benchmark", "--benchmarks=speed", f"--output={tmp}/b.json"], "benchmarks"),
        "benchmark without mnist": (["l2l_benchmark", "--benchmarks=memory", f"--data_dir={tmp}",
                                     f"--output={tmp}/b.json"], "mnist"),
        "benchmark markdown output": (["l2l_benchmark", f"--output={tmp}/b.md"], "markdown"),
        "bad gradient checkpointing": (train + ["--gradient_checkpointing=half"], "gradient_checkpointing"),
        "checkpoint segment over unroll": (train + ["--unroll_length=5", "--num_steps=10",
                                                    "--gradient_checkpointing=6"], "gradient_checkpointing"),
        "visualize bad coordinates": (["l2l_visualize", f"--path={trained}", f"--output_dir={tmp}/v",
                                       "--coordinates=a,b"], "coordinates"),
        "negative seed": (train + ["--seed=-1"], "seed"),
        "zero learning rate": (train + ["--learning_rate=0"], "learning_rate"),
        "zero clip norm": (train + ["--clip_norm=0"], "clip_norm"),
        "zero output scale": (train + ["--output_scale=0"], "output_scale"),
        "unknown preprocessing": (train + ["--preprocess=bogus"], "preprocess"),
        "negative max update": (train + ["--max_update=-1"], "max_update"),
        "zero unroll": (train + ["--unroll_length=0"], "unroll_length"),
        "zero evaluation period": (train + ["--evaluation_period=0"], "evaluation_period"),
        "zero skips": (train + ["--max_consecutive_skips=0"], "max_consecutive_skips"),
        "non-numeric loss weights": (train + ["--loss_weights=1,x"], "loss_weights"),
        "unknown mix activation": (train + ["--problem=mnist_mix", "--mix_activations=swish"], "mix_activations"),
        "resume corrupt checkpoint": (["l2l_train", f"--save_path={corrupt_ckpt}", "--resume", *TINY_TRAIN],
                                      "cannot resume"),
        "zero grid density": (["l2l_evaluate", "--lr_grid_per_decade=0", out], "lr_grid_per_decade"),
        "negative tuning problems": (["l2l_evaluate", "--num_tuning_problems=-1", out], "num_tuning_problems"),
        "corrupt weights": (["l2l_evaluate", f"--path={corrupt_best}", out], "corrupt"),
        "foreign architecture": (["l2l_evaluate", f"--path={wrong_arch}", out], "architecture"),
        "invalid settings": (["l2l_evaluate", f"--path={bad_settings}", out], "invalid LSTM optimizer settings"),
        "unknown problem": (["l2l_train", "--problem=imagenet", "--save_path=x"], "problem"),
        "zero epochs": (["l2l_train", "--num_epochs=0", "--save_path=x"], "num_epochs"),
        "negative steps": (["l2l_train", "--num_steps=-5", "--save_path=x"], "num_steps"),
        "missing save_path": (["l2l_train"], "save_path"),
        "steps not multiple of unroll": (["l2l_train", "--num_steps=50", "--save_path=" + os.path.join(tmp, "s1")],
                                         "multiple of unroll_length"),
        "bad layers": (["l2l_train", "--lstm_layers=20,x", "--save_path=" + os.path.join(tmp, "s2")], "lstm_layers"),
        "bad loss weights": (["l2l_train", "--loss_weights=1,2", "--save_path=" + os.path.join(tmp, "s3")],
                             "loss_weights"),
        "save_path is a file": (["l2l_train", f"--save_path={a_file}"], "not a directory"),
        "existing run without resume": (["l2l_train", f"--save_path={trained}"], "--resume"),
        "resume other architecture": (["l2l_train", f"--save_path={trained}", "--resume", "--lstm_layers=7",
                                       *TINY_TRAIN], "cannot resume"),
        "positional argument": (["l2l_train", "--save_path=x", "oops"], "positional"),
        "missing path": (["l2l_evaluate", "--path=/no/such/dir", out], "--path"),
        "L2L without path": (["l2l_evaluate", "--optimizer=L2L", out], "--path"),
        "not a trained dir": (["l2l_evaluate", f"--path={not_trained}", out], "not a trained optimizer directory"),
        "zero problems": (["l2l_evaluate", "--num_problems=0", out], "num_problems"),
        "inverted grid": (["l2l_evaluate", "--lr_grid_min=1", "--lr_grid_max=0.1", out], "lr_grid_min"),
        "unknown optimizer": (["l2l_evaluate", "--optimizer=lbfgs", out], "optimizer"),
        "compare without a name": (["l2l_evaluate", f"--compare={trained}", out], "--compare"),
        "compare missing path": (["l2l_evaluate", "--compare=x=/no/such/dir", out], "--compare"),
        "compare repeated name": (["l2l_evaluate", f"--compare=x={trained},x={trained}", out], "--compare"),
        "missing output_dir": (["l2l_evaluate"], "output_dir"),
        "missing data dir": (["l2l_train", "--problem=mnist", "--data_dir=/no/such/data", "--save_path=x"],
                             "data_dir"),
        "data dir without mnist": (["l2l_evaluate", "--problem=mnist", f"--data_dir={not_trained}", out],
                                   "mnist.npz"),
        "bad hidden sizes": (["l2l_evaluate", "--problem=mnist", f"--data_dir={FIXTURE}", "--hidden_sizes=20,0",
                              out], "hidden_sizes"),
        "unknown activation": (["l2l_train", "--problem=mnist", "--activation=swish", "--save_path=x"],
                               "activation"),
        "mnist flag on quadratic": (["l2l_evaluate", "--hidden_sizes=40", out], "does not apply"),
        "corrupt data file": (["l2l_evaluate", "--problem=mnist", f"--data_dir={a_file}", out],
                              "not a readable .npz"),
        "heldout labels on cifar5": (["l2l_evaluate", "--problem=cifar5", "--labels=heldout",
                                      f"--data_dir={CIFAR_FIXTURE}", out], "heldout"),
        "labels on quadratic": (["l2l_evaluate", "--labels=heldout", out], "--labels"),
        "data dir without cifar": (["l2l_evaluate", "--problem=cifar10", f"--data_dir={not_trained}", out],
                                   "cifar-10-batches-py"),
        "bad param groups": (["l2l_train", "--param_groups=conv", "--save_path=" + os.path.join(tmp, "s4")],
                             "NAME=REGEX"),
        "bad group regex": (["l2l_train", "--param_groups=conv=(", "--save_path=" + os.path.join(tmp, "s5")],
                            "regular expression"),
        "parameter in no group": (["l2l_train", "--problem=cifar2", f"--data_dir={CIFAR_FIXTURE}", "--batch_size=8",
                                   "--param_groups=conv=^conv", "--save_path=" + os.path.join(tmp, "s6")],
                                  "belongs to no group"),
        "init_from missing": (train + ["--init_from=/no/such/optimizer"], "/no/such/optimizer"),
        "init_from with architecture flag": (train + [f"--init_from={trained}", "--lstm_layers=7"],
                                             "drop --lstm_layers"),
        "cpu replicas without mirrored": (["l2l_train", "--cpu_replicas=2", "--save_path=" + os.path.join(tmp, "s7")],
                                          "--cpu_replicas"),
        "multi worker without TF_CONFIG": (["l2l_train", "--strategy=multi_worker",
                                            "--save_path=" + os.path.join(tmp, "s8")], "TF_CONFIG"),
        "meta batch not divisible by replicas": (["l2l_train", "--strategy=mirrored", "--cpu_replicas=3",
                                                  "--meta_batch_size=8", "--save_path=" + os.path.join(tmp, "s9")],
                                                 "multiple of the 3 replicas"),
    }


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


def _neural_art_cases(train, art, trained, out):
    data = [f"--style_image={art['style']}", f"--content_cifar={art['cifar']}"]
    neural = ["l2l_neural_art", f"--path={trained}", out]
    return {
        "art flag on quadratic": (train + ["--image_size=32"], "does not apply"),
        "art unknown layer": (train + ["--problem=neural_art", "--style_layers=block9_conv1"], "style_layers"),
        "art zero weights": (train + ["--problem=neural_art", "--content_weight=0", "--style_weight=0"],
                             "cannot both be 0"),
        "art tiny image": (train + ["--problem=neural_art", "--image_size=4"], "image_size"),
        "art missing weights file": (train + ["--problem=neural_art", *data, "--vgg_weights=/no/such/vgg.npz"],
                                     "does not exist"),
        "art weights lack a layer": (train + ["--problem=neural_art", *data, f"--vgg_weights={art['vgg']}"],
                                     "lacks layer block1_conv2"),
        "art no content": (train + ["--problem=neural_art", f"--style_image={art['style']}"], "content images"),
        "art stylize without content image": (neural + ["--mode=stylize"], "content_image"),
        "art unknown baseline": (neural + ["--baselines=lbfgs"], "baselines"),
        "art evaluate without content": (neural + [f"--style_image={art['style']}"], "content images"),
    }


@pytest.fixture(scope="module")
def bad_runs(trained, tmp_path_factory):
    tmp = str(tmp_path_factory.mktemp("bad"))
    cases = _bad_cases(trained, tmp)
    with ThreadPoolExecutor(max_workers=4) as pool:
        procs = dict(zip(cases, pool.map(lambda c: run_binary(*c[0]), cases.values())))
    return {name: (procs[name], cases[name][1]) for name in cases}


BAD_CASES = [
    "export without export_dir", "export missing path", "benchmark bad sizes", "benchmark zero repeats",
    "benchmark unknown section", "benchmark without mnist", "benchmark markdown output", "bad gradient checkpointing",
    "checkpoint segment over unroll",
    "visualize bad coordinates",
    "negative seed", "zero learning rate", "zero clip norm", "zero output scale", "unknown preprocessing",
    "negative max update", "zero unroll", "zero evaluation period", "zero skips", "non-numeric loss weights",
    "unknown mix activation", "resume corrupt checkpoint", "zero grid density", "negative tuning problems",
    "corrupt weights", "foreign architecture", "invalid settings",

    "unknown problem", "zero epochs", "negative steps", "missing save_path", "steps not multiple of unroll",
    "bad layers", "bad loss weights", "save_path is a file", "existing run without resume",
    "resume other architecture", "positional argument", "missing path", "L2L without path", "not a trained dir",
    "zero problems", "inverted grid", "unknown optimizer", "missing output_dir", "missing data dir",
    "compare without a name", "compare missing path", "compare repeated name",
    "data dir without mnist", "bad hidden sizes", "unknown activation", "mnist flag on quadratic",
    "corrupt data file",
    "heldout labels on cifar5", "labels on quadratic", "data dir without cifar", "bad param groups",
    "bad group regex", "parameter in no group", "init_from missing", "init_from with architecture flag",
    "cpu replicas without mirrored", "multi worker without TF_CONFIG",
    "meta batch not divisible by replicas",
    "art flag on quadratic", "art unknown layer", "art zero weights", "art tiny image", "art missing weights file",
    "art weights lack a layer", "art no content", "art stylize without content image", "art unknown baseline",
    "art evaluate without content"]


def test_the_battery_covers_every_case(bad_runs):
    assert sorted(BAD_CASES) == sorted(bad_runs) and len(BAD_CASES) >= 30


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_input_gives_a_one_line_error(bad_runs, case):
    proc, expected = bad_runs[case]
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert expected in proc.stderr, proc.stderr[-2000:]

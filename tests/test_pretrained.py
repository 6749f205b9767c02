"""Bundled pretrained optimizers: name lookup everywhere, model cards, and package data that
both wheels and sdists ship (checked by building and installing the package)."""
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile

import numpy as np
import pytest

from conftest import ROOT
from l2l_tf import LearnedOptimizer, load_optimizer, loading, pretrained
from l2l_tf.errors import UserError

MAX_BUNDLE_BYTES = 1_000_000


@pytest.mark.parametrize("name", pretrained.available())
def test_bundled_optimizer_has_a_model_card_is_small_and_loads(name):
    """Every bundled optimizer (`pretrained.available()`) has a model card, stays small and loads."""
    path = pretrained.bundled_path(name)
    card = pretrained.model_card(name)
    for section in pretrained.MODEL_CARD_SECTIONS:
        assert re.search(rf"^#+\s*{re.escape(section)}", card, re.MULTILINE | re.IGNORECASE), section
    files = [f for f in glob.glob(os.path.join(path, "**"), recursive=True) if os.path.isfile(f)]
    shipped = {os.path.relpath(f, path) for f in files}
    assert {"optimizer.json", "MODEL_CARD.md", os.path.join("best", "weights.index")} <= shipped
    assert all(f in ("optimizer.json", "MODEL_CARD.md") or f.startswith(os.path.join("best", "weights."))
               for f in shipped), f"files that would not be installed: {sorted(shipped)}"
    assert sum(os.path.getsize(f) for f in files) < MAX_BUNDLE_BYTES
    assert load_optimizer(name).meta_variables


def bundle(trained: str, root: str, name: str) -> str:
    """Copies a trained optimizer into `root/name` the way l2l_tf/pretrained/README.md says."""
    target = os.path.join(root, name)
    os.makedirs(os.path.join(target, "best"))
    shutil.copy(os.path.join(trained, "optimizer.json"), target)
    for f in glob.glob(os.path.join(trained, "best", "weights.*")):
        shutil.copy(f, os.path.join(target, "best"))
    with open(os.path.join(target, "MODEL_CARD.md"), "w") as f:
        f.write("\n".join(f"## {s}\ntest fixture\n" for s in pretrained.MODEL_CARD_SECTIONS))
    return target


def test_a_name_resolves_only_when_no_directory_has_it(tiny_trained, tiny_export, tmp_path, monkeypatch):
    root = tmp_path / "bundled"
    bundle(tiny_trained, str(root), "tiny")
    (root / "not_an_optimizer").mkdir()
    (root / ".hidden").mkdir()
    shutil.copy(os.path.join(tiny_trained, "optimizer.json"), root / ".hidden")
    monkeypatch.setattr(pretrained, "PRETRAINED_ROOT", str(root))
    assert pretrained.available() == ["tiny"] and pretrained.model_card("tiny").startswith("## Training problem")

    source = loading.resolve("tiny")
    assert (source.kind, source.name, source.describe()) == ("trained", "tiny", "bundled:tiny")
    for a, b in zip(load_optimizer("tiny").meta_variables, load_optimizer(tiny_trained).meta_variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    wrapped = LearnedOptimizer("tiny")
    assert wrapped.source == "tiny" and wrapped.get_config()["provenance"]["source"] == "bundled:tiny"

    # A local directory of the same name wins over the bundled one.
    monkeypatch.chdir(tmp_path)
    shutil.copytree(tiny_export, tmp_path / "tiny")
    assert loading.resolve("tiny") == loading.Source("export", str(tmp_path / "tiny"), None)

    with pytest.raises(UserError, match=r"bundled: tiny\)"):
        load_optimizer("nonesuch")
    with pytest.raises(UserError, match="not a bundled pretrained optimizer"):
        pretrained.bundled_path("../tiny")
    (tmp_path / "a_file").write_text("")
    with pytest.raises(UserError, match="is a file"):
        load_optimizer("a_file")


@pytest.mark.slow
def test_installed_package_ships_and_finds_bundled_optimizers(tiny_trained, tmp_path):
    """Builds a wheel and an sdist of a copy of the repository with one bundled optimizer,
    installs the wheel, and runs the installed l2l_evaluate with --path=<bundled name>."""
    src = tmp_path / "src"
    src.mkdir()
    for f in ("setup.py", "MANIFEST.in", "README.md"):
        shutil.copy(os.path.join(ROOT, f), src)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(os.path.join(ROOT, "bin"), src / "bin", ignore=ignore)
    shutil.copytree(os.path.join(ROOT, "l2l_tf"), src / "l2l_tf", ignore=ignore)
    target = bundle(tiny_trained, str(src / "l2l_tf" / "pretrained"), "tiny")
    os.makedirs(os.path.join(target, "checkpoints"))  # training leftovers that must not ship
    open(os.path.join(target, "checkpoints", "ckpt-1.index"), "w").close()

    expected = {"l2l_tf/pretrained/README.md", "l2l_tf/pretrained/tiny/optimizer.json",
                "l2l_tf/pretrained/tiny/MODEL_CARD.md", "l2l_tf/pretrained/tiny/best/weights.index",
                "l2l_tf/pretrained/tiny/best/weights.data-00000-of-00001"}
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    dist = tmp_path / "dist"
    build = subprocess.run(pip + ["wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(dist),
                                  str(src)], capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr[-3000:]
    (wheel,) = glob.glob(str(dist / "*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    assert expected <= names and not any("checkpoints" in n for n in names)
    sdist = subprocess.run([sys.executable, "setup.py", "-q", "sdist", "-d", str(dist)], cwd=src,
                           capture_output=True, text=True, timeout=300)
    assert sdist.returncode == 0, sdist.stderr[-3000:]
    (archive,) = glob.glob(str(dist / "*.tar.gz"))
    members = {m.split("/", 1)[1] for m in tarfile.open(archive).getnames() if "/" in m}
    assert expected <= members and not any("checkpoints" in m for m in members)

    installed = tmp_path / "installed"
    install = subprocess.run(pip + ["install", "--no-deps", "--no-index", "--target", str(installed), wheel],
                             capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stderr[-3000:]
    out = tmp_path / "eval"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(installed))
    proc = subprocess.run([sys.executable, str(installed / "bin" / "l2l_evaluate.py"), "--path=tiny",
                           "--optimizer=L2L", "--num_steps=10", "--num_problems=2", f"--output_dir={out}"],
                          capture_output=True, text=True, timeout=300, env=env, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.load(open(out / "results.json"))
    assert results["learned_optimizer_bundled_name"] == "tiny"
    assert results["learned_optimizer_path"] == str(installed / "l2l_tf" / "pretrained" / "tiny")
    # The programs are commands too; the benchmark harness belongs to a source checkout.
    for command in ("l2l-train", "l2l-evaluate", "l2l-export", "l2l-neural-art", "l2l-visualize", "l2l-benchmark"):
        assert os.access(installed / "bin" / command, os.X_OK), command
    export = subprocess.run([sys.executable, str(installed / "bin" / "l2l-export"), "--path=tiny",
                             f"--export_dir={tmp_path / 'export'}"], capture_output=True, text=True, timeout=300,
                            env=env, cwd=str(tmp_path))
    assert export.returncode == 0 and (tmp_path / "export" / "saved_model.pb").exists(), export.stderr[-3000:]
    bench = subprocess.run([sys.executable, str(installed / "bin" / "l2l-benchmark")], capture_output=True, text=True,
                           timeout=300, env=env, cwd=str(tmp_path))
    assert bench.returncode == 2 and bench.stderr.strip().splitlines()[-1].startswith(
        "l2l-benchmark: error: the benchmark harness is part of a source checkout"), bench.stderr[-2000:]


@pytest.mark.parametrize("name", ["mnist", "mnist_cosine", "mnist_warmup", "mnist_es", "mnist_mix", "mnist_paper", "mnist_untruncated"])
def test_bundled_mnist_optimizer_trains_the_mlp_it_was_meta_trained_on(name):
    """The bundled MNIST optimizers on the real-data fixture: 100 steps of the default MLP."""
    import numpy as np

    from l2l_tf import evaluation
    from l2l_tf.problems.mnist import MNISTFamily

    family = MNISTFamily(data_dir=os.path.join(ROOT, "testdata", "mnist_subset.npz"))
    curves = evaluation.run_trajectories(family, load_optimizer(name),
                                         evaluation.sample_problems(family, "test", 0, 2), 100)
    assert curves[0].mean() > 2.0 and curves[-1].mean() < 0.8 and np.all(np.isfinite(curves))

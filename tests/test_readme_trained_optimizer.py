"""README's "Use a trained optimizer" section: every code block runs as written.

The blocks run in order, each in a fresh process, in a scratch directory laid out like the
repository after the Quick start (runs/quadratic holds the tiny test optimizer; bin/ and
testdata/ point into the repository), with the test interpreter first on PATH as `python`.
Python blocks that do not mention l2l_tf run with l2l_tf unimportable, which is the claim.
"""
import pytest
import os
import re
import shutil
import subprocess
import sys


from conftest import BLOCK_L2L_TF, ROOT, run_python

pytestmark = pytest.mark.slow  # runs binaries or Python in subprocesses

SECTION = "## Use a trained optimizer"


def section_blocks():
    text = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    start = text.index(SECTION)
    end = text.find("\n## ", start + len(SECTION))
    section = text[start:end if end >= 0 else None]
    return re.findall(r"^```(\w+)\n(.*?)^```", section, re.MULTILINE | re.DOTALL)


def test_the_section_has_keras_export_and_raw_examples():
    blocks = section_blocks()
    languages = [lang for lang, _ in blocks]
    assert languages.count("python") >= 3 and "sh" in languages
    assert any("LearnedOptimizer" in code and "model.fit" in code for _, code in blocks)
    assert any("load_model" in code for _, code in blocks)
    assert any("l2l_export" in code for lang, code in blocks if lang == "sh")
    assert any("tf.saved_model.load" in code and "l2l_tf" not in code for _, code in blocks)


def test_readme_code_runs(tiny_trained, tmp_path):
    work = tmp_path / "repo"
    work.mkdir()
    shutil.copytree(tiny_trained, work / "runs" / "quadratic")
    os.symlink(os.path.join(ROOT, "bin"), work / "bin")
    os.symlink(os.path.join(ROOT, "testdata"), work / "testdata")
    path = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
    for i, (lang, code) in enumerate(section_blocks()):
        if lang == "sh":
            proc = subprocess.run(["bash", "-euo", "pipefail", "-c", code], cwd=work, capture_output=True, text=True,
                                  timeout=300, env=dict(os.environ, PATH=path, TF_CPP_MIN_LOG_LEVEL="2"))
        elif lang == "python":
            if "l2l_tf" in code:
                proc = run_python(code, cwd=str(work), env={"PYTHONPATH": ROOT})
            else:
                proc = run_python(BLOCK_L2L_TF + code, cwd=str(work))
        else:
            continue
        assert proc.returncode == 0, f"block {i} ({lang}):\n{code}\n{proc.stderr[-3000:]}"
    assert (work / "mnist_l2l.keras").exists()
    assert (work / "runs" / "quadratic" / "export" / "saved_model.pb").exists()

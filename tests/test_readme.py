"""The README's Python examples run as written (in a temporary directory)."""
import os
import re

import pytest

from conftest import ROOT

pytestmark = pytest.mark.slow  # runs binaries or Python in subprocesses


def python_blocks():
    text = open(os.path.join(ROOT, "README.md")).read()
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


@pytest.mark.parametrize("marker", ["KerasProblem("])
def test_readme_example_runs(marker, tmp_path, monkeypatch):
    blocks = [b for b in python_blocks() if marker in b]
    assert blocks, f"README has no python example using {marker}"
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(blocks[0], "README.md", "exec"), namespace)  # noqa: S102 - our own documentation
    assert os.path.exists(tmp_path / "runs" / "toy" / "best" / "weights.index")

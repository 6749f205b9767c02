"""README's "Library layout" block matches the tree: every entry exists, every module is listed."""
import os
import re

from conftest import ROOT


def _layout_entries() -> list[str]:
    readme = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    section = readme.split("## Library layout", 1)[1]
    block = section.split("```", 2)[1]
    entries, parents = [], []
    for line in block.splitlines():
        match = re.match(r"^( *)(\S+)", line)
        if not match:
            continue
        depth = len(match.group(1)) // 2
        parents = parents[:depth]
        path = "".join(parents) + match.group(2)
        entries.append(path)
        if path.endswith("/"):
            parents.append(match.group(2))
    return entries


def test_every_entry_of_the_layout_exists():
    entries = _layout_entries()
    assert len(entries) > 40
    for entry in entries:
        assert os.path.exists(os.path.join(ROOT, entry)), f"README lists {entry}, which does not exist"


def test_every_module_of_the_library_is_in_the_layout():
    listed = set(_layout_entries())
    for folder, _, names in os.walk(os.path.join(ROOT, "l2l_tf")):
        rel = os.path.relpath(folder, ROOT) + "/"
        if "__pycache__" in rel or rel.startswith("l2l_tf/pretrained/"):
            continue
        for name in names:
            if name.endswith((".py", ".cc")) and name != "__init__.py" or rel == "l2l_tf/cli/" and name == "__init__.py":
                assert rel + name in listed, f"{rel + name} is missing from README's Library layout"


def test_the_programs_define_and_check_their_flags_without_loading_tensorflow():
    """A bad command line is refused before TensorFlow loads: the programs' modules, the problem
    and architecture registries and the packages' namespaces import without it."""
    import subprocess
    import sys

    for program in ("train", "evaluate", "export", "visualize", "neural_art"):
        code = ("import sys\n"
                "import l2l_tf, l2l_tf.optimizers, l2l_tf.problems\n"
                f"import l2l_tf.cli.{program}\n"
                "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'TensorFlow loaded'\n")
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
        assert proc.returncode == 0, (program, proc.stderr[-2000:])

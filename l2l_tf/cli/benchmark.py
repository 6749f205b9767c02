"""`l2l-benchmark`: the benchmark harness of a source checkout (benchmarks/harness/cli.py).

The harness measures this library on this machine and writes benchmarks/results.*; it lives
in the repository, not in the wheel. An editable install (`pip install -e .`, `make install`)
finds it beside the package; an installed wheel says so in one line.
"""
from __future__ import annotations

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run() -> None:
    if not os.path.isfile(os.path.join(ROOT, "benchmarks", "harness", "cli.py")):
        from l2l_tf.cli import fail

        fail("the benchmark harness is part of a source checkout (benchmarks/harness/): run bin/l2l_benchmark.py "
             "there, or l2l-benchmark from an editable install (pip install -e .)")
    sys.path.insert(0, ROOT)
    from benchmarks.harness.cli import run as harness

    harness()

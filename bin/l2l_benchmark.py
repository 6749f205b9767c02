#!/usr/bin/env python3
"""Benchmarks: meta-training speed, update cost, memory, and the Keras wrapper (see benchmarks/harness/cli.py).

    python bin/l2l_benchmark.py --data_dir=../shared/data --output=benchmarks/results.json
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from benchmarks.harness.cli import run  # noqa: E402

if __name__ == "__main__":
    run()

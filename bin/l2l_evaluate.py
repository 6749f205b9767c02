#!/usr/bin/env python3
"""Evaluates a trained optimizer against tuned hand-designed baselines on fresh test problems. (the program: l2l_tf/cli/evaluate.py)."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from l2l_tf.cli.evaluate import run  # noqa: E402

if __name__ == "__main__":
    run()

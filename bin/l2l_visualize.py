#!/usr/bin/env python3
"""Plots what a trained optimizer does: per-coordinate update histories and response curves. (the program: l2l_tf/cli/visualize.py)."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from l2l_tf.cli.visualize import run  # noqa: E402

if __name__ == "__main__":
    run()

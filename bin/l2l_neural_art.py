#!/usr/bin/env python3
"""Neural art with a trained optimizer: evaluate it against tuned baselines, or style one image. (the program: l2l_tf/cli/neural_art.py)."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from l2l_tf.cli.neural_art import run  # noqa: E402

if __name__ == "__main__":
    run()

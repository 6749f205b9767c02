#!/usr/bin/env python3
"""Meta-trains a coordinatewise LSTM optimizer on a problem family. (the program: l2l_tf/cli/train.py)."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from l2l_tf.cli.train import run  # noqa: E402

if __name__ == "__main__":
    run()

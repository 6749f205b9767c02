#!/usr/bin/env python3
"""Exports a trained optimizer as a self-contained SavedModel (usable without l2l_tf). (the program: l2l_tf/cli/export.py)."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from l2l_tf.cli.export import run  # noqa: E402

if __name__ == "__main__":
    run()

"""Shared test set-up: quiet TensorFlow, the repository on sys.path, helpers to run binaries."""
import os
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


def run_binary(name: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """Runs bin/<name>.py with the test interpreter; returns the completed process."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([sys.executable, os.path.join(ROOT, "bin", f"{name}.py"), *args],
                          capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)

"""Custom TensorFlow kernels (C++ source, built on first use).

The kernel choice ($L2L_TF_LSTM_KERNEL) is read here, without TensorFlow: binaries check it
before any work, and a bad command line should not wait for TensorFlow to load
(fused_lstm, which builds and runs the kernel, imports TensorFlow).
"""
import os

from l2l_tf.errors import UserError

ENV_CHOICE = "L2L_TF_LSTM_KERNEL"
CHOICES = ("auto", "fused", "keras")


class KernelUnavailable(UserError):
    """The fused kernel could not be built or loaded, or $L2L_TF_LSTM_KERNEL is invalid (the message says why)."""


def choice() -> str:
    """The kernel choice from $L2L_TF_LSTM_KERNEL: auto (default), fused or keras."""
    value = os.environ.get(ENV_CHOICE, "auto").strip().lower() or "auto"
    if value not in CHOICES:
        raise KernelUnavailable(f"${ENV_CHOICE} must be one of {CHOICES}, got {value!r}")
    return value


def check_environment() -> None:
    """Validates $L2L_TF_LSTM_KERNEL now (and with "fused", builds the kernel now).

    For binaries, before any work: raised later, while a tf.function traces, the error would
    reach the user wrapped in TensorFlow's tracing traceback.
    """
    if choice() == "fused":
        from l2l_tf.kernels import fused_lstm

        fused_lstm.available()

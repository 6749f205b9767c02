"""What every absl binary shares: quiet TensorFlow, one-line errors, flag parsing helpers.

Binaries call `l2l_tf.cli.run(main)` instead of `absl.app.run(main)`. A `UserError` (bad flag
value, missing file, incompatible checkpoint) then ends the program with one line on
stderr, `<program>: error: <message>`, and exit code 2, never a traceback. Flag parsing
errors are absl's own one-line "FATAL Flags parsing error" with exit code 1.
"""
from __future__ import annotations

import os
import sys
from typing import Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags, logging  # noqa: E402

from l2l_tf.errors import UserError  # noqa: E402

EXIT_USER_ERROR = 2


def fail(message: str) -> None:
    """Prints a one-line error and exits non-zero."""
    prog = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "l2l"
    print(f"{prog}: error: {message}", file=sys.stderr)
    sys.exit(EXIT_USER_ERROR)


def run(main: Callable) -> None:
    """absl.app.run with user errors reported as one line (and INFO logs shown for progress)."""

    def wrapped(argv):
        if len(argv) > 1:
            fail(f"unexpected positional arguments {argv[1:]}; all settings are --flags")
        logging.set_verbosity(logging.INFO)
        try:
            from l2l_tf.kernels import fused_lstm  # after TF_CPP_MIN_LOG_LEVEL is set

            fused_lstm.check_environment()
            return main(argv)
        except UserError as e:
            fail(str(e))
        except KeyboardInterrupt:
            fail("interrupted")

    app.run(wrapped)


def parse_int_list(text: str, name: str) -> tuple[int, ...]:
    """'20,20' -> (20, 20), with a clear error naming the flag."""
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise UserError(f"--{name} must be comma-separated integers, got {text!r}") from None
    if not values or any(v <= 0 for v in values):
        raise UserError(f"--{name} must list positive integers, got {text!r}")
    return values


def parse_float_list(text: str, name: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise UserError(f"--{name} must be comma-separated numbers, got {text!r}") from None


def validate_flags_nonempty(*names: str) -> None:
    """Registers validators that reject empty string flags with absl's one-line error."""
    for name in names:
        flags.register_validator(name, lambda v: bool(v and str(v).strip()), message=f"--{name} must not be empty")

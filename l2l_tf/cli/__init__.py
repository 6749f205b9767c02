"""What every absl binary shares: quiet TensorFlow, one-line errors, flag parsing helpers.

Binaries call `l2l_tf.cli.run(main)` instead of `absl.app.run(main)`. Bad input then ends the
program with one line on stderr, `<program>: error: <message>`, and exit code 2, never a
traceback: a flag absl rejects while parsing (unknown flag, a value out of bounds, a failed
validator such as an unwritable output path), a `UserError` raised by the program (missing
file, incompatible checkpoint), and an operating-system error on a file (a full disk, a
directory that became read-only), which is reported with its path and reason.
"""
from __future__ import annotations

import os
import sys
from typing import Any, Callable, Sequence

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags, logging  # noqa: E402

from l2l_tf.errors import UserError  # noqa: E402
from l2l_tf.parsing import parse_float_list, parse_int_list  # noqa: E402,F401 - the binaries' helpers

EXIT_USER_ERROR = 2


def fail(message: str) -> None:
    """Prints a one-line error and exits non-zero."""
    prog = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "l2l"
    print(f"{prog}: error: {message}", file=sys.stderr)
    sys.exit(EXIT_USER_ERROR)


def _parse_flags(argv: list[str]) -> list[str]:
    """absl's flag parsing, with its errors (two lines and exit code 1) as our one line."""
    try:
        return flags.FLAGS(argv)
    except flags.Error as e:
        fail(str(e).splitlines()[0] if str(e) else type(e).__name__)


#: TensorFlow errors that come from the filesystem (a full disk, permissions), reported in one line.
def _filesystem_op_error(e: Exception) -> str | None:
    import tensorflow as tf

    if not isinstance(e, (tf.errors.ResourceExhaustedError, tf.errors.PermissionDeniedError)):
        return None
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    if text.startswith("{{") and "}}" in text:  # "{{function_node ...}} PATH; reason"
        text = text.split("}}", 1)[1].strip()
    return text.replace("; ", ": ", 1)


def run(main: Callable) -> None:
    """absl.app.run with user errors reported as one line (and INFO logs shown for progress)."""

    def wrapped(argv):
        if len(argv) > 1:
            fail(f"unexpected positional arguments {argv[1:]}; all settings are --flags")
        logging.set_verbosity(logging.INFO)
        try:
            from l2l_tf import kernels  # TensorFlow loads only if the kernel must be built now

            kernels.check_environment()
            return main(argv)
        except UserError as e:
            fail(str(e))
        except OSError as e:
            from l2l_tf.files import describe_os_error

            fail(describe_os_error(e))
        except KeyboardInterrupt:
            fail("interrupted")
        except Exception as e:  # noqa: BLE001 - only filesystem errors are turned into a line
            message = _filesystem_op_error(e) if "tensorflow" in sys.modules else None
            if message is None:
                raise
            fail(message)

    app.run(wrapped, flags_parser=_parse_flags)


def validate_flags_nonempty(*names: str) -> None:
    """Registers validators that reject empty string flags with absl's one-line error."""
    for name in names:
        flags.register_validator(name, lambda v: bool(v and str(v).strip()), message=f"--{name} must not be empty")


def _path_validator(problem_of: Callable[[str], str | None]) -> Callable[[str | None], bool]:
    def check(value):
        if value is None or not str(value).strip():
            return True  # emptiness is the required/non-empty validators' business
        problem = problem_of(value)
        if problem:
            raise flags.ValidationError(problem)  # absl prints "flag --NAME=VALUE: <problem>"
        return True

    return check


def validate_subset(name: str, choices: Sequence[str], allow_none: bool = False) -> None:
    """Registers a validator: list flag --name must name some of `choices` (None too, if `allow_none`:
    a flag whose unset value means "the default choice"), refused while the flags are parsed."""
    flags.register_validator(name, lambda v: (allow_none and v is None) or (bool(v) and set(v) <= set(choices)),
                             message=f"--{name} must list some of {', '.join(choices)}")


def validate_parsed(name: str, parse: Callable[[str], Any]) -> None:
    """Registers a validator: a non-empty flag must be accepted by `parse` (which raises UserError).

    For list-valued string flags whose parser needs nothing else: a malformed value is refused
    while the flags are parsed, before TensorFlow loads, with the parser's own message."""
    def check(value):
        if value is None or not str(value).strip():
            return True
        try:
            parse(value)
        except UserError as e:
            raise flags.ValidationError(str(e)) from None
        return True

    flags.register_validator(name, check)


def validate_output_dirs(*names: str) -> None:
    """Registers validators: each flag (when set) must name a directory that is writable or can be created.

    Checked while the flags are parsed, so a bad path ends the program before any work."""
    from l2l_tf.files import output_dir_problem

    for name in names:
        flags.register_validator(name, _path_validator(output_dir_problem))


def validate_output_files(*names: str) -> None:
    """Registers validators: each flag (when set) must name a file that can be written."""
    from l2l_tf.files import output_file_problem

    for name in names:
        flags.register_validator(name, _path_validator(output_file_problem))


def is_optimizer_location(path: str) -> bool:
    """What every binary's --path accepts: a directory (trained run or export) or a bundled name."""
    from l2l_tf import pretrained

    return os.path.isdir(path) or pretrained.is_bundled(path)


def validate_optimizer_location(name: str = "path") -> None:
    """Registers a validator: --name (when set) is a trained optimizer directory, an export or a bundled name."""
    from l2l_tf import pretrained

    flags.register_validator(
        name, lambda p: p is None or is_optimizer_location(p),
        message=f"--{name} must be a trained optimizer directory, an export directory or a bundled pretrained "
                f"optimizer name (bundled: {', '.join(pretrained.available()) or 'none are installed'})")

"""The problem families' flags as absl flags, shared by every binary that takes `--problem`.

Importing this module first imports the modules named by `--plugin` on the command line (so
that families they register exist), then defines one absl flag per family flag
(`l2l_tf.problems.registry.FLAG_SPECS`), each with its value check as a validator. Binaries
build the chosen family with `family_from_flags(problem)`, which refuses, in one line, a
family flag given for a family that does not take it.
"""
from __future__ import annotations

import importlib
import sys
from typing import TYPE_CHECKING, Any

from absl import flags

from l2l_tf.errors import UserError

if TYPE_CHECKING:
    from l2l_tf.problems.base import ProblemFamily

FLAGS = flags.FLAGS


def plugin_modules(argv: list[str]) -> list[str]:
    """The modules of every `--plugin=MODULE` / `--plugin MODULE` in `argv`."""
    found = []
    for i, arg in enumerate(argv):
        if arg.startswith("--plugin="):
            found.append(arg.split("=", 1)[1])
        elif arg == "--plugin" and i + 1 < len(argv):
            found.append(argv[i + 1])
    return [m for m in found if m.strip()]


def load_plugins(argv: list[str]) -> None:
    """Imports the `--plugin` modules before any family flag is defined (one-line error if one fails)."""
    for module in plugin_modules(argv):
        try:
            importlib.import_module(module)
        except Exception as e:  # noqa: BLE001 - whatever a plugin raises, the user gets one line
            from l2l_tf.cli import fail

            fail(f"--plugin={module} could not be imported: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")


def _define(spec, flag_values: flags.FlagValues) -> None:
    kwargs = {"flag_values": flag_values}
    if spec.kind == "enum":
        flags.DEFINE_enum(spec.name, spec.default, list(spec.choices), spec.help, **kwargs)
    elif spec.kind == "list":
        flags.DEFINE_list(spec.name, spec.default, spec.help, **kwargs)
    elif spec.kind == "bool":
        flags.DEFINE_bool(spec.name, spec.default, spec.help, **kwargs)
    elif spec.kind == "string":
        flags.DEFINE_string(spec.name, spec.default, spec.help, **kwargs)
    else:
        bound = {} if spec.lower_bound is None else {"lower_bound": spec.lower_bound}
        define = flags.DEFINE_integer if spec.kind == "integer" else flags.DEFINE_float
        define(spec.name, spec.default, spec.help, **bound, **kwargs)
    if spec.check is not None:
        def check(value, _check=spec.check):
            problem = _check(value)
            if problem:
                raise flags.ValidationError(problem)
            return True

        flags.register_validator(spec.name, check, flag_values=flag_values)


def define_family_flags(flag_values: flags.FlagValues = FLAGS) -> None:
    """Defines every declared family flag (once) in `flag_values`."""
    from l2l_tf.problems.registry import FLAG_SPECS

    for name, spec in FLAG_SPECS.items():
        if name not in flag_values:
            _define(spec, flag_values)


def family_values(problem: str, flag_values: flags.FlagValues = FLAGS) -> dict[str, Any]:
    """{flag: value} of `problem`'s own flags."""
    from l2l_tf.problems.registry import family_spec

    return {name: flag_values[name].value for name in family_spec(problem).flags}


def given_family_flags(flag_values: flags.FlagValues = FLAGS) -> list[str]:
    """The family flags set on the command line."""
    from l2l_tf.problems.registry import FLAG_SPECS

    return [name for name in FLAG_SPECS if name in flag_values and flag_values[name].present]


def check_family_flags(problem: str, flag_values: flags.FlagValues = FLAGS) -> None:
    """Refuses, before TensorFlow loads, a family flag given on the command line that `problem` does not take."""
    from l2l_tf.problems.registry import check_flags_apply

    check_flags_apply(problem, given_family_flags(flag_values))


def family_from_flags(problem: str, flag_values: flags.FlagValues = FLAGS) -> ProblemFamily:
    """Builds `--problem`'s family from its flags; a flag of another family is a one-line error."""
    from l2l_tf.problems.registry import family_from_values

    if not isinstance(problem, str):
        raise UserError(f"--problem must be a family name, got {problem!r}")
    return family_from_values(problem, family_values(problem, flag_values), given_family_flags(flag_values))


load_plugins(sys.argv)
flags.DEFINE_multi_string("plugin", [], "Python module to import before anything else, e.g. one that registers a "
                          "problem family with l2l_tf.problems.register (repeatable).")
define_family_flags()

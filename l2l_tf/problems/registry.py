"""Problem families by name, with the command-line flags each one takes.

`register(name, factory, flags=..., settings=...)` is all a new family needs: every binary
that takes `--problem` then accepts `--problem=name`, defines the family's flags (`FlagSpec`s,
shared by name between families: `--data_dir`, `--batch_size`), and builds the family as
`factory(**settings(values))` from the values of the flags it declared. A family flag given
for a family that does not declare it is refused in one line instead of being ignored.
Families from other modules are registered by importing them; the binaries' `--plugin=MODULE`
imports a module before the flags are defined, e.g. one that calls `register`.
"""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from l2l_tf.errors import UserError
from l2l_tf.parsing import parse_int_list

if TYPE_CHECKING:  # the registry stays free of TensorFlow: flags are parsed before it loads
    from l2l_tf.problems.base import ProblemFamily

FLAG_KINDS = ("string", "integer", "float", "enum", "list", "bool")


@dataclasses.dataclass(frozen=True)
class FlagSpec:
    """A family's command-line flag: what `absl.flags.DEFINE_<kind>` needs, and a check of its value.

    `check(value)` returns None for a good value, else the problem (one line), reported while
    the flags are parsed.
    """

    name: str
    kind: str
    default: Any
    help: str
    choices: tuple[str, ...] = ()
    lower_bound: float | None = None
    check: Callable[[Any], str | None] | None = dataclasses.field(default=None, compare=False)

    def __post_init__(self):
        if self.kind not in FLAG_KINDS:
            raise ValueError(f"flag kind must be one of {FLAG_KINDS}, got {self.kind!r}")
        if self.kind == "enum" and not self.choices:
            raise ValueError(f"enum flag {self.name!r} needs choices")


@dataclasses.dataclass(frozen=True)
class FamilySpec:
    """How `--problem=name` is built: the factory, the flags it takes, and flag values -> factory kwargs."""

    factory: Callable[..., ProblemFamily]
    flags: tuple[str, ...] = ()
    settings: Callable[[Mapping[str, Any]], dict] | None = None
    #: Builds a mixture of member families (`MixtureFamily`): what per-member options (imitation
    #: teachers tuned per member) need, known before the family is built.
    mixture: bool = False

    def kwargs(self, values: Mapping[str, Any]) -> dict:
        return dict(self.settings(values)) if self.settings else {name: values[name] for name in self.flags}


#: Every family flag by name (one definition, however many families use it).
FLAG_SPECS: dict[str, FlagSpec] = {}
_FAMILIES: dict[str, FamilySpec] = {}


def declare_flag(spec: FlagSpec) -> FlagSpec:
    """Adds a family flag; declaring the same name again must declare the same flag."""
    known = FLAG_SPECS.get(spec.name)
    if known is not None and known != spec:
        raise ValueError(f"family flag --{spec.name} is already declared differently: {known}")
    FLAG_SPECS[spec.name] = spec
    return spec


def register(name: str, factory: Callable[..., ProblemFamily], flags: Sequence[FlagSpec | str] = (),
             settings: Callable[[Mapping[str, Any]], dict] | None = None, mixture: bool = False) -> None:
    """Makes `--problem=name` build `factory(**settings(values of flags))` in every binary.

    `flags` are `FlagSpec`s (or names of flags already declared, e.g. "data_dir"); without
    `settings` the factory receives each flag's value under the flag's name; `mixture` says the
    factory builds a `MixtureFamily`.
    """
    names = []
    for flag in flags:
        spec = declare_flag(flag) if isinstance(flag, FlagSpec) else FLAG_SPECS.get(flag)
        if spec is None:
            raise ValueError(f"unknown family flag {flag!r}; declare it with a FlagSpec")
        names.append(spec.name)
    _FAMILIES[name] = FamilySpec(factory, tuple(names), settings, mixture)


def problem_names() -> list[str]:
    """Names `--problem` accepts, including families registered later."""
    return sorted(_FAMILIES)


def family_spec(name: str) -> FamilySpec:
    if name not in _FAMILIES:
        raise UserError(f"unknown problem {name!r}; expected one of {problem_names()}")
    return _FAMILIES[name]


def make_family(name: str, **kwargs) -> ProblemFamily:
    """Builds the family called `name` with its settings (keyword arguments of its factory)."""
    return family_spec(name).factory(**kwargs)


def family_from_values(name: str, values: Mapping[str, Any], given: Sequence[str] = ()) -> ProblemFamily:
    """The family `name` from flag values; `given` (flags set on the command line) must all be its own."""
    check_flags_apply(name, given)
    spec = family_spec(name)
    return spec.factory(**spec.kwargs({flag: values[flag] for flag in spec.flags}))


def check_flags_apply(name: str, given: Sequence[str]) -> None:
    """Refuses a family flag in `given` that is not family `name`'s own (it would be silently ignored).

    Needs no TensorFlow: binaries call it before loading it."""
    spec = family_spec(name)
    foreign = [flag for flag in given if flag in FLAG_SPECS and flag not in spec.flags]
    if foreign:
        raise UserError(f"--{foreign[0]} does not apply to --problem={name}"
                        + (f" (its flags: {', '.join('--' + f for f in spec.flags)})" if spec.flags else ""))


# -- the built-in families ----------------------------------------------------------------------


def _positive_ints(text: str) -> str | None:
    try:
        parse_int_list(text, "value")
    except UserError:
        return f"must list positive integers, got {text!r}"
    return None


ACTIVATIONS = ("sigmoid", "relu", "tanh")
declare_flag(FlagSpec("data_dir", "string", None, "Local data: a folder with mnist.npz / cifar10.npz (Keras layout), "
                      "cifar-10-batches-py/, the neural-art files, or a prepared tensorflow-datasets data dir; default: "
                      "$L2L_DATA_DIR, then tfds.load.",
                      check=lambda p: None if p is None or __import__("os").path.exists(p)
                      else "must be an existing folder or file"))
declare_flag(FlagSpec("batch_size", "integer", 128, "Minibatch size of dataset problems.", lower_bound=1))


def _mnist(**kwargs) -> ProblemFamily:
    from l2l_tf.problems.mnist import MNISTFamily  # imported lazily: it loads a dataset
    return MNISTFamily(**kwargs)


def _quadratic(**kwargs) -> ProblemFamily:
    from l2l_tf.problems.quadratic import QuadraticFamily
    return QuadraticFamily(**kwargs)


register("quadratic", _quadratic)
register("mnist", _mnist, [
    "data_dir", "batch_size",
    FlagSpec("hidden_sizes", "string", "20", "MNIST MLP: comma-separated hidden layer widths.", check=_positive_ints),
    FlagSpec("activation", "enum", "sigmoid", "MNIST MLP: hidden activation.", choices=ACTIVATIONS)],
    settings=lambda v: {"hidden_sizes": parse_int_list(v["hidden_sizes"], "hidden_sizes"),
                        "activation": v["activation"], "batch_size": v["batch_size"], "data_dir": v["data_dir"]})


def _mnist_mix(**kwargs) -> ProblemFamily:
    from l2l_tf.problems.mixture import mnist_mixture
    return mnist_mixture(**kwargs)


def _mix_options(text: str) -> str | None:
    return next((p for p in (_positive_ints(h) for h in text.split(";")) if p), None)


register("mnist_mix", _mnist_mix, [
    "data_dir", "batch_size",
    FlagSpec("mix_hidden_sizes", "string", "20;40;20,20", "mnist_mix: hidden-layer options, ';'-separated.",
             check=_mix_options),
    FlagSpec("mix_activations", "list", list(ACTIVATIONS), "mnist_mix: activation options.",
             check=lambda v: None if v and set(v) <= set(ACTIVATIONS) else "must list sigmoid, relu and/or tanh"),
    FlagSpec("mix_log10_loss_scale", "float", 1.0, "mnist_mix: losses are scaled by 10^u, u ~ U(-x, x).",
             lower_bound=0.0)],
    settings=lambda v: {"hidden_sizes_options": [parse_int_list(h, "mix_hidden_sizes")
                                                 for h in v["mix_hidden_sizes"].split(";")],
                        "activations": v["mix_activations"], "log10_scale_range": v["mix_log10_loss_scale"],
                        "batch_size": v["batch_size"], "data_dir": v["data_dir"]}, mixture=True)


def _cifar(name: str) -> Callable[..., ProblemFamily]:
    def make(**kwargs) -> ProblemFamily:
        from l2l_tf.problems.cifar import CIFARFamily
        return CIFARFamily(name, **kwargs)
    return make


_LABELS = FlagSpec("labels", "enum", "default", "CIFAR: the problem's own classes, or 'heldout' (with cifar10): "
                   "classes 5-9, outside CIFAR-5/CIFAR-2, for training LSTM-sub.", choices=("default", "heldout"))
for _name in ("cifar10", "cifar5", "cifar2"):
    register(_name, _cifar(_name), ["data_dir", "batch_size", _LABELS])


def _cifar_mix(**kwargs) -> ProblemFamily:
    from l2l_tf.problems.cifar import cifar_mixture
    return cifar_mixture(**kwargs)


register("cifar_mix", _cifar_mix, ["data_dir", "batch_size"], mixture=True)


def _neural_art_flags() -> list[FlagSpec]:
    from l2l_tf.problems.neural_art_settings import NEURAL_ART_FLAGS
    return NEURAL_ART_FLAGS


def _neural_art(**kwargs) -> ProblemFamily:
    from l2l_tf.problems.neural_art import neural_art_family  # imported lazily: it loads VGG weights
    return neural_art_family(**kwargs)


def _neural_art_settings(values: Mapping[str, Any]) -> dict:
    from l2l_tf.problems.neural_art_settings import family_settings
    return family_settings(values)


register("neural_art", _neural_art, ["data_dir", *_neural_art_flags()], settings=_neural_art_settings)


def _general(**kwargs) -> ProblemFamily:
    from l2l_tf.problems.general import general_mixture  # imported lazily: it loads MNIST and CIFAR-10
    return general_mixture(**kwargs)


def _general_members(names) -> str | None:
    from l2l_tf.problems.general import MEMBERS

    known = [m[0] for m in MEMBERS]
    return None if names and set(names) <= set(known) else f"must list members of {known}"


register("general", _general, [
    "data_dir", "batch_size", "mix_log10_loss_scale",
    FlagSpec("general_members", "list", ["all"], "general: the training mix's members (default all: MLPs and "
             "small conv nets on MNIST and CIFAR-10, l2l_tf/problems/general.py).",
             check=lambda v: None if v == ["all"] else _general_members(v))],
    settings=lambda v: {"batch_size": v["batch_size"], "log10_scale_range": v["mix_log10_loss_scale"],
                        "data_dir": v["data_dir"], "members": None if v["general_members"] == ["all"]
                        else tuple(v["general_members"])}, mixture=True)

"""Problem families by name, as the binaries' `--problem` flag selects them."""
from __future__ import annotations

from typing import Callable

from l2l_tf.errors import UserError
from l2l_tf.problems.base import ProblemFamily
from l2l_tf.problems.quadratic import QuadraticFamily


def _mnist(**kwargs) -> ProblemFamily:
    from l2l_tf.problems.mnist import MNISTFamily  # imported lazily: it loads a dataset
    return MNISTFamily(**kwargs)


def _mnist_mix(**kwargs) -> ProblemFamily:
    from l2l_tf.problems.mixture import mnist_mixture
    return mnist_mixture(**kwargs)


def _cifar(name: str) -> Callable[..., ProblemFamily]:
    def make(**kwargs) -> ProblemFamily:
        from l2l_tf.problems.cifar import CIFARFamily
        return CIFARFamily(name, **kwargs)
    return make


def _neural_art(**kwargs) -> ProblemFamily:
    from l2l_tf.problems.neural_art import neural_art_family  # imported lazily: it loads VGG weights
    return neural_art_family(**kwargs)


_FACTORIES: dict[str, Callable[..., ProblemFamily]] = {
    "quadratic": QuadraticFamily,
    "mnist": _mnist,
    "mnist_mix": _mnist_mix,
    "cifar10": _cifar("cifar10"),
    "cifar5": _cifar("cifar5"),
    "cifar2": _cifar("cifar2"),
    "neural_art": _neural_art,
}


def problem_names() -> list[str]:
    """Names `--problem` accepts, including families registered later."""
    return sorted(_FACTORIES)


def register(name: str, factory: Callable[..., ProblemFamily]) -> None:
    """Adds a family so `--problem=name` finds it (used by later problem modules and users)."""
    _FACTORIES[name] = factory


def make_family(name: str, **kwargs) -> ProblemFamily:
    """Builds the family called `name` with its settings."""
    if name not in _FACTORIES:
        raise UserError(f"unknown problem {name!r}; expected one of {sorted(_FACTORIES)}")
    return _FACTORIES[name](**kwargs)

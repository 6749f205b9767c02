"""Optimizee problem families (quadratics; MNIST, CIFAR and neural art in later modules).

The names below are imported on first access (module `__getattr__`), so that the registry
(`l2l_tf.problems.registry`) and the binaries' flag parsing run without TensorFlow: a bad
command line is refused in a fraction of a second, before TensorFlow loads.
"""
from l2l_tf.lazy import lazy_attributes

# The registry first, TensorFlow-free: the built-in families' flags (neural_art_settings among
# them) are declared in the order it imports them.
from l2l_tf.problems.registry import make_family, problem_names, register

_LAZY = {"Problem": "base", "ProblemFamily": "base", "SPLITS": "base", "function_rng": "base",
         "KerasProblem": "keras_problem", "QuadraticFamily": "quadratic"}

__all__ = sorted([*_LAZY, "make_family", "problem_names", "register"])

__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, globals())

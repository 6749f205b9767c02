"""Optimizee problem families (quadratics; MNIST, CIFAR and neural art in later modules)."""
from l2l_tf.problems.base import Problem, ProblemFamily, SPLITS, function_rng
from l2l_tf.problems.keras_problem import KerasProblem
from l2l_tf.problems.quadratic import QuadraticFamily
from l2l_tf.problems.registry import make_family, problem_names, register

__all__ = ["KerasProblem", "Problem", "ProblemFamily", "SPLITS", "function_rng", "QuadraticFamily",
           "make_family", "problem_names", "register"]

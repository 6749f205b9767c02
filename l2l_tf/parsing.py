"""Comma-separated lists from flags and settings, with one-line errors that name the setting."""
from __future__ import annotations

from l2l_tf.errors import UserError


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

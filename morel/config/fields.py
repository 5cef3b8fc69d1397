"""Building blocks of the config schemas: the error type, the per-key documentation and range
checks stored in each dataclass field's metadata, and the limits the ranges use."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from morel.core.errors import MorelError

MAX_INT = 10**12  # every int key (seed aside) lies in [-MAX_INT, MAX_INT]; floats are finite
MAX_LAYERS, MAX_LAYER_SIZE = 16, 65_536


class ConfigError(MorelError):
    """A config file that cannot be parsed or does not fit the schema."""


def doc(text: str, check: Callable[[Any], bool] | None = None, rule: str = "") -> dict:
    """Field metadata: a one-line doc and, optionally, a check of the value and its rule."""
    return {"doc": text, "check": check, "rule": rule}


def positive(text: str) -> dict:
    """A number key that must be > 0."""
    return doc(text, lambda v: v > 0, "must be > 0")


def non_negative(text: str) -> dict:
    """A number key that must be >= 0."""
    return doc(text, lambda v: v >= 0, "must be >= 0")


def unit(text: str) -> dict:
    """A number key in [0, 1]."""
    return doc(text, lambda v: 0 <= v <= 1, "must be in [0, 1]")


def count(text: str, high: int, low: int = 1) -> dict:
    """An int key that sizes work or memory: in [low, high]."""
    return doc(text, lambda v: low <= v <= high, f"must be in [{low}, {high}]")


def sizes(text: str) -> dict:
    """Hidden layer sizes: 1 to MAX_LAYERS layers of 1 to MAX_LAYER_SIZE units."""
    return doc(text, lambda v: 1 <= len(v) <= MAX_LAYERS and all(0 < h <= MAX_LAYER_SIZE
                                                                 for h in v),
               f"must be 1 to {MAX_LAYERS} sizes in [1, {MAX_LAYER_SIZE}]")

"""Reading a number out of untrusted metadata (JSON, logs): a finite real number or nothing."""

from __future__ import annotations

import math
from typing import Any


def finite_number(value: Any) -> float | None:
    """`value` as a float when it is a finite real number (an int or float, not a bool), else
    None; an int too large for a float (JSON allows any number of digits) is None too."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None

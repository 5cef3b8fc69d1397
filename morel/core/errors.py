"""Error types (user mistakes; non-finite numbers), and the CLI wrapper that turns a user mistake
into a one-line message."""

from __future__ import annotations

import sys
from collections.abc import Callable

import torch

from morel.core.floats import reproducible_cpu_math


class MorelError(Exception):
    """A problem with the user's input (file, key, flag): the message names it and the fix."""


class NumericError(Exception):
    """A NaN or inf where a number was computed; the message names where it arose."""


def check_finite(where: str, *tensors: torch.Tensor) -> None:
    """Raise NumericError naming `where` if any of `tensors` holds a NaN or inf."""
    for tensor in tensors:
        if not bool(torch.isfinite(tensor).all()):
            raise NumericError(where)


def run_cli(main: Callable[[], None]) -> None:
    """Run a script's `main` with subnormal floats flushed and MKL's thread count fixed
    (morel.core.floats); a MorelError prints `error: ...` on stderr and exits with code 2."""
    reproducible_cpu_math()
    try:
        main()
    except MorelError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)

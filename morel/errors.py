"""One error type for user mistakes, and the CLI wrapper that turns it into a one-line message."""

from __future__ import annotations

import sys
from collections.abc import Callable


class MorelError(Exception):
    """A problem with the user's input (file, key, flag): the message names it and the fix."""


def run_cli(main: Callable[[], None]) -> None:
    """Run a script's `main`; a MorelError prints `error: ...` on stderr and exits with code 2."""
    try:
        main()
    except MorelError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)

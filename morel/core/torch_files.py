"""Reading our torch files (policies, ensembles, checkpoints) without running code from them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from morel.core.errors import MorelError


def load_torch_file(path: str | Path, kind: str, fix: str = "") -> Any:
    """torch.load(path) with weights_only=True: tensors, numbers, strings and containers only, so
    nothing in the file is run. A missing, corrupt or foreign file is a one-line MorelError
    naming the file and `kind` (plus `fix`, e.g. '; start again with --force')."""
    path = Path(path)
    if not path.is_file():
        raise MorelError(f"{path}: {kind} file not found{fix}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # unpickling errors of many types: one line, named
        raise MorelError(f"{path}: not a readable {kind} file ({type(err).__name__}): corrupt, "
                         "not a torch file, or holding objects other than tensors, numbers and "
                         f"strings (nothing in it was run){fix}") from None

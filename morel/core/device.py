"""The `device` config key: 'cpu', 'cuda', 'cuda:N' or 'auto' (CUDA when available)."""

from __future__ import annotations

import torch

from morel.core.errors import MorelError


def resolve_device(name: str) -> torch.device:
    """torch.device for a config value; a one-line error when CUDA is asked for but absent."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise MorelError(f"device '{name}' is not one of 'cpu', 'cuda', 'cuda:N', 'auto'") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise MorelError(f"device '{name}': CUDA is not available on this machine "
                             "(torch built without CUDA or no GPU); use 'cpu' or 'auto'")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise MorelError(f"device '{name}': only {torch.cuda.device_count()} CUDA device(s)")
    elif device.type != "cpu":
        raise MorelError(f"device '{name}' is not one of 'cpu', 'cuda', 'cuda:N', 'auto'")
    return device

"""Checks of the metadata files carry (dataset sidecars and records, policy files) and of the
`obs_mask` value (also in reward files): a wrong value is a one-line error naming its file."""

from __future__ import annotations

from typing import Any

import numpy as np

from morel.core.errors import MorelError


def check_obs_mask(mask: Any, source: str, obs_dim: int | None = None,
                   name: str = "obs_mask") -> np.ndarray:
    """`mask` as float64 [obs_dim]: a flat sequence of finite positive numbers (of length
    obs_dim when given); otherwise a one-line MorelError naming `source` and `name`."""
    arr = None
    if isinstance(mask, (list, tuple, np.ndarray)):
        try:
            arr = np.asarray(mask, dtype=np.float64)
        except (TypeError, ValueError):
            arr = None
    if arr is None or arr.ndim != 1 or not np.isfinite(arr).all() or not (arr > 0).all():
        raise MorelError(f"{source}: {name} must be a list of positive numbers, got "
                         f"{str(mask)[:60]}")
    if obs_dim is not None and len(arr) != obs_dim:
        raise MorelError(f"{source}: {name} has {len(arr)} entries but the env's observations "
                         f"have {obs_dim}")
    return arr


def check_meta(meta: dict[str, Any], source: str, obs_dim: int | None = None,
               mask_keys: tuple[str, ...] = ("obs_mask",), label: str = "") -> None:
    """The keys runs rely on: env_name a string, act_repeat an int in [1, 10000], and each of
    `mask_keys` (when set) a valid obs_mask; other keys are information only. Messages name
    `source` and the key (after `label`, e.g. 'metadata ')."""
    if "env_name" in meta and not isinstance(meta["env_name"], str):
        raise MorelError(f"{source}: {label}env_name must be a string, got "
                         f"{str(meta['env_name'])[:40]}")
    repeat = meta.get("act_repeat", 1)
    if type(repeat) is not int or not 1 <= repeat <= 10_000:
        raise MorelError(f"{source}: {label}act_repeat must be an integer in [1, 10000], got "
                         f"{str(repeat)[:40]}")
    for key in mask_keys:
        if meta.get(key) is not None:
            check_obs_mask(meta[key], source, obs_dim, f"{label}{key}")

"""Reward/termination files (`--include FILE`, config `reward_file`): loading and shared helpers.

A reward file is a Python module (the user's own code, loaded by path with importlib) that
defines:

- `obs_mask`: `[obs_dim]` multipliers applied to every observation of the env;
- `reward_function(paths, timing="next") -> [N, T]`: `paths` holds `observations [N, T, obs_dim]`,
  `actions [N, T, act_dim]` and, for timing 'next', `next_observations [N, T, obs_dim]`; the
  rewards are also stored in `paths["rewards"]`;
- `termination_function(paths, timing="next") -> [N, T] bool`: True where the env would end the
  episode after step t.

`timing="next"` judges step t on s_{t+1}, as the env does (health and termination are read after
the action; the forward velocity is the mean of v(s_t) and v(s_{t+1})); `timing="current"` judges
it on s_t alone (the original's approximation). Both work
on numpy arrays and torch tensors, so model rollouts stay on their device.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from morel.core.errors import MorelError
from morel.envs.metadata import check_obs_mask

TIMINGS = ("next", "current")


def states_for_timing(paths: dict[str, Any], timing: str) -> Any:
    """The states step t is judged on: `next_observations` for 'next', `observations` for
    'current'. Shape `[N, T, obs_dim]`, numpy or torch."""
    if timing == "next":
        if "next_observations" not in paths:
            raise MorelError("reward timing 'next' needs paths['next_observations']; "
                             "pass it or use timing 'current'")
        return paths["next_observations"]
    if timing == "current":
        return paths["observations"]
    raise MorelError(f"reward timing must be one of {TIMINGS}, got {timing!r}")


def as_like(values: Any, ref: Any) -> Any:
    """`values` as an array of `ref`'s kind, dtype and device (numpy or torch)."""
    if isinstance(ref, np.ndarray):
        return np.asarray(values, dtype=ref.dtype)
    import torch

    return torch.as_tensor(values, dtype=ref.dtype, device=ref.device)


def first_termination(done: Any) -> tuple[Any, Any]:
    """Path lengths and termination flags from a per-step done mask `[N, T]` (numpy or torch).

    A path ends at its first done step t (kept, length t + 1); a path with no done step keeps
    all T steps and is not terminated. Returns (lengths [N] int, terminated [N] bool).
    """
    n_steps = done.shape[-1]
    if isinstance(done, np.ndarray):
        terminated = done.any(-1)
        first = done.argmax(-1)
        lengths = np.where(terminated, first + 1, n_steps)
        return lengths, terminated
    import torch

    terminated = done.any(-1)
    first = done.to(torch.uint8).argmax(-1)
    lengths = torch.where(terminated, first + 1, torch.full_like(first, n_steps))
    return lengths, terminated


@dataclass(frozen=True)
class RewardFile:
    """What a reward file provides; functions are None when the file does not define them."""

    path: Path | None  # None: no reward file
    obs_mask: np.ndarray | None
    reward_function: Callable[..., Any] | None
    termination_function: Callable[..., Any] | None


def load_reward_file(path: str | Path, obs_dim: int | None = None, act_dim: int | None = None,
                     timing: str = "next") -> RewardFile:
    """Import a reward file by path (it is Python code the user chose to run) and check it: its
    obs_mask, and, given both dims, its functions on a tiny batch (check_functions)."""
    path = Path(path)
    if not path.is_file():
        raise MorelError(f"{path}: reward/include file not found")
    name = f"morel_user_reward_{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise MorelError(f"{path}: not an importable Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except SyntaxError as err:
        raise MorelError(f"{path} line {err.lineno}: syntax error ({err.msg})") from None
    except Exception as err:  # the user's module failed at import: name it, one line
        raise MorelError(f"{path}: importing failed ({type(err).__name__}: {err})") from None
    mask = getattr(module, "obs_mask", None)
    if mask is not None:
        mask = check_obs_mask(mask, str(path), obs_dim)
    funcs = {}
    for fn_name in ("reward_function", "termination_function"):
        fn = getattr(module, fn_name, None)
        if fn is not None and not callable(fn):
            raise MorelError(f"{path}: '{fn_name}' is not a function")
        funcs[fn_name] = fn
    reward = RewardFile(path, mask, funcs["reward_function"], funcs["termination_function"])
    if obs_dim is not None and act_dim is not None:
        check_functions(reward, obs_dim, act_dim, timing)
    return reward


def check_functions(reward: RewardFile, obs_dim: int, act_dim: int, timing: str) -> None:
    """Call the file's functions on a tiny batch (2 paths x 3 steps of zeros, numpy and torch)
    before any work, so that a function that fails or returns the wrong shape is a one-line
    error naming it, not a traceback after an ensemble was fitted."""
    import torch

    n, t = 2, 3
    makers = (("numpy", lambda shape: np.zeros(shape, np.float32)), ("torch", torch.zeros))
    for lib, zeros in makers:
        for name in ("reward_function", "termination_function"):
            fn = getattr(reward, name)
            if fn is None:
                continue
            where = f"{reward.path}: {name}"
            paths = {"observations": zeros((n, t, obs_dim)), "actions": zeros((n, t, act_dim)),
                     "next_observations": zeros((n, t, obs_dim))}
            try:
                out = fn(paths, timing)
            except Exception as err:  # the user's code: name it, one line
                raise MorelError(f"{where} failed on a {lib} batch [{n}, {t}, {obs_dim}] "
                                 f"({type(err).__name__}: {str(err)[:80]})") from None
            shape = tuple(getattr(out, "shape", ()))
            kind_ok = isinstance(out, (np.ndarray, torch.Tensor)) and (
                str(out.dtype).endswith("bool") if name == "termination_function"
                else out.dtype.is_floating_point if isinstance(out, torch.Tensor)
                else out.dtype.kind in "fiu")
            if shape != (n, t) or not kind_ok:
                want = "bool" if name == "termination_function" else "float"
                raise MorelError(f"{where} returned {type(out).__name__} of shape {shape} "
                                 f"{getattr(out, 'dtype', '')} for {lib} paths [{n}, {t}, "
                                 f"{obs_dim}]; it must return a {lib} [N, T] {want} array")


def x_velocity(paths: dict[str, Any], timing: str, index: int, scale: float) -> Any:
    """Forward velocity of step t, `[N, T]`, from the masked velocity at `obs[..., index]`.

    'next': mean of the start and end velocities (v(s_t) + v(s_t+1)) / 2, the trapezoid estimate
    of the env's (x_t+1 - x_t) / dt. 'current': v(s_t) of observations clipped to +-10 (the
    original's form).
    """
    if timing == "current":
        return paths["observations"][..., index].clip(-10.0, 10.0) / scale
    end = states_for_timing(paths, timing)[..., index]
    return 0.5 * (paths["observations"][..., index] + end) / scale


def locomotion_reward(paths: dict[str, Any], x_velocity: Any, ctrl_cost_weight: float,
                      healthy: Any = None, healthy_reward: float = 1.0) -> Any:
    """MuJoCo locomotion reward `v_x + healthy_reward * healthy - w * |clip(a, -1, 1)|^2`.

    `x_velocity`, `healthy`: `[N, T]`; stores and returns `paths["rewards"] [N, T]`.
    """
    actions = paths["actions"].clip(-1.0, 1.0)
    reward = x_velocity - ctrl_cost_weight * (actions**2).sum(-1)
    if healthy is not None:
        reward = reward + healthy_reward * healthy
    paths["rewards"] = reward
    return reward

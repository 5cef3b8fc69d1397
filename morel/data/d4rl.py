"""Convert local D4RL or Minari HDF5 files into our trajectory format (h5py only, nothing fetched).

D4RL: flat arrays `observations [N, d]`, `actions`, `rewards`, `terminals`, `timeouts`; a path
ends at every step where terminals | timeouts (a missing `timeouts` splits at terminals only).
Minari: one group `episode_<k>` per episode with `observations [T+1, d]` (the last is the final
state), `actions`, `rewards`, `terminations`, `truncations` [T].
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from morel.core.errors import MorelError
from morel.data.hdf5 import open_hdf5


def _open(path: Path) -> Any:
    if not path.is_file():
        raise MorelError(f"{path}: file not found")
    return open_hdf5(path)


def detect_format(path: str | Path) -> str:
    """'d4rl' (flat arrays) or 'minari' (episode_* groups), from the file's layout."""
    path = Path(path)
    with _open(path) as f:
        if "observations" in f and "terminals" in f:
            return "d4rl"
        if any(k.startswith("episode_") for k in f):
            return "minari"
    raise MorelError(f"{path}: neither a D4RL file (observations, terminals, ...) nor a Minari "
                     "file (episode_* groups)")


def read_d4rl(path: str | Path) -> list[dict[str, Any]]:
    """Paths of a D4RL HDF5 file, split at terminals | timeouts; `terminated` kept per path."""
    path = Path(path)
    with _open(path) as f:
        missing = [k for k in ("observations", "actions", "rewards", "terminals") if k not in f]
        if missing:
            raise MorelError(f"{path}: not a D4RL file, missing key(s) {', '.join(missing)}")
        obs, act = f["observations"][()], f["actions"][()]
        rew = f["rewards"][()].reshape(-1)
        terminals = f["terminals"][()].reshape(-1).astype(bool)
        if "timeouts" in f:
            timeouts = f["timeouts"][()].reshape(-1).astype(bool)
        else:
            print(f"warning: {path} has no 'timeouts'; splitting paths at terminals only")
            timeouts = np.zeros_like(terminals)
    n = len(obs)
    if not all(len(x) == n for x in (act, rew, terminals, timeouts)):
        raise MorelError(f"{path}: observations/actions/rewards/terminals/timeouts lengths differ")
    ends = np.flatnonzero(terminals | timeouts) + 1
    if len(ends) == 0 or ends[-1] != n:
        ends = np.append(ends, n)
    starts = np.concatenate([[0], ends[:-1]])
    return [{"observations": obs[s:e], "actions": act[s:e], "rewards": rew[s:e],
             "terminated": bool(terminals[e - 1])} for s, e in zip(starts, ends) if e > s]


def read_minari(path: str | Path) -> list[dict[str, Any]]:
    """Paths of a Minari `main_data.hdf5` (episodes in numeric order; final obs dropped)."""
    path = Path(path)
    with _open(path) as f:
        names = sorted((k for k in f if k.startswith("episode_")),
                       key=lambda k: int(k.split("_", 1)[1]) if k.split("_", 1)[1].isdigit()
                       else -1)
        paths = []
        for name in names:
            group = f[name]
            missing = [k for k in ("observations", "actions", "rewards", "terminations")
                       if k not in group]
            if missing:
                raise MorelError(f"{path}: {name} lacks {', '.join(missing)}")
            if not hasattr(group["observations"], "shape"):
                raise MorelError(f"{path}: {name}: dict observations are not supported")
            paths.append(minari_episode_path(
                f"{path}: {name}", group["observations"][()], group["actions"][()],
                group["rewards"][()], group["terminations"][()]))
    if not paths:
        raise MorelError(f"{path}: no episodes")
    return paths


def minari_episode_path(where: str, observations: np.ndarray, actions: np.ndarray,
                        rewards: np.ndarray, terminations: np.ndarray) -> dict[str, Any]:
    """One Minari episode (observations [T+1, d], the final state last; actions [T, act_dim];
    rewards, terminations [T]) as a path: final observation dropped, `terminated` from the last
    step; `where` names the episode in the error."""
    rew = np.asarray(rewards).reshape(-1)
    if len(observations) != len(rew) + 1:
        raise MorelError(f"{where}: observations should have one row more than rewards "
                         f"({len(observations)} vs {len(rew)})")
    terms = np.asarray(terminations).reshape(-1)
    return {"observations": observations[:-1], "actions": np.asarray(actions), "rewards": rew,
            "terminated": bool(len(terms) and terms[-1])}


def repeat_actions(path: dict[str, Any], act_repeat: int) -> dict[str, Any]:
    """Merge blocks of `act_repeat` steps into one: first observation, mean action, summed reward.

    A last partial block (T not divisible) is kept with its own mean and sum, as the env wrapper
    does when an episode ends inside a repeat; so all fields have ceil(T / act_repeat) rows.
    """
    if act_repeat == 1:
        return path
    n = len(path["rewards"])
    starts = np.arange(0, n, act_repeat)
    counts = np.minimum(act_repeat, n - starts)
    act = np.add.reduceat(np.asarray(path["actions"], np.float64), starts, axis=0)
    return {"observations": path["observations"][starts],
            "actions": (act / counts[:, None]).astype(np.float32),
            "rewards": np.add.reduceat(np.asarray(path["rewards"], np.float64), starts),
            "terminated": path["terminated"]}

"""A batch of paths as padded tensors: the shape every learner in this package works on.

Paths of lengths T_i are stored left-aligned in `[N, T_max]` tensors with `mask [N, T_max]`
(1.0 on each path's first T_i steps, 0.0 on the padding).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch


@dataclass
class PathBatch:
    """observations [N, T, obs_dim], actions [N, T, act_dim], rewards [N, T], mask [N, T],
    terminated [N] (bool: the path ended in a terminal state, so it bootstraps 0)."""

    observations: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor
    mask: torch.Tensor
    terminated: torch.Tensor

    @classmethod
    def from_paths(cls, paths: Sequence[dict[str, Any]],
                   device: str | torch.device = "cpu") -> PathBatch:
        """Pad a list of path dicts (observations, actions, rewards, optional terminated)."""
        lengths = np.array([len(p["rewards"]) for p in paths])
        n, horizon = len(paths), int(lengths.max())
        obs_dim = paths[0]["observations"].shape[-1]
        act_dim = paths[0]["actions"].shape[-1]
        obs = np.zeros((n, horizon, obs_dim), np.float32)
        act = np.zeros((n, horizon, act_dim), np.float32)
        rew = np.zeros((n, horizon), np.float32)
        for i, path in enumerate(paths):  # one copy per path, not per sample
            obs[i, :lengths[i]] = path["observations"]
            act[i, :lengths[i]] = path["actions"]
            rew[i, :lengths[i]] = path["rewards"]
        mask = np.arange(horizon)[None, :] < lengths[:, None]
        terminated = np.array([bool(p.get("terminated", False)) for p in paths])

        def put(x: np.ndarray) -> torch.Tensor:
            return torch.as_tensor(x, device=device)

        return cls(put(obs), put(act), put(rew), put(mask.astype(np.float32)), put(terminated))

    @property
    def lengths(self) -> torch.Tensor:
        """Steps per path, [N] (int64)."""
        return self.mask.sum(1).long()

    @property
    def num_samples(self) -> int:
        return int(self.mask.sum().item())

    def valid(self, values: torch.Tensor) -> torch.Tensor:
        """The non-padding entries of `values [N, T, ...]` flattened to [num_samples, ...]."""
        return values[self.mask.bool()]

    def path_returns(self) -> torch.Tensor:
        """Undiscounted return of each path, [N]."""
        return (self.rewards * self.mask).sum(1)

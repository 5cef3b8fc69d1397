"""Discounted returns and GAE on a padded batch of paths, without per-path Python loops.

Paths of lengths T_i are stored left-aligned in `[N, T]` tensors with `mask [N, T]` (1 on the
first T_i steps). Discounted sums become one matrix product with the upper-triangular discount
matrix D[t, k] = c^(k - t) (k >= t), so the cost is O(N T^2) flops in two batched calls.

returns_t = sum_k gamma^k r_{t+k} within the path (no bootstrap).
GAE (Schulman et al. 2016, as mjrl): delta_t = r_t + gamma b_{t+1} - b_t with b_{T_i} = 0 if the
path terminated, else b_{T_i - 1} (the last value repeated); A_t = sum_k (gamma lambda)^k
delta_{t+k}.
"""

from __future__ import annotations

import torch


def discount_matrix(coef: float, horizon: int, dtype: torch.dtype = torch.float64,
                    device: torch.device | str = "cpu") -> torch.Tensor:
    """D [T, T] with D[t, k] = coef^(k - t) for k >= t, else 0."""
    steps = torch.arange(horizon, device=device, dtype=dtype)
    gap = steps[None, :] - steps[:, None]
    return torch.where(gap >= 0, torch.as_tensor(coef, dtype=dtype, device=device) ** gap.clamp(0),
                       torch.zeros((), dtype=dtype, device=device))


def discounted_sum(values: torch.Tensor, mask: torch.Tensor, coef: float) -> torch.Tensor:
    """out_t = sum_{k >= t} coef^(k - t) values_k over each path's valid steps; [N, T]."""
    masked = values * mask
    return masked @ discount_matrix(coef, values.shape[1], values.dtype, values.device).T * mask


def discounted_returns(rewards: torch.Tensor, mask: torch.Tensor, gamma: float) -> torch.Tensor:
    """Discounted reward-to-go within each path, [N, T] (zero on padding)."""
    return discounted_sum(rewards, mask, gamma)


def gae_advantages(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor,
                   terminated: torch.Tensor, gamma: float, gae_lambda: float) -> torch.Tensor:
    """GAE advantages [N, T] from rewards and baseline values [N, T], terminated [N] bool."""
    lengths = mask.sum(1).long()
    last = (lengths - 1).clamp(min=0)
    rows = torch.arange(len(lengths), device=values.device)
    bootstrap = torch.where(terminated, torch.zeros_like(values[:, 0]), values[rows, last])
    next_values = torch.cat([values[:, 1:], torch.zeros_like(values[:, :1])], dim=1)
    next_values[rows, last] = bootstrap
    deltas = rewards + gamma * next_values - values
    return discounted_sum(deltas, mask, gamma * gae_lambda)


def whiten(advantages: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(A - mean) / (std + 1e-6) over the valid steps of the whole batch (population std)."""
    valid = advantages[mask.bool()]
    return (advantages - valid.mean()) / (valid.std(unbiased=False) + 1e-6) * mask

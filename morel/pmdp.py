"""Pessimistic MDP pieces: ensemble disagreement and the halting threshold.

disagreement(s, a) = max over member pairs i < j of ||f_i(s, a) - f_j(s, a)||_2 (raw units);
truncate_lim = max over the dataset of the disagreement / pessimism_coef, or None (no halting:
naive model-based RL) when pessimism_coef is None or 0.
"""

from __future__ import annotations

import torch

from morel.dynamics import DynamicsEnsemble


def max_pairwise_distance(predictions: torch.Tensor) -> torch.Tensor:
    """[E, N, obs_dim] member predictions -> [N] largest L2 distance between two members."""
    if predictions.shape[0] < 2:
        return torch.zeros(predictions.shape[1], device=predictions.device)
    diffs = predictions[:, None] - predictions[None, :]  # [E, E, N, obs_dim]
    return torch.linalg.vector_norm(diffs, dim=-1).amax(dim=(0, 1))


@torch.no_grad()
def dataset_disagreement(model: DynamicsEnsemble, s: torch.Tensor, a: torch.Tensor,
                         batch_size: int = 65536) -> torch.Tensor:
    """Disagreement [M] at every dataset pair (s [M, obs_dim], a [M, act_dim]), in batches."""
    return torch.cat([max_pairwise_distance(model.predict_all(s[i:i + batch_size],
                                                              a[i:i + batch_size]))
                      for i in range(0, len(s), batch_size)])


def truncate_limit(disagreement: torch.Tensor, pessimism_coef: float | None) -> float | None:
    """The halting threshold: max disagreement / pessimism_coef; None when the coef is None/0."""
    if not pessimism_coef:
        return None
    return float(disagreement.max()) / pessimism_coef

"""How well a fitted ensemble predicts real transitions: each member's one-step error and the
members' disagreement on the same (s, a) pairs, to set beside the halting threshold
(utils/check_model.py). The P-MDP halts where the disagreement is large; it can only protect a
policy where a large error comes with a large disagreement."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from morel.models.dynamics import DynamicsEnsemble, max_pairwise_distance


@dataclass(frozen=True)
class OneStepCheck:
    """error [E, T]: L2 distance of member e's prediction from the real next state;
    disagreement [T]: the largest distance between two members' predictions (the P-MDP's)."""

    error: np.ndarray
    disagreement: np.ndarray


def one_step_check(model: DynamicsEnsemble, s: torch.Tensor, a: torch.Tensor,
                   s_next: torch.Tensor) -> OneStepCheck:
    """Every member's prediction for the real pairs s [T, obs_dim], a [T, act_dim] against the
    real next states s_next [T, obs_dim], in the model's (masked) observation units."""
    with torch.no_grad():
        predictions = model.predict_all(s, a)  # [E, T, obs_dim]
        error = torch.linalg.vector_norm(predictions - s_next[None], dim=-1)
        disagreement = max_pairwise_distance(predictions)
    return OneStepCheck(error.cpu().numpy(), disagreement.cpu().numpy())


def rank_correlation(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rank correlation of x [T] and y [T] (NaN for fewer than 3 points or a
    constant input)."""
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    rx, ry = (np.argsort(np.argsort(v, kind="stable")).astype(np.float64) for v in (x, y))
    return float(np.corrcoef(rx, ry)[0, 1])

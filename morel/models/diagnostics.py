"""How well a fitted ensemble predicts real transitions: each member's one-step error and the
members' disagreement on the same (s, a) pairs, to set beside the halting threshold
(utils/check_model.py). The P-MDP halts where the disagreement is large; it can only protect a
policy where a large error comes with a large disagreement. And how long paths last: the
survival statistics that utils/check_survival.py sets side by side for a dataset's episodes
and the model paths of the policy that logged it."""

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


def reach_steps(horizon: int) -> list[int]:
    """The steps at which survival is reported for paths of at most `horizon` steps: a tenth,
    a quarter, half and all of it (distinct, at least 1)."""
    return sorted({max(1, round(horizon * f)) for f in (0.1, 0.25, 0.5, 1.0)})


def survival_row(lengths: np.ndarray, ended: np.ndarray, steps: list[int]) -> list[float]:
    """Statistics of paths of `lengths` [P] (ended [P]: the termination function ended the
    path, not a time limit): count, mean and median length, the share that reach each of
    `steps` (length >= step), and the share ended."""
    lengths = np.asarray(lengths, dtype=np.float64)
    return [len(lengths), float(lengths.mean()), float(np.median(lengths)),
            *(float((lengths >= k).mean()) for k in steps), float(np.mean(ended))]


def survival_curve(lengths: np.ndarray, horizon: int) -> np.ndarray:
    """Share of the paths [P] still running at each step 0 ... horizon: [horizon + 1], the
    share with length >= t."""
    counts = np.bincount(np.minimum(np.asarray(lengths, dtype=np.int64), horizon),
                         minlength=horizon + 1)
    return counts[::-1].cumsum()[::-1] / len(lengths)

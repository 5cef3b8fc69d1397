"""How well a fitted ensemble predicts real transitions: each member's one-step error and the
members' disagreement on the same (s, a) pairs, to set beside the halting threshold
(utils/check_model.py). The P-MDP halts where the disagreement is large; it can only protect a
policy where a large error comes with a large disagreement. And how long paths last: the
survival statistics that utils/check_survival.py sets side by side for a dataset's episodes
and the model paths of the policy that logged it. And how far (s, a) pairs lie from a
dataset's, which a detector of unknown pairs would halt on (check_model.py --data_distance)."""

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


def nearest_distances(queries: torch.Tensor, points: torch.Tensor, skip_nearest: bool = False,
                      chunk: int = 256) -> np.ndarray:
    """Euclidean distance [Q] from each query [Q, D] to its nearest row of points [M, D]; with
    skip_nearest the second nearest (for queries that are rows of points: the nearest other
    row). Exact differences, no matrix-product shortcut."""
    k = 2 if skip_nearest else 1
    out = []
    for i in range(0, len(queries), chunk):
        dist = torch.cdist(queries[i:i + chunk], points,
                           compute_mode="donot_use_mm_for_euclid_dist")
        out.append(dist.topk(k, dim=1, largest=False).values[:, k - 1])
    return torch.cat(out).cpu().numpy() if out else np.zeros(0)


@dataclass(frozen=True)
class DataDistance:
    """How far (s, a) pairs lie from a dataset's: each dimension scaled by the data's std,
    the distance to the nearest data pair. own [S]: the same for a random sample of the data's
    own pairs, each to its nearest other pair (the scale a policy's distances are read on)."""

    points: torch.Tensor  # [M, D] the data's pairs, standardised
    mean: np.ndarray  # [D]
    std: np.ndarray  # [D]
    own: np.ndarray  # [S]

    def percentile(self, q: float) -> float:
        """The q-th percentile of the data's own distances."""
        return float(np.percentile(self.own, q))

    def of(self, pairs: np.ndarray) -> np.ndarray:
        """Distances [T] of pairs [T, D] (concatenated s, a in the data's units)."""
        scaled = torch.as_tensor((pairs - self.mean) / self.std, dtype=torch.float32)
        return nearest_distances(scaled, self.points)


def data_distance(pairs: np.ndarray, sample: int, seed: int) -> DataDistance:
    """A DataDistance for the data's pairs [M, D], its own distances on `sample` of them
    (drawn with `seed`)."""
    mean = pairs.mean(0)
    std = np.maximum(pairs.std(0), 1e-8)
    points = torch.as_tensor((pairs - mean) / std, dtype=torch.float32)
    rows = np.random.default_rng(seed).choice(len(points), min(sample, len(points)),
                                              replace=False)
    return DataDistance(points, mean, std, nearest_distances(points[rows], points,
                                                             skip_nearest=True))

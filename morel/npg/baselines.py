"""MLP value baseline (mjrl's MLPBaseline as MOReL configures it).

Features of step t of a path: [clip(obs_t, -10, 10) / 10, u, u^2, u^3, u^4] with u = t / 1000 and
t the step index within the path. Net: (obs_dim + 4) -> 128 -> ReLU -> 128 -> ReLU -> 1.
Fitting regresses the targets it is given (the paths' discounted returns, or their GAE
lambda-returns with value_targets: 'lambda') with MSE and Adam (weight decay = the original's
`reg_coef`): per epoch one permutation of the samples and max(M // batch_size - 1, 1) minibatches
(the original's count, which skips the last full minibatch). The relative error
sum (R - V)^2 / (sum R^2 + 1e-8) is reported before and after each fit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from morel.npg.paths import PathBatch


def baseline_features(observations: torch.Tensor) -> torch.Tensor:
    """[N, T, obs_dim] observations -> [N, T, obs_dim + 4] features (t = index in the path)."""
    n, horizon, _ = observations.shape
    u = torch.arange(horizon, device=observations.device, dtype=observations.dtype) / 1000.0
    time = torch.stack([u, u**2, u**3, u**4], dim=-1).expand(n, horizon, 4)
    return torch.cat([observations.clamp(-10, 10) / 10.0, time], dim=-1)


def relative_error(targets: torch.Tensor, predictions: torch.Tensor) -> float:
    """sum (R - V)^2 / (sum R^2 + 1e-8) over flat vectors."""
    return float(((targets - predictions) ** 2).sum() / ((targets**2).sum() + 1e-8))


class MLPBaseline:
    """Value function V(s_t, t) fitted to discounted returns or lambda-returns."""

    def __init__(self, obs_dim: int, hidden_sizes: Sequence[int] = (128, 128), lr: float = 1e-3,
                 weight_decay: float = 1e-3, batch_size: int = 256, epochs: int = 1,
                 seed: int = 0, device: str | torch.device = "cpu"):
        sizes = (obs_dim + 4, *hidden_sizes)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            layers: list[nn.Module] = []
            for a, b in zip(sizes, sizes[1:]):
                layers += [nn.Linear(a, b), nn.ReLU()]
            self.net = nn.Sequential(*layers, nn.Linear(sizes[-1], 1)).to(device)
        self.batch_size, self.epochs = int(batch_size), int(epochs)
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=lr, weight_decay=weight_decay)

    @torch.no_grad()
    def predict(self, batch: PathBatch) -> torch.Tensor:
        """Values [N, T] of every step of the batch (zero on padding)."""
        return self.net(baseline_features(batch.observations)).squeeze(-1) * batch.mask

    def fit(self, batch: PathBatch, path_targets: torch.Tensor,
            generator: torch.Generator | None = None) -> tuple[float, float]:
        """Fit to path_targets [N, T] (discounted returns or lambda-returns); returns (relative
        error before, after)."""
        features = batch.valid(baseline_features(batch.observations))
        targets = batch.valid(path_targets)
        with torch.no_grad():
            before = relative_error(targets, self.net(features).squeeze(-1))
        num = len(targets)
        steps = max(num // self.batch_size - 1, 1)
        for _ in range(self.epochs):
            order = torch.randperm(num, generator=generator, device="cpu").to(targets.device)
            for k in range(steps):
                idx = order[k * self.batch_size:(k + 1) * self.batch_size]
                loss = ((self.net(features[idx]).squeeze(-1) - targets[idx]) ** 2).mean()
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                self.optimizer.step()
        with torch.no_grad():
            after = relative_error(targets, self.net(features).squeeze(-1))
        return before, after

    def state_dict(self) -> dict[str, Any]:
        return {"net": self.net.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.net.load_state_dict(state["net"])
        self.optimizer.load_state_dict(state["optimizer"])

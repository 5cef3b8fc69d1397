"""Behaviour cloning (MOReL's `bc_init`): regress the policy mean on dataset actions.

As the original: MSE between the policy mean and the action, Adam (lr 1e-3), `epochs` epochs of
int(M / batch_size) minibatches each drawn WITH replacement; log_std gets no gradient.
`match_residual_std` (our option `bc_init_std`) then sets log_std to the data's spread.
"""

from __future__ import annotations

import torch
from tqdm import tqdm

from morel.npg.policies import GaussianMLP


def bc_loss(policy: GaussianMLP, observations: torch.Tensor, actions: torch.Tensor) -> float:
    """MSE of the policy mean on observations [M, obs_dim] against actions [M, act_dim]."""
    with torch.no_grad():
        return float(((policy(observations) - actions) ** 2).mean())


def behavior_clone(policy: GaussianMLP, observations: torch.Tensor, actions: torch.Tensor,
                   epochs: int = 5, batch_size: int = 256, lr: float = 1e-3,
                   generator: torch.Generator | None = None,
                   progress: bool = True) -> tuple[float, float]:
    """Fit the policy mean in place; returns (loss before, loss after)."""
    before = bc_loss(policy, observations, actions)
    params = [p for name, p in policy.named_parameters() if name != "log_std"]
    optimizer = torch.optim.Adam(params, lr=lr)
    num = len(observations)
    steps = max(num // batch_size, 1)
    with tqdm(total=epochs * steps, desc="behaviour cloning", unit="step", disable=not progress,
              dynamic_ncols=True) as bar:
        for _ in range(epochs):
            picks = torch.randint(num, (steps, batch_size), generator=generator, device="cpu")
            for idx in picks.to(observations.device):
                loss = ((policy(observations[idx]) - actions[idx]) ** 2).mean()
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            bar.update(steps)
            bar.set_postfix(loss=f"{loss.item():.4g}")
    policy.clamp_log_std()
    return before, bc_loss(policy, observations, actions)


def match_residual_std(policy: GaussianMLP, observations: torch.Tensor,
                       actions: torch.Tensor) -> torch.Tensor:
    """Set the policy's log_std [act_dim] to the maximum-likelihood value for its cloned mean:
    the log of the root mean square, per action dimension, of actions - mean(observations)
    (float64), clamped to the policy's bounds; returns the std [act_dim]."""
    with torch.no_grad():
        residual = actions.double() - policy(observations).double()
        std = residual.square().mean(dim=0).sqrt().clamp_min(1e-12)
        policy.log_std.copy_(std.log().to(policy.log_std.dtype))
        policy.clamp_log_std()
        return policy.log_std.exp()

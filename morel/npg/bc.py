"""Behaviour cloning (MOReL's `bc_init`): regress the policy mean on dataset actions.

The original's BC: MSE between the policy mean and the action, Adam (lr 1e-3), `epochs` epochs of
int(M / batch_size) minibatches each drawn WITH replacement; log_std gets no gradient.
Our options (config keys bc_normalize, bc_holdout): inputs normalised by the data's mean and std
(the policy's in_shift / in_scale, so saved policies carry it), and a held-out share of the data
that chooses the epoch: training stops once the held-out loss has not improved for `patience`
epochs and the best epoch's weights are kept (`epochs` is then the cap).
`match_residual_std` (our option `bc_init_std`) then sets log_std to the data's spread.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from tqdm import tqdm

from morel.core.holdout import holdout_split
from morel.npg.policies import GaussianMLP

MIN_INPUT_SCALE = 1e-3  # floor of in_scale: a constant observation must not be blown up


@dataclass(frozen=True)
class BCSettings:
    """How to clone (defaults: the original's 5 epochs on raw inputs, no held-out share)."""

    epochs: int = 5
    batch_size: int = 256
    lr: float = 1e-3
    normalize: bool = False
    holdout: float = 0.0  # share of samples held out to choose the epoch; 0: fixed epochs
    patience: int = 5  # epochs without a held-out improvement before stopping

    @classmethod
    def from_config(cls, cfg: Any) -> BCSettings:
        return cls(epochs=cfg.bc_epochs, normalize=cfg.bc_normalize, holdout=cfg.bc_holdout)


def bc_loss(policy: GaussianMLP, observations: torch.Tensor, actions: torch.Tensor) -> float:
    """MSE of the policy mean on observations [M, obs_dim] against actions [M, act_dim]."""
    with torch.no_grad():
        return float(((policy(observations) - actions) ** 2).mean())


def normalize_inputs(policy: GaussianMLP, observations: torch.Tensor) -> None:
    """Set the policy's in_shift / in_scale [obs_dim] to the observations' mean and std
    (float64, std floored at MIN_INPUT_SCALE)."""
    obs = observations.double()
    with torch.no_grad():
        policy.in_shift.copy_(obs.mean(dim=0).to(policy.in_shift.dtype))
        policy.in_scale.copy_(obs.std(dim=0).clamp_min(MIN_INPUT_SCALE)
                              .to(policy.in_scale.dtype))


def behavior_clone(policy: GaussianMLP, observations: torch.Tensor, actions: torch.Tensor,
                   settings: BCSettings = BCSettings(), generator: torch.Generator | None = None,
                   progress: bool = True) -> dict[str, float]:
    """Fit the policy mean in place on observations [M, obs_dim] and actions [M, act_dim].

    Returns the log values: bc_loss_before / bc_loss_after (all samples), and with a held-out
    share bc_loss_heldout (the kept epoch's held-out loss) and bc_epochs (the kept epoch)."""
    if settings.normalize:
        normalize_inputs(policy, observations)
    before = bc_loss(policy, observations, actions)
    obs, act = observations, actions
    if settings.holdout > 0:
        train, held = holdout_split(len(observations), settings.holdout, generator)
        train, held = train.to(observations.device), held.to(observations.device)
        obs, act = observations[train], actions[train]
        held_obs, held_act = observations[held], actions[held]
    params = [p for name, p in policy.named_parameters() if name != "log_std"]
    optimizer = torch.optim.Adam(params, lr=settings.lr)
    num = len(obs)
    steps = max(num // settings.batch_size, 1)
    best, best_epoch, best_state = math.inf, 0, None
    with tqdm(total=settings.epochs * steps, desc="behaviour cloning", unit="step",
              disable=not progress, dynamic_ncols=True) as bar:
        for epoch in range(1, settings.epochs + 1):
            picks = torch.randint(num, (steps, settings.batch_size), generator=generator,
                                  device="cpu")
            for idx in picks.to(obs.device):
                loss = ((policy(obs[idx]) - act[idx]) ** 2).mean()
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            bar.update(steps)
            if settings.holdout <= 0:
                bar.set_postfix(loss=f"{loss.item():.4g}")
                continue
            held_loss = bc_loss(policy, held_obs, held_act)
            bar.set_postfix(heldout=f"{held_loss:.4g}")
            if held_loss < best:
                best, best_epoch = held_loss, epoch
                best_state = [p.detach().clone() for p in params]
            elif epoch - best_epoch >= settings.patience:
                break
    if best_state is not None:
        with torch.no_grad():
            for p, kept in zip(params, best_state):
                p.copy_(kept)
    policy.clamp_log_std()
    result = {"bc_loss_before": before, "bc_loss_after": bc_loss(policy, observations, actions)}
    if settings.holdout > 0:
        result.update(bc_loss_heldout=best, bc_epochs=best_epoch)
    return result


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

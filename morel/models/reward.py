"""Learned reward models (the original's RewardNet, one per ensemble member), batched.

Member e predicts r(s, a, s') from [norm(s), norm(a), norm(s')] (the dynamics' state and action
normalisation) through a (100, 100) ReLU MLP, r = out * (r_scale + 1e-8) + r_shift with
r_shift = mean r and r_scale = mean |r - r_shift|. It is fitted with MSE in raw reward units on
(s, a, f_e(s, a)): s' is member e's own (detached) prediction, as the original does. In the
P-MDP, member e's reward scores the paths member e advances.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

from morel.core.errors import MorelError
from morel.core.seeding import Stream
from morel.models.batched import BatchedMLP, fit_members, member_adam, member_generators
from morel.models.dynamics import DynamicsEnsemble

# dataset pairs per forward of the dynamics when the fit computes each member's s' ([E, chunk,
# 512] activations instead of [E, M, 512]: 8 GB per layer for 4 members on a 1M-pair dataset)
PREDICT_CHUNK = 8192


class RewardEnsemble(BatchedMLP):
    """One reward MLP per dynamics member; shapes s, s' [E, N, obs_dim], a [E, N, act_dim]."""

    def __init__(self, num_models: int, obs_dim: int, act_dim: int,
                 hidden_sizes: Sequence[int] = (100, 100), seed: int = 123):
        hidden = tuple(int(h) for h in hidden_sizes)
        super().__init__(num_models, (2 * obs_dim + act_dim, *hidden, 1), "relu", seed,
                         Stream.REWARD_INIT)
        self.hidden_sizes = hidden
        self.register_buffer("r_shift", torch.zeros(num_models))
        self.register_buffer("r_scale", torch.ones(num_models))

    def predict(self, dynamics: DynamicsEnsemble, s: torch.Tensor, a: torch.Tensor,
                s_next: torch.Tensor) -> torch.Tensor:
        """Rewards [E, N] of member e at (s[e], a[e], s_next[e])."""
        x = dynamics.normalised_inputs(s, a)
        s_next_n = (s_next - dynamics.s_shift[:, None]) / (dynamics.s_scale[:, None] + 1e-8)
        out = self(torch.cat([x, s_next_n], dim=-1)).squeeze(-1)
        return out * (self.r_scale[:, None] + 1e-8) + self.r_shift[:, None]

    def fit(self, dynamics: DynamicsEnsemble, s: torch.Tensor, a: torch.Tensor, r: torch.Tensor,
            epochs: int, batch_size: int, lr: float = 1e-3, max_steps: float = math.inf,
            seed: int = 123, progress: bool = True) -> torch.Tensor:
        """Fit on dataset transitions s, a [M, .], rewards r [M] with `fit_members` (member e's
        data order: stream REWARD_ORDER, e); returns the last epoch's mean minibatch loss per
        member, [E]."""
        with torch.no_grad():
            # [E, M, obs_dim], each member's own prediction, in chunks (memory)
            s_next = torch.cat([dynamics.predict_all(s_c, a_c) for s_c, a_c in
                                zip(s.split(PREDICT_CHUNK), a.split(PREDICT_CHUNK))], dim=1)
            self.r_shift.fill_(float(r.mean()))
            self.r_scale.fill_(float((r - r.mean()).abs().mean()))
        optimizer = member_adam(self, lr)
        rows = torch.arange(self.num_models, device=s.device)[:, None]

        def member_loss(idx: torch.Tensor) -> torch.Tensor:
            pred = self.predict(dynamics, s[idx], a[idx], s_next[rows, idx])
            return ((pred - r[idx]) ** 2).mean(dim=1)

        history = fit_members(self, member_loss, len(s), batch_size, optimizer,
                              member_generators(seed, Stream.REWARD_ORDER, self.num_models),
                              epochs, max_steps, "fitting rewards", progress)
        return history[-1]


def learned_reward_function(dynamics: DynamicsEnsemble) -> Callable[..., torch.Tensor]:
    """A reward function for `pmdp_rollouts` from the ensemble's reward model: paths come
    member-major (P = E * N), and member e's reward scores member e's paths."""
    reward = dynamics.reward
    if not isinstance(reward, RewardEnsemble):
        raise MorelError("the dynamics ensemble has no learned reward model")

    def reward_function(paths: dict[str, torch.Tensor], timing: str = "next") -> torch.Tensor:
        obs, act, nxt = paths["observations"], paths["actions"], paths["next_observations"]
        num, horizon = obs.shape[:2]
        e = dynamics.num_models

        def per_member(x: torch.Tensor) -> torch.Tensor:
            return x.reshape(e, (num // e) * horizon, x.shape[-1])

        with torch.no_grad():
            out = reward.predict(dynamics, per_member(obs), per_member(act), per_member(nxt))
        return out.reshape(num, horizon)

    return reward_function

"""The original's methods, kept here only as the benchmark's references.

P-MDP sampling: the original rolls each ensemble member's share of the start states through that
member alone (one small forward per member per step), and then, path by path, runs every member
on the path's (s, a) sequence to compute the disagreement afterwards. Same maths as
`morel.pmdp.pmdp_rollouts` without halting. Fisher-vector products: mjrl's double backprop of the
mean KL, the same matrix as `morel.npg.natural_gradient.fisher_vector_product_fn`. Evaluation:
one env, one episode after another, the policy called on one observation per step (mjrl's
evaluation loop).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from morel.envs.wrapper import make_env
from morel.models.dynamics import DynamicsEnsemble, max_pairwise_distance
from morel.npg.natural_gradient import flat_grad, mean_kl
from morel.npg.policies import GaussianMLP


def member_step(model: DynamicsEnsemble, net: nn.Sequential, e: int, s: torch.Tensor,
                a: torch.Tensor) -> torch.Tensor:
    """Member e's next states for s [T, obs_dim], a [T, act_dim] (its own normalisation)."""
    x = torch.cat([(s - model.s_shift[e]) / (model.s_scale[e] + 1e-8),
                   (a - model.a_shift[e]) / (model.a_scale[e] + 1e-8)], dim=-1)
    delta = net(x) * (model.d_scale[e] + 1e-8) + model.d_shift[e]
    return s + model.residual_mask[e] * delta


@torch.no_grad()
def reference_rollouts(model: DynamicsEnsemble, policy: GaussianMLP, starts: torch.Tensor,
                       horizon: int, generator: torch.Generator
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """Roll starts [N, obs_dim] through each member separately for `horizon` steps (member-major,
    like pmdp_rollouts), then the per-path disagreement. Returns (observations [E * N, horizon,
    obs_dim], disagreement [E * N, horizon])."""
    nets = [model.member(e) for e in range(model.num_models)]
    std = torch.exp(policy.log_std)
    paths = []
    for e, net in enumerate(nets):  # the original: one member's paths at a time
        s = starts.clone()
        obs, acts = [], []
        for _ in range(horizon):
            noise = torch.randn(len(s), policy.act_dim, generator=generator).to(s.device)
            a = policy(s) + std * noise
            obs.append(s)
            acts.append(a)
            s = member_step(model, net, e, s, a)
        paths.extend(zip(torch.stack(obs, 1), torch.stack(acts, 1)))
    disagreement = []
    for obs, acts in paths:  # the original: every member on each path, afterwards
        preds = torch.stack([member_step(model, net, e, obs, acts) for e, net in enumerate(nets)])
        disagreement.append(max_pairwise_distance(preds))
    return torch.stack([obs for obs, _ in paths]), torch.stack(disagreement)


def double_backprop_fvp(policy: GaussianMLP, obs: torch.Tensor,
                        damping: float) -> Callable[[torch.Tensor], torch.Tensor]:
    """mjrl's v -> (F + damping I) v: the gradient of (grad mean_kl . v)."""
    params = list(policy.parameters())
    kl_grad = flat_grad(mean_kl(policy, obs), params, create_graph=True)

    def fvp(v: torch.Tensor) -> torch.Tensor:
        return flat_grad(kl_grad @ v, params, retain_graph=True) + damping * v

    return fvp


def sequential_returns(env_id: str, policy: GaussianMLP, episodes: int, seed: int) -> list[float]:
    """Mean-action returns of `episodes` episodes run one after another in one env, the
    policy's torch forward called on one observation per step (as mjrl's policy is)."""
    env = make_env(env_id)
    returns = []
    for k in range(episodes):
        obs, _ = env.reset(seed=seed + k)
        total, done = 0.0, False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(policy.torch_mean_std(obs[None])[0][0])
            total += reward
            done = terminated or truncated
        returns.append(total)
    return returns

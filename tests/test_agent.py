"""NPGAgent: a full policy-iteration step learns a contextual bandit and logs the original keys."""

from __future__ import annotations

import torch

from morel.agent import NPGAgent, NPGSettings
from morel.baselines import MLPBaseline
from morel.paths import PathBatch
from morel.policies import GaussianMLP

KEYS = ["stoc_pol_mean", "stoc_pol_std", "stoc_pol_max", "stoc_pol_min", "alpha", "delta",
        "time_vpg", "time_npg", "kl_dist", "surr_improvement", "running_score", "num_samples",
        "time_VF", "VF_error_before", "VF_error_after"]


def bandit_paths(policy, gen, n=64, horizon=3):
    """Paths of `horizon` independent steps; reward -(a - 0.5 * obs[:2])^2 summed over dims."""
    obs = torch.randn(n, horizon, 3, generator=gen)
    with torch.no_grad():
        mean = policy(obs.reshape(-1, 3)).reshape(n, horizon, 2)
        act = mean + torch.exp(policy.log_std) * torch.randn(mean.shape, generator=gen)
    rewards = -((act - 0.5 * obs[..., :2]) ** 2).sum(-1)
    mask = torch.ones(n, horizon)
    return PathBatch(obs, act, rewards, mask, torch.zeros(n, dtype=torch.bool))


def test_agent_learns_a_bandit_and_logs_the_original_keys():
    policy = GaussianMLP(3, 2, (16,), init_log_std=-0.5, seed=0)
    agent = NPGAgent(policy, MLPBaseline(3, seed=0, batch_size=32),
                     NPGSettings(step_size=0.05, gamma=0.9, gae_lambda=0.95, cg_iters=10,
                                 damping=1e-3))
    gen = torch.Generator().manual_seed(0)
    scores = []
    for _ in range(30):
        log = agent.train_step(bandit_paths(policy, gen), gen)
        scores.append(log["stoc_pol_mean"])
    assert list(log) == KEYS
    assert log["num_samples"] == 64 * 3
    assert sum(scores[-5:]) / 5 > 0.1 * sum(scores[:5]) / 5  # returns < 0: 10x closer to 0
    first = scores[0]
    assert agent.running_score < 0 and agent.running_score != first
    state = agent.state_dict()
    fresh = NPGAgent(GaussianMLP(3, 2, (16,)), MLPBaseline(3), agent.settings)
    fresh.load_state_dict(state)
    torch.testing.assert_close(fresh.policy.flat_params(), policy.flat_params())
    assert fresh.running_score == agent.running_score

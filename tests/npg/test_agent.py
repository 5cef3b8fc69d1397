"""NPGAgent: a full policy-iteration step learns a contextual bandit and logs the original keys."""

from __future__ import annotations

import math

import pytest
import torch

from morel.core.errors import MorelError
from morel.npg import natural_gradient
from morel.npg.agent import MAX_REJECTED_IN_A_ROW, STEP_LOG_KEYS, NPGAgent, NPGSettings
from morel.npg.baselines import MLPBaseline
from morel.npg.paths import PathBatch
from morel.npg.policies import GaussianMLP

KEYS = ["stoc_pol_mean", "stoc_pol_std", "stoc_pol_max", "stoc_pol_min", "alpha", "delta",
        "time_vpg", "time_npg", "kl_dist", "kl_backtracks", "surr_improvement", "running_score",
        "num_samples", "time_VF", "VF_error_before", "VF_error_after"]


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
    assert list(log) == KEYS == list(STEP_LOG_KEYS)
    assert log["num_samples"] == 64 * 3
    assert sum(scores[-5:]) / 5 > 0.1 * sum(scores[:5]) / 5  # returns < 0: 10x closer to 0
    first = scores[0]
    assert agent.running_score < 0 and agent.running_score != first
    state = agent.state_dict()
    fresh = NPGAgent(GaussianMLP(3, 2, (16,)), MLPBaseline(3), agent.settings)
    fresh.load_state_dict(state)
    torch.testing.assert_close(fresh.policy.flat_params(), policy.flat_params())
    assert fresh.running_score == agent.running_score


def make_agent(seed=0):
    policy = GaussianMLP(3, 2, (16,), init_log_std=-0.5, seed=seed)
    return NPGAgent(policy, MLPBaseline(3, seed=seed, batch_size=32),
                    NPGSettings(step_size=0.05, gamma=0.9, gae_lambda=0.95, cg_iters=10,
                                damping=1e-3))


def snapshot(agent):
    return agent.policy.flat_params().clone(), [p.clone() for p in agent.baseline.net.parameters()]


def assert_unchanged(agent, before):
    assert torch.equal(agent.policy.flat_params(), before[0])
    for p, q in zip(agent.baseline.net.parameters(), before[1]):
        assert torch.equal(p, q)


@pytest.mark.parametrize("poison", ["rewards", "observations"])
def test_nan_in_the_paths_rejects_the_step_and_restores(poison):
    agent = make_agent()
    gen = torch.Generator().manual_seed(0)
    agent.guarded_step(bandit_paths(agent.policy, gen), gen)  # baseline and Adam hold state
    before, running = snapshot(agent), agent.running_score
    batch = bandit_paths(agent.policy, gen)
    getattr(batch, poison)[3, 1] = math.nan
    log, reason = agent.guarded_step(batch, gen)
    assert "paths' observations, actions or rewards" in reason
    assert log["rejected"] == 1 and math.isnan(log["alpha"]) and log["num_samples"] == 64 * 3
    assert list(log) == [*STEP_LOG_KEYS, "rejected"]
    assert_unchanged(agent, before)
    assert agent.running_score == running


def test_nan_cg_result_restores_and_repeated_failures_stop(monkeypatch):
    agent = make_agent()
    gen = torch.Generator().manual_seed(1)
    good = bandit_paths(agent.policy, gen)
    cg = natural_gradient.conjugate_gradient
    monkeypatch.setattr(natural_gradient, "conjugate_gradient",
                        lambda *a, **k: cg(*a, **k) * math.inf)
    before = snapshot(agent)
    for _ in range(MAX_REJECTED_IN_A_ROW - 1):
        log, reason = agent.guarded_step(good, gen)
        assert "natural gradient (CG result)" in reason
        assert_unchanged(agent, before)
    with pytest.raises(MorelError, match=f"{MAX_REJECTED_IN_A_ROW} iterations in a row"):
        agent.guarded_step(good, gen)
    assert_unchanged(agent, before)
    monkeypatch.setattr(natural_gradient, "conjugate_gradient", cg)
    agent.rejected_in_a_row = 1
    log, reason = agent.guarded_step(good, gen)  # a good step resets the count
    assert reason is None and log["rejected"] == 0 and agent.rejected_in_a_row == 0
    assert not torch.equal(agent.policy.flat_params(), before[0])


def test_nan_policy_is_never_saved(tmp_path):
    from morel.core.errors import NumericError
    from morel.npg.policies import save_policy

    agent = make_agent()
    with torch.no_grad():
        agent.policy.layers[0].weight[0, 0] = math.inf
    with pytest.raises(NumericError, match="policy to be saved"):
        save_policy(agent.policy, tmp_path / "p.pt")
    assert not (tmp_path / "p.pt").exists()


def averaging_agent(b):
    policy = GaussianMLP(3, 2, (16,), init_log_std=-0.5, seed=0)
    return NPGAgent(policy, MLPBaseline(3, seed=0, batch_size=32),
                    NPGSettings(step_size=0.05, gamma=0.9, gae_lambda=0.95, cg_iters=10,
                                damping=1e-3, policy_average=b))


def test_policy_average_follows_the_iterates_in_float64():
    agent = averaging_agent(0.8)
    gen = torch.Generator().manual_seed(0)
    assert agent.evaluated_policy is agent.policy and "average" not in agent.state_dict()
    expected = agent.policy.flat_params().double()  # the start: the policy before any step
    for _ in range(6):
        agent.train_step(bandit_paths(agent.policy, gen), gen)
        expected = 0.8 * expected + 0.2 * agent.policy.flat_params().double()
    assert agent.evaluated_policy is agent.average
    torch.testing.assert_close(agent.average.flat_params().double(), expected, rtol=0,
                               atol=1e-6)
    assert not torch.allclose(agent.average.flat_params(), agent.policy.flat_params())
    # the state holds the average; a fresh agent loads it, a state without it drops it
    fresh = averaging_agent(0.8)
    fresh.load_state_dict(agent.state_dict())
    assert torch.equal(fresh.average.flat_params(), agent.average.flat_params())
    fresh.load_state_dict(averaging_agent(0.8).state_dict())
    assert fresh.average is None and fresh.evaluated_policy is fresh.policy


def test_policy_average_zero_keeps_no_copy_and_a_rejected_step_restores_it(monkeypatch):
    plain = averaging_agent(0.0)
    gen = torch.Generator().manual_seed(0)
    plain.train_step(bandit_paths(plain.policy, gen), gen)
    assert plain.average is None and plain.evaluated_policy is plain.policy
    agent = averaging_agent(0.5)
    cg = natural_gradient.conjugate_gradient
    monkeypatch.setattr(natural_gradient, "conjugate_gradient",
                        lambda *a, **k: cg(*a, **k) * math.inf)  # fails after the copy is made
    _, reason = agent.guarded_step(bandit_paths(agent.policy, gen), gen)
    assert reason is not None and agent.average is None
    monkeypatch.setattr(natural_gradient, "conjugate_gradient", cg)
    agent.guarded_step(bandit_paths(agent.policy, gen), gen)
    kept = agent.average.flat_params().clone()
    monkeypatch.setattr(natural_gradient, "conjugate_gradient",
                        lambda *a, **k: cg(*a, **k) * math.inf)
    _, reason = agent.guarded_step(bandit_paths(agent.policy, gen), gen)
    assert reason is not None and torch.equal(agent.average.flat_params(), kept)

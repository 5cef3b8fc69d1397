"""NPGAgent: a full policy-iteration step learns a contextual bandit and logs the original keys."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from morel.core.errors import MorelError
from morel.npg import natural_gradient
from morel.npg.agent import MAX_REJECTED_IN_A_ROW, STEP_LOG_KEYS, NPGAgent, NPGSettings
from morel.npg.baselines import MLPBaseline
from morel.npg.natural_gradient import gaussian_kl
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


def small_agent(**settings):
    """A bandit-sized agent; `settings`: NPGSettings keys beside its step and GAE ones."""
    policy = GaussianMLP(3, 2, (16,), init_log_std=-0.5, seed=0)
    return NPGAgent(policy, MLPBaseline(3, seed=0, batch_size=32),
                    NPGSettings(step_size=0.05, gamma=0.9, gae_lambda=0.95, cg_iters=10,
                                damping=1e-3, **settings))


def averaging_agent(b):
    return small_agent(policy_average=b)


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


def anchored_agent(coef):
    return small_agent(anchor_kl_coef=coef)


def test_anchor_is_the_start_policy_kept_frozen_saved_and_restored(monkeypatch):
    gen = torch.Generator().manual_seed(0)
    plain = anchored_agent(0.0)
    log = plain.train_step(bandit_paths(plain.policy, gen), gen)
    assert plain.anchor is None and "anchor_kl" not in log and "anchor" not in plain.state_dict()
    agent = anchored_agent(1.0)
    cg = natural_gradient.conjugate_gradient
    monkeypatch.setattr(natural_gradient, "conjugate_gradient",
                        lambda *a, **k: cg(*a, **k) * math.inf)  # fails after the copy is made
    log, reason = agent.guarded_step(bandit_paths(agent.policy, gen), gen)
    assert reason is not None and agent.anchor is None and math.isnan(log["anchor_kl"])
    monkeypatch.setattr(natural_gradient, "conjugate_gradient", cg)
    start = agent.policy.flat_params().clone()
    kls = [agent.train_step(bandit_paths(agent.policy, gen), gen)["anchor_kl"]
           for _ in range(8)]
    assert kls[0] == 0.0 and all(k > 0 for k in kls[1:])
    assert torch.equal(agent.anchor.flat_params(), start)
    assert not any(p.requires_grad for p in agent.anchor.parameters())
    fresh = anchored_agent(1.0)
    fresh.load_state_dict(agent.state_dict())
    assert torch.equal(fresh.anchor.flat_params(), start)
    fresh.load_state_dict(anchored_agent(1.0).state_dict())
    assert fresh.anchor is None


def test_a_strong_anchor_keeps_the_policy_near_its_start():
    """The bandit's target is far from the start: without an anchor the policy walks towards
    it; with a strong one its KL to the start stays a fraction of that."""
    def final_kl(coef):
        agent, gen = anchored_agent(coef), torch.Generator().manual_seed(1)
        start = copy.deepcopy(agent.policy)
        for _ in range(15):
            paths = bandit_paths(agent.policy, gen)
            agent.train_step(paths, gen)
        obs = paths.observations.reshape(-1, 3)
        with torch.no_grad():
            return float(gaussian_kl(start(obs), start.log_std, agent.policy(obs),
                                     agent.policy.log_std))

    free, held = final_kl(0.0), final_kl(20.0)
    assert held < 0.3 * free


def lambda_returns_reference(rewards, values, lengths, terminated, gamma, lam):
    """G_t = r_t + gamma ((1 - lam) V_{t+1} + lam G_{t+1}), G_T = V_T = the bootstrap: 0 after a
    terminal step, else the last step's value; float64, one path and one step at a time."""
    out = torch.zeros_like(rewards, dtype=torch.float64)
    for i, length in enumerate(lengths):
        boot = 0.0 if terminated[i] else float(values[i, length - 1])
        g_next, v_next = boot, boot
        for t in reversed(range(length)):
            g_next = float(rewards[i, t]) + gamma * ((1 - lam) * v_next + lam * g_next)
            v_next = float(values[i, t])
            out[i, t] = g_next
    return out


@pytest.mark.parametrize("targets", ["returns", "lambda"])
def test_value_targets_are_returns_or_lambda_returns(targets):
    agent = small_agent(value_targets=targets)
    gen = torch.Generator().manual_seed(3)
    lengths, terminated = [5, 2, 5, 3], torch.tensor([False, False, True, True])
    batch = bandit_paths(agent.policy, gen, n=4, horizon=5)
    batch.mask = (torch.arange(5)[None, :] < torch.tensor(lengths)[:, None]).float()
    batch.rewards = (batch.rewards + 3.0) * batch.mask  # positive: a bootstrap adds value
    batch.terminated = terminated
    values = agent.baseline.predict(batch)
    seen = {}

    def record_fit(fitted_batch, fitted_targets, generator=None):
        seen["targets"] = fitted_targets
        return 0.0, 0.0

    agent.baseline.fit = record_fit
    agent.train_step(batch, gen)
    got = seen["targets"].double() * batch.mask
    # 'returns': lambda = 1 and no bootstrap (Monte Carlo within the path)
    lam, boot_values = (0.95, values) if targets == "lambda" else (1.0, torch.zeros_like(values))
    want = lambda_returns_reference(batch.rewards, boot_values, lengths, terminated, 0.9, lam)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)

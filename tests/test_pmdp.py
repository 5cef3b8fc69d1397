"""Disagreement and threshold against a per-pair, per-sample reference."""

from __future__ import annotations

import itertools

import pytest
import torch

from morel.models.dynamics import DynamicsEnsemble, max_pairwise_distance
from morel.npg.policies import GaussianMLP
from morel.pmdp import (
    HaltRules,
    ensemble_statistics,
    model_table,
    pmdp_rollouts,
    truncate_limit,
)


def reference_disagreement(predictions):
    n = predictions.shape[1]
    out = torch.zeros(n, dtype=torch.float64)
    for k in range(n):
        for i, j in itertools.combinations(range(predictions.shape[0]), 2):
            d = torch.sqrt(((predictions[i, k].double() - predictions[j, k].double()) ** 2).sum())
            out[k] = max(out[k], d)
    return out


@pytest.mark.parametrize("members", [1, 2, 4])
def test_max_pairwise_distance_matches_reference(members):
    preds = torch.randn(members, 30, 5)
    torch.testing.assert_close(max_pairwise_distance(preds).double(),
                               reference_disagreement(preds), rtol=1e-5, atol=1e-6)


def test_dataset_statistics_in_one_batched_pass_and_threshold():
    model = DynamicsEnsemble(3, 4, 2, (8,), seed=0)
    s, a, s_next = torch.randn(101, 4), torch.randn(101, 2), torch.randn(101, 4)
    mse, full = model.dataset_statistics(s, a, s_next)
    mse7, full7 = model.dataset_statistics(s, a, s_next, batch_size=7)
    torch.testing.assert_close(full7, full)
    torch.testing.assert_close(mse7, mse)
    preds = model.predict_all(s, a).double()
    torch.testing.assert_close(full.double(), reference_disagreement(preds), rtol=1e-5,
                               atol=1e-6)
    torch.testing.assert_close(mse.double(), ((preds - s_next.double()) ** 2).mean(1),
                               rtol=1e-5, atol=1e-6)
    assert truncate_limit(full, 0.5) == pytest.approx(2 * float(full.max()))
    assert truncate_limit(full, None) is None and truncate_limit(full, 0.0) is None


def test_ensemble_statistics_and_table():
    model = DynamicsEnsemble(3, 4, 2, (8,), seed=0)
    data = {"s": torch.randn(1000, 4), "a": torch.randn(1000, 2), "s_next": torch.randn(1000, 4)}
    _, dis = model.dataset_statistics(data["s"], data["a"], data["s_next"])
    stats = ensemble_statistics(model, data, 2.0)
    assert stats["truncate_lim"] == pytest.approx(float(dis.max()) / 2)
    assert stats["halt_frac_data"] == pytest.approx(float((dis > dis.max() / 2).float().mean()))
    assert stats["disagreement_p99"] == pytest.approx(float(torch.sort(dis).values[989]))
    assert stats["disagreement_mean"] == pytest.approx(float(dis.mean()))
    table = model_table({**stats, "dyn_loss_1": 0.25}, 3)
    assert "truncate_lim" in table and "0.25" in table and len(table.splitlines()) > 8
    assert "held-out" not in table
    held = {f"dyn_loss_heldout_{i}": 0.125 + i for i in range(3)}
    assert "held-out loss" in model_table({**stats, **held}, 3) and "2.125" in model_table(
        {**stats, **held}, 3)
    naive = ensemble_statistics(model, data, None)
    assert naive["truncate_lim"] is None and "none (naive)" in model_table(naive, 3)
    # halt_quantile: the q-quantile of the data's disagreement replaces its max
    ranked = torch.sort(dis).values
    quantile = ensemble_statistics(model, data, 1.0, halt_quantile=0.9)
    assert quantile["truncate_lim"] == float(ranked[899])
    assert quantile["halt_frac_data"] == pytest.approx(0.1)  # the 100 pairs above the p90
    assert ensemble_statistics(model, data, 0.5, halt_quantile=0.9)["truncate_lim"] == \
        pytest.approx(2 * float(ranked[899]))
    assert ensemble_statistics(model, data, 2.0, halt_quantile=1.0)["truncate_lim"] == \
        stats["truncate_lim"]
    # error_std: root mean squared one-step error per state dimension, over members and data
    preds = model.predict_all(data["s"], data["a"]).double()
    expected = ((preds - data["s_next"].double()) ** 2).mean((0, 1)).sqrt()
    torch.testing.assert_close(stats["error_std"].double(), expected, rtol=1e-5, atol=1e-7)


def drift_ensemble(gain: float = 0.1) -> DynamicsEnsemble:
    """Two linear members on states (x, y), actions ignored: member 0 x' = x + 1, member 1
    x' = (1 + gain) x + 1; y' = y. Disagreement at (x, y) is gain * |x|."""
    model = DynamicsEnsemble(2, 2, 1, (), seed=0)
    with torch.no_grad():
        model.weights[0].zero_()
        model.biases[0].zero_()
        model.biases[0][:, 0, 0] = 1.0
        model.weights[0][1, 0, 0] = gain
    return model


def still_policy() -> GaussianMLP:
    policy = GaussianMLP(2, 1, (4,), init_log_std=-20.0, min_log_std=-20.0, seed=0)
    with torch.no_grad():
        policy.layers[-1].weight.zero_()
        policy.layers[-1].bias.zero_()
    return policy


def zero_reward(paths, timing):
    return torch.ones(paths["observations"].shape[:2])


def done_at_x3(paths, timing):
    """Termination: the first coordinate has reached 3."""
    return paths["observations"][..., 0] >= 3.0


def test_paths_halt_exactly_where_the_disagreement_crosses():
    starts = torch.tensor([[0.0, 0.0], [10.0, 0.0], [-0.7, 0.0]])
    rules = HaltRules(truncate_lim=0.45, halt_reward=-7.0)
    out = pmdp_rollouts(drift_ensemble(), still_policy(), starts, 20, rules, zero_reward, None)
    # member 0 from x=0: x_t = t, disagreement 0.1 t > 0.45 first at t=5 -> length 6
    # member 0 from x=10: violated at t=0 -> halted at the minimum length 4
    # member 0 from x=-0.7: disagreement 0.1|t - 0.7| > 0.45 first at t=6 -> length 7
    # member 1 from x=0: x = 0, 1, 2.1, 3.31, 4.641 -> violated at t=4 -> length 5
    # member 1 from x=10: length 4; from x=-0.7: x = -.7, .23, 1.25, 2.38, 3.62, 4.98 -> t=5
    assert out.batch.lengths.tolist() == [6, 4, 7, 5, 4, 6]
    assert out.halted.all() and out.num_dropped == 0
    assert not out.batch.terminated.any()  # the original: no P-MDP path is terminal
    rewards = out.batch.rewards
    lengths = out.batch.lengths
    for p in range(6):
        assert rewards[p, lengths[p] - 1] == 1.0 - 7.0 and rewards[p, :lengths[p] - 1].eq(1).all()
    torch.testing.assert_close(out.batch.observations[0, :6, 0], torch.arange(6.0))
    terminal = pmdp_rollouts(drift_ensemble(), still_policy(), starts, 20,
                             HaltRules(0.45, halt_terminates=True), zero_reward, None)
    assert terminal.batch.terminated.all()


def test_no_threshold_runs_to_the_horizon_and_termination_rules():
    starts = torch.tensor([[0.0, 0.0], [-3.0, 0.0]])
    naive = pmdp_rollouts(drift_ensemble(), still_policy(), starts, 12, HaltRules(None),
                          zero_reward, done_at_x3, timing="current")
    # from x=0 member 0 is done at t=3 (length 4 < 5): dropped; member 1 at t=3 (x=3.31): dropped
    # from x=-3: member 0 done at t=6 (length 7), member 1: x=-3,-2.3,-1.53,-.683,.249,1.27,2.4,3.6
    assert naive.num_dropped == 2
    assert naive.batch.lengths.tolist() == [7, 8]
    assert naive.batch.terminated.all() and not naive.halted.any()
    horizon_only = pmdp_rollouts(drift_ensemble(), still_policy(), starts, 12, HaltRules(None),
                                 zero_reward, None)
    assert horizon_only.batch.lengths.tolist() == [12] * 4
    assert not horizon_only.batch.terminated.any()
    quirk = pmdp_rollouts(drift_ensemble(), still_policy(), starts, 12, HaltRules(100.0),
                          zero_reward, done_at_x3, timing="current")
    assert quirk.batch.lengths.tolist() == [7, 8] and not quirk.batch.terminated.any()


def test_the_models_and_rewards_see_actions_clipped_to_the_box():
    """clip_actions: a policy whose mean is far outside the box drives the model (and the reward
    and termination functions) with box-clipped actions, while the paths keep the sampled ones
    (whose likelihood the NPG step needs)."""
    model = DynamicsEnsemble(2, 2, 1, (), seed=0)  # x' = x + a (both members), y' = y
    with torch.no_grad():
        model.weights[0].zero_()
        model.biases[0].zero_()
        model.weights[0][:, 2, 0] = 1.0
    policy = still_policy()
    with torch.no_grad():
        policy.layers[-1].bias.fill_(3.0)  # mean action 3, the box is [-0.5, 1]
    seen = []

    def action_reward(paths, timing):
        seen.append(paths["actions"])
        return paths["actions"][..., 0]

    box = (torch.tensor([-0.5]), torch.tensor([1.0]))
    starts = torch.zeros(3, 2)
    out = pmdp_rollouts(model, policy, starts, 6, HaltRules(None), action_reward, None,
                        action_box=box)
    assert torch.all(out.batch.actions == 3.0)  # what the policy sampled
    torch.testing.assert_close(out.next_observations[:, :, 0],
                               torch.arange(1.0, 7.0).expand(6, 6))  # x advanced by clip(3) = 1
    assert torch.all(seen[-1] == 1.0) and torch.all(out.batch.rewards == 1.0)
    unclipped = pmdp_rollouts(model, policy, starts, 6, HaltRules(None), action_reward, None)
    torch.testing.assert_close(unclipped.next_observations[:, :, 0],
                               3 * torch.arange(1.0, 7.0).expand(6, 6))


@torch.no_grad()
def reference_rollouts(model, policy, starts, horizon, rules, reward_fn, term_fn, timing,
                       act_repeat):
    """The original's method, slowly: roll each member alone for the full horizon, then cut at
    termination, drop short paths, and halt at the first violation, path by path."""
    out = []
    for e in range(model.num_models):
        for s in starts:
            obs, acts, nxt = [], [], []
            for _ in range(horizon):
                a = policy(s[None])[0].clamp(-rules.bound, rules.bound)
                s2 = model.predict_all(s[None], a[None])[e, 0].clamp(-rules.bound, rules.bound)
                obs.append(s), acts.append(a), nxt.append(s2)
                s = s2
            path = {"observations": torch.stack(obs)[None], "actions": torch.stack(acts)[None],
                    "next_observations": torch.stack(nxt)[None]}
            rewards = reward_fn(path, timing)[0] * act_repeat
            length, terminated = horizon, False
            if term_fn is not None:
                done = term_fn(path, timing)[0]
                if done.any():
                    length, terminated = int(done.nonzero()[0]) + 1, True
            if length < rules.min_length:
                continue
            halted = False
            if rules.truncate_lim is not None:
                for t in range(length - 1):
                    preds = model.predict_all(path["observations"][0, t][None],
                                              path["actions"][0, t][None])
                    if float(max_pairwise_distance(preds)[0]) > rules.truncate_lim:
                        length, halted = max(rules.min_halt_length, t + 1), True
                        break
                terminated = False  # the original's quirk
            rewards = rewards[:length].clone()
            if halted:
                rewards[-1] += rules.halt_reward
            out.append((path["observations"][0, :length], rewards, terminated, halted))
    return out


def test_batched_rollouts_equal_the_slow_reference(hopper_reward_file):
    from morel.envs.reward_files import load_reward_file

    funcs = load_reward_file(hopper_reward_file, 11)
    torch.manual_seed(0)
    model = DynamicsEnsemble(3, 11, 3, (32,), seed=1)
    data = torch.randn(500, 11) * 0.3
    data[:, 0] += 1.25
    model.set_normalisation(data, torch.rand(500, 3) * 2 - 1, data + 0.05 * torch.randn(500, 11))
    policy = GaussianMLP(11, 3, (16,), init_log_std=-20.0, min_log_std=-20.0, seed=2)
    starts = data[:6]
    _, probe = model.dataset_statistics(data, torch.zeros(500, 3), data)
    for lim in (float(probe.quantile(0.6)), None):
        rules = HaltRules(lim, halt_reward=-3.0)
        fast = pmdp_rollouts(model, policy, starts, 30, rules, funcs.reward_function,
                             funcs.termination_function, "next", act_repeat=2)
        slow = reference_rollouts(model, policy, starts, 30, rules, funcs.reward_function,
                                  funcs.termination_function, "next", 2)
        assert len(slow) == len(fast.batch.lengths) and len(slow) > 0
        kinds = {(bool(h), bool(t)) for *_, t, h in slow}
        assert lim is None or len(kinds) > 1 or any(h for *_, h in slow)
        for p, (obs, rewards, terminated, halted) in enumerate(slow):
            n = len(rewards)
            assert int(fast.batch.lengths[p]) == n
            torch.testing.assert_close(fast.batch.observations[p, :n], obs, rtol=1e-4,
                                       atol=1e-4)
            torch.testing.assert_close(fast.batch.rewards[p, :n], rewards, rtol=1e-4, atol=1e-3)
            assert bool(fast.batch.terminated[p]) == terminated
            assert bool(fast.halted[p]) == halted


def test_mean_action_paths_follow_the_policy_mean_and_draw_no_noise(hopper_reward_file):
    """mean_action: a policy with std 1 rolls exactly as the slow reference does with its mean,
    and leaves the generator untouched."""
    from morel.envs.reward_files import load_reward_file

    funcs = load_reward_file(hopper_reward_file, 11)
    model = DynamicsEnsemble(2, 11, 3, (32,), seed=3)
    data = torch.randn(400, 11) * 0.3
    data[:, 0] += 1.25
    model.set_normalisation(data, torch.rand(400, 3) * 2 - 1, data + 0.05 * torch.randn(400, 11))
    policy = GaussianMLP(11, 3, (16,), init_log_std=0.0, seed=4)
    gen = torch.Generator().manual_seed(5)
    state = gen.get_state()
    rules = HaltRules(None)
    fast = pmdp_rollouts(model, policy, data[:4], 20, rules, funcs.reward_function,
                         funcs.termination_function, "next", generator=gen, mean_action=True)
    assert torch.equal(gen.get_state(), state)
    slow = reference_rollouts(model, policy, data[:4], 20, rules, funcs.reward_function,
                              funcs.termination_function, "next", 1)
    assert len(slow) == len(fast.batch.lengths) > 0
    for p, (obs, rewards, _, _) in enumerate(slow):
        n = len(rewards)
        torch.testing.assert_close(fast.batch.observations[p, :n], obs, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(fast.batch.rewards[p, :n], rewards, rtol=1e-4, atol=1e-3)
    noisy = pmdp_rollouts(model, policy, data[:4], 20, rules, funcs.reward_function,
                          funcs.termination_function, "next", generator=gen)
    assert not torch.allclose(noisy.batch.observations[:, 1], fast.batch.observations[:, 1])


def test_member_per_step_takes_each_step_from_the_drawn_member():
    """member_per_step: every step's next state is the prediction of the member the generator
    draws for that path and step (replayed here from the same seed); the path mode never mixes."""
    starts = torch.tensor([[0.5, 0.0], [-1.0, 2.0], [2.0, -1.0]])
    model, gain, horizon = drift_ensemble(0.1), 0.1, 12
    out = pmdp_rollouts(model, still_policy(), starts, horizon, HaltRules(None), zero_reward,
                        None, generator=torch.Generator().manual_seed(7), mean_action=True,
                        member_per_step=True)
    replay = torch.Generator().manual_seed(7)
    x = starts[:, 0].repeat(2)
    drawn = []
    for t in range(horizon):
        torch.testing.assert_close(out.batch.observations[:, t, 0], x)
        members = torch.randint(2, (6,), generator=replay)
        drawn.append(members)
        x = torch.where(members == 0, x + 1, (1 + gain) * x + 1)
    torch.testing.assert_close(out.next_observations[:, -1, 0], x)
    share = torch.stack(drawn).float().mean()
    assert 0.2 < share < 0.8  # both members advance the paths
    torch.testing.assert_close(out.batch.observations[:, :, 1], starts[:, 1].repeat(2)[:, None]
                               .expand(6, horizon))
    by_path = pmdp_rollouts(model, still_policy(), starts, horizon, HaltRules(None),
                            zero_reward, None, mean_action=True)
    torch.testing.assert_close(by_path.batch.observations[:3, 1:, 0] - 1,
                               by_path.batch.observations[:3, :-1, 0])
    with pytest.raises(ValueError, match="generator"):
        pmdp_rollouts(model, still_policy(), starts, horizon, HaltRules(None), zero_reward,
                      None, member_per_step=True)


def test_state_noise_adds_the_drawn_gaussian_to_each_predicted_state():
    """state_noise: each next state is the member's prediction plus state_noise * N(0, 1) drawn
    after the actions (replayed here from the same seed; a still policy's mean action draws
    none); a zero-noise dimension keeps the model's exact prediction."""
    starts = torch.tensor([[0.5, 0.0], [-1.0, 2.0]])
    model, gain, horizon = drift_ensemble(0.1), 0.1, 8
    noise = torch.tensor([0.3, 0.0])
    out = pmdp_rollouts(model, still_policy(), starts, horizon, HaltRules(None), zero_reward,
                        None, generator=torch.Generator().manual_seed(3), mean_action=True,
                        state_noise=noise)
    replay = torch.Generator().manual_seed(3)
    x = starts[:, 0].repeat(2)
    for t in range(horizon):
        torch.testing.assert_close(out.batch.observations[:, t, 0], x)
        eps = torch.randn(4, 2, generator=replay)
        x = torch.cat([x[:2] + 1, (1 + gain) * x[2:] + 1]) + 0.3 * eps[:, 0]
    torch.testing.assert_close(out.next_observations[:, -1, 0], x)
    torch.testing.assert_close(out.batch.observations[:, :, 1], starts[:, 1].repeat(2)[:, None]
                               .expand(4, horizon))
    with pytest.raises(ValueError, match="generator"):
        pmdp_rollouts(model, still_policy(), starts, horizon, HaltRules(None), zero_reward,
                      None, state_noise=noise)


def test_disagreement_cost_is_taken_from_every_steps_reward():
    """disagreement_cost c: each step pays c * disagreement at its own (s, a), here gain * |x|
    on the drift ensemble's paths; halting is unchanged and c = 0 leaves the rewards alone."""
    starts = torch.tensor([[0.5, 0.0], [-1.0, 2.0], [2.0, -1.0]])
    model, gain = drift_ensemble(0.1), 0.1
    plain = pmdp_rollouts(model, still_policy(), starts, 10, HaltRules(0.45), zero_reward, None)
    costly = pmdp_rollouts(model, still_policy(), starts, 10,
                           HaltRules(0.45, disagreement_cost=2.5), zero_reward, None)
    torch.testing.assert_close(costly.batch.lengths, plain.batch.lengths)
    assert torch.equal(plain.batch.rewards, plain.batch.mask)
    expected = (1 - 2.5 * gain * costly.batch.observations[..., 0].abs()) * costly.batch.mask
    torch.testing.assert_close(costly.batch.rewards, expected)
    assert bool((costly.batch.rewards <= plain.batch.rewards).all())
    assert float(costly.batch.rewards.sum()) < float(plain.batch.rewards.sum())


def test_halt_patience_needs_that_many_consecutive_steps_over_the_limit():
    """halt_patience k: a path halts at the k-th step of a run of consecutive steps whose
    disagreement (gain * |x| on the drift ensemble) exceeds the limit; a shorter run, here a
    crossing at the start that the path then leaves, does not halt it."""
    starts = torch.tensor([[-5.3, 0.0], [0.0, 0.0]])
    # |x| > 4.5 on member 0's x_t = -5.3 + t at t = 0 and t >= 10; from 0 at t >= 5.
    # member 1 (x' = 1.1 x + 1) from -5.3: -5.3, -4.83, -4.31, ..., 3.41, 4.75, 6.23, 7.85 (over
    # at t = 0, 1 and t >= 12); from 0: over at t >= 4. Paths are member-major.
    expected = {1: [4, 6, 4, 5], 2: [12, 7, 4, 6], 3: [13, 8, 15, 7]}
    for patience, lengths in expected.items():
        out = pmdp_rollouts(drift_ensemble(), still_policy(), starts, 20,
                            HaltRules(0.45, halt_patience=patience), zero_reward, None)
        assert out.batch.lengths.tolist() == lengths, patience
        assert out.halted.all()
    never = pmdp_rollouts(drift_ensemble(), still_policy(), starts, 9,
                          HaltRules(0.45, halt_patience=2), zero_reward, None)
    # within 9 steps only member 1's first two steps from -5.3 and the paths from 0 run over
    assert never.batch.lengths.tolist() == [9, 7, 4, 6]
    assert never.halted.tolist() == [False, True, True, True]


def test_member_min_reward_takes_the_least_reward_over_the_members_predictions():
    """member_min_reward: each step earns min over members of r(s, a, f_e(s, a)); on the drift
    ensemble with r = x' - x / 2 that is min(x + 1, 1.1 x + 1) - x / 2 at the path's own state
    x, below the own member's reward where the members differ; lengths, halts and a single
    member's paths are unchanged."""
    def next_minus_half(paths, timing):
        return paths["next_observations"][..., 0] - 0.5 * paths["observations"][..., 0]

    starts = torch.tensor([[0.5, 0.0], [-1.0, 2.0], [2.0, -1.0]])
    model = drift_ensemble(0.1)
    own = pmdp_rollouts(model, still_policy(), starts, 10, HaltRules(0.45), next_minus_half, None)
    least = pmdp_rollouts(model, still_policy(), starts, 10,
                          HaltRules(0.45, member_min_reward=True), next_minus_half, None)
    torch.testing.assert_close(least.batch.lengths, own.batch.lengths)
    assert torch.equal(least.halted, own.halted)
    x = least.batch.observations[..., 0]
    expected = (torch.minimum(x + 1, 1.1 * x + 1) - 0.5 * x) * least.batch.mask
    torch.testing.assert_close(least.batch.rewards, expected)
    assert bool((least.batch.rewards <= own.batch.rewards + 1e-6).all())
    assert float((own.batch.rewards - least.batch.rewards).max()) > 0.05
    single = DynamicsEnsemble(1, 2, 1, (), seed=0)
    with torch.no_grad():
        single.weights[0].copy_(model.weights[0][:1])
        single.biases[0].copy_(model.biases[0][:1])
    plain = pmdp_rollouts(single, still_policy(), starts, 10, HaltRules(None), next_minus_half,
                          None)
    alone = pmdp_rollouts(single, still_policy(), starts, 10,
                          HaltRules(None, member_min_reward=True), next_minus_half, None)
    assert torch.equal(plain.batch.rewards, alone.batch.rewards)


@pytest.mark.parametrize("halt_terminates, falls_terminate, want", [
    (False, None, [False, False, False, False]),  # the original: nothing is terminal
    (True, None, [True, True, True, True]),  # the paper's absorbing HALT, falls alike
    (False, True, [True, False, True, False]),  # falls end, halted paths bootstrap
    (True, False, [False, True, False, True]),
])
def test_falls_and_halts_are_terminal_as_the_rules_say(halt_terminates, falls_terminate, want):
    # from x=-2 both members fall (x >= 3) at lengths 6 and 7 below the threshold; from
    # x=-10 the disagreement 0.1 |x| = 1 is over it at once: both halt at the minimum length
    starts = torch.tensor([[-2.0, 0.0], [-10.0, 0.0]])
    rules = HaltRules(0.65, halt_terminates=halt_terminates, falls_terminate=falls_terminate)
    out = pmdp_rollouts(drift_ensemble(), still_policy(), starts, 20, rules, zero_reward,
                        done_at_x3, timing="current")
    assert out.batch.lengths.tolist() == [6, 4, 7, 4]
    assert out.env_terminated.tolist() == [True, False, True, False]
    assert out.halted.tolist() == [False, True, False, True]
    assert out.batch.terminated.tolist() == want


def test_without_halting_falls_terminate_unless_told_not_to():
    starts = torch.tensor([[-2.0, 0.0]])
    for falls, want in ((None, True), (True, True), (False, False)):
        out = pmdp_rollouts(drift_ensemble(), still_policy(), starts, 20,
                            HaltRules(None, falls_terminate=falls), zero_reward, done_at_x3,
                            timing="current")
        assert out.batch.lengths.tolist() == [6, 7]
        assert out.batch.terminated.tolist() == [want, want]

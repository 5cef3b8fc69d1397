"""Env wrapper: act_repeat, horizon, action clipping, obs_mask on every observation, seeding."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from morel.core.errors import MorelError
from morel.core.seeding import episode_seeds
from morel.envs.wrapper import check_env_id, make_env, make_vector_env

MASK = np.array([1.0] * 5 + [0.02] * 6)


def test_act_repeat_sums_rewards_of_the_repeated_action():
    env = make_env("Hopper-v5", act_repeat=3)
    raw = gym.make("Hopper-v5")
    obs, _ = env.reset(seed=5)
    raw_obs, _ = raw.reset(seed=5)
    np.testing.assert_array_equal(obs, raw_obs)
    action = np.array([0.3, -0.2, 0.1], dtype=np.float32)
    obs, reward, *_ = env.step(action)
    expected = sum(raw.step(action)[1] for _ in range(3))
    np.testing.assert_allclose(reward, expected, rtol=1e-12)
    np.testing.assert_array_equal(obs, raw.unwrapped._get_obs())


def test_act_repeat_stops_at_termination():
    env = make_env("Hopper-v5", act_repeat=4)
    raw = gym.make("Hopper-v5")
    env.reset(seed=0)
    raw.reset(seed=0)
    action = np.array([1.0, 1.0, -1.0], dtype=np.float32)
    for _ in range(200):
        _, reward, terminated, *_ = env.step(action)
        total, inner_steps = 0.0, 0
        for _ in range(4):
            _, r, raw_term, *_ = raw.step(action)
            total, inner_steps = total + r, inner_steps + 1
            if raw_term:
                break
        np.testing.assert_allclose(reward, total, rtol=1e-12)
        if terminated:
            assert raw_term and inner_steps <= 4
            break
    else:
        pytest.fail("scripted action never made Hopper fall")


@pytest.mark.parametrize("act_repeat, horizon", [(1, 1000), (2, 500), (3, 333)])
def test_horizon_is_max_steps_over_act_repeat(act_repeat, horizon):
    env = make_env("HalfCheetah-v5", act_repeat=act_repeat)
    assert env.horizon == horizon
    env.reset(seed=0)
    for t in range(1, horizon + 1):
        *_, terminated, truncated, _ = env.step(np.zeros(6))
        assert truncated == (t == horizon) and not terminated


def test_actions_are_clipped_to_the_box():
    a, b = make_env("Hopper-v5"), make_env("Hopper-v5")
    a.reset(seed=1)
    b.reset(seed=1)
    out_a = a.step(np.array([5.0, -7.0, 0.5]))
    out_b = b.step(np.array([1.0, -1.0, 0.5]))
    np.testing.assert_array_equal(out_a[0], out_b[0])
    assert out_a[1] == out_b[1]


def test_obs_mask_applies_to_reset_and_step_observations():
    env = make_env("Hopper-v5", obs_mask=MASK)
    raw = gym.make("Hopper-v5")
    obs, _ = env.reset(seed=3)
    np.testing.assert_allclose(obs, raw.reset(seed=3)[0] * MASK)
    obs = env.step(np.zeros(3))[0]
    np.testing.assert_allclose(obs, raw.step(np.zeros(3))[0] * MASK)
    with pytest.raises(MorelError, match="obs_mask has 3 entries but env 'Hopper-v5' obs"):
        make_env("Hopper-v5", obs_mask=[1, 1, 1])


def test_seeding_is_reproducible_and_vector_envs_differ_per_index():
    def episode(seed):
        env = make_env("Hopper-v5")
        obs = [env.reset(seed=seed)[0]]
        rng = np.random.default_rng(0)
        for _ in range(20):
            obs.append(env.step(rng.uniform(-1, 1, 3))[0])
        return np.array(obs)

    np.testing.assert_array_equal(episode(11), episode(11))
    assert not np.array_equal(episode(11), episode(12))
    vec = make_vector_env("Hopper-v5", 3, obs_mask=MASK)
    first, _ = vec.reset(seed=11)
    np.testing.assert_allclose(first[0], episode(11)[0] * MASK)
    assert not np.allclose(first[0], first[1])


@pytest.mark.parametrize("env_id, message", [
    ("Hopper-v3", "needs mujoco-py.*use 'Hopper-v5'"),
    ("HalfCheetah-v2", "needs mujoco-py.*use 'HalfCheetah-v5'"),
    ("hopper-medium-v0", "D4RL dataset name.*prep_d4rl_dataset.py.*'Hopper-v5'"),
    ("Hoper-v5", "not a registered gymnasium env \\(did you mean 'Hopper-v5'"),
])
def test_unusable_env_ids_get_one_line_errors(env_id, message):
    with pytest.raises(MorelError, match=message):
        check_env_id(env_id)


def test_mujoco_warnings_are_shown_once(recwarn):
    from morel.envs import wrapper as envs

    envs._MUJOCO_WARNINGS_SEEN.clear()
    for _ in range(3):
        envs.make_env("HalfCheetah-v5").reset(seed=0)
    mujoco_warnings = [w for w in recwarn if "MuJoCo:" in str(w.message)]
    assert len(mujoco_warnings) == len(envs._MUJOCO_WARNINGS_SEEN) >= 1


def test_env_batch_equals_gymnasium_sync_vector_env():
    """EnvBatch keeps SyncVectorEnv's same-step autoreset semantics: identical episodes."""
    from gymnasium.vector import AutoresetMode, SyncVectorEnv

    from morel.envs.sampling import collect_episodes, episode_returns, noise_rng, sampled_action_fn
    from morel.npg.policies import GaussianMLP

    policy = GaussianMLP(11, 3, (8,), init_log_std=-0.5, seed=0)
    mask = [1.0] * 5 + [0.02] * 6
    ours = make_vector_env("Hopper-v5", 3, 2, mask)
    theirs = SyncVectorEnv([lambda: make_env("Hopper-v5", 2, mask) for _ in range(3)],
                           autoreset_mode=AutoresetMode.SAME_STEP)
    act = sampled_action_fn(policy.mean_std)
    a = collect_episodes(ours, act, 600, np.random.SeedSequence(4), progress=False)
    # the same collection by hand on SyncVectorEnv, every env stepped at every step, episodes
    # kept in the order they end until 600 samples, the episodes in flight then finished
    rng, seeds = noise_rng(np.random.SeedSequence(4)), np.random.SeedSequence(4)
    obs, _ = theirs.reset(seed=episode_seeds(seeds, 3))
    steps, b, in_flight, collected = [[], [], []], [], np.ones(3, bool), 0
    while in_flight.any():
        actions = act(obs, rng)
        next_obs, rewards, terminated, truncated, _ = theirs.step(actions)
        for i in np.flatnonzero(in_flight):
            steps[i].append((obs[i], actions[i], rewards[i]))
            if terminated[i] or truncated[i]:
                o, u, r = (np.array(x, np.float32) for x in zip(*steps[i]))
                b.append({"observations": o, "actions": u, "rewards": r,
                          "terminated": bool(terminated[i])})
                collected, steps[i] = collected + len(r), []
        in_flight &= (collected < 600) | np.array([len(x) > 0 for x in steps])
        obs = next_obs
    assert len(a) == len(b) > 3
    for p, q in zip(a, b):
        assert p["terminated"] == q["terminated"]
        for key in ("observations", "actions", "rewards"):
            np.testing.assert_array_equal(p[key], q[key])
    # episode_returns steps only the running envs; SyncVectorEnv steps all of them, its ended
    # episodes' rewards masked out: the same returns and the same noise stream
    seeds = np.random.SeedSequence(9)
    expected, running, rng = np.zeros(3), np.ones(3, bool), noise_rng(seeds)
    obs, _ = theirs.reset(seed=episode_seeds(seeds, 3))
    while running.any():
        obs, rewards, terminated, truncated, _ = theirs.step(act(obs, rng))
        expected += np.where(running, rewards, 0.0)
        running &= ~(terminated | truncated)
    np.testing.assert_array_equal(episode_returns(ours, act, seeds), expected)

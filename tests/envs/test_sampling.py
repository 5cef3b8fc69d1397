"""Action modes and episode collection on vectorised envs."""

from __future__ import annotations

import numpy as np
import pytest

from morel.core.errors import MorelError
from morel.core.seeding import episode_seeds
from morel.envs.sampling import (
    ActionMode,
    collect_episodes,
    episode_returns,
    gaussian_action_fn,
    sampled_action_fn,
    uniform_action_fn,
)
from morel.envs.wrapper import make_env, make_vector_env

LOW, HIGH = -np.ones(2), np.ones(2)


def fixed_policy(obs):
    n = len(obs)
    return np.full((n, 2), 0.5), np.full((n, 2), 0.2)


@pytest.mark.parametrize("text, parsed", [("pure", ActionMode("pure")),
                                          ("eps-0.1", ActionMode("eps", 0.1)),
                                          ("gauss-0.3", ActionMode("gauss", 0.3))])
def test_modes_parse(text, parsed):
    assert ActionMode.parse(text) == parsed


@pytest.mark.parametrize("text", ["noisy", "eps-1.5", "gauss-", "eps-0.1.2"])
def test_bad_modes_are_clear_errors(text):
    with pytest.raises(MorelError, match="--mode"):
        ActionMode.parse(text)


def test_mode_statistics():
    obs, rng = np.zeros((20000, 3)), np.random.default_rng(0)
    pure = gaussian_action_fn(fixed_policy, ActionMode("pure"), LOW, HIGH)(obs, rng)
    np.testing.assert_allclose(pure.mean(0), 0.5, atol=0.01)
    np.testing.assert_allclose(pure.std(0), 0.2, atol=0.01)
    # mode pure is the policy's own sample: the same draws as sampled_action_fn
    again = sampled_action_fn(fixed_policy)(obs, np.random.default_rng(0))
    assert np.array_equal(pure, again) and again.dtype == np.float32
    eps = gaussian_action_fn(fixed_policy, ActionMode("eps", 0.3), LOW, HIGH)(obs, rng)
    at_mean = np.all(eps == np.float32(0.5), axis=1)
    assert abs(at_mean.mean() - 0.7) < 0.015  # the rest is uniform on the box
    np.testing.assert_allclose(eps[~at_mean].mean(0), 0.0, atol=0.03)
    gauss = gaussian_action_fn(fixed_policy, ActionMode("gauss", 1.0), LOW, HIGH)(obs, rng)
    assert gauss.max() <= 1.0 and gauss.min() >= -1.0 and (gauss == 1.0).mean() > 0.25


def test_collection_gets_whole_episodes_and_is_deterministic():
    def collect():
        vec = make_vector_env("Hopper-v5", 4, act_repeat=2)
        low, high = vec.envs[0].action_space.low, vec.envs[0].action_space.high
        return collect_episodes(vec, uniform_action_fn(low, high), 600,
                                np.random.SeedSequence(7), progress=False)

    paths = collect()
    samples = sum(len(p["rewards"]) for p in paths)
    assert samples >= 600 and samples < 600 + 4 * 500
    for p in paths:  # whole episodes: the env ended them, or they ran the full horizon
        assert p["terminated"] or len(p["rewards"]) == 500
        assert p["observations"].shape == (len(p["rewards"]), 11)
    again = collect()
    assert len(again) == len(paths)
    for a, b in zip(paths, again):
        np.testing.assert_array_equal(a["observations"], b["observations"])
        np.testing.assert_array_equal(a["actions"], b["actions"])


def test_episode_returns_equal_single_env_episodes():
    """One episode per env, env i reset with episode_seeds(seeds)[i]: the same returns as a
    plain loop; the first 2 of 3 episodes are those of a 2-env batch."""

    def act(obs, rng):
        return np.tanh(obs[:, :3] * 2.0).astype(np.float32)  # deterministic, state dependent

    seeds = np.random.SeedSequence(11)
    batch = make_vector_env("Hopper-v5", 3)
    steps = [0, 0, 0]
    for i, env in enumerate(batch.envs):  # count each env's steps
        def counted(action, i=i, step=env.step):
            steps[i] += 1
            return step(action)
        env.step = counted
    returns = episode_returns(batch, act, seeds)
    np.testing.assert_array_equal(episode_returns(make_vector_env("Hopper-v5", 2), act, seeds),
                                  returns[:2])
    lengths = []
    for i in range(3):
        env = make_env("Hopper-v5")
        obs, _ = env.reset(seed=episode_seeds(seeds, 3)[i])
        total, done = 0.0, False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(act(obs[None], None)[0])
            total += reward
            done = terminated or truncated
            lengths.append(i)
        assert returns[i] == pytest.approx(total, rel=1e-6)
    lengths = np.bincount(lengths).tolist()
    assert len(set(lengths)) > 1  # episodes of different lengths ...
    assert steps == lengths  # ... and an ended episode's env is not stepped again


def test_collection_steps_only_envs_with_an_episode_in_flight():
    """Every env step is a collected sample, and the paths are each env's episodes in order, as
    a single env stepped on its own gives them (a deterministic, state-dependent policy)."""

    def act(obs, rng):
        return np.tanh(obs[:, :3] * 2.0).astype(np.float32)

    seeds = np.random.SeedSequence(5)
    batch = make_vector_env("Hopper-v5", 3)
    steps = [0, 0, 0]
    for i, env in enumerate(batch.envs):
        def counted(action, i=i, step=env.step):
            steps[i] += 1
            return step(action)
        env.step = counted
    paths = collect_episodes(batch, act, 400, seeds, progress=False)
    assert sum(steps) == sum(len(p["rewards"]) for p in paths) >= 400
    reference = []  # each env's episodes, one after another, until its step count is used up
    for i in range(3):
        env = make_env("Hopper-v5")
        obs, _ = env.reset(seed=episode_seeds(seeds, 3)[i])
        taken, observations = 0, [obs]
        while taken < steps[i]:
            obs, _, terminated, truncated, _ = env.step(act(obs[None], None)[0])
            taken += 1
            if terminated or truncated:
                reference.append(np.array(observations, np.float32))
                obs, _ = env.reset()
                observations = []
            observations.append(obs)
        assert len(observations) == 1  # the env stopped at the end of an episode
    assert len(paths) == len(reference) > 3
    collected = sorted(p["observations"].tobytes() for p in paths)
    assert collected == sorted(r.tobytes() for r in reference)

"""Reward/termination files against the real v5 envs, numpy vs torch, and the original's form.

Tolerances: the env's reward uses the torso's mean x-velocity over the step ((x_t+1 - x_t)/dt
over 4-5 physics sub-steps); the files only see velocities at the step's ends, and the 'next'
form uses their mean (trapezoid rule). Measured with seed 0 (README "Reward files"), mean/max
absolute error per step, random | scripted actions: Hopper 0.0017/0.038 | 0.0020/0.042, Walker2d
0.0085/0.106 | 0.0038/0.077, HalfCheetah 0.143/0.70 | 0.0024/0.41 (bang-bang random torques
change the velocity inside a step most). Bounds below are about 2.5x those. Terminations must
match the env exactly.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import REWARDS

from morel.envs import make_env
from morel.reward_files import first_termination, load_reward_file

ENVS = {  # env id: (file, episodes, (mean, max) bound of the 'next' reward error)
    "Hopper-v5": ("gym_hopper.py", 25, (0.005, 0.1)),
    "Walker2d-v5": ("gym_walker2d.py", 25, (0.025, 0.27)),
    "HalfCheetah-v5": ("gym_halfcheetah.py", 2, (0.35, 1.75)),
}


def rollouts(env_id, policy_kind, episodes):
    rf = load_reward_file(REWARDS / ENVS[env_id][0])
    env = make_env(env_id, obs_mask=rf.obs_mask)
    rng = np.random.default_rng(0)
    out = []
    for ep in range(episodes):
        obs, _ = env.reset(seed=ep)
        rows = []
        for t in range(env.horizon):
            if policy_kind == "random":
                action = rng.uniform(-1, 1, env.act_dim)
            else:
                action = 0.8 * np.sin(0.1 * t + np.arange(env.act_dim) + ep)
            nxt, reward, terminated, truncated, _ = env.step(action)
            rows.append((obs, action, reward, nxt))
            obs = nxt
            if terminated or truncated:
                break
        o, a, r, n = (np.array(x) for x in zip(*rows))
        out.append(({"observations": o[None], "actions": a[None], "next_observations": n[None]},
                    r, terminated))
    return rf, out


@pytest.mark.parametrize("policy_kind", ["random", "scripted"])
@pytest.mark.parametrize("env_id", list(ENVS))
def test_reward_and_termination_match_the_env(env_id, policy_kind):
    rf, episodes = rollouts(env_id, policy_kind, ENVS[env_id][1])
    errors = {"next": [], "current": []}
    for paths, env_rewards, env_terminated in episodes:
        for timing, errs in errors.items():
            errs.extend(np.abs(rf.reward_function(dict(paths), timing)[0] - env_rewards))
        lengths, terminated = first_termination(rf.termination_function(paths, "next"))
        assert (lengths[0], terminated[0]) == (len(env_rewards), env_terminated)
    mean_bound, max_bound = ENVS[env_id][2]
    assert np.mean(errors["next"]) < mean_bound and np.max(errors["next"]) < max_bound
    assert np.mean(errors["next"]) < np.mean(errors["current"])  # 'next' is the better form


@pytest.mark.parametrize("env_id", list(ENVS))
@pytest.mark.parametrize("timing", ["next", "current"])
def test_torch_equals_numpy(env_id, timing):
    rf, episodes = rollouts(env_id, "random", 1)
    paths = episodes[0][0]
    torch_paths = {k: torch.as_tensor(v, dtype=torch.float32) for k, v in paths.items()}
    np_paths = {k: v.astype(np.float32) for k, v in paths.items()}
    r_t = rf.reward_function(torch_paths, timing)
    assert isinstance(r_t, torch.Tensor) and torch_paths["rewards"] is r_t
    np.testing.assert_allclose(r_t.numpy(), rf.reward_function(np_paths, timing), rtol=1e-5,
                               atol=1e-5)
    d_t = rf.termination_function(torch_paths, timing)
    assert d_t.dtype == torch.bool
    np.testing.assert_array_equal(d_t.numpy(), rf.termination_function(np_paths, timing))
    lengths_t, term_t = first_termination(d_t)
    lengths_n, term_n = first_termination(d_t.numpy())
    np.testing.assert_array_equal(lengths_t.numpy(), lengths_n)
    np.testing.assert_array_equal(term_t.numpy(), term_n)


def test_hopper_current_timing_is_the_originals_formula():
    rf = load_reward_file(REWARDS / "gym_hopper.py")
    obs = np.zeros((1, 4, 11))
    obs[0, :, 0] = [1.2, 1.2, 0.69, 1.2]     # height: step 2 too low
    obs[0, :, 1] = [0.0, 0.18, 0.0, 0.0]     # angle 0.18: alive (<= 0.2) yet terminal (>= 0.15)
    obs[0, :, 5] = [0.02, 0.04, 0.0, 11.0]   # masked x-velocity 1, 2, 0, clipped to 10 -> 500
    actions = np.full((1, 4, 3), 2.0)         # clipped to 1 -> cost 1e-3 * 3
    paths = {"observations": obs, "actions": actions}
    np.testing.assert_allclose(rf.reward_function(paths, "current")[0],
                               [1 + 1 - 3e-3, 2 + 1 - 3e-3, 0 - 3e-3, 500 + 1 - 3e-3])
    done = rf.termination_function(paths, "current")
    np.testing.assert_array_equal(done[0], [False, True, True, True])
    lengths, terminated = first_termination(done)
    assert lengths[0] == 2 and terminated[0]


def test_first_termination_closed_form():
    done = np.array([[False, False, True, True], [False] * 4, [True, False, False, False]])
    lengths, terminated = first_termination(done)
    np.testing.assert_array_equal(lengths, [3, 4, 1])
    np.testing.assert_array_equal(terminated, [True, False, True])


def test_missing_next_observations_and_bad_files(tmp_path):
    rf = load_reward_file(REWARDS / "gym_hopper.py")
    from morel.errors import MorelError

    with pytest.raises(MorelError, match="needs paths\\['next_observations'\\]"):
        rf.reward_function({"observations": np.zeros((1, 2, 11)),
                            "actions": np.zeros((1, 2, 3))})
    with pytest.raises(MorelError, match="obs_mask has 11 entries but the env's"):
        load_reward_file(REWARDS / "gym_hopper.py", obs_dim=17)
    (tmp_path / "broken.py").write_text("obs_mask = [1,\n")
    with pytest.raises(MorelError, match="broken.py line 1: syntax error"):
        load_reward_file(tmp_path / "broken.py")
    (tmp_path / "raises.py").write_text("raise RuntimeError('boom')\n")
    with pytest.raises(MorelError, match="importing failed \\(RuntimeError: boom\\)"):
        load_reward_file(tmp_path / "raises.py")
    with pytest.raises(MorelError, match="not found"):
        load_reward_file(tmp_path / "absent.py")

"""Reward/termination files against the real v5 envs, numpy vs torch, and the original's form.

Tolerances: the env's reward uses the torso's mean x-velocity over the step ((x_t+1 - x_t)/dt
over 4-5 physics sub-steps); the files only see velocities at the step's ends, and the 'next'
form uses their mean (trapezoid rule). `python utils/check_reward_files.py` prints the measured
errors (docs/reward_files.md): mean/max per step with seed 0, random actions, Hopper
0.0017/0.038, Walker2d 0.0073/0.079, HalfCheetah 0.144/0.80 (bang-bang random torques change the
velocity inside a step most; scripted actions err less). The bounds below are about 2.5x those.
Terminations must match the env exactly.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import REWARDS

from morel.core.errors import MorelError
from morel.envs.reward_check import check_reward_file, env_rollouts
from morel.envs.reward_files import first_termination, load_reward_file

ENVS = {  # env id: (file, episodes, (mean, max) bound of the 'next' reward error)
    "Hopper-v5": ("gym_hopper.py", 25, (0.005, 0.1)),
    "Walker2d-v5": ("gym_walker2d.py", 25, (0.025, 0.27)),
    "HalfCheetah-v5": ("gym_halfcheetah.py", 2, (0.35, 1.75)),
}


@pytest.mark.parametrize("policy_kind", ["random", "scripted"])
@pytest.mark.parametrize("env_id", list(ENVS))
def test_reward_and_termination_match_the_env(env_id, policy_kind):
    file, episodes, (mean_bound, max_bound) = ENVS[env_id]
    check = check_reward_file(env_id, REWARDS / file, policy_kind, episodes)
    assert check.terminations_matched == episodes
    assert check.error_next[0] < mean_bound and check.error_next[1] < max_bound
    assert check.error_next[0] < check.error_current[0]  # 'next' is the better form


@pytest.mark.parametrize("env_id", list(ENVS))
@pytest.mark.parametrize("timing", ["next", "current"])
def test_torch_equals_numpy(env_id, timing):
    rf, episodes = env_rollouts(env_id, REWARDS / ENVS[env_id][0], "random", 1)
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

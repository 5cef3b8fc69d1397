"""Reward and termination of Hopper-v5 from (masked) observations, numpy or torch.

Observation: [z, angle, thigh, leg, foot] positions, then 6 velocities [v_x, v_z, ...] (the env
clips them to +-10); `obs_mask` scales the velocities by 0.02, so v_x = obs[..., 5] / 0.02.
Env: r_t = v_x + 1{healthy} - 1e-3 |a_t|^2, where v_x is the torso's mean x-velocity over the step
and "healthy" (z > 0.7, |angle| < 0.2, |joint angles and velocities| < 100) is read after the
action; the episode terminates when not healthy.
timing 'next' judges step t on s_{t+1}, as the env does, with v_x the mean of the velocities in
s_t and s_{t+1} (the env's v_x is the mean over the step: see docs/reward_files.md).
timing 'current' is the original MOReL file: s_t, observations clipped to +-10, alive if
z > 0.7 and |angle| <= 0.2, terminated if any |obs| >= 10, z <= 0.7 or |angle| >= 0.15.
"""

import numpy as np

from morel.envs.reward_files import as_like, locomotion_reward, states_for_timing, x_velocity

obs_mask = np.array([1.0] * 5 + [0.02] * 6)
VX = 5


def reward_function(paths, timing="next"):
    """Rewards [N, T] of paths with observations/actions (and next_observations) [N, T, .]."""
    s = states_for_timing(paths, timing)
    if timing == "current":
        s = s.clip(-10.0, 10.0)
        healthy = (s[..., 0] > 0.7) & (abs(s[..., 1]) <= 0.2)
    else:
        healthy = _healthy(s)
    return locomotion_reward(paths, x_velocity(paths, timing, VX, obs_mask[VX]), 1e-3, healthy)


def termination_function(paths, timing="next"):
    """Done mask [N, T]: True where the episode ends after step t."""
    s = states_for_timing(paths, timing)
    if timing == "current":
        return ~((abs(s) < 10).all(-1) & (s[..., 0] > 0.7) & (abs(s[..., 1]) < 0.15))
    return ~_healthy(s)


def _healthy(s):
    """Hopper-v5's is_healthy on masked observations [N, T, 11] -> [N, T] bool."""
    raw = s[..., 1:] / as_like(obs_mask[1:], s)
    return (s[..., 0] > 0.7) & (abs(s[..., 1]) < 0.2) & (abs(raw) < 100).all(-1)

"""Reward and termination of Walker2d-v5 from (masked) observations, numpy or torch.

Observation: [z, angle, 6 joint angles] positions, then 9 velocities [v_x, v_z, ...] (the env clips
them to +-10); `obs_mask` scales velocities by 0.02, as the original's Hopper file does.
Env: r_t = v_x + 1{healthy} - 1e-3 |a_t|^2 with healthy = 0.8 < z < 2.0 and |angle| < 1.0, read
after the action; the episode terminates when not healthy.
timing 'next' judges step t on s_{t+1} as the env does (v_x: mean of the velocities in s_t and
s_{t+1}); 'current' on s_t alone (the original's way).
"""

import numpy as np

from morel.envs.reward_files import locomotion_reward, states_for_timing, x_velocity

obs_mask = np.array([1.0] * 8 + [0.02] * 9)
VX = 8


def reward_function(paths, timing="next"):
    """Rewards [N, T] of paths with observations/actions (and next_observations) [N, T, .]."""
    healthy = _healthy(states_for_timing(paths, timing))
    return locomotion_reward(paths, x_velocity(paths, timing, VX, obs_mask[VX]), 1e-3, healthy)


def termination_function(paths, timing="next"):
    """Done mask [N, T]: True where the episode ends after step t."""
    return ~_healthy(states_for_timing(paths, timing))


def _healthy(s):
    return (s[..., 0] > 0.8) & (s[..., 0] < 2.0) & (abs(s[..., 1]) < 1.0)

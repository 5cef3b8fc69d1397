"""Reward and termination of HalfCheetah-v5 from (masked) observations, numpy or torch.

Observation: 8 positions (no x), then 9 velocities [v_x, v_z, ...] (not clipped by the env);
`obs_mask` scales velocities by 0.02, as the original's Hopper file does.
Env: r_t = v_x - 0.1 |a_t|^2; the episode never terminates (time limit only).
timing 'next' judges step t on s_t and s_{t+1} (v_x: mean of their velocities); 'current' on s_t
alone (the original's way).
"""

import numpy as np

from morel.envs.reward_files import locomotion_reward, states_for_timing, x_velocity

obs_mask = np.array([1.0] * 8 + [0.02] * 9)
VX = 8


def reward_function(paths, timing="next"):
    """Rewards [N, T] of paths with observations/actions (and next_observations) [N, T, .]."""
    return locomotion_reward(paths, x_velocity(paths, timing, VX, obs_mask[VX]), 0.1)


def termination_function(paths, timing="next"):
    """Done mask [N, T]: all False, HalfCheetah only ends at its time limit."""
    s = states_for_timing(paths, timing)
    return s[..., 0] != s[..., 0]  # False, except NaN states, which end the path

"""Measure a reward/termination file against its real env: per-step reward error, termination."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from morel.envs.reward_files import first_termination, load_reward_file
from morel.envs.wrapper import make_env


@dataclass(frozen=True)
class RewardFileCheck:
    """Absolute per-step reward error (mean, max) per timing, and exact-termination counts."""

    env_name: str
    policy: str
    episodes: int
    steps: int
    error_next: tuple[float, float]
    error_current: tuple[float, float]
    terminations_matched: int


def env_rollouts(env_name: str, reward_file: str | Path, policy: str, episodes: int,
                 seed: int = 0) -> tuple[Any, list[tuple[dict, np.ndarray, bool]]]:
    """Episodes of the real env (observations masked by the file's obs_mask) with 'random'
    (uniform) or 'scripted' (sinusoidal) actions -> (reward file, [(paths [1, T, .], env
    rewards [T], env terminated)])."""
    rf = load_reward_file(reward_file)
    env = make_env(env_name, obs_mask=rf.obs_mask)
    rng = np.random.default_rng(seed)
    out = []
    for ep in range(episodes):
        obs, _ = env.reset(seed=seed + ep)
        rows = []
        for t in range(env.horizon):
            if policy == "random":
                action = rng.uniform(-1, 1, env.act_dim)
            else:
                action = 0.8 * np.sin(0.1 * t + np.arange(env.act_dim) + ep)
            nxt, reward, terminated, truncated, _ = env.step(action)
            rows.append((obs, action, reward, nxt))
            obs = nxt
            if terminated or truncated:
                break
        o, a, r, n = (np.array(x) for x in zip(*rows))
        paths = {"observations": o[None], "actions": a[None], "next_observations": n[None]}
        out.append((paths, r, bool(terminated)))
    return rf, out


def check_reward_file(env_name: str, reward_file: str | Path, policy: str, episodes: int,
                      seed: int = 0) -> RewardFileCheck:
    """Compare the file's rewards (both timings) and 'next' terminations with the env's."""
    rf, episodes_data = env_rollouts(env_name, reward_file, policy, episodes, seed)
    errors: dict[str, list[float]] = {"next": [], "current": []}
    matched = 0
    for paths, env_rewards, env_terminated in episodes_data:
        for timing, errs in errors.items():
            errs.extend(np.abs(rf.reward_function(dict(paths), timing)[0] - env_rewards))
        lengths, terminated = first_termination(rf.termination_function(paths, "next"))
        matched += int(lengths[0] == len(env_rewards) and terminated[0] == env_terminated)
    stats = {k: (float(np.mean(v)), float(np.max(v))) for k, v in errors.items()}
    return RewardFileCheck(env_name, policy, episodes, len(errors["next"]), stats["next"],
                           stats["current"], matched)

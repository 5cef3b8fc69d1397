"""Real-environment sampling: whole episodes from a vector of envs, one policy forward per step.

Action modes (the BRAC protocol used by the MOReL paper), applied to a Gaussian policy with
mean mu(s) and std sigma:
- `pure`:    a ~ N(mu(s), sigma^2)  (sample the policy's own Gaussian);
- `eps-X`:   with probability X a uniform action from the box, else mu(s);
- `gauss-X`: a = mu(s) + N(0, X^2), clipped to the box.
A uniform random policy ignores the mode.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from tqdm import tqdm

from morel.core.errors import MorelError
from morel.core.seeding import episode_seeds, noise_rng
from morel.envs.wrapper import EnvBatch

# obs [N, obs_dim] -> (mean [N, act_dim], std [N, act_dim])
GaussianFn = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
# (obs [N, obs_dim], rng) -> actions [N, act_dim]
ActionFn = Callable[[np.ndarray, np.random.Generator], np.ndarray]

_MODE = re.compile(r"^(pure|eps-(?P<eps>[0-9.]+)|gauss-(?P<gauss>[0-9.]+))$")


@dataclass(frozen=True)
class ActionMode:
    """A parsed `--mode`: kind is 'pure', 'eps' or 'gauss'; level is X of eps-X / gauss-X."""

    kind: str
    level: float = 0.0

    @classmethod
    def parse(cls, text: str) -> ActionMode:
        match = _MODE.match(text)
        if match is None:
            raise MorelError(f"--mode '{text}' is not one of pure, eps-X, gauss-X "
                             "(e.g. eps-0.1, gauss-0.3)")
        if text == "pure":
            return cls("pure")
        kind = "eps" if match.group("eps") else "gauss"
        try:
            level = float(match.group(kind))
        except ValueError:
            raise MorelError(f"--mode '{text}': '{match.group(kind)}' is not a number") from None
        if kind == "eps" and not 0 <= level <= 1:
            raise MorelError(f"--mode '{text}': the probability must be in [0, 1]")
        return cls(kind, level)


def uniform_action_fn(low: np.ndarray, high: np.ndarray) -> ActionFn:
    """Uniform random actions in the box [low, high]."""

    def act(obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return rng.uniform(low, high, size=(len(obs), len(low))).astype(np.float32)

    return act


def mean_action_fn(policy: GaussianFn) -> ActionFn:
    """The Gaussian policy's mean action (evaluation); no noise is drawn."""

    def act(obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return policy(obs)[0]

    return act


def sampled_action_fn(policy: GaussianFn) -> ActionFn:
    """The Gaussian policy's own noisy action a ~ N(mean, std^2) (mode `pure`), unclipped."""

    def act(obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        mean, std = policy(obs)
        return (mean + std * rng.standard_normal(mean.shape)).astype(np.float32)

    return act


def gaussian_action_fn(policy: GaussianFn, mode: ActionMode, low: np.ndarray,
                       high: np.ndarray) -> ActionFn:
    """Actions of a Gaussian policy under a BRAC mode (see module docstring)."""
    if mode.kind == "pure":
        return sampled_action_fn(policy)

    def act(obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        mean, _ = policy(obs)
        if mode.kind == "gauss":
            action = np.clip(mean + mode.level * rng.standard_normal(mean.shape), low, high)
        else:
            explore = rng.random(len(mean)) < mode.level
            uniform = rng.uniform(low, high, size=mean.shape)
            action = np.where(explore[:, None], uniform, mean)
        return action.astype(np.float32)

    return act


def collect_episodes(vec_env: EnvBatch, act: ActionFn, num_samples: int,
                     seeds: np.random.SeedSequence,
                     progress: bool = True) -> list[dict[str, Any]]:
    """Roll whole episodes until at least `num_samples` steps are collected.

    Once the target is reached no new episode is started, but episodes in flight are finished
    (dropping them would bias the data towards short episodes); an env with no episode in
    flight is not stepped, so every env step is a collected sample. Deterministic given `seeds` and
    the number of envs: env i is reset with episode_seeds(seeds)[i], the action noise drawn from
    noise_rng(seeds) (morel.core.seeding).
    Returns paths with observations [T, obs_dim], actions [T, act_dim], rewards [T] (float32)
    and `terminated` (the env ended the episode; False at the time limit).
    """
    rng = noise_rng(seeds)
    n = vec_env.num_envs
    env0 = vec_env.envs[0]
    horizon = env0.horizon
    obs_buf = np.zeros((n, horizon, env0.obs_dim), np.float32)
    act_buf = np.zeros((n, horizon, env0.act_dim), np.float32)
    rew_buf = np.zeros((n, horizon), np.float32)
    t = np.zeros(n, np.int64)
    active = np.ones(n, bool)
    rows = np.arange(n)
    paths: list[dict[str, Any]] = []
    collected = 0
    obs, _ = vec_env.reset(seed=episode_seeds(seeds, n))
    with tqdm(total=num_samples, desc="collecting", unit="step", disable=not progress,
              dynamic_ncols=True) as bar:
        while active.any():
            actions = act(obs, rng)  # all rows: the noise stream is that of the full batch
            live = rows[active]  # envs with an episode in flight: only they step
            next_obs, rewards, terminated, truncated, _ = vec_env.step(actions, active=active)
            obs_buf[live, t[live]] = obs[live]
            act_buf[live, t[live]] = actions[live]
            rew_buf[live, t[live]] = rewards[live]
            t[live] += 1
            for i in np.flatnonzero(terminated | truncated):  # only stepped envs end
                paths.append({"observations": obs_buf[i, :t[i]].copy(),
                              "actions": act_buf[i, :t[i]].copy(),
                              "rewards": rew_buf[i, :t[i]].copy(),
                              "terminated": bool(terminated[i])})
                collected += int(t[i])
                bar.update(int(t[i]))
                t[i] = 0
            if collected >= num_samples:
                active &= t > 0  # envs that just reset do not start a new episode
            obs = next_obs
    return paths


def episode_returns(vec_env: EnvBatch, act: ActionFn,
                    seeds: np.random.SeedSequence) -> np.ndarray:
    """Run exactly one episode in each env of `vec_env`; undiscounted returns [num_envs].

    Env i is reset with episode_seeds(seeds)[i] and the action noise (if any) drawn from
    noise_rng(seeds), so the first k episodes do not depend on the number of envs. The policy
    acts on every env at every step (the noise stream does not depend on which episodes have
    ended), but an env whose episode has ended is not stepped again.
    """
    rng = noise_rng(seeds)
    n = vec_env.num_envs
    returns = np.zeros(n)
    running = np.ones(n, bool)
    obs, _ = vec_env.reset(seed=episode_seeds(seeds, n))
    while running.any():
        obs, rewards, terminated, truncated, _ = vec_env.step(act(obs, rng), running)
        returns += rewards
        running &= ~(terminated | truncated)
    return returns

"""Gymnasium environments as MOReL sees them: action repeat, observation mask, horizon, seeding.

`MorelEnv` wraps one gymnasium env. Each agent step repeats the (clipped) action `act_repeat`
times and sums the rewards, stopping early at termination; the horizon is
`max_episode_steps // act_repeat` agent steps; every observation, including the one from
`reset`, is multiplied by `obs_mask` (the original forgot the reset observation).
`make_vector_env` batches several of them (`EnvBatch`) for collection and evaluation.
"""

from __future__ import annotations

import difflib
import re
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np
import torch

from morel.core.errors import MorelError

EnvSource = str | Callable[[], gym.Env]

_D4RL_ID = re.compile(r"^(hopper|halfcheetah|walker2d|ant)-(random|medium|expert|medium-replay|"
                      r"medium-expert|full-replay)-v\d+$")
_D4RL_TO_GYM = {"hopper": "Hopper-v5", "halfcheetah": "HalfCheetah-v5",
                "walker2d": "Walker2d-v5", "ant": "Ant-v5"}


def check_env_id(env_id: str) -> None:
    """Raise a one-line MorelError for ids we cannot build, naming the id to use instead."""
    match = _D4RL_ID.match(env_id)
    if match:
        raise MorelError(
            f"env '{env_id}' is a D4RL dataset name, not an env: convert the dataset with "
            f"prep_d4rl_dataset.py and use env '{_D4RL_TO_GYM[match.group(1)]}'"
        )
    name, _, version = env_id.rpartition("-v")
    if name and version.isdigit() and int(version) < 4 and f"{name}-v5" in gym.registry:
        raise MorelError(
            f"env '{env_id}' needs mujoco-py, which cannot be installed; use '{name}-v5' "
            "(the same task on the official mujoco bindings)"
        )
    if env_id not in gym.registry:
        close = difflib.get_close_matches(env_id, list(gym.registry), n=3)
        hint = f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""
        raise MorelError(f"env '{env_id}' is not a registered gymnasium env{hint}")


class MorelEnv(gym.Wrapper):
    """One env with act_repeat, action clipping, obs_mask and its own horizon.

    `reset(seed=s)` seeds the env's RNG; later resets continue that stream, so an episode
    sequence is reproducible from one seed. `step` returns gymnasium's 5-tuple; `terminated`
    is the env's own termination, `truncated` is the horizon.
    """

    def __init__(self, env: gym.Env, act_repeat: int = 1, obs_mask: Sequence[float] | None = None):
        super().__init__(env)
        if act_repeat < 1:
            raise MorelError(f"act_repeat must be >= 1, got {act_repeat}")
        if not isinstance(env.action_space, gym.spaces.Box):
            raise MorelError(f"env '{self.env_id}' has a non-continuous action space")
        self.act_repeat = int(act_repeat)
        self.obs_dim = int(np.prod(env.observation_space.shape))
        self.act_dim = int(np.prod(env.action_space.shape))
        max_steps = env.spec.max_episode_steps if env.spec is not None else None
        if max_steps is None:
            raise MorelError(f"env '{self.env_id}' has no max_episode_steps; give it a time limit")
        self.horizon = max_steps // self.act_repeat
        self.obs_mask = self._check_mask(obs_mask)
        self._elapsed = 0

    @property
    def action_box(self) -> tuple[np.ndarray, np.ndarray]:
        """(low, high) [act_dim] of the actions the env executes (it clips to them)."""
        space = self.env.action_space
        return (np.asarray(space.low, dtype=np.float64).reshape(-1),
                np.asarray(space.high, dtype=np.float64).reshape(-1))

    @property
    def env_id(self) -> str:
        return self.env.spec.id if self.env.spec is not None else type(self.env).__name__

    def _check_mask(self, obs_mask: Sequence[float] | None) -> np.ndarray:
        if obs_mask is None:
            return np.ones(self.obs_dim)
        mask = np.asarray(obs_mask, dtype=np.float64).reshape(-1)
        if mask.shape != (self.obs_dim,):
            raise MorelError(f"obs_mask has {mask.size} entries but env '{self.env_id}' "
                             f"observations have {self.obs_dim}")
        return mask

    def reset(self, *, seed: int | None = None, options: dict | None = None
              ) -> tuple[np.ndarray, dict]:
        obs, info = self.env.reset(seed=seed, options=options)
        self._elapsed = 0
        return self.obs_mask * obs, info

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        space = self.env.action_space
        # np.minimum/np.maximum: np.clip's values, without its overhead of ~10 us per call
        action = np.minimum(np.maximum(np.asarray(action, dtype=space.dtype)
                                       .reshape(space.shape), space.low), space.high)
        total = 0.0
        for _ in range(self.act_repeat):
            obs, reward, terminated, truncated, info = self.env.step(action)
            total += float(reward)
            if terminated or truncated:
                break
        self._elapsed += 1
        truncated = bool(truncated) or self._elapsed >= self.horizon
        return self.obs_mask * obs, total, bool(terminated), truncated, info


def clip_to_box(actions: torch.Tensor, box: tuple[torch.Tensor, torch.Tensor] | None
                ) -> torch.Tensor:
    """Actions [..., act_dim] clipped to box = (low, high) [act_dim] as the env clips them
    (`MorelEnv.action_box` as tensors); unchanged when box is None."""
    return actions if box is None else torch.maximum(torch.minimum(actions, box[1]), box[0])


_MUJOCO_WARNINGS_SEEN: set[str] = set()


def _mujoco_warning(message: str) -> None:
    """Show each distinct MuJoCo warning once (MuJoCo prints it for every model it compiles,
    e.g. HalfCheetah's deprecated 'settotalmass', and appends it to MUJOCO_LOG.TXT)."""
    if message not in _MUJOCO_WARNINGS_SEEN:
        _MUJOCO_WARNINGS_SEEN.add(message)
        warnings.warn(f"MuJoCo: {message.strip()}", RuntimeWarning, stacklevel=2)


def make_env(env: EnvSource, act_repeat: int = 1, obs_mask: Sequence[float] | None = None,
             **env_kwargs: Any) -> MorelEnv:
    """Build a MorelEnv from a gymnasium id (checked, see `check_env_id`) or a factory."""
    mujoco.set_mju_user_warning(_mujoco_warning)
    if isinstance(env, str):
        check_env_id(env)
        try:
            inner = gym.make(env, **env_kwargs)
        except gym.error.DependencyNotInstalled as err:
            raise MorelError(f"env '{env}' needs a package that is not installed: "
                             f"{str(err).splitlines()[0]}") from None
    else:
        inner = env(**env_kwargs)
    return MorelEnv(inner, act_repeat=act_repeat, obs_mask=obs_mask)


class EnvBatch:
    """`num_envs` MorelEnvs stepped one after another, with same-step autoreset: a finished env's
    `step` returns the first observation of its next episode (reset without a seed, so it
    continues the env's own random stream). The semantics of gymnasium's SyncVectorEnv in
    AutoresetMode.SAME_STEP (tests check they give the same numbers), without its per-step info
    dictionaries and copies: collection runs closer to the bare env.step rate."""

    def __init__(self, envs: list[MorelEnv]):
        self.envs = envs
        self.num_envs = len(envs)
        self._obs = np.zeros((self.num_envs, envs[0].obs_dim))

    def reset(self, seed: int | Sequence[int] | None = None) -> tuple[np.ndarray, dict]:
        """Reset every env, env i with seed + i or seed[i] (gymnasium's vector-env rule);
        observations [num_envs, obs_dim]."""
        if seed is None or isinstance(seed, (int, np.integer)):
            seeds = [None if seed is None else int(seed) + i for i in range(self.num_envs)]
        elif len(seed) == self.num_envs:
            seeds = [int(s) for s in seed]
        else:
            raise ValueError(f"{len(seed)} seeds for {self.num_envs} envs")
        for i, env in enumerate(self.envs):
            self._obs[i] = env.reset(seed=seeds[i])[0]
        return self._obs.copy(), {}

    def step(self, actions: np.ndarray, active: np.ndarray | None = None
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict]:
        """Step env i with actions[i]; (observations, rewards, terminated, truncated, {}).
        With `active` [num_envs] bool, only those envs step; the others keep their observation
        and report reward 0, not terminated, not truncated."""
        rewards = np.zeros(self.num_envs)
        terminated = np.zeros(self.num_envs, bool)
        truncated = np.zeros(self.num_envs, bool)
        for i, env in enumerate(self.envs):
            if active is not None and not active[i]:
                continue
            obs, rewards[i], terminated[i], truncated[i], _ = env.step(actions[i])
            if terminated[i] or truncated[i]:
                obs, _ = env.reset()
            self._obs[i] = obs
        return self._obs.copy(), rewards, terminated, truncated, {}


def make_vector_env(env: EnvSource, num_envs: int, act_repeat: int = 1,
                    obs_mask: Sequence[float] | None = None) -> EnvBatch:
    """`num_envs` MorelEnvs in an EnvBatch; `reset(seed=s)` seeds env i with s + i (or s[i])."""
    if isinstance(env, str):
        check_env_id(env)
    return EnvBatch([make_env(env, act_repeat, obs_mask) for _ in range(num_envs)])

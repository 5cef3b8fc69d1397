"""A MOReL run's offline data: the dataset checked against the env, the reward file and the
config (dims, recorded obs_mask and act_repeat, how often the termination function fires), as
flat transitions on the device."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from morel.config.schema import MorelConfig
from morel.core.errors import MorelError
from morel.data.datasets import load_dataset, transitions
from morel.envs.reward_files import RewardFile, load_reward_file
from morel.envs.scores import dataset_reference
from morel.envs.wrapper import clip_to_box


@dataclass
class OfflineData:
    """Dataset transitions on the device: s, a, s_next [M, .], r [M]; init_states
    [paths, obs_dim]. With clip_actions, `a` is clipped to the env's action box (what the env
    executed, what the models learn from) and raw_actions [M, act_dim] are the recorded ones
    (what behaviour cloning fits); otherwise both are the recorded actions."""

    tensors: dict[str, torch.Tensor]
    mean_return: float
    num_samples: int
    obs_mask: np.ndarray  # [obs_dim]: what the observations were multiplied by
    raw_actions: torch.Tensor
    reference: tuple[float, float] | None = None  # the dataset's (random, expert) returns


def load_reward(cfg: MorelConfig, include: str | None, obs_dim: int,
                act_dim: int | None = None) -> RewardFile:
    """The reward file's functions (--include wins over the config's reward_file), checked on a
    tiny batch of the env's dims. Without a reward_function the rewards are learned, which needs
    learn_reward: True."""
    path = Path(include) if include else (cfg.resolve_path("reward_file") if cfg.reward_file
                                          else None)
    reward = (load_reward_file(path, obs_dim, act_dim, cfg.reward_timing) if path
              else RewardFile(None, None, None, None))
    if reward.reward_function is None and not cfg.learn_reward:
        source = f"{path} defines no reward_function" if path else "no reward_file is set"
        raise MorelError(f"{cfg.source}: {source} and learn_reward is False; set reward_file "
                         "(e.g. utils/reward_functions/gym_hopper.py), pass --include, or set "
                         "learn_reward: True")
    return reward


def check_termination_on_data(path: Path, reward: RewardFile, data: dict[str, torch.Tensor],
                              timing: str, limit: float = 0.05) -> None:
    """Refuse data the termination function calls terminal at many steps: the usual cause is
    observations recorded without the reward file's obs_mask (or with another one)."""
    steps = {"observations": data["s"][None], "actions": data["a"][None],
             "next_observations": data["s_next"][None]}
    done = torch.as_tensor(reward.termination_function(steps, timing))
    share = float(done.float().mean())
    if share > limit:
        raise MorelError(f"{path}: {reward.path.name}'s termination_function ends {share:.0%} "
                         "of the dataset's transitions; were the observations recorded with its "
                         f"obs_mask? (collect_dataset.py --include {reward.path})")


def load_offline_data(cfg: MorelConfig, obs_dim: int, act_dim: int, reward: RewardFile,
                      device: torch.device,
                      action_box: tuple[np.ndarray, np.ndarray] | None = None) -> OfflineData:
    """The config's dataset, checked, as OfflineData on `device`; with cfg.clip_actions the
    models' actions are clipped to `action_box` (low, high [act_dim])."""
    path = cfg.resolve_path("data_file")
    dataset = load_dataset(path, obs_dim, act_dim, min_length=2)
    meta_mask = dataset.meta.get("obs_mask")
    if reward.obs_mask is not None:
        obs_mask = reward.obs_mask
        if meta_mask is not None and not np.allclose(np.asarray(meta_mask), obs_mask):
            raise MorelError(f"{path}: observations were recorded with obs_mask "
                             f"{list(meta_mask)}, the reward file's is {obs_mask.tolist()}; "
                             "collect with the same --include")
    elif meta_mask is not None:  # no reward file: evaluate with the mask the data was made with
        obs_mask = np.asarray(meta_mask, dtype=np.float64)
    else:
        warnings.warn(f"{path}: no reward file and no obs_mask in the dataset's metadata (a "
                      "plain pickle); evaluating on unmasked observations", stacklevel=2)
        obs_mask = np.ones(obs_dim)
    repeat = dataset.meta.get("act_repeat")
    if repeat is not None and int(repeat) != cfg.act_repeat:
        raise MorelError(f"{path}: recorded with act_repeat {repeat}, the config has "
                         f"{cfg.act_repeat}")
    flat = transitions(dataset.paths)
    tensors = {k: torch.as_tensor(v, dtype=torch.float32, device=device)
               for k, v in flat.items()}
    raw_actions = tensors["a"]
    if cfg.clip_actions and action_box is not None:
        box = tuple(torch.as_tensor(b, dtype=torch.float32, device=device) for b in action_box)
        tensors["a"] = clip_to_box(raw_actions, box)
    if reward.termination_function is not None:
        check_termination_on_data(path, reward, tensors, cfg.reward_timing)
    returns = [float(np.sum(p["rewards"])) for p in dataset.paths]
    return OfflineData(tensors, float(np.mean(returns)), dataset.num_samples, obs_mask,
                       raw_actions, dataset_reference(dataset.meta))

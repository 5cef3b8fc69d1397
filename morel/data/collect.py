"""Roll a logging policy (or uniform random actions) out into a Dataset with its metadata."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from morel.core.errors import MorelError
from morel.core.floats import reproducible_cpu_math
from morel.core.seeding import Stream, stream
from morel.data.datasets import Dataset
from morel.envs.sampling import ActionMode, collect_episodes, gaussian_action_fn, uniform_action_fn
from morel.envs.wrapper import check_env_id, make_vector_env


def collect_dataset(env_name: str, policy: str, size: int, mode: str = "pure", seed: int = 123,
                    act_repeat: int = 1, obs_mask: np.ndarray | None = None, num_envs: int = 8,
                    progress: bool = True) -> Dataset:
    """Whole episodes, at least `size` steps, of `policy` (a policy file or 'random') on
    `env_name`, observations multiplied by `obs_mask` [obs_dim] (None: raw)."""
    reproducible_cpu_math()
    check_env_id(env_name)
    if size < 1 or num_envs < 1:
        raise MorelError("--size and --num_envs must be >= 1")
    action_mode = ActionMode.parse(mode)
    vec_env = make_vector_env(env_name, num_envs, act_repeat, obs_mask)
    env0 = vec_env.envs[0]
    low, high = env0.action_space.low, env0.action_space.high
    mask = np.ones(env0.obs_dim) if obs_mask is None else np.asarray(obs_mask, np.float64)
    if policy == "random":
        if action_mode.kind != "pure":
            raise MorelError("--mode applies to a policy's Gaussian; --policy random is uniform")
        act = uniform_action_fn(low, high)
    else:
        from morel.npg.mjrl_pickle import load_policy_source
        from morel.npg.policies import check_policy_dims

        net, meta = load_policy_source(Path(policy), mjrl_obs_mask=mask)
        check_policy_dims(net, str(policy), env_name, env0.obs_dim, env0.act_dim)
        if meta.get("env_name", env_name) != env_name:
            raise MorelError(f"{policy}: policy was trained on env '{meta['env_name']}', the "
                             f"collection asks for '{env_name}'; use that env or another policy")
        if meta.get("act_repeat", act_repeat) != act_repeat:  # a choice (the original's data)
            warnings.warn(f"{policy}: policy was trained with act_repeat {meta['act_repeat']}, "
                          f"collecting with {act_repeat}: each of its actions is held for "
                          f"{act_repeat} env steps", stacklevel=2)
        # the policy takes observations masked by its own obs_mask (ones: raw observations)
        to_policy = np.asarray(meta.get("obs_mask") or np.ones(env0.obs_dim)) / mask
        act = gaussian_action_fn(lambda obs: net.mean_std(obs * to_policy), action_mode, low,
                                 high)
    paths = collect_episodes(vec_env, act, int(size), stream(seed, Stream.COLLECTION),
                             progress=progress)
    for i, path in enumerate(paths):  # e.g. a policy whose output is NaN: write nothing
        if not np.isfinite(path["actions"]).all():
            raise MorelError(f"{policy}: the policy's actions are NaN/inf (episode {i}); no "
                             "dataset written")
    return Dataset(paths, meta={
        "env_name": env_name, "act_repeat": act_repeat, "obs_mask": mask.tolist(),
        "policy": str(policy), "mode": mode, "seed": seed, "num_envs": num_envs,
    })

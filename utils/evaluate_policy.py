"""Measure policy files in the real environment: return mean ± std over episodes, with the mean
action (deterministic) and with the policy's own Gaussian noise (stochastic).

    python utils/evaluate_policy.py --policy logging_policy/*.pt --episodes 10 --seed 0

The env id and act_repeat come from each file's metadata. Prints a Markdown table
(logging_policy/README.md quotes it). Runs single-threaded: a policy forward summed in another
order rounds differently, and the chaotic dynamics turn that into different returns.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from tabulate import tabulate

from morel.core.errors import MorelError, run_cli
from morel.core.seeding import Stream, seed_arg, stream
from morel.envs.reward_files import load_reward_file
from morel.envs.sampling import episode_returns, mean_action_fn, sampled_action_fn
from morel.envs.wrapper import check_env_id, make_vector_env
from morel.npg.mjrl_pickle import load_policy_source


def evaluate(path: str, episodes: int, seed: int, env_name: str | None = None,
             act_repeat: int | None = None, include: str | None = None) -> list[str]:
    """One table row; env_name, act_repeat and the obs_mask of `include` serve files without
    that metadata (mjrl pickles: the policy takes the observations masked by `include`)."""
    policy, meta = load_policy_source(
        path, mjrl_obs_mask=load_reward_file(include).obs_mask if include else None)
    env_name = meta.get("env_name", env_name)
    if not isinstance(env_name, str):
        raise MorelError(f"{path}: metadata has no env_name; give --env_name")
    check_env_id(env_name)
    vec_env = make_vector_env(env_name, episodes, int(meta.get("act_repeat", act_repeat or 1)))
    env0 = vec_env.envs[0]
    if (policy.obs_dim, policy.act_dim) != (env0.obs_dim, env0.act_dim):
        raise MorelError(f"{path}: policy dims {policy.obs_dim}/{policy.act_dim} do not match "
                         f"'{env_name}' ({env0.obs_dim}/{env0.act_dim})")
    mask = np.asarray(meta.get("obs_mask") or np.ones(env0.obs_dim), np.float32)

    def policy_fn(obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return policy.mean_std(obs * mask)

    stochastic = sampled_action_fn(policy_fn)
    deterministic = mean_action_fn(policy_fn)
    episodes_seeds = stream(seed, Stream.EVALUATION)
    det = episode_returns(vec_env, deterministic, episodes_seeds)
    sto = episode_returns(vec_env, stochastic, episodes_seeds)
    return [Path(path).name, env_name, f"{det.mean():.0f} ± {det.std():.0f}",
            f"{sto.mean():.0f} ± {sto.std():.0f}"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--policy", nargs="+", required=True,
                   help="policy files (.pt, or pickled mjrl MLPs: .pickle/.pkl)")
    p.add_argument("--env_name", default=None, help="env of files without metadata (mjrl)")
    p.add_argument("--act_repeat", type=int, default=None,
                   help="act_repeat of files without metadata (default 1)")
    p.add_argument("--include", default=None,
                   help="reward file whose obs_mask an mjrl policy's observations had")
    p.add_argument("--episodes", type=int, default=10)
    p.add_argument("--seed", type=seed_arg, default=0,
                   help="seed of the episodes (stream EVALUATION of morel.core.seeding; the same "
                        "episodes for both columns)")
    args = p.parse_args()
    torch.set_num_threads(1)
    if args.episodes < 1:
        raise MorelError("--episodes must be >= 1")
    rows = [evaluate(path, args.episodes, args.seed, args.env_name, args.act_repeat, args.include)
            for path in args.policy]
    headers = ["file", "env", f"deterministic ({args.episodes} ep.)",
               f"stochastic ({args.episodes} ep.)"]
    print(tabulate(rows, headers=headers, tablefmt="github"))


if __name__ == "__main__":
    run_cli(main)

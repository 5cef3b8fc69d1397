"""Roll a logging policy (or uniform random actions) out into a trajectory dataset.

    python collect_dataset.py --env_name Hopper-v5 --policy random --output datasets/h.pickle \
        --size 20000 --include utils/reward_functions/gym_hopper.py
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from morel.data import Dataset, check_output_path, save_dataset, summarize
from morel.envs import check_env_id, make_vector_env
from morel.errors import MorelError, run_cli
from morel.reward_files import load_reward_file
from morel.sampling import ActionMode, collect_episodes, gaussian_action_fn, uniform_action_fn


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--env_name", required=True, help="gymnasium env id, e.g. Hopper-v5")
    p.add_argument("--policy", required=True, help="policy file (.pt) or 'random' (uniform)")
    p.add_argument("--output", required=True, help="dataset file: .pickle, .npz or .h5")
    p.add_argument("--size", type=float, default=1e6, help="samples to collect (whole episodes)")
    p.add_argument("--mode", default="pure", help="pure | eps-X | gauss-X (BRAC protocol)")
    p.add_argument("--seed", type=int, default=123)
    p.add_argument("--act_repeat", type=int, default=1)
    p.add_argument("--include", default=None, help="reward file whose obs_mask masks observations")
    p.add_argument("--num_envs", type=int, default=8, help="envs stepped together")
    p.add_argument("--force", action="store_true", help="overwrite an existing --output")
    return p.parse_args()


def main() -> None:
    args = parse_args()
    check_env_id(args.env_name)
    if args.size < 1 or args.num_envs < 1:
        raise MorelError("--size and --num_envs must be >= 1")
    mode = ActionMode.parse(args.mode)
    check_output_path(args.output, args.force)  # fail before the work, not after
    mask = load_reward_file(args.include).obs_mask if args.include else None
    vec_env = make_vector_env(args.env_name, args.num_envs, args.act_repeat, mask)
    env0 = vec_env.envs[0]
    low, high = env0.action_space.low, env0.action_space.high
    if mask is None:
        mask = np.ones(env0.obs_dim)
    if args.policy == "random":
        if mode.kind != "pure":
            raise MorelError("--mode applies to a policy's Gaussian; --policy random is uniform")
        act = uniform_action_fn(low, high)
    else:
        from morel.policies import load_policy

        policy, meta = load_policy(args.policy)
        if policy.obs_dim != env0.obs_dim or policy.act_dim != env0.act_dim:
            raise MorelError(f"{args.policy}: policy is for obs/act dims {policy.obs_dim}/"
                             f"{policy.act_dim}, env '{args.env_name}' has "
                             f"{env0.obs_dim}/{env0.act_dim}")
        # the policy takes observations masked by its own obs_mask (ones: raw observations)
        to_policy = np.asarray(meta.get("obs_mask") or np.ones(env0.obs_dim)) / mask
        act = gaussian_action_fn(lambda obs: policy.mean_std(obs * to_policy), mode, low, high)
    start = time.time()
    paths = collect_episodes(vec_env, act, int(args.size), args.seed)
    elapsed = time.time() - start
    dataset = Dataset(paths, meta={
        "env_name": args.env_name, "act_repeat": args.act_repeat, "obs_mask": mask.tolist(),
        "policy": args.policy, "mode": args.mode, "seed": args.seed, "num_envs": args.num_envs,
    })
    save_dataset(dataset, args.output, force=args.force)
    summary = summarize(dataset)
    print(f"{args.output}: {summary.table()}")
    print(f"collected in {elapsed:.1f} s ({summary.samples / elapsed:.0f} steps/s)")


if __name__ == "__main__":
    run_cli(main)

"""Write a pickled mjrl MLP policy (the original's logging and init policies) as our policy file.

    python utils/convert_policy.py --policy hopper_v3.pickle --output logging_policy/h.pt \
        --env_name Hopper-v5 --include utils/reward_functions/gym_hopper.py

The pickle is read without mjrl and without running anything in it (morel/npg/mjrl_pickle.py).
The written file's metadata says which env it is for and that it takes the observations masked
by --include's obs_mask (what the original's env gave the policy), so collect_dataset.py,
utils/evaluate_policy.py and init_policy use it as they use the shipped policies.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from morel.core.atomic import check_writable_path
from morel.core.errors import MorelError, run_cli
from morel.envs.reward_files import load_reward_file
from morel.envs.wrapper import check_env_id, make_vector_env
from morel.npg.mjrl_pickle import load_mjrl_policy
from morel.npg.policies import check_policy_dims, save_policy


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--policy", required=True, help="pickled mjrl MLP (.pickle/.pkl)")
    p.add_argument("--output", required=True, help="our policy file to write (.pt)")
    p.add_argument("--env_name", required=True, help="gymnasium env id it acts in, e.g. Hopper-v5")
    p.add_argument("--act_repeat", type=int, default=1)
    p.add_argument("--include", default=None,
                   help="reward file whose obs_mask the policy's observations had (none: raw)")
    p.add_argument("--force", action="store_true", help="overwrite an existing --output")
    args = p.parse_args()
    out = check_writable_path(args.output)
    if out.exists() and not args.force:
        raise MorelError(f"{out}: exists; choose another --output or pass --force")
    check_env_id(args.env_name)
    policy = load_mjrl_policy(args.policy)
    env0 = make_vector_env(args.env_name, 1, args.act_repeat).envs[0]
    check_policy_dims(policy, args.policy, args.env_name, env0.obs_dim, env0.act_dim)
    mask = load_reward_file(args.include).obs_mask if args.include else None
    meta = {"env_name": args.env_name, "act_repeat": args.act_repeat,
            "source": f"mjrl pickle {Path(args.policy).name}"}
    if mask is not None:
        meta["obs_mask"] = [float(m) for m in mask]
    save_policy(policy, out, meta)
    print(f"wrote {out}: {policy.obs_dim} -> {list(policy.hidden_sizes)} -> {policy.act_dim}, "
          f"log_std {[round(float(x), 3) for x in policy.log_std]}")


if __name__ == "__main__":
    run_cli(main)

"""Roll a logging policy (or uniform random actions) out into a trajectory dataset.

    python collect_dataset.py --env_name Hopper-v5 --policy random --output datasets/h.pickle \
        --size 20000 --include utils/reward_functions/gym_hopper.py
"""

from __future__ import annotations

import argparse
import time

from morel.core.errors import run_cli
from morel.core.seeding import seed_arg
from morel.data.collect import collect_dataset
from morel.data.datasets import check_output_path, save_dataset, summarize
from morel.envs.reward_files import load_reward_file


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--env_name", required=True, help="gymnasium env id, e.g. Hopper-v5")
    p.add_argument("--policy", required=True,
                   help="policy file (.pt), a pickled mjrl MLP (.pickle/.pkl, which takes the "
                   "observations masked by --include, as in the original) or 'random' (uniform)")
    p.add_argument("--output", required=True, help="dataset file: .pickle, .npz or .h5")
    p.add_argument("--size", type=float, default=1e6, help="samples to collect (whole episodes)")
    p.add_argument("--mode", default="pure", help="pure | eps-X | gauss-X (BRAC protocol)")
    p.add_argument("--seed", type=seed_arg, default=123)
    p.add_argument("--act_repeat", type=int, default=1)
    p.add_argument("--include", default=None, help="reward file whose obs_mask masks observations")
    p.add_argument("--num_envs", type=int, default=8, help="envs stepped together")
    p.add_argument("--force", action="store_true", help="overwrite an existing --output")
    return p.parse_args()


def main() -> None:
    args = parse_args()
    check_output_path(args.output, args.force)  # fail before the work, not after
    mask = load_reward_file(args.include).obs_mask if args.include else None
    start = time.time()
    dataset = collect_dataset(args.env_name, args.policy, int(args.size), args.mode, args.seed,
                              args.act_repeat, mask, args.num_envs)
    elapsed = time.time() - start
    save_dataset(dataset, args.output, force=args.force)
    summary = summarize(dataset)
    print(f"{args.output}: {summary.table()}")
    print(f"collected in {elapsed:.1f} s ({summary.samples / elapsed:.0f} steps/s)")


if __name__ == "__main__":
    run_cli(main)

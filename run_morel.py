"""Run MOReL: fit (or load) the dynamics ensemble, build the pessimistic MDP, optimise a policy
in it with NPG, and evaluate it in the real environment.

    python run_morel.py --config configs/hopper_v5_morel.txt --output runs/morel_hopper
    python run_morel.py --config configs/hopper_v5_morel.txt --output runs/morel_hopper --resume
    python run_morel.py -c configs/hopper_v5_quick.txt -o runs/naive --set pessimism_coef=None

The job directory gets job_data.json (resolved config + truncate_lim), models.pt (the ensemble),
logs/log.pickle, logs/log.csv and logs/scores.png, iterations/policy_N.pt every save_freq
iterations, best_policy.pt, policy_final.pt and iterations/checkpoint.pt (resume state).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from morel.config.cli import add_config_args, config_from_args
from morel.core.device import resolve_device
from morel.core.errors import run_cli
from morel.runs.morel import run_morel


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    add_config_args(p, tensorboard=True)
    p.add_argument("--num_iter", type=int, default=None, help="override the config's num_iter")
    p.add_argument("--print_freq", type=int, default=None,
                   help="override the config's print_freq (1: the full table every iteration)")
    p.add_argument("--resume", action="store_true", help="continue the run in --output")
    p.add_argument("--force", action="store_true",
                   help="replace the run in --output (or resume despite a changed config)")
    args = p.parse_args()
    cfg = config_from_args(args, num_iter=args.num_iter, print_freq=args.print_freq)
    best = run_morel(cfg, Path(args.output), resolve_device(cfg.device), args.include,
                     args.resume, args.force)
    print(f"done: {args.output} (best score {best:.1f})")


if __name__ == "__main__":
    run_cli(main)

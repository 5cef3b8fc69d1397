"""Behaviour-cloning baseline: clone the config's dataset (MOReL's bc_init, same settings and
seed) and score the mean-action policy on real episodes, without any model or NPG.

    python experiments/run_bc.py --config configs/hopper_v5_quick.txt --output runs/bc_hopper
    python experiments/run_bc.py -c configs/hopper_v5_quick.txt -o runs/bc_random \
        --set data_file=datasets/suite/hopper-random.npz

The job directory gets job_data.json (with 'baseline': 'bc'), logs/log.pickle and logs/log.csv
(one row: bc_loss_before/after, eval_score and its std over the episodes, eval_score_normalized
where D4RL has reference scores, rollout_score = the dataset's mean return) and policy_final.pt.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from morel.config.cli import add_config_args, config_from_args
from morel.core.device import resolve_device
from morel.core.errors import MorelError, run_cli
from morel.runs.bc import run_bc


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    add_config_args(p, tensorboard=True)
    p.add_argument("--episodes", type=int, default=10, help="real episodes to score on")
    p.add_argument("--force", action="store_true", help="replace the run in --output")
    args = p.parse_args()
    if args.episodes < 1:
        raise MorelError("--episodes must be >= 1")
    cfg = config_from_args(args)
    score = run_bc(cfg, Path(args.output), resolve_device(cfg.device), args.episodes,
                   args.include, args.force)
    print(f"done: {args.output} (BC eval score {score:.1f})")


if __name__ == "__main__":
    run_cli(main)

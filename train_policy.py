"""Train a Gaussian MLP policy with NPG in the real environment (how logging policies are made).

    python train_policy.py --config configs/npg_hopper_v5.txt --output runs/npg_hopper
    python train_policy.py --config configs/npg_hopper_v5.txt --output runs/npg_hopper --resume

Each iteration samples `num_samples` env steps (whole episodes, stochastic policy) on
`num_envs` envs stepped together, takes one NPG step, fits the value baseline, and scores the
mean-action policy on `eval_rollouts` episodes (morel/runs/train.py). The job directory gets
job_data.json, logs (pickle + csv + plots), iterations/policy_N.pt every `save_freq`
iterations, best_policy.pt (best eval score) and policy_final.pt; iterations/checkpoint.pt makes
the run resumable. With --save_samples every iteration's episodes are also kept as
samples/iter_N.npz (raw observations), from which make_datasets.py builds medium-replay
datasets.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from morel.config.cli import add_set_flag, add_tensorboard_flag
from morel.config.files import apply_assignments, load_config, override
from morel.config.train import PolicyTrainConfig
from morel.core.device import resolve_device
from morel.core.errors import run_cli
from morel.core.seeding import seed_arg
from morel.runs.train import train_policy


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--config", required=True, help="config file (configs/npg_*.txt)")
    p.add_argument("--output", required=True, help="job directory")
    p.add_argument("--resume", action="store_true", help="continue the run in --output")
    p.add_argument("--force", action="store_true",
                   help="replace the run in --output (or resume despite a changed config)")
    p.add_argument("--seed", type=seed_arg, default=None, help="override the config's seed")
    p.add_argument("--device", default=None, help="override the config's device")
    p.add_argument("--num_iter", type=int, default=None, help="override the config's num_iter")
    p.add_argument("--print_freq", type=int, default=None,
                   help="override the config's print_freq (1: the full table every iteration)")
    add_set_flag(p, "step_size=0.05")
    add_tensorboard_flag(p)
    p.add_argument("--save_samples", action="store_true",
                   help="keep each iteration's episodes as JOB/samples/iter_N.npz")
    return p.parse_args()


def main() -> None:
    args = parse_args()
    cfg = apply_assignments(load_config(args.config, PolicyTrainConfig), args.set)
    cfg = override(cfg, seed=args.seed, device=args.device, num_iter=args.num_iter,
                   print_freq=args.print_freq, tensorboard=args.tensorboard)
    train_policy(cfg, Path(args.output), resolve_device(cfg.device), args.resume, args.force,
                 args.save_samples)


if __name__ == "__main__":
    run_cli(main)

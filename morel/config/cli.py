"""Command-line flags shared by the scripts that take a MOReL config (run_morel.py,
learn_model.py, run_bc.py)."""

from __future__ import annotations

import argparse
from typing import Any

from morel.config.files import apply_assignments, load_config, override
from morel.config.schema import MorelConfig
from morel.core.seeding import seed_arg


def add_config_args(p: argparse.ArgumentParser, output_help: str = "job directory",
                    tensorboard: bool = False) -> None:
    """--config/-c, --output/-o, --include/-i, --device, --seed and --set KEY=VALUE; with
    `tensorboard`, --tensorboard (for the scripts that write a log)."""
    p.add_argument("--config", "-c", required=True, help="config file (configs/*.txt)")
    p.add_argument("--output", "-o", required=True, help=output_help)
    p.add_argument("--include", "-i", default=None,
                   help="reward file (overrides the config's reward_file)")
    p.add_argument("--device", default=None, help="override the config's device")
    p.add_argument("--seed", type=seed_arg, default=None, help="override the config's seed")
    add_set_flag(p, "data_file=d.npz")
    if tensorboard:
        add_tensorboard_flag(p)


def add_set_flag(p: argparse.ArgumentParser, example: str) -> None:
    """--set KEY=VALUE (repeatable): config-key overrides for `apply_assignments`."""
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help=f"override any config key (repeatable), e.g. --set {example}")


def add_tensorboard_flag(p: argparse.ArgumentParser) -> None:
    """--tensorboard: True when given, else None (the config's `tensorboard` stands)."""
    p.add_argument("--tensorboard", action="store_true", default=None,
                   help="also write TensorBoard events to JOB/tensorboard (config key "
                        "tensorboard; needs pip install -e '.[tensorboard]')")


def config_from_args(args: argparse.Namespace, **overrides: Any) -> MorelConfig:
    """The config file with the --set assignments, then --device, --seed and `overrides`."""
    cfg = apply_assignments(load_config(args.config), args.set)
    return override(cfg, device=args.device, seed=args.seed,
                    tensorboard=getattr(args, "tensorboard", None), **overrides)

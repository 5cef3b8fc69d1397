"""Convert a local D4RL or Minari HDF5 file into a morel dataset (.pickle, .npz or .h5).

    python prep_d4rl_dataset.py --input hopper_medium-v2.hdf5 \
        --output datasets/hopper_medium.pickle --include utils/reward_functions/gym_hopper.py

Nothing is downloaded: bring the file (D4RL: the .hdf5 it caches; Minari:
<dataset>/data/main_data.hdf5).
"""

from __future__ import annotations

import argparse

import numpy as np

from morel.core.errors import MorelError, run_cli
from morel.data.d4rl import detect_format, read_d4rl, read_minari, repeat_actions
from morel.data.datasets import Dataset, check_output_path, save_dataset, summarize, validate
from morel.envs.reward_files import load_reward_file
from morel.envs.wrapper import make_env


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--input", required=True, help="D4RL .hdf5 file or Minari main_data.hdf5")
    p.add_argument("--output", required=True, help="dataset file: .pickle, .npz or .h5")
    p.add_argument("--format", choices=("auto", "d4rl", "minari"), default="auto")
    p.add_argument("--env_name", default=None, help="gymnasium id to check dims against")
    p.add_argument("--act_repeat", type=int, default=1, help="merge blocks of this many steps")
    p.add_argument("--include", default=None, help="reward file whose obs_mask masks observations")
    p.add_argument("--force", action="store_true", help="overwrite an existing --output")
    return p.parse_args()


def main() -> None:
    args = parse_args()
    if args.act_repeat < 1:
        raise MorelError("--act_repeat must be >= 1")
    check_output_path(args.output, args.force)  # fail before the work, not after
    fmt = detect_format(args.input) if args.format == "auto" else args.format
    raw = read_d4rl(args.input) if fmt == "d4rl" else read_minari(args.input)
    dims = {}
    if args.env_name:
        env = make_env(args.env_name)
        dims = {"obs_dim": env.obs_dim, "act_dim": env.act_dim}
    raw = validate(raw, args.input, **dims)
    mask = load_reward_file(args.include, raw[0]["observations"].shape[1]).obs_mask \
        if args.include else None
    paths = []
    for path in raw:
        path = repeat_actions(path, args.act_repeat)
        if mask is not None:
            path["observations"] = path["observations"] * mask
        paths.append(path)
    obs_mask = (mask if mask is not None else np.ones(raw[0]["observations"].shape[1])).tolist()
    dataset = Dataset(validate(paths, args.output), meta={
        "env_name": args.env_name, "act_repeat": args.act_repeat, "obs_mask": obs_mask,
        "source": str(args.input), "source_format": fmt,
    })
    save_dataset(dataset, args.output, force=args.force)
    print(f"{args.output} ({fmt}): {summarize(dataset).table()}")


if __name__ == "__main__":
    run_cli(main)

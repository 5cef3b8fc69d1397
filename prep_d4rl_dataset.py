"""Convert a local D4RL file or Minari dataset into a morel dataset (.pickle, .npz or .h5).

    python prep_d4rl_dataset.py --input hopper_medium-v2.hdf5 \
        --output datasets/hopper_medium.pickle --include utils/reward_functions/gym_hopper.py
    python prep_d4rl_dataset.py --minari_id mujoco/hopper/medium-v0 \
        --output datasets/hopper_medium_minari.npz --include utils/reward_functions/gym_hopper.py

Nothing is downloaded: bring the file (D4RL: the .hdf5 it caches) or the Minari dataset
(a folder under $MINARI_DATASETS_PATH, default ~/.minari/datasets; --input takes its folder,
its data/ folder or its main_data.hdf5). Minari datasets are read through the `minari` package
when it is installed (pip install -e '.[minari]'), else by morel's h5py reader (HDF5 only);
their env id and reference scores are kept in the dataset's metadata.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from morel.core.errors import MorelError, run_cli
from morel.data.d4rl import detect_format, read_d4rl, repeat_actions
from morel.data.datasets import Dataset, check_output_path, save_dataset, summarize, validate
from morel.data.minari_files import (
    data_dir_of_id,
    data_dir_of_path,
    read_metadata,
    read_minari_dataset,
)
from morel.envs.reward_files import load_reward_file
from morel.envs.wrapper import make_env


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--input", help="D4RL .hdf5 file, or a Minari dataset folder / its "
                                        "main_data.hdf5")
    source.add_argument("--minari_id", help="local Minari dataset id, e.g. mujoco/hopper/medium-v0")
    p.add_argument("--output", required=True, help="dataset file: .pickle, .npz or .h5")
    p.add_argument("--format", choices=("auto", "d4rl", "minari"), default="auto")
    p.add_argument("--reader", choices=("auto", "package", "h5py"), default="auto",
                   help="Minari reader: the minari package, morel's h5py reader, or the package "
                        "when installed (auto)")
    p.add_argument("--env_name", default=None,
                   help="gymnasium id to check dims against (default: a Minari dataset's own)")
    p.add_argument("--act_repeat", type=int, default=1, help="merge blocks of this many steps")
    p.add_argument("--include", default=None, help="reward file whose obs_mask masks observations")
    p.add_argument("--force", action="store_true", help="overwrite an existing --output")
    return p.parse_args()


def read_source(args: argparse.Namespace) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The source's paths and what its metadata records (format, reader, Minari's own)."""
    if args.minari_id:
        data_dir, hdf5 = data_dir_of_id(args.minari_id), None
        fmt = "minari"
    else:
        source = Path(args.input)
        if not source.exists():
            raise MorelError(f"{source}: file not found")
        fmt = args.format
        if fmt == "auto":
            fmt = "minari" if source.is_dir() else detect_format(source)
        if fmt == "d4rl":
            return read_d4rl(source), {"source": str(source), "source_format": "d4rl"}
        data_dir, hdf5 = data_dir_of_path(source)
    minari = read_metadata(data_dir)  # before the package reads it: the same errors with or without
    paths, reader = read_minari_dataset(data_dir, args.reader, hdf5)
    meta = {"source": str(args.input or args.minari_id), "source_format": fmt, "reader": reader,
            **{f"minari_{k}": minari[k] for k in ("dataset_id", "env_id", "env_spec")
               if k in minari},
            **{k: minari[k] for k in ("minari_version", "ref_min_score", "ref_max_score")
               if k in minari}}
    return paths, meta


def env_to_check(args: argparse.Namespace, meta: dict[str, Any]) -> str | None:
    """--env_name, else a Minari dataset's env id when gymnasium has it."""
    env_id = meta.get("minari_env_id")
    kwargs = meta.get("minari_env_spec", {}).get("kwargs")
    if kwargs:
        print(f"note: the dataset's env {env_id} was made with kwargs {kwargs}; morel's runs "
              "build it with gymnasium's defaults")
    if args.env_name:
        return args.env_name
    if env_id and env_id not in gym.registry:
        print(f"note: the dataset's env {env_id} is not registered here; dims are not checked "
              "(pass --env_name)")
        return None
    return env_id


def main() -> None:
    args = parse_args()
    if args.act_repeat < 1:
        raise MorelError("--act_repeat must be >= 1")
    check_output_path(args.output, args.force)  # fail before the work, not after
    raw, source_meta = read_source(args)
    env_name = env_to_check(args, source_meta)
    dims = {}
    if env_name:
        env = make_env(env_name)
        dims = {"obs_dim": env.obs_dim, "act_dim": env.act_dim}
    source = args.input or args.minari_id
    raw = validate(raw, source, **dims)
    mask = load_reward_file(args.include, raw[0]["observations"].shape[1]).obs_mask \
        if args.include else None
    paths = []
    for path in raw:
        path = repeat_actions(path, args.act_repeat)
        if mask is not None:
            path["observations"] = path["observations"] * mask
        paths.append(path)
    obs_mask = (mask if mask is not None else np.ones(raw[0]["observations"].shape[1])).tolist()
    meta = {**({"env_name": env_name} if env_name else {}), "act_repeat": args.act_repeat,
            "obs_mask": obs_mask, **source_meta}
    dataset = Dataset(validate(paths, args.output), meta=meta)
    save_dataset(dataset, args.output, force=args.force)
    print(f"{args.output} ({source_meta['source_format']}, read by "
          f"{source_meta.get('reader', 'h5py')}): {summarize(dataset).table()}")


if __name__ == "__main__":
    run_cli(main)

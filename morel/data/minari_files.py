"""Local Minari datasets: where one lives, its metadata.json, and its episodes read through the
`minari` package (the optional extra `minari`) or, without it, by morel's own h5py reader.

A Minari dataset is a folder `<root>/<namespace>/<name>-v<k>/data/` holding `metadata.json`
(dataset id, env spec, reference scores, storage format) and `main_data.hdf5` (or arrow files).
Ids resolve under `MINARI_DATASETS_PATH` (default `~/.minari/datasets`), as Minari resolves them;
nothing is ever downloaded.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from morel.core.errors import MorelError
from morel.core.numbers import finite_number
from morel.data.d4rl import minari_episode_path, read_minari
from morel.data.hdf5 import open_hdf5

INSTALL_HINT = "pip install -e '.[minari]'"
MAX_METADATA_BYTES = 1_000_000


def package_available() -> bool:
    """Whether the `minari` package is installed (found without importing it)."""
    return importlib.util.find_spec("minari") is not None


def datasets_root() -> Path:
    """Where Minari keeps local datasets: $MINARI_DATASETS_PATH, else ~/.minari/datasets."""
    return Path(os.environ.get("MINARI_DATASETS_PATH") or Path.home() / ".minari" / "datasets")


def data_dir_of_id(dataset_id: str) -> Path:
    """The data folder of a local dataset id such as 'mujoco/hopper/medium-v0'."""
    parts = dataset_id.split("/")
    if not dataset_id or any(part in ("", ".", "..") for part in parts):
        raise MorelError(f"--minari_id {dataset_id!r}: not a Minari dataset id "
                         "(namespace/name-vN, e.g. mujoco/hopper/medium-v0)")
    folder = datasets_root() / dataset_id / "data"
    if not (folder / "metadata.json").is_file():
        raise MorelError(f"--minari_id {dataset_id}: no local dataset at {folder} (nothing is "
                         "downloaded: put it there, set MINARI_DATASETS_PATH, or pass its folder "
                         "as --input)")
    return folder


def data_dir_of_path(path: str | Path) -> tuple[Path, Path]:
    """(data folder, HDF5 file) of a Minari dataset given as its HDF5 file, its data folder or
    the dataset's folder above it; the file is FOLDER/main_data.hdf5 unless given."""
    path = Path(path)
    if path.is_file():
        return path.parent, path
    for folder in (path, path / "data"):
        if (folder / "metadata.json").is_file():
            return folder, folder / "main_data.hdf5"
    raise MorelError(f"{path}: not a Minari dataset (no metadata.json in it or in its data/ "
                     "folder)")


def read_metadata(data_dir: Path) -> dict[str, Any]:
    """What a run keeps of `data_dir/metadata.json` ({} without one): dataset_id,
    minari_version, data_format, env_id and env_spec (the env spec's id, max_episode_steps and
    kwargs), ref_min_score, ref_max_score (where present). Parsed as JSON only."""
    path = data_dir / "metadata.json"
    if not path.is_file():
        return {}
    if path.stat().st_size > MAX_METADATA_BYTES:
        raise MorelError(f"{path}: larger than {MAX_METADATA_BYTES} bytes; not Minari metadata")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as err:
        raise MorelError(f"{path}: unreadable Minari metadata ({type(err).__name__})") from None
    if not isinstance(raw, dict):
        raise MorelError(f"{path}: Minari metadata must be a JSON object")
    meta = {k: raw[k] for k in ("dataset_id", "minari_version", "data_format")
            if isinstance(raw.get(k), str)}
    for key in ("ref_min_score", "ref_max_score"):
        value = finite_number(raw.get(key))
        if value is not None:
            meta[key] = value
    spec = _env_spec(raw.get("env_spec"))
    if isinstance(spec.get("id"), str):
        meta["env_id"] = spec["id"]
        meta["env_spec"] = {k: spec[k] for k in ("id", "max_episode_steps", "kwargs")
                            if k in spec}
    return meta


def _env_spec(spec: Any) -> dict[str, Any]:
    """Minari's env spec (a JSON string) as a dict, or {} when it is absent or not one."""
    if not isinstance(spec, str):
        return {}
    try:
        parsed = json.loads(spec)
    except (ValueError, RecursionError):
        return {}
    return parsed if isinstance(parsed, dict) else {}


def read_with_package(data_dir: Path) -> list[dict[str, Any]]:
    """Paths of the dataset in `data_dir` as the `minari` package reads them (final observation
    dropped, `terminated` from the last step); HDF5 files linking outside themselves are refused
    first."""
    if not package_available():
        raise MorelError(f"{data_dir}: reading through Minari needs its package: {INSTALL_HINT}")
    hdf5 = data_dir / "main_data.hdf5"
    if hdf5.is_file():
        open_hdf5(hdf5).close()  # refuses external links before the package opens the file
    import minari

    try:
        dataset = minari.MinariDataset(str(data_dir))
        episodes = list(dataset.iterate_episodes())
    except (ValueError, KeyError, OSError, TypeError, AssertionError) as err:
        raise MorelError(f"{data_dir}: Minari cannot read this dataset "
                         f"({type(err).__name__}: {str(err)[:120]})") from None
    paths = []
    for ep in episodes:
        if not isinstance(ep.observations, np.ndarray):
            raise MorelError(f"{data_dir}: episode {ep.id}: dict observations are not supported")
        paths.append(minari_episode_path(f"{data_dir}: episode {ep.id}", ep.observations,
                                         ep.actions, ep.rewards, ep.terminations))
    if not paths:
        raise MorelError(f"{data_dir}: no episodes")
    return paths


def read_minari_dataset(data_dir: Path, reader: str,
                        hdf5: Path | None = None) -> tuple[list[dict[str, Any]], str]:
    """Paths of the Minari dataset in `data_dir` (its HDF5 file `hdf5`, by default
    main_data.hdf5) and the reader used: 'package' (minari), 'h5py' (ours) or 'auto' (the
    package when installed and the dataset is whole: metadata.json beside main_data.hdf5;
    else ours, with a note saying why)."""
    hdf5 = hdf5 or data_dir / "main_data.hdf5"
    whole = (data_dir / "metadata.json").is_file() and hdf5.name == "main_data.hdf5"
    if reader == "auto":
        reader = "package" if package_available() and whole else "h5py"
        if reader == "h5py":
            why = (f"the minari package is not installed ({INSTALL_HINT} to read through it)"
                   if not package_available() else f"{hdf5} is not a whole Minari dataset "
                   "(metadata.json beside main_data.hdf5)")
            print(f"note: {why}; reading {hdf5} with morel's h5py reader")
    if reader == "package":
        if not whole and hdf5.is_file():
            raise MorelError(f"{hdf5}: Minari reads a dataset folder (metadata.json beside "
                             "main_data.hdf5); pass that folder or --reader h5py")
        return read_with_package(data_dir), reader
    if not hdf5.is_file():
        fmt = read_metadata(data_dir).get("data_format", "unknown")
        raise MorelError(f"{data_dir}: no main_data.hdf5 (data_format {fmt}); morel's reader "
                         f"reads HDF5 only; read it through Minari: {INSTALL_HINT}")
    return read_minari(hdf5), reader

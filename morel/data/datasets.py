"""Datasets: a list of trajectories, read and written as .pickle, .npz or .h5, validated on load.

A trajectory (path) is a dict with `observations [T, obs_dim]`, `actions [T, act_dim]`,
`rewards [T]` and optionally `terminated` (bool: the env ended it, not a time limit). The
`.pickle` format is the original's (a pickled list of such dicts) and is read through the
restricted unpickler. `.npz` and `.h5` store the paths concatenated, with `path_lengths [P]`,
`terminated [P]` and a JSON `meta` record (env, act_repeat, obs_mask, how it was made).
"""

from __future__ import annotations

import json
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from morel.core.atomic import atomic_path, check_writable_path, write_text_atomic
from morel.core.errors import MorelError
from morel.core.safe_pickle import safe_load
from morel.data.hdf5 import open_hdf5
from morel.envs.metadata import check_meta

FORMATS = (".pickle", ".pkl", ".npz", ".h5", ".hdf5")
FIELDS = ("observations", "actions", "rewards")
MAX_META_BYTES = 1_000_000


@dataclass
class Dataset:
    """Trajectories plus what is known of how they were made (empty for original pickles)."""

    paths: list[dict[str, Any]]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def num_samples(self) -> int:
        return sum(len(p["rewards"]) for p in self.paths)


@dataclass(frozen=True)
class DatasetSummary:
    """Counts and undiscounted path-return statistics of a dataset."""

    trajectories: int
    samples: int
    return_mean: float
    return_std: float
    return_min: float
    return_max: float
    terminated: int

    def table(self) -> str:
        return (f"trajectories {self.trajectories} | samples {self.samples} | return mean "
                f"{self.return_mean:.2f} std {self.return_std:.2f} min {self.return_min:.2f} "
                f"max {self.return_max:.2f} | terminated {self.terminated}")


def summarize(dataset: Dataset) -> DatasetSummary:
    """Trajectory/sample counts and return mean/std/min/max (over paths)."""
    returns = np.array([float(np.sum(p["rewards"])) for p in dataset.paths])
    terminated = sum(bool(p.get("terminated", False)) for p in dataset.paths)
    return DatasetSummary(len(returns), dataset.num_samples, float(returns.mean()),
                          float(returns.std()), float(returns.min()), float(returns.max()),
                          terminated)


# ----------------------------------------------------------------------------- validation


def validate(paths: Any, source: str, obs_dim: int | None = None, act_dim: int | None = None,
             min_length: int = 1) -> list[dict[str, Any]]:
    """Check structure, lengths, dims and finiteness; returns the paths with float32 arrays.

    Raises a one-line MorelError naming the file, the trajectory index and the field.
    """
    if not isinstance(paths, list):
        raise MorelError(f"{source}: a dataset must be a list of trajectories, got "
                         f"{type(paths).__name__}")
    if not paths:
        raise MorelError(f"{source}: the dataset holds no trajectories")
    out = []
    for i, path in enumerate(paths):
        where = f"{source}: trajectory {i}"
        if not isinstance(path, dict):
            raise MorelError(f"{where}: expected a dict, got {type(path).__name__}")
        clean = dict(path)
        for key in FIELDS:
            if key not in path:
                raise MorelError(f"{where}: missing field '{key}'")
            raw = np.asarray(path[key])
            if raw.dtype.kind not in "biuf":
                kind = "complex" if raw.dtype.kind == "c" else "not numeric"
                raise MorelError(f"{where}: field '{key}' is {kind} ({raw.dtype}); a dataset "
                                 "holds real numbers")
            arr = raw.astype(np.float32)
            want_ndim = 1 if key == "rewards" else 2
            if arr.ndim == 2 and key == "rewards" and arr.shape[1] == 1:
                arr = arr[:, 0]
            if arr.ndim != want_ndim:
                raise MorelError(f"{where}: field '{key}' has shape {arr.shape}, expected "
                                 f"{want_ndim} dimension(s)")
            if not np.isfinite(arr).all():
                bad = int(np.argwhere(~np.isfinite(arr))[0][0])
                raise MorelError(f"{where}: field '{key}' has a NaN/inf value at step {bad}")
            clean[key] = arr
        lengths = {k: len(clean[k]) for k in FIELDS}
        if len(set(lengths.values())) != 1:
            raise MorelError(f"{where}: fields have different lengths {lengths}")
        if lengths["rewards"] < min_length:
            raise MorelError(f"{where}: {lengths['rewards']} steps, at least {min_length} needed")
        for key, dim in (("observations", obs_dim), ("actions", act_dim)):
            if dim is not None and clean[key].shape[1] != dim:
                raise MorelError(f"{where}: field '{key}' has dimension {clean[key].shape[1]}, "
                                 f"but the env's is {dim} (dataset made for another env?)")
        clean["terminated"] = bool(np.asarray(path.get("terminated", False)).any())
        out.append(clean)
    return out


# ----------------------------------------------------------------------------- reading


def load_dataset(path: str | Path, obs_dim: int | None = None, act_dim: int | None = None,
                 min_length: int = 1) -> Dataset:
    """Read a dataset (format from the extension) and validate it (see `validate`)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise MorelError(f"{path}: unknown dataset extension '{suffix}' (use one of "
                         f"{', '.join(FORMATS)})")
    if path.exists() and not path.is_file():
        raise MorelError(f"{path}: not a regular file (a folder, device or pipe); not a dataset")
    if not path.is_file():
        raise MorelError(f"{path}: dataset file not found")
    if suffix in (".pickle", ".pkl"):
        paths, meta, meta_source = safe_load(path), _read_sidecar(path), sidecar_path(path)
    elif suffix == ".npz":
        (paths, meta), meta_source = _read_npz(path), path
    else:
        (paths, meta), meta_source = _read_h5(path), path
    check_meta(meta, str(meta_source), obs_dim)
    return Dataset(validate(paths, str(path), obs_dim, act_dim, min_length), meta)


def sidecar_path(path: Path) -> Path:
    """Where a pickle dataset's metadata lives: FILE.pickle -> FILE.pickle.meta.json (the pickle
    itself stays the original's plain list of paths)."""
    return path.with_name(path.name + ".meta.json")


def _read_sidecar(path: Path) -> dict:
    meta_path = sidecar_path(path)
    if not meta_path.exists():
        return {}  # an original-format pickle: no metadata
    try:
        if not meta_path.is_file() or meta_path.stat().st_size > MAX_META_BYTES:
            raise MorelError(f"{meta_path}: not a metadata file (a regular JSON file of at most "
                             f"{MAX_META_BYTES} bytes)")
        text = meta_path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise MorelError(f"{meta_path}: cannot read ({err})") from None
    return _parse_meta(text, meta_path)


def split_flat(arrays: dict[str, np.ndarray], lengths: np.ndarray, terminated: np.ndarray,
               source: str) -> list[dict[str, Any]]:
    """Cut concatenated `[sum(T), ...]` arrays into paths of the given lengths."""
    lengths, terminated = np.asarray(lengths), np.asarray(terminated)
    if lengths.ndim != 1 or lengths.dtype.kind not in "iu":
        raise MorelError(f"{source}: 'path_lengths' must be a 1-D array of integers")
    if (lengths < 0).any():
        raise MorelError(f"{source}: negative path length")
    total = sum(int(n) for n in lengths)  # Python ints: no overflow
    for key, arr in arrays.items():
        if arr.ndim == 0 or len(arr) != total:
            raise MorelError(f"{source}: '{key}' has {len(arr) if arr.ndim else 0} rows but "
                             f"path_lengths sum to {total}")
    if terminated.ndim != 1 or len(terminated) != len(lengths):
        raise MorelError(f"{source}: 'terminated' has {len(terminated)} entries for "
                         f"{len(lengths)} paths")
    bounds = np.concatenate([[0], np.cumsum(lengths)])
    return [{**{k: v[bounds[i]:bounds[i + 1]] for k, v in arrays.items()},
             "terminated": bool(terminated[i])} for i in range(len(lengths))]


def _read_npz(path: Path) -> tuple[list[dict[str, Any]], dict]:
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in (*FIELDS, "path_lengths") if k not in z.files]
            if missing:
                raise MorelError(f"{path}: missing array(s) {', '.join(missing)}")
            arrays = {k: z[k] for k in FIELDS}
            lengths = z["path_lengths"]
            terminated = z["terminated"] if "terminated" in z.files else np.zeros(len(lengths))
            meta = _parse_meta(str(z["meta"]) if "meta" in z.files else "{}", path)
    except MorelError:
        raise
    except Exception as err:  # zip/npy parsing errors of many types: one line, named
        raise MorelError(f"{path}: corrupt or unsupported .npz ({type(err).__name__}: "
                         f"{err})") from None
    return split_flat(arrays, lengths, terminated, str(path)), meta


def _read_h5(path: Path) -> tuple[list[dict[str, Any]], dict]:
    try:
        with open_hdf5(path) as f:
            missing = [k for k in (*FIELDS, "path_lengths") if k not in f]
            if missing:
                raise MorelError(f"{path}: missing dataset(s) {', '.join(missing)} (a D4RL or "
                                 "Minari file? convert it with prep_d4rl_dataset.py)")
            arrays = {k: f[k][()] for k in FIELDS}
            lengths = f["path_lengths"][()]
            terminated = f["terminated"][()] if "terminated" in f else np.zeros(len(lengths))
            meta = _parse_meta(f.attrs.get("meta", "{}"), path)
    except MorelError:
        raise
    except Exception as err:  # h5py raises OSError/KeyError/ValueError/TypeError variants
        raise MorelError(f"{path}: corrupt or unsupported HDF5 file ({type(err).__name__}: "
                         f"{err})") from None
    return split_flat(arrays, lengths, terminated, str(path)), meta


def _parse_meta(text: Any, path: Path) -> dict:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    text = str(text)
    if len(text) > MAX_META_BYTES:
        raise MorelError(f"{path}: 'meta' is larger than {MAX_META_BYTES} bytes")
    try:
        meta = json.loads(text)
    except json.JSONDecodeError:
        raise MorelError(f"{path}: 'meta' is not valid JSON") from None
    except RecursionError:
        raise MorelError(f"{path}: 'meta' is JSON nested too deeply") from None
    if not isinstance(meta, dict):
        raise MorelError(f"{path}: 'meta' must be a JSON object")
    return meta


# ----------------------------------------------------------------------------- writing


def check_output_path(path: str | Path, force: bool = False) -> Path:
    """Check a dataset output path before any work: known extension, no overwrite unless force."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise MorelError(f"{path}: unknown dataset extension '{suffix}' (use one of "
                         f"{', '.join(FORMATS)})")
    check_writable_path(path)
    if path.exists() and not force:
        raise MorelError(f"{path}: file exists; choose another --output or pass --force")
    if suffix in (".pickle", ".pkl") and sidecar_path(path).exists() and not force:
        raise MorelError(f"{sidecar_path(path)}: metadata file exists (it would be replaced); "
                         "choose another --output or pass --force")
    return path


def save_dataset(dataset: Dataset, path: str | Path, force: bool = False) -> Path:
    """Write a dataset (format from the extension) atomically; refuse to overwrite unless
    `force`. Returns the path written."""
    path = check_output_path(path, force)
    suffix = path.suffix.lower()
    with atomic_path(path) as tmp:
        if suffix in (".pickle", ".pkl"):
            with open(tmp, "wb") as f:
                pickle.dump([_plain(p) for p in dataset.paths], f, protocol=4)
        else:
            flat = _flatten(dataset)
            if suffix == ".npz":
                with open(tmp, "wb") as f:
                    np.savez_compressed(f, **flat, meta=np.array(json.dumps(dataset.meta)))
            else:
                _write_h5(tmp, flat, dataset.meta)
    if suffix in (".pickle", ".pkl"):
        write_text_atomic(sidecar_path(path), json.dumps(dataset.meta, indent=1) + "\n")
    return path


def _plain(path: dict[str, Any]) -> dict[str, Any]:
    """A path as the original stores it: numpy arrays and a bool, nothing else."""
    out = {k: np.asarray(path[k]) for k in FIELDS}
    out["terminated"] = bool(path.get("terminated", False))
    return out


def _flatten(dataset: Dataset) -> dict[str, np.ndarray]:
    paths = dataset.paths
    flat = {k: np.concatenate([np.asarray(p[k], dtype=np.float32) for p in paths]) for k in FIELDS}
    flat["path_lengths"] = np.array([len(p["rewards"]) for p in paths], dtype=np.int64)
    flat["terminated"] = np.array([bool(p.get("terminated", False)) for p in paths])
    return flat


def _write_h5(tmp: str, flat: dict[str, np.ndarray], meta: dict) -> None:
    import h5py

    with h5py.File(tmp, "w") as f:
        for key, arr in flat.items():
            f.create_dataset(key, data=arr, compression="gzip" if arr.size > 1024 else None)
        f.attrs["meta"] = json.dumps(meta)


def transitions(paths: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    """Flat transitions of a dataset, as the original builds them: within each path
    s = obs[:-1], a = act[:-1], s_next = obs[1:], r = rew[:-1] ([M, .] float32), plus
    init_states [num_paths, obs_dim] (each path's first observation)."""
    cut = [p for p in paths if len(p["rewards"]) >= 2]
    return {
        "s": np.concatenate([p["observations"][:-1] for p in cut]),
        "a": np.concatenate([p["actions"][:-1] for p in cut]),
        "s_next": np.concatenate([p["observations"][1:] for p in cut]),
        "r": np.concatenate([p["rewards"][:-1] for p in cut]),
        "init_states": np.stack([p["observations"][0] for p in paths]),
    }

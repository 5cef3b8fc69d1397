"""Dataset formats: round trips, the original's structure, validation errors, summary."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from morel.core.errors import MorelError
from morel.data.datasets import Dataset, load_dataset, save_dataset, summarize


def make_paths(lengths=(5, 3, 7), obs_dim=4, act_dim=2, seed=0):
    rng = np.random.default_rng(seed)
    return [{"observations": rng.normal(size=(t, obs_dim)).astype(np.float32),
             "actions": rng.uniform(-1, 1, (t, act_dim)).astype(np.float32),
             "rewards": rng.normal(size=t).astype(np.float32), "terminated": i % 2 == 0}
            for i, t in enumerate(lengths)]


@pytest.mark.parametrize("ext", [".pickle", ".npz", ".h5"])
def test_round_trip_every_format(tmp_path, ext):
    paths = make_paths()
    meta = {"env_name": "X-v5", "obs_mask": [1.0, 1.0, 0.5, 0.5]}
    out = save_dataset(Dataset(paths, meta), tmp_path / f"d{ext}")
    loaded = load_dataset(out, obs_dim=4, act_dim=2)
    assert len(loaded.paths) == 3 and loaded.num_samples == 15
    for a, b in zip(paths, loaded.paths):
        for key in ("observations", "actions", "rewards"):
            np.testing.assert_array_equal(a[key], b[key])
        assert a["terminated"] == b["terminated"]
    assert loaded.meta == meta  # a pickle keeps it in FILE.pickle.meta.json


def test_pickle_metadata_sidecar(tmp_path):
    out = save_dataset(Dataset(make_paths(), {"act_repeat": 2}), tmp_path / "d.pickle")
    sidecar = tmp_path / "d.pickle.meta.json"
    assert sidecar.is_file()
    sidecar.unlink()  # an original-format pickle comes without one
    assert load_dataset(out).meta == {}
    sidecar.write_text("{not json")
    with pytest.raises(MorelError, match="d.pickle.meta.json: 'meta' is not valid JSON"):
        load_dataset(out)


def test_pickle_is_the_originals_structure(tmp_path):
    out = save_dataset(Dataset(make_paths()), tmp_path / "d.pickle")
    raw = pickle.loads(out.read_bytes())  # what the original's loader does
    assert isinstance(raw, list) and isinstance(raw[0], dict)
    assert all(isinstance(raw[0][k], np.ndarray) for k in ("observations", "actions", "rewards"))


def test_original_pickle_with_extra_keys_and_2d_rewards_loads(tmp_path):
    paths = make_paths()
    for p in paths:
        p["rewards"] = p["rewards"][:, None].astype(np.float64)
        p["env_infos"] = {"x": np.zeros(len(p["rewards"]))}
        p.pop("terminated")
    (tmp_path / "orig.pickle").write_bytes(pickle.dumps(paths, protocol=3))
    loaded = load_dataset(tmp_path / "orig.pickle")
    assert loaded.paths[0]["rewards"].shape == (5,) and loaded.paths[0]["terminated"] is False


def test_refuses_to_overwrite_without_force(tmp_path):
    out = tmp_path / "d.npz"
    save_dataset(Dataset(make_paths()), out)
    before = out.read_bytes()
    with pytest.raises(MorelError, match="file exists.*--force"):
        save_dataset(Dataset(make_paths(seed=1)), out)
    assert out.read_bytes() == before
    save_dataset(Dataset(make_paths(seed=1)), out, force=True)
    assert out.read_bytes() != before
    assert [p.name for p in tmp_path.iterdir()] == ["d.npz"]  # no temp file left behind


@pytest.mark.parametrize("mutate, message", [
    (lambda p: p[1].update(rewards=p[1]["rewards"][:-1]), "trajectory 1: fields have different"),
    (lambda p: p[2]["observations"].__setitem__((3, 1), np.nan),
     "trajectory 2: field 'observations' has a NaN/inf value at step 3"),
    (lambda p: p[0].pop("actions"), "trajectory 0: missing field 'actions'"),
    (lambda p: p.clear(), "holds no trajectories"),
    (lambda p: p.__setitem__(0, [1, 2]), "trajectory 0: expected a dict"),
    (lambda p: p[0].update(actions=np.array(["a"] * 5)), "field 'actions' is not numeric"),
])
def test_validation_names_trajectory_and_field(tmp_path, mutate, message):
    paths = make_paths()
    mutate(paths)
    (tmp_path / "d.pickle").write_bytes(pickle.dumps(paths))
    with pytest.raises(MorelError, match=message):
        load_dataset(tmp_path / "d.pickle")


def test_dims_must_match_env_and_min_length(tmp_path):
    out = save_dataset(Dataset(make_paths()), tmp_path / "d.h5")
    with pytest.raises(MorelError, match="'observations' has dimension 4, but the env's is 11"):
        load_dataset(out, obs_dim=11)
    with pytest.raises(MorelError, match="trajectory 1: 3 steps, at least 4 needed"):
        load_dataset(out, min_length=4)


def test_bad_files_are_one_line_errors(tmp_path):
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    (tmp_path / "junk.h5").write_bytes(b"not hdf5")
    for name in ("junk.npz", "junk.h5"):
        with pytest.raises(MorelError, match=f"{name}: corrupt or unsupported"):
            load_dataset(tmp_path / name)
    with pytest.raises(MorelError, match="unknown dataset extension '.csv'"):
        load_dataset(tmp_path / "d.csv")
    with pytest.raises(MorelError, match="dataset file not found"):
        load_dataset(tmp_path / "absent.pickle")
    np.savez(tmp_path / "short.npz", observations=np.zeros((4, 2)), actions=np.zeros((4, 1)),
             rewards=np.zeros(4), path_lengths=np.array([2, 3]))
    with pytest.raises(MorelError, match="'observations' has 4 rows but path_lengths sum to 5"):
        load_dataset(tmp_path / "short.npz")


def test_summary_matches_hand_computation():
    paths = make_paths()
    returns = np.array([p["rewards"].sum(dtype=np.float64) for p in paths])
    s = summarize(Dataset(paths))
    assert (s.trajectories, s.samples, s.terminated) == (3, 15, 2)
    np.testing.assert_allclose([s.return_mean, s.return_std, s.return_min, s.return_max],
                               [returns.mean(), returns.std(), returns.min(), returns.max()],
                               rtol=1e-6)
    assert "trajectories 3 | samples 15" in s.table()


def test_atomic_writes_get_the_usual_permissions(tmp_path):
    from morel.core.atomic import _UMASK, write_text_atomic

    write_text_atomic(tmp_path / "a.txt", "x")
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o666 & ~_UMASK

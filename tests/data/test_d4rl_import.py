"""D4RL and Minari HDF5 files (built here) convert into the same paths; Minari dataset folders
and ids convert with their metadata without the minari package (tests/data/test_minari_package.py
reads datasets Minari itself wrote)."""

from __future__ import annotations

import json
import runpy
import sys

import h5py
import numpy as np
import pytest
from conftest import REWARDS, ROOT, run, run_script

from morel.core.errors import MorelError
from morel.data import minari_files
from morel.data.d4rl import detect_format, read_d4rl, read_minari, repeat_actions
from morel.data.datasets import load_dataset
from morel.envs.scores import dataset_reference, normalized_score

LENGTHS = (4, 6, 3)  # path 0 falls (terminal), path 1 times out, path 2 is cut by the file's end
ENDINGS = ("terminal", "timeout", "none")


def reference_paths(obs_dim=11, act_dim=3, seed=0):
    rng = np.random.default_rng(seed)
    return [{"observations": rng.normal(size=(t + 1, obs_dim)).astype(np.float32),
             "actions": rng.uniform(-1, 1, (t, act_dim)).astype(np.float32),
             "rewards": rng.normal(size=t).astype(np.float32), "ending": e}
            for t, e in zip(LENGTHS, ENDINGS)]


def write_d4rl(path, paths, with_timeouts=True):
    obs = np.concatenate([p["observations"][:-1] for p in paths])
    term = np.concatenate([np.eye(1, len(p["rewards"]), len(p["rewards"]) - 1)[0]
                           * (p["ending"] == "terminal") for p in paths])
    tout = np.concatenate([np.eye(1, len(p["rewards"]), len(p["rewards"]) - 1)[0]
                           * (p["ending"] == "timeout") for p in paths])
    with h5py.File(path, "w") as f:
        f["observations"] = obs
        f["actions"] = np.concatenate([p["actions"] for p in paths])
        f["rewards"] = np.concatenate([p["rewards"] for p in paths])
        f["terminals"] = term.astype(bool)
        if with_timeouts:
            f["timeouts"] = tout.astype(bool)
        f["metadata/algorithm"] = "test"


def write_minari(path, paths):
    with h5py.File(path, "w") as f:
        for i, p in enumerate(paths):
            g = f.create_group(f"episode_{i}")
            t = len(p["rewards"])
            g["observations"] = p["observations"]
            g["actions"], g["rewards"] = p["actions"], p["rewards"]
            g["terminations"] = np.arange(t) == t - 1 if p["ending"] == "terminal" else np.zeros(t)
            g["truncations"] = np.arange(t) == t - 1 if p["ending"] == "timeout" else np.zeros(t)


def check_same(converted, reference):
    assert len(converted) == len(reference)
    for c, r in zip(converted, reference):
        np.testing.assert_array_equal(c["observations"], r["observations"][:-1])
        np.testing.assert_array_equal(c["actions"], r["actions"])
        np.testing.assert_array_equal(c["rewards"], r["rewards"])
        assert c["terminated"] == (r["ending"] == "terminal")


def test_d4rl_and_minari_read_back_the_same_paths(tmp_path):
    ref = reference_paths()
    write_d4rl(tmp_path / "d4rl.hdf5", ref)
    write_minari(tmp_path / "main_data.hdf5", ref)
    assert detect_format(tmp_path / "d4rl.hdf5") == "d4rl"
    assert detect_format(tmp_path / "main_data.hdf5") == "minari"
    check_same(read_d4rl(tmp_path / "d4rl.hdf5"), ref)
    check_same(read_minari(tmp_path / "main_data.hdf5"), ref)


def test_d4rl_without_timeouts_splits_at_terminals(tmp_path, capsys):
    ref = reference_paths()
    write_d4rl(tmp_path / "d.hdf5", ref, with_timeouts=False)
    paths = read_d4rl(tmp_path / "d.hdf5")
    assert [len(p["rewards"]) for p in paths] == [4, 9]
    assert "no 'timeouts'" in capsys.readouterr().out


def test_act_repeat_averages_actions_and_sums_rewards():
    path = {"observations": np.arange(7.0)[:, None], "actions": np.arange(14.0).reshape(7, 2),
            "rewards": np.arange(7.0), "terminated": True}
    merged = repeat_actions(path, 3)
    np.testing.assert_array_equal(merged["observations"][:, 0], [0, 3, 6])
    np.testing.assert_allclose(merged["actions"], [[2, 3], [8, 9], [12, 13]])
    np.testing.assert_array_equal(merged["rewards"], [3, 12, 6])  # last block has one step
    assert merged["terminated"] is True


@pytest.mark.parametrize("layout, ext", [("d4rl", ".pickle"), ("minari", ".npz")])
def test_prep_script_converts_masks_and_repeats(tmp_path, layout, ext):
    ref = reference_paths()
    src = tmp_path / "src.hdf5"
    (write_d4rl if layout == "d4rl" else write_minari)(src, ref)
    out = tmp_path / f"out{ext}"
    res = run_script("prep_d4rl_dataset.py", "--input", src, "--output", out, "--env_name",
                     "Hopper-v5", "--act_repeat", "2", "--include", REWARDS / "gym_hopper.py")
    assert res.returncode == 0, res.stderr
    assert f"({layout}, read by h5py): trajectories 3 | samples 7" in res.stdout
    data = load_dataset(out)
    mask = np.array([1.0] * 5 + [0.02] * 6, np.float32)
    first = ref[0]
    np.testing.assert_allclose(data.paths[0]["observations"],
                               first["observations"][[0, 2]] * mask, rtol=1e-6)
    np.testing.assert_allclose(data.paths[0]["rewards"],
                               first["rewards"].reshape(2, 2).sum(1), rtol=1e-6)
    again = run_script("prep_d4rl_dataset.py", "--input", src, "--output", out)
    assert again.returncode == 2 and "file exists" in again.stderr


def test_prep_script_rejects_wrong_env_and_bad_file(tmp_path):
    write_d4rl(tmp_path / "src.hdf5", reference_paths(obs_dim=17))
    res = run_script("prep_d4rl_dataset.py", "--input", tmp_path / "src.hdf5", "--output",
                     tmp_path / "o.pickle", "--env_name", "Hopper-v5")
    assert res.returncode == 2
    assert "'observations' has dimension 17, but the env's is 11" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    (tmp_path / "junk.hdf5").write_bytes(b"junk")
    with pytest.raises(MorelError, match="corrupt or unsupported HDF5 file"):
        detect_format(tmp_path / "junk.hdf5")


def write_minari_folder(root, paths, dataset_id="test/hopper-tiny-v0"):
    """A Minari dataset folder root/ID/data: main_data.hdf5 and the metadata.json fields that
    morel reads (as minari 0.5 writes them: the env spec is a JSON string)."""
    data = root / dataset_id / "data"
    data.mkdir(parents=True)
    write_minari(data / "main_data.hdf5", paths)
    (data / "metadata.json").write_text(json.dumps({
        "dataset_id": dataset_id, "minari_version": "0.5.4", "data_format": "hdf5",
        "env_spec": json.dumps({"id": "Hopper-v5", "max_episode_steps": 1000,
                                "kwargs": {"ctrl_cost_weight": 0.002}}),
        "ref_min_score": -20.0, "ref_max_score": 3000.0, "total_episodes": len(paths)}))
    return data


def prep_in_process(args, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["prep_d4rl_dataset.py", *map(str, args)])
    runpy.run_path(str(ROOT / "prep_d4rl_dataset.py"), run_name="__main__")
    return capsys.readouterr().out


def test_minari_folder_without_the_package_keeps_env_and_reference_scores(tmp_path,
                                                                          monkeypatch, capsys):
    ref = reference_paths()
    write_minari_folder(tmp_path / "store", ref)
    monkeypatch.setattr(minari_files, "package_available", lambda: False)
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "store"))
    by_id = prep_in_process(["--minari_id", "test/hopper-tiny-v0", "--output",
                             tmp_path / "a.npz"], monkeypatch, capsys)
    assert "minari package is not installed" in by_id and "read by h5py" in by_id
    assert "made with kwargs {'ctrl_cost_weight': 0.002}" in by_id
    by_path = prep_in_process(["--input", tmp_path / "store" / "test" / "hopper-tiny-v0",
                               "--output", tmp_path / "b.npz"], monkeypatch, capsys)
    assert "read by h5py" in by_path
    for name in ("a.npz", "b.npz"):
        data = load_dataset(tmp_path / name)
        check_same(data.paths, ref)
        assert data.meta["env_name"] == "Hopper-v5"  # from the env spec: dims were checked
        assert data.meta["minari_dataset_id"] == "test/hopper-tiny-v0"
        assert data.meta["minari_env_spec"] == {"id": "Hopper-v5", "max_episode_steps": 1000,
                                                "kwargs": {"ctrl_cost_weight": 0.002}}
        assert dataset_reference(data.meta) == (-20.0, 3000.0)


def test_minari_reader_choices_refuse_what_cannot_work(tmp_path, monkeypatch, capsys):
    data = write_minari_folder(tmp_path / "store", reference_paths())
    monkeypatch.setattr(minari_files, "package_available", lambda: False)
    line = run("prep_d4rl_dataset.py", ["--input", data, "--output", tmp_path / "o.npz",
                                        "--reader", "package"], monkeypatch, capsys)
    assert "needs its package: pip install -e '.[minari]'" in line
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "store"))
    line = run("prep_d4rl_dataset.py", ["--minari_id", "test/absent-v0", "--output",
                                        tmp_path / "o.npz"], monkeypatch, capsys)
    assert "no local dataset at" in line and "nothing is downloaded" in line
    line = run("prep_d4rl_dataset.py", ["--minari_id", "../escape-v0", "--output",
                                        tmp_path / "o.npz"], monkeypatch, capsys)
    assert "not a Minari dataset id" in line
    (data / "main_data.hdf5").unlink()  # an arrow-format dataset, say
    line = run("prep_d4rl_dataset.py", ["--input", data, "--output", tmp_path / "o.npz",
                                        "--reader", "h5py"], monkeypatch, capsys)
    assert "no main_data.hdf5 (data_format hdf5)" in line
    assert not (tmp_path / "o.npz").exists()


def test_dataset_reference_scores_normalize_and_bad_ones_are_ignored():
    assert normalized_score("Ant-v5", 1490.0, (-10.0, 2990.0)) == pytest.approx(50.0)
    assert dataset_reference({"ref_min_score": 5.0, "ref_max_score": 5.0}) is None
    assert dataset_reference({"ref_min_score": True, "ref_max_score": 9.0}) is None
    assert dataset_reference({"ref_max_score": 9.0}) is None
    huge = json.loads('{"ref_min_score": 1' + "0" * 400 + ', "ref_max_score": 9.0}')
    assert dataset_reference(huge) is None  # an int no float holds: ignored, not a crash


def test_minari_metadata_with_a_number_no_float_holds_is_read(tmp_path):
    data = write_minari_folder(tmp_path, reference_paths())
    text = (data / "metadata.json").read_text().replace('"ref_min_score": -20.0',
                                                         '"ref_min_score": 1' + "0" * 400)
    (data / "metadata.json").write_text(text)
    meta = minari_files.read_metadata(data)
    assert "ref_min_score" not in meta and meta["ref_max_score"] == 3000.0


def test_d4rl_converted_without_env_name_loads_back(tmp_path):
    write_d4rl(tmp_path / "src.hdf5", reference_paths())
    res = run_script("prep_d4rl_dataset.py", "--input", tmp_path / "src.hdf5", "--output",
                     tmp_path / "o.npz")
    assert res.returncode == 0, res.stderr
    data = load_dataset(tmp_path / "o.npz")  # no env_name: null, which the loader would refuse
    assert "env_name" not in data.meta and data.meta["source_format"] == "d4rl"

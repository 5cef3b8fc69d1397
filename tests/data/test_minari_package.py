"""Datasets written by Minari's own DataCollector on Hopper-v5 (offline, into a temporary
MINARI_DATASETS_PATH): read through the package and by morel's h5py reader alike, converted by
prep_d4rl_dataset.py with their env and reference scores, and trained on by a tiny MOReL run.
Needs the optional extras: pip install -e '.[test-extras]'."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from conftest import ROOT, read_job_log, run_script, write_config

minari = pytest.importorskip("minari", reason="optional extra 'minari' not installed "
                             "(pip install -e '.[test-extras]')")
pytest.importorskip("jax", reason="Minari's DataCollector needs minari[create] (jax): "
                    "pip install -e '.[test-extras]'")

from morel.data.d4rl import read_minari  # noqa: E402
from morel.data.datasets import load_dataset  # noqa: E402
from morel.data.minari_files import read_metadata, read_with_package  # noqa: E402
from morel.npg.policies import load_policy  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:minari.*")  # unclipped actions,
# unset author fields: Minari's notes on what the test writes

DATASET_ID = "morel-test/hopper-medium-v0"
EPISODES = 6
REFERENCE = (-20.0, 3000.0)


@pytest.fixture(scope="module")
def minari_store(tmp_path_factory):
    """A Minari dataset of EPISODES Hopper-v5 episodes of the shipped medium policy plus its
    noise, written by minari.DataCollector; returns (store root, what was stepped: per episode
    observations [T+1, 11], actions [T, 3], rewards [T], terminated)."""
    store = tmp_path_factory.mktemp("minari")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MINARI_DATASETS_PATH", str(store))
        policy, _ = load_policy(ROOT / "logging_policy" / "hopper_v5_medium.pt")
        env = minari.DataCollector(gym.make("Hopper-v5"), record_infos=False,
                                   data_format="hdf5")
        rng = np.random.default_rng(0)
        stepped = []
        for ep in range(EPISODES):
            obs, _ = env.reset(seed=ep)
            o, a, r = [obs], [], []
            while True:
                mean, std = policy.mean_std(obs[None])
                action = (mean[0] + std[0] * rng.normal(size=3)).astype(np.float32)
                obs, reward, terminated, truncated, _ = env.step(action)
                o.append(obs), a.append(action), r.append(reward)
                if terminated or truncated or len(r) == 300:
                    break
            stepped.append((np.array(o), np.array(a), np.array(r), bool(terminated)))
        env.create_dataset(DATASET_ID, algorithm_name="medium policy + noise",
                           ref_min_score=REFERENCE[0], ref_max_score=REFERENCE[1],
                           author="morel tests", author_email="tests@morel.invalid",
                           code_permalink="tests/data/test_minari_package.py",
                           description="a few episodes for morel's tests")
        env.close()
    return store, stepped


def test_package_and_h5py_reader_read_what_was_stepped(minari_store):
    store, stepped = minari_store
    data_dir = store / DATASET_ID / "data"
    by_package = read_with_package(data_dir)
    by_h5py = read_minari(data_dir / "main_data.hdf5")
    assert len(by_package) == len(by_h5py) == EPISODES
    for pkg, ours, (obs, act, rew, terminated) in zip(by_package, by_h5py, stepped):
        for key in ("observations", "actions", "rewards"):
            np.testing.assert_array_equal(ours[key], pkg[key])
            assert ours[key].dtype == pkg[key].dtype, key
        np.testing.assert_array_equal(ours["observations"], obs[:-1])  # final state dropped
        np.testing.assert_array_equal(ours["actions"], act)
        np.testing.assert_array_equal(ours["rewards"], rew)
        assert ours["terminated"] == pkg["terminated"] == terminated
    meta = read_metadata(data_dir)
    assert meta["env_id"] == "Hopper-v5" and meta["dataset_id"] == DATASET_ID
    assert (meta["ref_min_score"], meta["ref_max_score"]) == REFERENCE


def test_converted_by_id_and_trained_on(minari_store, tmp_path, monkeypatch):
    store, stepped = minari_store
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(store))
    out = tmp_path / "hopper_minari.npz"
    res = run_script("prep_d4rl_dataset.py", "--minari_id", DATASET_ID, "--output", out,
                     "--include", ROOT / "utils" / "reward_functions" / "gym_hopper.py")
    assert res.returncode == 0, res.stderr
    assert "read by package" in res.stdout
    data = load_dataset(out)
    assert data.meta["env_name"] == "Hopper-v5" and data.meta["reader"] == "package"
    assert data.meta["minari_dataset_id"] == DATASET_ID
    assert data.meta["minari_env_spec"]["max_episode_steps"] == 1000
    assert (data.meta["ref_min_score"], data.meta["ref_max_score"]) == REFERENCE
    mask = np.array([1.0] * 5 + [0.02] * 6)
    np.testing.assert_allclose(data.paths[0]["observations"], stepped[0][0][:-1] * mask,
                               rtol=1e-6)

    job = tmp_path / "job"
    run = run_script("run_morel.py", "--config", write_config(tmp_path, out), "--output", job)
    assert run.returncode == 0, run.stderr
    log = read_job_log(job)
    assert log["rollout_score"][0] == pytest.approx(np.mean([s[2].sum() for s in stepped]))
    low, high = REFERENCE  # the dataset's own reference returns, not D4RL's
    for score, normalized in zip(log["eval_score"], log["eval_score_normalized"]):
        assert normalized == pytest.approx(100 * (score - low) / (high - low))

"""collect_dataset.py end to end: random and policy-file logging, formats, refusals."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from conftest import REWARDS, run_script

from morel.data.datasets import load_dataset
from morel.npg.policies import GaussianMLP, save_policy


def test_random_hopper_pickle_is_readable_by_the_original_loader(tmp_path):
    out = tmp_path / "h.pickle"
    res = run_script("collect_dataset.py", "--env_name", "Hopper-v5", "--policy", "random",
                     "--output", out, "--size", "3000", "--include", REWARDS / "gym_hopper.py")
    assert res.returncode == 0, res.stderr
    assert "trajectories" in res.stdout and "return mean" in res.stdout
    raw = pickle.loads(out.read_bytes())
    assert isinstance(raw, list) and sum(len(p["rewards"]) for p in raw) >= 3000
    first_obs = raw[0]["observations"][0]
    assert np.all(np.abs(first_obs[5:]) <= 0.2 + 1e-6)  # reset observation is masked too
    again = run_script("collect_dataset.py", "--env_name", "Hopper-v5", "--policy", "random",
                       "--output", out, "--size", "3000")
    assert again.returncode == 2 and "file exists" in again.stderr
    assert pickle.loads(out.read_bytes())[0]["rewards"].tolist() == raw[0]["rewards"].tolist()


def test_same_seed_same_dataset(tmp_path):
    outs = []
    for name in ("a.npz", "b.npz"):
        res = run_script("collect_dataset.py", "--env_name", "Hopper-v5", "--policy", "random",
                         "--output", tmp_path / name, "--size", "500", "--seed", "3")
        assert res.returncode == 0, res.stderr
        outs.append(load_dataset(tmp_path / name))
    assert len(outs[0].paths) == len(outs[1].paths)
    for a, b in zip(outs[0].paths, outs[1].paths):
        np.testing.assert_array_equal(a["observations"], b["observations"])
    assert outs[0].meta["seed"] == 3 and outs[0].meta["policy"] == "random"


def test_policy_file_with_eps_mode_and_act_repeat(tmp_path):
    policy = GaussianMLP(11, 3, (8, 8), init_log_std=-1.0, seed=0)
    with torch.no_grad():
        policy.out_shift.fill_(0.4)  # a recognisable mean action
    save_policy(policy, tmp_path / "p.pt", {"env_name": "Hopper-v5"})
    out = tmp_path / "h.h5"
    res = run_script("collect_dataset.py", "--env_name", "Hopper-v5", "--policy",
                     tmp_path / "p.pt", "--output", out, "--size", "400", "--mode", "eps-0.5",
                     "--act_repeat", "2")
    assert res.returncode == 0, res.stderr
    data = load_dataset(out)
    actions = np.concatenate([p["actions"] for p in data.paths])
    at_mean = np.all(np.abs(actions - 0.4) < 0.01, axis=1)
    assert 0.35 < at_mean.mean() < 0.65
    assert data.meta["act_repeat"] == 2 and data.meta["mode"] == "eps-0.5"


@pytest.mark.parametrize("args, message", [
    (["--env_name", "Hopper-v3"], "needs mujoco-py.*'Hopper-v5'"),
    (["--mode", "eps-2"], "probability must be in"),
    (["--mode", "gauss-0.1"], "--policy random is uniform"),
    (["--policy", "missing.pt"], "missing.pt: policy file not found"),
    (["--output", "x.csv"], "unknown dataset extension"),
])
def test_bad_arguments_exit_2_with_one_line(tmp_path, args, message):
    base = {"--env_name": "Hopper-v5", "--policy": "random", "--output": str(tmp_path / "o.pkl"),
            "--size": "100"}
    for flag, value in zip(args[::2], args[1::2]):
        base[flag] = value
    res = run_script("collect_dataset.py", *[x for kv in base.items() for x in kv], cwd=tmp_path)
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    import re

    assert re.search(message, lines[0])

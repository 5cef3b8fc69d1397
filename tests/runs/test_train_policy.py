"""train_policy.py end to end on a tiny Hopper config: files, log values, a killed and resumed
run equal to an uninterrupted one."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import assert_same_run, kill_at_first_checkpoint, read_job_log, run_script

from morel.npg.policies import load_policy

TINY = """{
'env_name': 'Hopper-v5', 'seed': 7, 'num_iter': 4, 'num_samples': 300, 'num_envs': 2,
'eval_rollouts': 2, 'save_freq': 2, 'policy_size': (8, 8), 'vf_hidden_size': (16, 16),
'step_size': 0.05, 'npg_hp': dict(FIM_invert_args={'iters': 5, 'damping': 1e-3}),
}"""
TIMING = {"iter_time", "time_sampling", "time_vpg", "time_npg", "time_VF"}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    config = root / "npg_tiny.txt"
    config.write_text(TINY)
    full = run_script("train_policy.py", "--config", config, "--output", root / "full",
                      "--save_samples")
    killed_at = kill_at_first_checkpoint("train_policy.py", "--config", config, "--output",
                                         root / "killed", job=root / "killed")
    resumed = run_script("train_policy.py", "--config", config, "--output", root / "killed",
                         "--resume")
    return root, config, full, killed_at, resumed


def test_job_directory_and_log(runs):
    root, _, full, _, _ = runs
    assert full.returncode == 0, full.stderr
    job = root / "full"
    for name in ("job_data.json", "logs/log.pickle", "logs/log.csv", "logs/scores.png",
                 "iterations/policy_1.pt", "iterations/policy_3.pt", "iterations/checkpoint.pt",
                 "best_policy.pt", "policy_final.pt"):
        assert (job / name).is_file(), name
    assert json.loads((job / "job_data.json").read_text())["num_samples"] == 300
    log = read_job_log(job)
    assert all(len(v) == 4 for v in log.values())
    assert all(n >= 300 for n in log["num_samples"])
    assert all(0 < kl < 0.1 for kl in log["kl_dist"])
    assert max(log["eval_score"]) > 0
    best_policy, meta = load_policy(job / "best_policy.pt")
    assert meta["env_name"] == "Hopper-v5" and meta["eval_score"] == max(log["eval_score"])
    assert meta["iteration"] == log["eval_score"].index(max(log["eval_score"]))
    assert "iteration 3" in full.stdout and "kl_dist" in full.stdout
    lines = (job / "logs" / "log.csv").read_text().splitlines()
    assert len(lines) == 5 and lines[0].startswith("iteration,eval_score,iter_time")


def test_saved_samples_are_each_iterations_episodes(runs):
    """--save_samples (the full run only) keeps every iteration's episodes and changes nothing
    else: the killed-and-resumed run without it still equals the full run (next test)."""
    from morel.data.datasets import load_dataset

    root, _, _, _, _ = runs
    log = read_job_log(root / "full")
    for it in range(4):
        data = load_dataset(root / "full" / "samples" / f"iter_{it}.npz")
        assert data.meta["iteration"] == it and data.meta["obs_mask"] == [1.0] * 11
        assert data.num_samples == log["num_samples"][it]
        returns = [float(p["rewards"].sum()) for p in data.paths]
        assert sum(returns) / len(returns) == pytest.approx(log["stoc_pol_mean"][it], rel=1e-5)
    assert not (root / "killed" / "samples").exists()


def test_killed_run_resumes_exactly_like_an_uninterrupted_run(runs):
    root, _, _, killed_at, resumed = runs
    assert killed_at == 2
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stdout and "at iteration 2" in resumed.stdout
    assert_same_run(root / "full", root / "killed", TIMING)


def test_existing_run_is_not_overwritten(runs):
    root, config, *_ = runs
    before = (root / "full" / "logs" / "log.pickle").read_bytes()
    again = run_script("train_policy.py", "--config", config, "--output", root / "full")
    assert again.returncode == 2
    assert "already holds a run" in again.stderr and "Traceback" not in again.stderr
    assert (root / "full" / "logs" / "log.pickle").read_bytes() == before


def test_explore_results_plots_the_run(runs, tmp_path):
    root, *_ = runs
    out = run_script("utils/explore_results.py", "--data", root / "full", "--output",
                     tmp_path / "p.png")
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"
    assert "eval_score" in out.stdout and "kl_dist" in out.stdout  # every per-iteration key
    two = run_script("utils/explore_results.py", "--data", root / "full",
                     root / "killed" / "logs" / "log.csv", "--keys", "eval_score",
                     "--output", tmp_path / "two.png")
    assert two.returncode == 0, two.stderr
    assert "mean ± std" in two.stdout and (tmp_path / "two.png").is_file()
    lowest = min(np.mean(read_job_log(root / name)["eval_score"][-10:])
                 for name in ("full", "killed"))
    row = next(line for line in two.stdout.splitlines() if line.startswith("eval_score"))
    assert "lowest run's mean of last 10" in two.stdout and f"{lowest:.4g}" in row.split()
    scores = read_job_log(root / "full")["eval_score"]
    floor = float(np.median(scores))
    per_run = run_script("utils/explore_results.py", "--data", root / "full", "--keys",
                         "eval_score", "--floor", str(floor), "--after", "0", "--output",
                         tmp_path / "floor.png")
    assert per_run.returncode == 0, per_run.stderr
    below = [i for i, v in enumerate(scores) if i > 0 and v < floor]
    cells = next(line for line in per_run.stdout.splitlines()
                 if line.startswith(str(root / "full"))).split()
    assert cells[1] == str(len(scores)) and cells[2] == f"{scores[-1]:.4g}"  # 4 iterations
    assert cells[-2:] == [str(len(below)), f"({below[0]})"] and below
    assert cells[-3] == f"{min(scores[1:]):.4g}"
    bad = run_script("utils/explore_results.py", "--data", root / "full", "--keys", "nope")
    assert bad.returncode == 2 and "no key(s) nope" in bad.stderr


def test_evaluate_policy_reports_both_modes(runs):
    root, *_ = runs
    out = run_script("utils/evaluate_policy.py", "--policy", root / "full" / "best_policy.pt",
                     "--episodes", "2")
    assert out.returncode == 0, out.stderr
    row = out.stdout.splitlines()[2]
    assert "best_policy.pt" in row and "Hopper-v5" in row and row.count("±") == 2
    bad = run_script("utils/evaluate_policy.py", "--policy", root / "missing.pt")
    assert bad.returncode == 2 and "policy file not found" in bad.stderr


def test_policy_average_keeps_the_iterates_and_scores_the_average(runs, tmp_path):
    root, _, full, _, _ = runs
    assert full.returncode == 0, full.stderr
    averaged = tmp_path / "avg.txt"
    averaged.write_text(TINY.replace("'num_iter': 4", "'num_iter': 2, 'policy_average': 0.5"))
    out = run_script("train_policy.py", "--config", averaged, "--output", tmp_path / "avg")
    assert out.returncode == 0, out.stderr
    log, plain = read_job_log(tmp_path / "avg"), read_job_log(root / "full")
    assert log["kl_dist"] == plain["kl_dist"][:2]  # the same NPG iterates
    assert log["iterate_eval_score"] == plain["eval_score"][:2]
    assert log["eval_score"] != log["iterate_eval_score"]


def test_set_overrides_keys_and_an_anchor_starts_at_the_init_policy(runs, tmp_path):
    """--set as in run_morel.py; with init_policy and anchor_kl_coef the anchor is the
    policy loaded, KL 0 at the first step and > 0 after it."""
    root, config, full, _, _ = runs
    assert full.returncode == 0, full.stderr
    out = run_script("train_policy.py", "--config", config, "--output", tmp_path / "anchored",
                     "--set", "num_iter=3", "--set", "anchor_kl_coef=5.0", "--set",
                     f"init_policy='{root / 'full' / 'iterations' / 'policy_1.pt'}'")
    assert out.returncode == 0, out.stderr
    job_data = json.loads((tmp_path / "anchored" / "job_data.json").read_text())
    assert job_data["num_iter"] == 3 and job_data["anchor_kl_coef"] == 5.0
    log = read_job_log(tmp_path / "anchored")
    assert log["anchor_kl"][0] == 0.0 and all(k > 0 for k in log["anchor_kl"][1:])
    bad = run_script("train_policy.py", "--config", config, "--output", tmp_path / "bad",
                     "--set", "step_size=-1")
    assert bad.returncode == 2 and "step_size" in bad.stderr
    assert not (tmp_path / "bad").exists()


def test_episode_horizon_cuts_sampled_episodes_into_terminal_ones(runs, tmp_path):
    """episode_horizon H: every sampled episode ends within H steps and those cut at H are
    terminal in the update's batch (the saved samples keep the env's own flag)."""
    from morel.data.datasets import load_dataset
    from morel.runs.train import finite_horizon

    _, config, _, _, _ = runs
    out = run_script("train_policy.py", "--config", config, "--output", tmp_path / "short",
                     "--set", "num_iter=2", "--set", "episode_horizon=15", "--save_samples")
    assert out.returncode == 0, out.stderr
    data = load_dataset(tmp_path / "short" / "samples" / "iter_1.npz")
    lengths = [len(p["rewards"]) for p in data.paths]
    assert max(lengths) == 15 and len(lengths) >= 300 // 15
    assert any(len(p["rewards"]) == 15 and not p["terminated"] for p in data.paths)
    marked = finite_horizon(data.paths, 15)
    assert all(p["terminated"] for p in marked if len(p["rewards"]) == 15)
    assert [p["terminated"] for p in marked if len(p["rewards"]) < 15] == \
        [p["terminated"] for p in data.paths if len(p["rewards"]) < 15]
    assert finite_horizon(data.paths, None) is data.paths
    assert finite_horizon(data.paths, 15, cut_terminates=False) is data.paths
    booted = run_script("train_policy.py", "--config", config, "--output", tmp_path / "boot",
                        "--set", "num_iter=1", "--set", "episode_horizon=15",
                        "--set", "cut_terminates=False")
    assert booted.returncode == 0, booted.stderr
    cut, boot = read_job_log(tmp_path / "short"), read_job_log(tmp_path / "boot")
    assert boot["stoc_pol_mean"][0] == cut["stoc_pol_mean"][0]  # the same episodes
    assert boot["surr_improvement"][0] != cut["surr_improvement"][0]  # other advantages
    bad = run_script("train_policy.py", "--config", config, "--output", tmp_path / "bad",
                     "--set", "episode_horizon=0")
    assert bad.returncode == 2 and "episode_horizon" in bad.stderr

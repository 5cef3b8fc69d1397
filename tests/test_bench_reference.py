"""The benchmark's reference (the original's per-member rollouts, disagreement afterwards) computes
what pmdp_rollouts computes, so the speed ratios compare equal work; and a --quick benchmark run
writes every ratio (timings themselves are never asserted)."""

from __future__ import annotations

import sys

import pytest
import torch
from conftest import ROOT
from reference import reference_rollouts, sequential_returns

from morel.envs.wrapper import make_env
from morel.models.dynamics import DynamicsEnsemble
from morel.npg.policies import GaussianMLP
from morel.pmdp import HaltRules, pmdp_rollouts


def test_reference_rollouts_equal_the_batched_ones():
    model = DynamicsEnsemble(3, 4, 2, (16,), seed=0)
    data = torch.randn(300, 4) * 0.3
    model.set_normalisation(data, torch.rand(300, 2) * 2 - 1, data + 0.05 * torch.randn(300, 4))
    policy = GaussianMLP(4, 2, (8,), init_log_std=-20.0, min_log_std=-20.0, seed=1)
    starts = data[:5]
    ours = pmdp_rollouts(model, policy, starts, 12, HaltRules(None), lambda p, t: p["actions"]
                         .sum(-1), None, generator=torch.Generator().manual_seed(0))
    obs, disagreement = reference_rollouts(model, policy, starts, 12,
                                           torch.Generator().manual_seed(0))
    torch.testing.assert_close(ours.batch.observations, obs, rtol=1e-5, atol=1e-5)
    _, expected = model.dataset_statistics(obs.reshape(-1, 4),
                                           ours.batch.actions.reshape(-1, 2),
                                           obs.reshape(-1, 4))
    torch.testing.assert_close(disagreement.reshape(-1), expected, rtol=1e-4, atol=1e-5)


def test_reference_evaluation_returns_the_mean_action_returns():
    """The reference's episodes (torch forward per observation) return what the policy's own
    mean action (its numpy path on CPU) returns, episode by episode."""
    policy = GaussianMLP(11, 3, (8,), seed=2)
    expected = []
    for k in range(2):
        env = make_env("Hopper-v5")
        obs, _ = env.reset(seed=40 + k)
        total, done = 0.0, False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(policy.act(obs, deterministic=True)[0])
            total += reward
            done = terminated or truncated
        expected.append(total)
    assert sequential_returns("Hopper-v5", policy, 2, 40) == pytest.approx(expected, rel=1e-4)


def test_bench_quick_run_writes_every_ratio(tmp_path):
    import json
    import subprocess

    out = tmp_path / "bench.json"
    res = subprocess.run([sys.executable, str(ROOT / "bench" / "run_all.py"), "--quick",
                          "--output", str(out), "--markdown", str(tmp_path / "b.md")],
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    r = json.loads(out.read_text())
    ratios = [r["fitting"]["1000"]["fraction_of_peak"], r["fitting"]["256"]["fraction_of_peak"],
              r["sampling"]["over_floor"], r["sampling"]["speedup_over_reference"],
              r["iteration"]["speedup_over_reference"], r["iteration"]["fvp_over_floor"],
              r["iteration"]["fvp_speedup"], r["collection"]["fraction_of_raw"],
              r["long_run"]["fit_ratio"], r["long_run"]["iteration_ratio"]]
    assert all(0 < x < 100 for x in ratios), ratios
    assert "| measure" in (tmp_path / "b.md").read_text()
    if r["flush_subnormals"]:  # x86 (FTZ/DAZ): no float op leaves a subnormal behind
        assert r["long_run"]["drifted_subnormals"] == 0


def test_scaling_point_reports_its_sizes_times_and_memory():
    import json
    import subprocess

    res = subprocess.run([sys.executable, str(ROOT / "bench" / "scaling.py"), "--point",
                          "members=3,paths=4,horizon=15,data=3000,hidden=16,cg=3"],
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    row = json.loads(res.stdout[res.stdout.index("{"):])
    assert row["samples"] == 3 * 4 * 15  # no halting: members x paths x horizon
    assert (row["members"], row["hidden"], row["cg"], row["data"]) == (3, 16, 3, 3000)
    parts = ("sampling_s", "update_s", "evaluation_s")
    assert all(row[k] > 0 for k in (*parts, "fit_epoch_s", "statistics_s", "peak_rss_mb"))
    assert abs(row["iteration_s"] - sum(row[k] for k in parts)) < 1e-9
    bad = subprocess.run([sys.executable, str(ROOT / "bench" / "scaling.py"), "--point",
                          "paths=0"], capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "--point 'paths=0': give KEY=N (N >= 1)" in bad.stderr


def test_run_vs_bench_matches_a_runs_sample_count(hopper_data, tmp_path):
    from conftest import run_script, write_config

    job = tmp_path / "job"
    made = run_script("run_morel.py", "--config", write_config(tmp_path, hopper_data,
                                                               num_iter=3), "--output", job)
    assert made.returncode == 0, made.stderr
    res = run_script("bench/run_vs_bench.py", job)
    assert res.returncode == 0, res.stderr
    assert f"{job}: 3 iterations" in res.stdout
    assert "bench: 2 members x 4 paths x horizon" in res.stdout  # the tiny config's sizes
    rows = {line.split()[0]: line.split()[-3:] for line in res.stdout.splitlines()[3:]}
    assert set(rows) == {"iteration", "sampling", "NPG", "evaluation"}
    assert all(float(x) >= 0 for row in rows.values() for x in row)
    run, bench, ratio = map(float, rows["iteration"])
    assert bench > 0 and ratio == pytest.approx(run / bench, abs=0.05, rel=0.1)
    not_a_job = run_script("bench/run_vs_bench.py", tmp_path)
    assert not_a_job.returncode != 0 and "job_data.json: unreadable" in not_a_job.stderr

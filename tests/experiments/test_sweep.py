"""sweep.py on a local Ray: a tiny grid of three runs (MOReL, BC, and one that always fails),
retries, --resume, the refusal to overwrite, and the results table built from its output."""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import sys

import pytest
from conftest import REWARDS, ROOT, read_job_log, run_script

# CI installs the [ray] extra (quickstart.sh), so there a missing ray fails instead of skipping
NO_RAY = importlib.util.find_spec("ray") is None
pytestmark = pytest.mark.skipif(NO_RAY and not os.environ.get("CI"),
                                reason="sweep.py needs the [ray] extra")

SUITE = """{{'size': 600, 'seed': 3, 'output_dir': '{out}',
'reward_files': {{'Hopper-v5': '{reward}'}},
'datasets': {{'hopper-tiny': {{'env_name': 'Hopper-v5',
                              'parts': [('{policy}', 'pure')]}}}}}}"""
BASE = """{{'env_name': 'Hopper-v5', 'data_file': 'unset.npz', 'learn_reward': False,
'reward_file': '{reward}', 'seed': 5, 'num_iter': 3, 'eval_rollouts': 2, 'num_models': 2,
'save_freq': 3, 'bc_init': True, 'pessimism_coef': 1.0, 'hidden_size': (16, 16),
'fit_mb_size': 128, 'fit_epochs': 1, 'horizon': 30, 'update_paths': 4, 'policy_size': (8, 8),
'npg_hp': dict(FIM_invert_args={{'iters': 3, 'damping': 1e-3}})}}"""
GRID = """{{'output_dir': '{out}', 'suite': '{suite}', 'datasets': None,
'base_configs': {{'Hopper-v5': '{base}'}}, 'seeds': {{'Hopper-v5': [1]}},
'algos': {{'morel': ('run_morel.py', []), 'bc': ('run_bc.py', []),
          'broken': ('run_morel.py', ['fit_lrr=1e-3'])}}}}"""


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep")
    reward = REWARDS / "gym_hopper.py"
    (root / "suite.txt").write_text(SUITE.format(
        out=root / "data", reward=reward, policy=ROOT / "logging_policy" / "hopper_v5_medium.pt"))
    (root / "base.txt").write_text(BASE.format(reward=reward))
    (root / "grid.txt").write_text(GRID.format(out=root / "out", suite=root / "suite.txt",
                                               base=root / "base.txt"))
    made = run_script("experiments/make_datasets.py", "--suite", root / "suite.txt")
    assert made.returncode == 0, made.stderr
    first = run_script("experiments/sweep.py", "--grid", root / "grid.txt", "--num_cpus", "2")
    return root, first


def test_runs_finish_and_the_failing_one_is_retried_and_reported(sweep):
    root, first = sweep
    assert first.returncode == 2, first.stderr
    assert first.stderr.strip().splitlines()[-1] == (
        "error: 1 run(s) failed: hopper-tiny/broken_s1 (see their logs; --resume reruns only "
        "these)")
    assert "retrying" in first.stderr + first.stdout
    status = json.loads((root / "out" / "sweep_status.json").read_text())
    assert status["hopper-tiny/morel_s1"]["state"] == "done"
    assert status["hopper-tiny/bc_s1"]["state"] == "done"
    broken = status["hopper-tiny/broken_s1"]
    assert broken["state"] == "failed" and broken["attempts"] == 2
    assert "unknown key 'fit_lrr'" in broken["log_tail"]
    # each run is its own job directory, made by the command recorded for it
    morel = root / "out" / "hopper-tiny" / "morel_s1"
    assert (morel / "policy_final.pt").is_file() and len(read_job_log(morel)["eval_score"]) == 3
    command = status["hopper-tiny/morel_s1"]["command"]
    assert command[:2] == [sys.executable, str(ROOT / "run_morel.py")]
    assert ["--seed", "1"] == command[command.index("--seed"):command.index("--seed") + 2]
    assert f"data_file={root / 'data' / 'hopper-tiny.npz'}" in command
    job_data = json.loads((morel / "job_data.json").read_text())
    assert job_data["seed"] == 1 and job_data["data_file"].endswith("hopper-tiny.npz")


def test_existing_runs_are_kept_and_resume_reruns_only_failures(sweep):
    root, _ = sweep
    refused = run_script("experiments/sweep.py", "--grid", root / "grid.txt")
    assert refused.returncode == 2 and "pass --resume" in refused.stderr
    dry = run_script("experiments/sweep.py", "--grid", root / "grid.txt", "--resume", "--dry_run")
    assert dry.returncode == 0
    assert [line.split("--output ")[1].split()[0] for line in dry.stdout.splitlines()] == [
        str(root / "out" / "hopper-tiny" / "broken_s1")]


def test_results_table_from_the_sweep(sweep):
    root, _ = sweep
    readme = root / "README.md"
    readme.write_text("# Results\n<!-- results -->\nold table\n<!-- /results -->\nend\n")
    made = run_script("experiments/results_table.py", "--sweep", root / "out", "--plot",
                      root / "curves.png", "--readme", readme)
    assert made.returncode == 0, made.stderr
    assert (root / "curves.png").stat().st_size > 1000
    rows = {r["algo"]: r for r in csv.DictReader(open(root / "out" / "results.csv"))}
    assert set(rows) == {"bc", "morel"}  # the failed algo has no finished run
    morel_log = read_job_log(root / "out" / "hopper-tiny" / "morel_s1")
    bc_log = read_job_log(root / "out" / "hopper-tiny" / "bc_s1")
    # last 10% of 3 iterations: the last one; BC: its single score
    assert float(rows["morel"]["score_mean"]) == pytest.approx(morel_log["eval_score"][-1])
    assert float(rows["bc"]["score_mean"]) == pytest.approx(bc_log["eval_score"][0])
    assert float(rows["bc"]["behaviour_return"]) == pytest.approx(bc_log["rollout_score"][0])
    table = (root / "out" / "results.md").read_text()
    assert table.splitlines()[0] == "| env | dataset | behaviour return | BC | MOReL | seeds |"
    assert table.splitlines()[2].startswith("| Hopper-v5 | hopper-tiny | ")
    morel_wins = float(rows["morel"]["score_mean"]) > max(
        float(rows["bc"]["score_mean"]), float(rows["bc"]["behaviour_return"]))
    assert table.splitlines()[-1].endswith(f"BC: MOReL {int(morel_wins)} of 1.")
    assert readme.read_text() == f"# Results\n<!-- results -->\n{table}<!-- /results -->\nend\n"
    other = root / "OTHER.md"  # --block picks another block of the file; the rest is kept
    kept = "<!-- results -->\nkept\n<!-- /results -->\n"
    other.write_text(kept + "<!-- heldout -->\n<!-- /heldout -->\n")
    made = run_script("experiments/results_table.py", "--sweep", root / "out", "--readme", other,
                      "--block", "heldout")
    assert made.returncode == 0, made.stderr
    assert other.read_text() == f"{kept}<!-- heldout -->\n{table}<!-- /heldout -->\n"


def test_without_ray_sweep_says_how_to_install_it(monkeypatch):
    import sweep as sweep_script

    monkeypatch.setitem(sys.modules, "ray", None)  # makes `import ray` raise ImportError
    from morel.core.errors import MorelError

    with pytest.raises(MorelError, match=r"pip install -e \.\[ray\]"):
        sweep_script.import_ray()

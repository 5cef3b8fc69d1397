"""The catalogue of bad inputs (docs/errors.md): each case (tests/bad_input_cases.py,
tests/hostile_input_cases.py) runs its script in-process as a user would and must print one
'error: ' line (progress bars aside), exit with code 2, leave no traceback and change no file.
Here also: a second run on a locked job directory, and what is a warning rather than an error."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import bad_input_cases
import hostile_input_cases
import pytest
import torch
from conftest import ROOT, assert_refused, run_script, write_config
from hostile_input_cases import MEDIUM, collect_args

from morel.npg.policies import GaussianMLP, load_policy, save_policy

CASES = bad_input_cases.CASES + hostile_input_cases.CASES


@pytest.mark.parametrize("case, script, message", CASES, ids=[c[0].__name__[5:] for c in CASES])
def test_bad_input_is_one_line_exit_2_and_nothing_is_lost(case, script, message, tmp_path,
                                                          hopper_data, monkeypatch, capsys):
    assert_refused(case, script, message, tmp_path, hopper_data, monkeypatch, capsys)


def test_readme_lists_every_case():
    readme = (ROOT / "docs" / "errors.md").read_text(encoding="utf-8")
    table = readme[readme.index("<!-- bad-inputs -->"):readme.index("<!-- /bad-inputs -->")]
    for case, _, _ in CASES:
        assert f"`{case.__name__[5:]}`" in table, case.__name__
    assert "`concurrent_runs`" in table


def test_a_second_run_on_the_same_output_refuses(tmp_path, hopper_data):
    """Two run_morel.py on one --output (case `concurrent_runs`): while the first holds the job
    directory, the second, even with --force, exits 2 with one line; the first runs on."""
    config = write_config(tmp_path, hopper_data, num_iter=100_000, extra="'save_freq': 1")
    job = tmp_path / "job"
    first = subprocess.Popen([sys.executable, str(ROOT / "run_morel.py"), "-c", str(config),
                              "-o", str(job)], cwd=tmp_path, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 600
        while not (job / "iterations" / "checkpoint.pt").exists():
            assert first.poll() is None, first.stderr.read()
            assert time.monotonic() < deadline, "the first run wrote no checkpoint"
            time.sleep(0.05)
        second = subprocess.run([sys.executable, str(ROOT / "run_morel.py"), "-c", str(config),
                                 "-o", str(job), "--force"], cwd=tmp_path, capture_output=True,
                                text=True, timeout=600)
        assert second.returncode == 2
        assert second.stderr.strip().splitlines() == [
            f"error: {job}: another run is writing to this job directory; wait for it to end "
            "or choose another --output"]
        assert first.poll() is None, "the first run stopped"
    finally:
        first.kill()
        first.wait()
    assert json.loads((job / "job_data.json").read_text())["num_iter"] == 100_000


def test_a_saved_policy_with_valid_metadata_still_loads(tmp_path):
    """The checks refuse only what is wrong: our own files load."""
    policy = GaussianMLP(11, 3, (8,), seed=0)
    save_policy(policy, tmp_path / "p.pt", {"env_name": "Hopper-v5", "act_repeat": 2,
                                            "obs_mask": [1.0] * 11,
                                            "trained_obs_mask": [1.0] * 5 + [0.02] * 6})
    loaded, meta = load_policy(tmp_path / "p.pt")
    assert torch.equal(loaded.flat_params(), policy.flat_params()) and meta["act_repeat"] == 2


def test_a_policy_of_another_act_repeat_collects_with_a_warning(tmp_path):
    """Collecting with another act_repeat than the policy's is a choice (the original's Hopper
    data was collected at act_repeat 2), so it is said on stderr, not refused."""
    out = run_script("collect_dataset.py", *collect_args(tmp_path, MEDIUM, "--act_repeat", "2"))
    assert out.returncode == 0, out.stderr
    assert ("policy was trained with act_repeat 1, collecting with 2: each of its actions is "
            "held for 2 env steps") in out.stderr

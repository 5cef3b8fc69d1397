"""Shared test helpers: project paths and running a script as a user would."""

from __future__ import annotations

import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
REWARDS = ROOT / "utils" / "reward_functions"


def kill_at_first_checkpoint(script: str, *args: str, job: Path) -> int:
    """Start `python SCRIPT ARGS`, SIGKILL it as soon as JOB holds a checkpoint (while it still
    runs), and return the checkpoint's iteration."""
    proc = subprocess.Popen([sys.executable, str(ROOT / script), *map(str, args)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoint = job / "iterations" / "checkpoint.pt"
    deadline = time.monotonic() + 600
    try:
        while not checkpoint.exists():
            assert proc.poll() is None, f"{script} ended before its first checkpoint"
            assert time.monotonic() < deadline, f"{script} wrote no checkpoint"
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    return torch.load(checkpoint, weights_only=True)["iteration"]


def run_script(script: str, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run `python SCRIPT ARGS` from the project root (or cwd), capturing its output."""
    return subprocess.run([sys.executable, str(ROOT / script), *map(str, args)],
                          cwd=cwd or ROOT, capture_output=True, text=True, timeout=600)


def collect_hopper_medium(out: Path, size: int) -> Path:
    """A Hopper dataset of at least `size` steps from the shipped medium logging policy,
    observations masked by the Hopper reward file (collect_dataset.py as a user runs it)."""
    made = run_script("collect_dataset.py", "--env_name", "Hopper-v5", "--policy",
                      ROOT / "logging_policy" / "hopper_v5_medium.pt", "--output", out,
                      "--size", str(size), "--include", REWARDS / "gym_hopper.py")
    assert made.returncode == 0, made.stderr
    return out


@pytest.fixture
def hopper_reward_file() -> Path:
    return REWARDS / "gym_hopper.py"


def read_job_log(job: Path) -> dict:
    """A job directory's logs/log.pickle (written by our own scripts in the test)."""
    return pickle.loads((job / "logs" / "log.pickle").read_bytes())


def assert_same_run(full: Path, split: Path, timing_keys: set[str]) -> None:
    """Two job directories hold the same run: equal logs (timings aside) and final weights."""
    from morel.policies import load_policy

    a_log, b_log = read_job_log(full), read_job_log(split)
    assert list(a_log) == list(b_log)
    for key in a_log:
        if key not in timing_keys:
            assert a_log[key] == b_log[key], key
    a, _ = load_policy(full / "policy_final.pt")
    b, _ = load_policy(split / "policy_final.pt")
    assert torch.equal(a.flat_params(), b.flat_params())

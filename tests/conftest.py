"""Shared test helpers: project paths and running a script as a user would."""

from __future__ import annotations

import pickle
import re
import runpy
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
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
    from morel.npg.policies import load_policy

    a_log, b_log = read_job_log(full), read_job_log(split)
    assert list(a_log) == list(b_log)
    for key in a_log:
        if key not in timing_keys:
            assert a_log[key] == b_log[key], key
    a, _ = load_policy(full / "policy_final.pt")
    b, _ = load_policy(split / "policy_final.pt")
    assert torch.equal(a.flat_params(), b.flat_params())


# ----------------------------------------------------------------------------- bad inputs

CONFIG = """{{
'env_name': '{env}', 'seed': {seed}, 'num_iter': {num_iter}, 'eval_rollouts': 1, 'num_models': 2,
'data_file': '{data}', 'reward_file': '{reward}', 'learn_reward': False,
'model_file': {model}, 'hidden_size': (8,), 'fit_epochs': 1, 'policy_size': (8,),
'update_paths': 4, 'horizon': 20, 'pessimism_coef': 1.0, 'device': 'cpu', {extra}
}}
"""
HOPPER_REWARD = REWARDS / "gym_hopper.py"


@pytest.fixture(scope="session")
def hopper_data(tmp_path_factory) -> Path:
    """A small valid Hopper dataset (medium logging policy, obs_mask of the reward file)."""
    return collect_hopper_medium(tmp_path_factory.mktemp("bad_inputs") / "hopper.pickle", 400)


@pytest.fixture(scope="session")
def tiny_morel_job(hopper_data, tmp_path_factory) -> Path:
    """A finished tiny run_morel job on `hopper_data` (write_config's, a policy saved at each of
    its 2 iterations), shared read-only by the checks' tests: copy it before changing it."""
    folder = tmp_path_factory.mktemp("tiny_morel_job")
    made = run_script("run_morel.py", "--config",
                      write_config(folder, hopper_data, extra="'save_freq': 1"),
                      "--output", folder / "job")
    assert made.returncode == 0, made.stderr
    return folder / "job"


def write_config(folder: Path, data: Path, env: str = "Hopper-v5", model: str = "None",
                 extra: str = "", reward: Path = HOPPER_REWARD, seed: str = "0",
                 num_iter: int = 2) -> Path:
    """A tiny run_morel config (2 iterations, 2 members of 8 units) in folder/c.txt."""
    path = folder / "c.txt"
    path.write_text(CONFIG.format(env=env, data=data, model=model, extra=extra, reward=reward,
                                  seed=seed, num_iter=num_iter))
    return path


def write_paths(path: Path, paths: list[dict]) -> Path:
    path.write_bytes(pickle.dumps(paths))
    return path


def hopper_paths(n: int = 3, steps: int = 6) -> list[dict]:
    rng = np.random.default_rng(0)
    return [{"observations": rng.normal(size=(steps, 11)).astype(np.float32) * 0.01 + 1.25,
             "actions": rng.uniform(-1, 1, size=(steps, 3)).astype(np.float32),
             "rewards": np.ones(steps, dtype=np.float32)} for _ in range(n)]


def make_job(job: Path) -> dict[str, bytes]:
    """A directory holding a previous run; returns its files' contents."""
    (job / "iterations").mkdir(parents=True)
    files = {"job_data.json": b'{"seed": 7}', "models.pt": b"old ensemble",
             "iterations/checkpoint.pt": b"old checkpoint"}
    for name, content in files.items():
        (job / name).write_bytes(content)
    return files


# a tqdm progress bar's line on stderr, e.g. 'collecting:  58%|#####  | 29/50 [00:00<00:00, ...]'
PROGRESS_LINE = re.compile(r"^[\w ]+: +(\d+%\||\d+\w* \[\d\d:\d\d)")


def run(script: str, args: list, monkeypatch, capsys) -> str:
    """Run `python SCRIPT ARGS` in-process; assert exit code 2 and, progress bars aside, one
    'error: ' line on stderr; return it."""
    monkeypatch.setattr(sys, "argv", [script, *map(str, args)])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(ROOT / script), run_name="__main__")
    err = [line for line in capsys.readouterr().err.strip().splitlines()
           if line.strip() and not PROGRESS_LINE.match(line)]
    assert exit_info.value.code == 2, err
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def file_contents(folder: Path) -> dict[Path, bytes]:
    """Every regular file below `folder` (links not followed), with its bytes."""
    return {p: p.read_bytes() for p in folder.rglob("*") if p.is_file() and not p.is_symlink()}


def assert_refused(case, script: str, message: str, tmp_path: Path, data: Path, monkeypatch,
                   capsys) -> None:
    """Run the bad-input case's script in tmp_path: exit 2, one 'error: ' line matching
    `message`, and nothing below tmp_path written, changed or removed."""
    monkeypatch.chdir(tmp_path)
    args = case(tmp_path, data)
    before = file_contents(tmp_path)
    line = run(script, args, monkeypatch, capsys)
    assert re.search(message, line), line
    assert file_contents(tmp_path) == before  # an old run kept, even with --force
    assert not (tmp_path / "ran").exists()

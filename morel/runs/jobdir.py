"""Job directories: creation rules, the resolved config, and resumable checkpoints.

Layout (shared by train_policy.py and run_morel.py):
    JOB/job_data.json            resolved config (+ computed values)
    JOB/logs/log.pickle, log.csv per-iteration log; JOB/logs/*.png plots
    JOB/iterations/policy_N.pt   periodic policies; JOB/iterations/checkpoint.pt (resume state)
    JOB/best_policy.pt, JOB/policy_final.pt; JOB/models.pt (run_morel.py's ensemble)
A directory holding a run is never written into unless --resume (same config) or --force.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from morel.core.atomic import atomic_path, check_writable_path
from morel.core.errors import MorelError
from morel.core.numbers import finite_number
from morel.core.torch_files import load_torch_file
from morel.npg.policies import GaussianMLP, save_policy
from morel.runs.logger import DataLog
from morel.runs.plots import plot_log

RUN_FILES = ("job_data.json", "logs", "iterations", "best_policy.pt", "policy_final.pt",
             "models.pt", "samples", "tensorboard")
CHECKPOINT = Path("iterations") / "checkpoint.pt"
CHECKPOINT_KEYS = ("iteration", "agent", "log", "best_score")
# keys that may change between a run and its resumption
RESUMABLE_CHANGES = {"num_iter", "save_freq", "print_freq", "device", "exp_notes", "tensorboard"}


def prepare_job_dir(job: Path, config: dict[str, Any], resume: bool, force: bool,
                    defaults: dict[str, Any] | None = None) -> None:
    """Check `job` against the flags before any work; on a fresh start clear old run files."""
    clear_run_files(job, check_job_dir(job, config, resume, force, defaults))


def read_job_data(job: Path, fix: str) -> dict[str, Any]:
    """JOB/job_data.json (the run's resolved config) as a dict; a file that is unreadable or not
    a JSON object is a one-line MorelError ending in `fix`."""
    data_file = job / "job_data.json"
    try:
        data = json.loads(data_file.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as err:
        raise MorelError(f"{data_file}: unreadable ({type(err).__name__}); {fix}") from None
    if not isinstance(data, dict):
        raise MorelError(f"{data_file}: not a JSON object (a run's config); {fix}")
    return data


def read_morel_job(job: Path) -> dict[str, Any]:
    """JOB/job_data.json of a run_morel.py job, with a valid truncate_lim."""
    fix = "--job takes a run_morel.py job directory"
    if not (job / "job_data.json").is_file():
        raise MorelError(f"{job}: no job_data.json; {fix}")
    data = read_job_data(job, fix)
    if "truncate_lim" not in data:
        raise MorelError(f"{job / 'job_data.json'}: not a run_morel.py job (no truncate_lim)")
    lim = data["truncate_lim"]
    if lim is not None and finite_number(lim) is None:
        raise MorelError(f"{job / 'job_data.json'}: truncate_lim must be a number or null, got "
                         f"{str(lim)[:40]}")
    return data


def check_job_dir(job: Path, config: dict[str, Any], resume: bool, force: bool,
                  defaults: dict[str, Any] | None = None) -> list[str]:
    """Refuse what the flags do not allow (changes nothing); return the run files a fresh start
    must clear (none when resuming). A key that the run's job_data.json lacks (a run from
    before the key existed) counts as its value in `defaults`, the config's defaults."""
    check_writable_path(job)
    data_file = job / "job_data.json"
    # a run killed before its first checkpoint: its config is written, no checkpoint, not finished
    started = (data_file.is_file() and not (job / CHECKPOINT).is_file()
               and not (job / "policy_final.pt").is_file())
    if resume:
        if started:
            raise MorelError(f"{job}: the run stopped before its first checkpoint ({CHECKPOINT} "
                             "is written every save_freq iterations), so there is nothing to "
                             "resume; start it again with --force")
        if not (job / CHECKPOINT).is_file() or not data_file.is_file():
            raise MorelError(f"{job}: no run to resume (needs job_data.json and {CHECKPOINT}); "
                             "drop --resume to start a new run")
        old = read_job_data(job, "cannot resume; start again with --force")
        before = {**(defaults or {}), **old}
        changed = sorted(k for k in config  # job_data.json also holds computed values
                         if k not in RESUMABLE_CHANGES and before.get(k) != config[k])
        if changed and not force:
            raise MorelError(f"{job}: config differs from the run's job_data.json in "
                             f"{', '.join(changed)}; resume with the same config or add --force")
        return []
    if job.exists() and not job.is_dir():
        raise MorelError(f"{job}: exists and is not a directory; choose another --output")
    existing = [name for name in RUN_FILES if (job / name).exists()]
    if existing and not force:
        if started:
            raise MorelError(f"{job}: holds a run that stopped before its first checkpoint "
                             f"({', '.join(existing)}); --resume cannot continue it: pass "
                             "--force to start it again, or choose another --output")
        raise MorelError(f"{job}: already holds a run ({', '.join(existing)}); pass --resume to "
                         "continue it, --force to replace it, or choose another --output")
    return existing


@contextmanager
def job_lock(job: Path) -> Iterator[None]:
    """Hold an exclusive lock on the job directory while a run writes into it: a second run on
    the same --output refuses at once. The lock is flock on the folder itself, so the kernel
    releases it when the process ends, even by SIGKILL; a folder made only to lock it is removed
    again if the run leaves it empty."""
    check_writable_path(job)
    created = not job.exists()
    job.mkdir(parents=True, exist_ok=True)
    fd = os.open(job, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise MorelError(f"{job}: another run is writing to this job directory; wait for it "
                             "to end or choose another --output") from None
        yield
    finally:
        os.close(fd)
        if created and job.is_dir() and not any(job.iterdir()):
            job.rmdir()


def run_finished(job: Path) -> bool:
    """A run_morel.py / run_bc.py job that ran to its end: final policy and log written."""
    return (job / "policy_final.pt").is_file() and (job / "logs" / "log.pickle").is_file()


def clear_run_files(job: Path, names: list[str]) -> None:
    """Remove the named run files of `job` (after check_job_dir) and make sure it exists."""
    for name in names:
        target = job / name
        shutil.rmtree(target) if target.is_dir() else target.unlink()
    job.mkdir(parents=True, exist_ok=True)


def save_checkpoint(job: Path, state: dict[str, Any]) -> None:
    """Write the resume state (tensors, numbers, strings, containers only) atomically."""
    with atomic_path(job / CHECKPOINT) as tmp:
        torch.save(state, tmp)


def load_checkpoint(job: Path, agent: Any = None) -> dict[str, Any]:
    """Read the resume state with weights_only=True (no code runs), check its keys and, given an
    agent (anything with load_state_dict), load its "agent" state into it."""
    path = job / CHECKPOINT
    state = load_torch_file(path, "checkpoint", "; start again with --force")
    if not isinstance(state, dict) or not all(k in state for k in CHECKPOINT_KEYS) \
            or type(state["iteration"]) is not int or state["iteration"] < 0 \
            or not isinstance(state["log"], dict) \
            or not isinstance(state["best_score"], (int, float)):
        raise MorelError(f"{path}: not a complete checkpoint (needs {', '.join(CHECKPOINT_KEYS)}"
                         "); start again with --force")
    if agent is not None:
        try:
            agent.load_state_dict(state["agent"])
        except (KeyError, TypeError, ValueError, RuntimeError, AttributeError, IndexError) as err:
            raise MorelError(f"{path}: its policy or baseline does not fit this run's config "
                             f"({type(err).__name__}); start again with --force") from None
    return state


def save_iteration(job: Path, iteration: int, policy: GaussianMLP, meta: dict[str, Any],
                   log: DataLog, checkpoint: dict[str, Any], plot_keys: tuple[str, ...]) -> None:
    """The periodic save of a run: iterations/policy_N.pt, logs, score plot, then the checkpoint
    (last, so a checkpoint never points past files that were not written)."""
    save_policy(policy, job / "iterations" / f"policy_{iteration}.pt", meta)
    log.save(job / "logs")
    plot_log(log.log, plot_keys, job / "logs" / "scores.png", title=str(job))
    save_checkpoint(job, checkpoint)


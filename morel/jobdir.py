"""Job directories: creation rules, the resolved config, and resumable checkpoints.

Layout (shared by train_policy.py and run_morel.py):
    JOB/job_data.json            resolved config (+ computed values)
    JOB/logs/log.pickle, log.csv per-iteration log; JOB/logs/*.png plots
    JOB/iterations/policy_N.pt   periodic policies; JOB/iterations/checkpoint.pt (resume state)
    JOB/best_policy.pt, JOB/policy_final.pt; JOB/models.pt (run_morel.py's ensemble)
A directory holding a run is never written into unless --resume (same config) or --force.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch
from tabulate import tabulate

from morel.atomic import atomic_path
from morel.errors import MorelError
from morel.logger import DataLog
from morel.plots import plot_log
from morel.policies import GaussianMLP, save_policy
from morel.torch_files import load_torch_file

RUN_FILES = ("job_data.json", "logs", "iterations", "best_policy.pt", "policy_final.pt",
             "models.pt", "samples")
CHECKPOINT = Path("iterations") / "checkpoint.pt"
# keys that may change between a run and its resumption
RESUMABLE_CHANGES = {"num_iter", "save_freq", "device", "exp_notes"}


def prepare_job_dir(job: Path, config: dict[str, Any], resume: bool, force: bool) -> None:
    """Check `job` against the flags before any work; on a fresh start clear old run files."""
    clear_run_files(job, check_job_dir(job, config, resume, force))


def check_job_dir(job: Path, config: dict[str, Any], resume: bool, force: bool) -> list[str]:
    """Refuse what the flags do not allow (changes nothing); return the run files a fresh start
    must clear (none when resuming)."""
    data_file = job / "job_data.json"
    if resume:
        if not (job / CHECKPOINT).is_file() or not data_file.is_file():
            raise MorelError(f"{job}: no run to resume (needs job_data.json and {CHECKPOINT}); "
                             "drop --resume to start a new run")
        try:
            old = json.loads(data_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise MorelError(f"{data_file}: unreadable ({err}); cannot resume") from None
        changed = sorted(k for k in config  # job_data.json also holds computed values
                         if k not in RESUMABLE_CHANGES and old.get(k) != config[k])
        if changed and not force:
            raise MorelError(f"{job}: config differs from the run's job_data.json in "
                             f"{', '.join(changed)}; resume with the same config or add --force")
        return []
    if job.exists() and not job.is_dir():
        raise MorelError(f"{job}: exists and is not a directory; choose another --output")
    existing = [name for name in RUN_FILES if (job / name).exists()]
    if existing and not force:
        raise MorelError(f"{job}: already holds a run ({', '.join(existing)}); pass --resume to "
                         "continue it, --force to replace it, or choose another --output")
    return existing


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


def load_checkpoint(job: Path) -> dict[str, Any]:
    """Read the resume state with weights_only=True (no code runs)."""
    path = job / CHECKPOINT
    state = load_torch_file(path, "checkpoint", "; start again with --force")
    if not isinstance(state, dict) or "iteration" not in state:
        raise MorelError(f"{path}: not a checkpoint; start again with --force")
    return state


def save_iteration(job: Path, iteration: int, policy: GaussianMLP, meta: dict[str, Any],
                   log: DataLog, checkpoint: dict[str, Any], plot_keys: tuple[str, ...]) -> None:
    """The periodic save of a run: iterations/policy_N.pt, logs, score plot, then the checkpoint
    (last, so a checkpoint never points past files that were not written)."""
    save_policy(policy, job / "iterations" / f"policy_{iteration}.pt", meta)
    log.save(job / "logs")
    plot_log(log.log, plot_keys, job / "logs" / "scores.png", title=str(job))
    save_checkpoint(job, checkpoint)


def iteration_table(log: DataLog, iteration: int) -> str:
    """The current value of every log key, as the per-iteration table printed by the scripts."""
    return tabulate(sorted(log.current().items()), floatfmt=".4g",
                    headers=[f"iteration {iteration}", "value"])

"""Run a grid of (dataset x algo x seed) MOReL / naive / BC runs as Ray tasks.

    python experiments/sweep.py --grid GRID             # embedded local Ray, all cores
    python experiments/sweep.py --grid GRID --resume    # skip finished runs
    python experiments/sweep.py --grid GRID --address auto   # join a running cluster
    python experiments/sweep.py --grid GRID --dry_run   # print the commands only

with GRID a grid file, e.g. experiments/configs/sweep_suite.txt.

Each run is its script as a subprocess (one CPU, OMP_NUM_THREADS=1, so every run repeats
exactly), writing its own job directory OUTPUT_DIR/DATASET/ALGO_sSEED and its output to
ALGO_sSEED.log beside it. A failed run is retried (--retries, resumed from its checkpoint when
it has one) and, if it still fails, reported with the end of its log; the sweep then exits 2.
OUTPUT_DIR/sweep_status.json lists every run, its command and how it ended (runs of an earlier
sweep into the same folder are kept in it). Needs ray:
`pip install -e .[ray]`. On a cluster every node must see the repository and OUTPUT_DIR at the
same absolute paths (a shared filesystem).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

from tqdm import tqdm

from morel.core.atomic import write_text_atomic
from morel.core.errors import MorelError, run_cli
from morel.experiments.sweep_grid import SweepRun, load_grid


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--grid", required=True, help="grid file (experiments/configs/sweep_*.txt)")
    p.add_argument("--address", default=None,
                   help="Ray cluster to join ('auto' or HOST:PORT); default: a local Ray")
    p.add_argument("--num_cpus", type=int, default=None,
                   help="CPUs of the local Ray (default: all); one run per CPU")
    p.add_argument("--retries", type=int, default=1, help="extra attempts for a failed run")
    p.add_argument("--resume", action="store_true",
                   help="skip finished runs and resume checkpointed ones")
    p.add_argument("--force", action="store_true", help="redo runs whose job directory exists")
    p.add_argument("--datasets", nargs="+", default=None, metavar="NAME",
                   help="run only these datasets of the grid")
    p.add_argument("--dry_run", action="store_true", help="print the commands and stop")
    return p.parse_args()


def run_command(command: list[str], log_file: str) -> tuple[int, float, str]:
    """Run one command with OMP_NUM_THREADS=1, output to `log_file`; (exit code, seconds,
    last lines of the log)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    start = time.time()
    Path(log_file).parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "w", encoding="utf-8") as log:
        code = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=env).returncode
    lines = Path(log_file).read_text(encoding="utf-8", errors="replace").replace("\r", "\n")
    tail = "\n".join(line for line in lines.splitlines() if line.strip())[-600:]
    return code, time.time() - start, tail


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise MorelError("sweep.py needs ray: pip install -e .[ray] (or pip install 'ray>=2.9')"
                         ) from None
    return ray


def pending_runs(runs: list[SweepRun], resume: bool, force: bool) -> list[SweepRun]:
    """The runs to start; refuse to overwrite existing job directories without a flag."""
    existing = [r for r in runs if r.job.exists()]
    if existing and not (resume or force):
        raise MorelError(f"{existing[0].job} (and {len(existing) - 1} more) exist; pass --resume "
                         "to skip finished runs, or --force to redo them")
    return [r for r in runs if not (resume and r.finished())]


def execute(runs: list[SweepRun], ray: Any, retries: int, resume: bool) -> dict[str, dict]:
    """Run every run as a Ray task (one CPU each), retrying failures; status per run name."""
    task = ray.remote(num_cpus=1)(run_command)
    attempts = {r.name: 0 for r in runs}
    by_ref: dict[Any, SweepRun] = {}
    status: dict[str, dict] = {}

    def submit(run: SweepRun) -> None:
        attempts[run.name] += 1
        command = run.command(resume=(resume or attempts[run.name] > 1) and run.resumable())
        by_ref[task.remote(command, str(run.log_file))] = run
        status[run.name] = {"command": command, "attempts": attempts[run.name]}

    for run in runs:
        submit(run)
    with tqdm(total=len(runs), desc="sweep", unit="run", dynamic_ncols=True) as bar:
        while by_ref:
            (ref,), _ = ray.wait(list(by_ref), num_returns=1)
            run = by_ref.pop(ref)
            try:
                code, seconds, tail = ray.get(ref)
            except Exception as err:  # the task itself died (worker lost, node down)
                code, seconds, tail = -1, 0.0, f"ray task failed: {err}"
            ok = code == 0 and run.finished()
            if not ok and attempts[run.name] <= retries:
                tqdm.write(f"{run.name}: failed (exit {code}), retrying; log {run.log_file}")
                submit(run)
                continue
            status[run.name].update(state="done" if ok else "failed", exit_code=code,
                                    seconds=round(seconds, 1), log=str(run.log_file),
                                    **({} if ok else {"log_tail": tail}))
            if not ok:
                tqdm.write(f"{run.name}: FAILED after {attempts[run.name]} attempt(s), exit "
                           f"{code}; log {run.log_file}:\n{tail}")
            bar.update(1)
    return status


def main() -> None:
    args = parse_args()
    if args.retries < 0:
        raise MorelError("--retries must be >= 0")
    runs = load_grid(args.grid)
    if args.datasets:
        unknown = sorted(set(args.datasets) - {r.dataset for r in runs})
        if unknown:
            raise MorelError(f"--datasets: {unknown} not in {args.grid}")
        runs = [r for r in runs if r.dataset in args.datasets]
    missing = sorted({r.data_file for r in runs if not Path(r.data_file).is_file()})
    if missing:
        raise MorelError(f"dataset {missing[0]} not found ({len(missing)} missing); build the "
                         "suite first: python experiments/make_datasets.py --suite "
                         "experiments/configs/dataset_suite.txt")
    todo = pending_runs(runs, args.resume, args.force)
    if args.dry_run:
        for run in todo:
            print(" ".join(run.command(resume=args.resume and run.resumable())))
        return
    skipped = {r.name: {"state": "skipped (finished)"} for r in runs if r not in todo}
    print(f"{len(runs)} runs in {args.grid}: {len(todo)} to run, {len(skipped)} finished")
    ray = import_ray()
    if args.address:
        ray.init(address=args.address, include_dashboard=False, log_to_driver=False)
    else:
        ray.init(num_cpus=args.num_cpus, include_dashboard=False, log_to_driver=False)
    try:
        status = {**skipped, **execute(todo, ray, args.retries, args.resume)}
    finally:
        ray.shutdown()
    out = runs[0].job.parent.parent if runs else Path(".")
    status_file = out / "sweep_status.json"
    earlier = json.loads(status_file.read_text(encoding="utf-8")) if status_file.is_file() else {}
    write_text_atomic(status_file, json.dumps({**earlier, **status}, indent=2) + "\n")
    failed = [name for name, s in status.items() if s["state"] == "failed"]
    print(f"{len(status) - len(failed)} of {len(status)} runs done; status in "
          f"{out / 'sweep_status.json'}")
    if failed:
        raise MorelError(f"{len(failed)} run(s) failed: {', '.join(failed)} (see their logs; "
                         "--resume reruns only these)")


if __name__ == "__main__":
    run_cli(main)

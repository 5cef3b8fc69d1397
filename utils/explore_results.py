"""Plot the logs of one run or several (seeds), and summarise them.

    python utils/explore_results.py --data runs/morel_hopper
    python utils/explore_results.py --data runs/morel_hopper/logs/log.pickle --output plot.png
    python utils/explore_results.py --data runs/seed_*/ --keys eval_score train_score

--data takes job directories (train_policy.py or run_morel.py) or log files (log.pickle is read
through the restricted unpickler, log.csv without evaluating anything). The plot has one panel
per key (default: every key logged at each iteration); several runs are drawn as mean ± std.
A table gives, per key, the last value, the mean of the last 10 values (each as mean ± std over
runs; with several runs also the lowest run's mean of the last 10) and the largest value.

    python utils/explore_results.py --data runs/seed_*/ --keys eval_score --floor 892 --after 20

--per_run adds a table of the first key, one row per run: its iterations, the mean of its last
10% of iterations (at least one; the score of a run in the results tables), its largest value
and that iteration; --floor F (which implies --per_run) adds the lowest value after iteration
--after (default 20) and the iterations after it whose value is below F, with the first of them.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
from tabulate import tabulate

from morel.core.errors import MorelError, run_cli
from morel.experiments.results import below_floor, run_score
from morel.runs.logger import DataLog, read_log_csv
from morel.runs.plots import check_png_output, log_values, plot_logs, series_keys


def read_log(path: Path) -> dict[str, list]:
    """A log from a job directory, a log.pickle or a log.csv."""
    if path.is_dir():
        logs = path / "logs"
        if (logs / "log.pickle").is_file():
            return DataLog.load(logs).log
        if (logs / "log.csv").is_file():
            return read_log_csv(logs / "log.csv")
        raise MorelError(f"{path}: no logs/log.pickle or logs/log.csv (is it a job directory?)")
    if path.name == "log.pickle" and path.is_file():
        return DataLog.load(path.parent).log
    if path.suffix == ".csv" and path.is_file():
        return read_log_csv(path)
    raise MorelError(f"{path}: not a job directory, log.pickle or log.csv")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", nargs="+", required=True, help="job directories or log files")
    p.add_argument("--keys", nargs="+", default=None, help="log keys to plot")
    p.add_argument("--output", default=None,
                   help="PNG path (default: FIRST_JOB/logs/explore.png, or explore.png)")
    p.add_argument("--per_run", action="store_true",
                   help="also a table of the first key per run (mean of its last 10%%, max)")
    p.add_argument("--floor", type=float, default=None,
                   help="with the per-run table: count each run's values below this after "
                        "iteration --after")
    p.add_argument("--after", type=int, default=20,
                   help="--floor checks the iterations after this one (default 20)")
    args = p.parse_args()
    if args.after < 0:
        raise MorelError(f"--after {args.after}: must be an iteration >= 0")
    paths = [Path(d) for d in args.data]
    logs = [read_log(path) for path in paths]
    keys = args.keys or series_keys(logs[0])
    for path, log in zip(paths, logs):
        missing = [k for k in keys if k not in log]
        if missing:
            raise MorelError(f"{path}: no key(s) {', '.join(missing)} in the log "
                             f"(keys: {', '.join(log)})")
    if args.output:
        output = Path(args.output)
    else:
        output = paths[0] / "logs" / "explore.png" if paths[0].is_dir() else Path("explore.png")
    check_png_output(output, "--output")
    title = str(paths[0]) if len(paths) == 1 else f"{len(paths)} runs"
    plotted = plot_logs(logs, keys, output, title=title)
    if not plotted:
        raise MorelError(f"none of {', '.join(keys)} has a finite value to plot")
    rows = []
    for key in plotted:
        last = np.array([_finite_values(log[key])[-1] for log in logs])
        tail = np.array([np.mean(_finite_values(log[key])[-10:]) for log in logs])
        best = max(max(_finite_values(log[key])) for log in logs)
        spread = len(logs) > 1
        rows.append([key, f"{last.mean():.4g}" + (f" ± {last.std():.4g}" if spread else ""),
                     f"{tail.mean():.4g}" + (f" ± {tail.std():.4g}" if spread else ""),
                     *([f"{tail.min():.4g}"] if spread else []), f"{best:.4g}"])
    runs = f" (mean ± std over {len(logs)} runs)" if len(logs) > 1 else ""
    lowest = ["lowest run's mean of last 10"] if len(logs) > 1 else []
    print(tabulate(rows, headers=["key", f"last{runs}", f"mean of last 10{runs}", *lowest,
                                  "max"]))
    if args.per_run or args.floor is not None:
        print()
        print(per_run_table(paths, logs, plotted[0], args.floor, args.after))
    print(f"plot: {output}")


def per_run_table(paths: list[Path], logs: list[dict[str, list]], key: str,
                  floor: float | None, after: int) -> str:
    """One row per run of `key`: iterations, mean of the last 10%, max (iteration) and, with a
    floor, the lowest value after iteration `after` and the iterations after it below the
    floor (how many, the first). `key` has a finite value in every log (plot_logs keeps only
    such keys)."""
    headers = ["run", "iterations", f"{key}: mean of last 10%", "max (iteration)"]
    if floor is not None:
        headers += [f"lowest after {after}", f"below {floor:g} after {after} (first)"]
    rows = []
    for path, log in zip(paths, logs):
        values = log_values(log, key)
        best = int(np.nanargmax(values))
        row = [str(path), values.size, f"{run_score(values):.4g}",
               f"{values[best]:.4g} ({best})"]
        if floor is not None:
            later = values[after + 1:]
            breaks = below_floor(values, floor, after)
            row += [f"{np.nanmin(later):.4g}" if np.isfinite(later).any() else "-",
                    f"{breaks.size}" + (f" ({breaks[0]})" if breaks.size else "")]
        rows.append(row)
    return tabulate(rows, headers=headers)


def _finite_values(values: list) -> list[float]:
    """The finite numbers of a log list (plot_logs only returns keys that have one)."""
    return [float(v) for v in values if isinstance(v, (int, float)) and math.isfinite(v)]


if __name__ == "__main__":
    run_cli(main)

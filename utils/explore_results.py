"""Plot a run's logs (train_policy.py or run_morel.py job directories) and summarise them.

    python utils/explore_results.py --job runs/npg_hopper
    python utils/explore_results.py --job runs/npg_hopper --keys eval_score kl_dist --output k.png

Reads JOB/logs/log.pickle (restricted unpickler) or, failing that, JOB/logs/log.csv, writes one
PNG with a panel per key (default: the score keys present, then timings), and prints the first,
last and best value of each plotted key.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from tabulate import tabulate

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from morel.errors import MorelError, run_cli  # noqa: E402
from morel.logger import DataLog, read_log_csv  # noqa: E402
from morel.plots import SCORE_KEYS, plot_log  # noqa: E402

DEFAULT_KEYS = (*SCORE_KEYS, "kl_dist", "VF_error_after", "iter_time", "time_sampling")


def read_job_log(job: Path) -> dict[str, list]:
    logs = job / "logs"
    if (logs / "log.pickle").is_file():
        return DataLog.load(logs).log
    if (logs / "log.csv").is_file():
        return read_log_csv(logs / "log.csv")
    raise MorelError(f"{job}: no logs/log.pickle or logs/log.csv (is it a job directory?)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--job", required=True, help="job directory")
    p.add_argument("--keys", nargs="+", default=None, help="log keys to plot")
    p.add_argument("--output", default=None, help="PNG path (default JOB/logs/explore.png)")
    args = p.parse_args()
    job = Path(args.job)
    log = read_job_log(job)
    keys = args.keys or list(DEFAULT_KEYS)
    unknown = [k for k in keys if k not in log]
    if args.keys and unknown:
        raise MorelError(f"{job}: no key(s) {', '.join(unknown)} in the log "
                         f"(keys: {', '.join(log)})")
    output = Path(args.output) if args.output else job / "logs" / "explore.png"
    plotted = plot_log(log, keys, output, title=str(job))
    if not plotted:
        raise MorelError(f"{job}: none of {', '.join(keys)} has a finite value to plot")
    rows = []
    for key in plotted:
        values = [float(v) for v in log[key] if isinstance(v, (int, float)) and math.isfinite(v)]
        best = max(range(len(log[key])), key=lambda i: _score(log[key][i]))
        rows.append([key, len(values), values[0], values[-1], log[key][best], best])
    print(tabulate(rows, headers=["key", "n", "first", "last", "max", "argmax"], floatfmt=".4g"))
    print(f"plot: {output}")


def _score(value: object) -> float:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else -math.inf


if __name__ == "__main__":
    run_cli(main)

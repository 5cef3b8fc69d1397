"""A real run's iteration time against the bench's iteration at the same sample count.

    python bench/run_vs_bench.py JOB          # JOB: a run_morel.py job directory

Reads the run's config (JOB/job_data.json) and log (JOB/logs/log.pickle), takes the median over
its iterations of iter_time, num_samples and the parts (sampling, NPG step, baseline fit,
evaluation), and times `bench/scaling.py`'s iteration with the run's num_models, update_paths,
CG iterations and act_repeat, and the horizon that gives the run's median sample count
(members x paths x horizon), members of the run's first hidden size (the bench's members
have two layers of it; its policy is the shipped medium one); prints both and their ratio (a
run should be within 1.3x of the bench: a larger ratio is a slowdown the bench does not see).
Run it on an idle machine, as the run was.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from scaling import DEFAULTS, run_point
from tabulate import tabulate

from morel.core.errors import MorelError
from morel.core.floats import reproducible_cpu_math
from morel.runs.jobdir import read_job_data
from morel.runs.logger import DataLog

# the run's log keys of each part of the bench's iteration
PARTS = {"sampling_s": ("time_sampling",), "update_s": ("time_vpg", "time_npg", "time_VF"),
         "evaluation_s": ("time_eval",)}


def run_medians(job: Path) -> tuple[dict, dict[str, float]]:
    """(the run's config, medians of iter_time, num_samples and each part over its iterations)."""
    config = read_job_data(job, "give a run_morel.py job directory")
    log = DataLog.load(job / "logs").log
    missing = [k for k in ("iter_time", "num_samples", *sum(PARTS.values(), ())) if k not in log]
    if missing:
        raise MorelError(f"{job / 'logs'}: the log has no {', '.join(missing)}; give a "
                         "run_morel.py job directory")
    n = len(log["iter_time"])
    if n < 3:
        raise MorelError(f"{job / 'logs'}: {n} iterations logged; the comparison needs 3 or more")
    medians = {"iterations": n, "iter_time": float(np.nanmedian(log["iter_time"])),
               "num_samples": float(np.nanmedian(log["num_samples"]))}
    for part, keys in PARTS.items():
        medians[part] = float(np.nanmedian(np.sum([log[k] for k in keys], axis=0)))
    return config, medians


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("job", type=Path, help="run_morel.py job directory")
    args = p.parse_args()
    reproducible_cpu_math()
    try:
        config, run = run_medians(args.job)
    except MorelError as err:
        sys.exit(f"error: {err}")
    members, paths = int(config["num_models"]), int(config["update_paths"])
    horizon = max(1, round(run["num_samples"] / (members * paths)))
    hidden = config["hidden_size"]
    point = {**DEFAULTS, "members": members, "paths": paths, "horizon": horizon,
             "cg": int(config["npg_hp"]["FIM_invert_args"]["iters"]),
             "act_repeat": int(config["act_repeat"]), "data": 20000,
             "hidden": int(hidden[0]) if hidden else DEFAULTS["hidden"]}
    bench = run_point(point)
    rows = [[label, f"{run[key]:.2f}", f"{bench[bkey]:.2f}", f"{run[key] / bench[bkey]:.2f}"]
            for label, key, bkey in (("iteration", "iter_time", "iteration_s"),
                                     ("sampling", "sampling_s", "sampling_s"),
                                     ("NPG step + baseline fit", "update_s", "update_s"),
                                     ("evaluation", "evaluation_s", "evaluation_s"))]
    print(f"{args.job}: {run['iterations']} iterations, median {run['num_samples']:.0f} samples; "
          f"bench: {members} members x {paths} paths x horizon {horizon} = "
          f"{bench['samples']} samples, CG {point['cg']}, act_repeat {point['act_repeat']}")
    print(tabulate(rows, headers=["median s", "run", "bench", "run / bench"]))


if __name__ == "__main__":
    main()

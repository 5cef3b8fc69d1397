"""Aggregate a sweep's job directories into a results table and learning-curve plot.

A run's score is the mean `eval_score` over its last 10% of iterations (at least one; BC runs
have one row). Per (dataset, algo) the table gives mean ± std over seeds (population std) of
the run scores, raw and D4RL-normalised, next to the dataset's mean episode return; under it,
per algo, the datasets where its mean beats both that return and BC's mean (`win_counts`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from morel.core.errors import MorelError
from morel.envs.scores import normalized_score
from morel.runs.jobdir import run_finished
from morel.runs.logger import DataLog

# column titles of the known algos, in table order (other algos follow, by name)
ALGO_NAMES = {"bc": "BC", "naive": "naive MBRL", "morel": "MOReL",
              "morel_datastd": "MOReL, data std",
              "morel_datastd_ep40": "MOReL, data std, 40 epochs",
              "morel_per_env": "MOReL, per-env choice",
              "morel_datastd_p3": "data std, pessimism 3.0",
              "morel_datastd_hp100": "data std, HALT penalty 100",
              "morel_datastd_m8": "data std, 8 members",
              "morel_datastd_m8_kl": "data std, 8 members, max_kl 0.1"}
ALGO_ORDER = tuple(ALGO_NAMES)


@dataclass(frozen=True)
class RunResult:
    """One finished run: its score and its eval_score curve [iterations]."""

    dataset: str
    algo: str
    seed: int
    env_name: str
    behaviour_return: float
    score: float
    curve: np.ndarray


def run_score(eval_scores: np.ndarray, last_frac: float = 0.1) -> float:
    """Mean of the last `last_frac` of the finite scores (at least one)."""
    finite = eval_scores[np.isfinite(eval_scores)]
    if finite.size == 0:
        return math.nan
    return float(finite[-max(1, int(round(last_frac * finite.size))):].mean())


def below_floor(values: np.ndarray, floor: float, after: int) -> np.ndarray:
    """Iterations (indices of values [iterations]) later than `after` whose value is below
    `floor`, [K]; NaN counts as not below."""
    iterations = np.arange(values.size)
    return iterations[(iterations > after) & (values < floor)]


def read_run(job: Path) -> RunResult | None:
    """A finished run of OUTPUT_DIR/DATASET/ALGO_sSEED (None while it has no final policy)."""
    if not run_finished(job):
        return None
    algo, _, seed = job.name.rpartition("_s")
    if not algo or not seed.isdigit():
        raise MorelError(f"{job}: not a sweep job name (ALGO_sSEED)")
    log = DataLog.load(job / "logs").log
    config = json.loads((job / "job_data.json").read_text(encoding="utf-8"))
    curve = np.array([float(v) for v in log.get("eval_score", [])], dtype=np.float64)
    return RunResult(job.parent.name, algo, int(seed), config["env_name"],
                     float(log["rollout_score"][0]), run_score(curve), curve)


def collect_results(sweep_dir: Path) -> list[RunResult]:
    """Every finished run under `sweep_dir` (sorted by dataset, algo, seed)."""
    if not sweep_dir.is_dir():
        raise MorelError(f"{sweep_dir}: sweep output folder not found (run sweep.py first)")
    results = [r for job in sorted(sweep_dir.glob("*/*_s*")) if job.is_dir()
               for r in [read_run(job)] if r is not None]
    if not results:
        raise MorelError(f"{sweep_dir}: no finished runs (DATASET/ALGO_sSEED with "
                         "policy_final.pt)")
    return results


def _mean_std(values: list[float]) -> tuple[float, float]:
    arr = np.array(values, dtype=np.float64)
    return float(arr.mean()), float(arr.std())


def summary_rows(results: list[RunResult]) -> list[dict]:
    """One row per (dataset, algo): mean/std over seeds, raw and normalised, and the seeds."""
    rows = []
    keys = sorted({(r.env_name, r.dataset) for r in results})
    algos = sorted({r.algo for r in results},
                   key=lambda a: (ALGO_ORDER.index(a) if a in ALGO_ORDER else len(ALGO_ORDER), a))
    for env_name, dataset in keys:
        for algo in algos:
            runs = [r for r in results if r.dataset == dataset and r.algo == algo]
            if not runs:
                continue
            mean, std = _mean_std([r.score for r in runs])
            norm = [normalized_score(env_name, r.score) for r in runs]
            n_mean, n_std = _mean_std(norm) if None not in norm else (math.nan, math.nan)
            rows.append({"env": env_name, "dataset": dataset, "algo": algo,
                         "behaviour_return": runs[0].behaviour_return, "seeds": len(runs),
                         "seed_list": " ".join(str(r.seed) for r in runs), "score_mean": mean,
                         "score_std": std, "normalized_mean": n_mean, "normalized_std": n_std})
    return rows


def markdown_table(rows: list[dict]) -> str:
    """Env x dataset rows; per algo 'mean ± std (normalised mean)' over the seeds."""
    algos = list(dict.fromkeys(r["algo"] for r in rows))
    head = ["env", "dataset", "behaviour return"] + [ALGO_NAMES.get(a, a) for a in algos]
    head.append("seeds")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for env_name, dataset in dict.fromkeys((r["env"], r["dataset"]) for r in rows):
        cells = {r["algo"]: r for r in rows if r["dataset"] == dataset}
        first = next(iter(cells.values()))
        behaviour = first["behaviour_return"]
        b_norm = normalized_score(env_name, behaviour)
        out = [env_name, dataset, f"{behaviour:.0f}" + ("" if b_norm is None else
                                                        f" ({b_norm:.1f})")]
        for algo in algos:
            r = cells.get(algo)
            if r is None:
                out.append("")
                continue
            norm = "" if math.isnan(r["normalized_mean"]) else f" ({r['normalized_mean']:.1f})"
            out.append(f"{r['score_mean']:.0f} ± {r['score_std']:.0f}{norm}")
        out.append(" / ".join(str(cells[a]["seeds"]) if a in cells else "0" for a in algos))
        lines.append("| " + " | ".join(out) + " |")
    wins = win_counts(rows)
    if wins:
        counts = ", ".join(f"{ALGO_NAMES.get(a, a)} {won} of {total}"
                           for a, (won, total) in wins.items())
        lines += ["", f"Datasets where the mean over seeds beats both the behaviour return and "
                      f"BC: {counts}."]
    return "\n".join(lines) + "\n"


def win_counts(rows: list[dict]) -> dict[str, tuple[int, int]]:
    """Per algo other than BC: (datasets where its mean beats both the behaviour return and
    BC's mean, datasets that have both a BC row and a row of that algo)."""
    bc = {r["dataset"]: r["score_mean"] for r in rows if r["algo"] == "bc"}
    counts: dict[str, tuple[int, int]] = {}
    for r in rows:
        if r["algo"] == "bc" or r["dataset"] not in bc:
            continue
        won, total = counts.get(r["algo"], (0, 0))
        beats = r["score_mean"] > max(r["behaviour_return"], bc[r["dataset"]])
        counts[r["algo"]] = (won + int(beats), total + 1)
    return counts

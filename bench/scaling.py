"""How one MOReL iteration's time and memory grow with its sizes: ensemble size, update_paths,
horizon and dataset size. Each point runs in a fresh process (so its peak memory is its own):

    python bench/scaling.py                        # the default grid, about 10 minutes on 2 cores
    python bench/scaling.py --markdown FILE        # also the table as Markdown
    python bench/scaling.py --point members=4,paths=50,horizon=300,cg=25,act_repeat=2

An iteration is what run_morel.py does each iteration, on the bench's fixed workload: P-MDP
sampling of `paths` start states x `members` members for `horizon` steps without halting (so the
sample count is members x paths x horizon; members of two layers of `hidden` units), the NPG
step (CG `cg` iterations) and the baseline
fit, and the evaluation of 4 episodes of the shipped medium Hopper policy (act_repeat
`act_repeat`). `data` (transitions) sizes the dataset for one epoch of fitting the ensemble
(minibatch 1000) and one pass of its statistics (MSE and disagreement over the dataset), the
parts of a run that grow with the dataset; the iteration itself does not read the dataset
beyond its start states. Times are the best of 2 after a warm-up; memory is the process's
peak resident set (ru_maxrss) after the point's work.
"""

from __future__ import annotations

import argparse
import copy
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from run_all import (
    ACT,
    HIDDEN,
    OBS,
    ROOT,
    best_time,
    cpu_name,
    git_commit,
    hopper_like_data,
    start_states,
)
from tabulate import tabulate

from morel.core.floats import reproducible_cpu_math
from morel.envs.reward_files import load_reward_file
from morel.envs.sampling import episode_returns, mean_action_fn
from morel.envs.wrapper import make_vector_env
from morel.models.dynamics import DynamicsEnsemble
from morel.npg.agent import NPGAgent, NPGSettings
from morel.npg.baselines import MLPBaseline
from morel.npg.policies import load_policy
from morel.pmdp import HaltRules, pmdp_rollouts

DEFAULTS = {"members": 4, "paths": 50, "horizon": 500, "cg": 20, "act_repeat": 1,
            "data": 100000, "hidden": HIDDEN}
# each row varies one size from DEFAULTS
GRID = ([{"members": m} for m in (2, 4, 8)] + [{"paths": p} for p in (12, 25, 100)]
        + [{"horizon": h} for h in (100, 250, 1000)] + [{"data": d} for d in (25000, 400000)])


def parse_point(text: str) -> dict[str, int]:
    """'members=4,paths=50' -> DEFAULTS with those sizes."""
    point = dict(DEFAULTS)
    for item in filter(None, text.split(",")):
        key, _, value = item.partition("=")
        if key not in DEFAULTS or not value.isdigit() or int(value) < 1:
            sys.exit(f"error: --point {item!r}: give KEY=N (N >= 1) with KEY one of "
                     f"{', '.join(DEFAULTS)}")
        point[key] = int(value)
    return point


def measure(point: dict[str, int]) -> dict[str, float]:
    """Time one iteration's parts and the dataset-sized work at `point` (this process)."""
    device = torch.device("cpu")
    model = DynamicsEnsemble(point["members"], OBS, ACT, (point["hidden"],) * 2, seed=0)
    s, a, s_next = hopper_like_data(point["data"], device)
    model.set_normalisation(s, a, s_next)
    policy, _ = load_policy(ROOT / "logging_policy" / "hopper_v5_medium.pt")
    reward = load_reward_file(ROOT / "utils" / "reward_functions" / "gym_hopper.py", OBS)
    starts = start_states(point["paths"], device)
    baseline = MLPBaseline(OBS, (128, 128), 1e-3, 1e-3, 256, 1, seed=0)
    agent = NPGAgent(policy, baseline, NPGSettings(0.02, 0.999, 0.97, point["cg"], 1e-3))
    saved = copy.deepcopy(agent.state_dict())  # state_dict holds the live tensors
    eval_env = make_vector_env("Hopper-v5", 4, point["act_repeat"])
    batches = []

    def sampling() -> None:
        batches[:] = [pmdp_rollouts(model, policy, starts, point["horizon"], HaltRules(None),
                                    reward.reward_function, None,
                                    generator=torch.Generator().manual_seed(0)).batch]

    def update() -> None:  # the NPG step and the baseline fit, from the same start each time
        agent.train_step(batches[0], torch.Generator().manual_seed(0))
        agent.load_state_dict(saved)

    out = {"sampling_s": best_time(sampling, device, 2), "update_s": best_time(update, device, 2),
           "evaluation_s": best_time(lambda: episode_returns(
               eval_env, mean_action_fn(policy.mean_std), np.random.SeedSequence(0)), device, 2),
           "fit_epoch_s": best_time(lambda: model.fit(s, a, s_next, 1, 1000, progress=False),
                                    device, 1),
           "statistics_s": best_time(lambda: model.dataset_statistics(s, a, s_next), device, 1)}
    out["iteration_s"] = out["sampling_s"] + out["update_s"] + out["evaluation_s"]
    out["samples"] = batches[0].num_samples
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def run_point(point: dict[str, int]) -> dict:
    """`measure(point)` in a fresh process."""
    spec = ",".join(f"{k}={v}" for k, v in point.items())
    res = subprocess.run([sys.executable, __file__, "--point", spec, "--json"],
                         capture_output=True, text=True, check=False)
    if res.returncode != 0:
        sys.exit(f"error: point {spec} failed:\n{res.stderr[-2000:]}")
    return {**point, **json.loads(res.stdout.splitlines()[-1])}


def table(rows: list[dict], tablefmt: str = "simple") -> str:
    base = next(r for r in rows if all(r[k] == v for k, v in DEFAULTS.items()))
    body = [[r["members"], r["paths"], r["horizon"], r["data"], r["samples"],
             f"{r['sampling_s']:.2f}", f"{r['update_s']:.2f}", f"{r['evaluation_s']:.2f}",
             f"{r['iteration_s']:.2f}", f"{r['iteration_s'] / base['iteration_s']:.2f}",
             f"{r['fit_epoch_s']:.2f}", f"{r['statistics_s']:.2f}", f"{r['peak_rss_mb']:.0f}"]
            for r in rows]
    return tabulate(body, tablefmt=tablefmt, headers=[
        "members", "update_paths", "horizon", "dataset", "samples", "sampling s", "NPG + "
        "baseline s", "evaluation s", "iteration s", "/ default", "fit epoch s",
        "statistics s", "peak MiB"])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--point", default=None, help="one point, KEY=N,... (others: the defaults)")
    p.add_argument("--json", action="store_true", help=argparse.SUPPRESS)  # child process output
    p.add_argument("--markdown", default=None, help="also write the table as Markdown here")
    args = p.parse_args()
    reproducible_cpu_math()
    if args.point is not None and args.json:
        print(json.dumps(measure(parse_point(args.point))))
        return
    started = time.perf_counter()
    points = ([parse_point(args.point)] if args.point is not None
              else [dict(DEFAULTS)] + [{**DEFAULTS, **change} for change in GRID])
    rows = []
    for point in points:
        rows.append(run_point(point))
        print(f"{len(rows)}/{len(points)}: {rows[-1]['samples']} samples, iteration "
              f"{rows[-1]['iteration_s']:.2f} s", flush=True)
    if args.point is not None:
        print(json.dumps(rows[0], indent=1))
        return
    text = table(rows)
    print(text)
    if args.markdown:
        header = (f"{time.strftime('%Y-%m-%d')}, {cpu_name()} (cpu, {torch.get_num_threads()} "
                  f"threads), torch {torch.__version__}, commit {git_commit()}, "
                  f"{time.perf_counter() - started:.0f} s\n\n")
        Path(args.markdown).write_text(header + table(rows, "github") + "\n", encoding="utf-8")
        print(f"wrote {args.markdown}")


if __name__ == "__main__":
    main()

"""Check a MOReL run's ensemble on a policy's real episodes: does the disagreement (what the
P-MDP halts on) rise where the models are wrong?

    python utils/check_model.py --job runs/hopper_v5_quick
    python utils/check_model.py --job runs/hopper_v5_quick \
        --policy runs/hopper_v5_quick/iterations/policy_29.pt --episodes 4 --plot check.png

Runs the policy's mean action for --episodes real episodes (the run's iteration-0 evaluation
episodes: stream EVALUATION 0 of --seed, by default the run's seed), feeds every real (s, a) to
each member of JOB/models.pt, and prints per episode: its length and return, the members' mean
one-step error (L2 distance from the real next state, in the model's masked units) and the
disagreement (largest distance between two members), each as mean and max and over the last 10
steps, the steps whose disagreement exceeds the run's truncate_lim, and the rank correlation of
error and disagreement. The data's disagreement (from the run's log) is printed beside them.
--plot draws error, disagreement and truncate_lim per step.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tabulate import tabulate

from morel.core.errors import MorelError, run_cli
from morel.core.numbers import finite_number
from morel.core.seeding import Stream, episode_seeds, seed_arg, stream
from morel.envs.wrapper import make_env
from morel.models.diagnostics import OneStepCheck, one_step_check, rank_correlation
from morel.models.files import load_ensemble
from morel.npg.policies import GaussianMLP, load_policy
from morel.runs.jobdir import read_job_data
from morel.runs.logger import DataLog
from morel.runs.plots import check_png_output, plot_model_check

DATA_KEYS = ("disagreement_mean", "disagreement_p99", "disagreement_max")


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


def real_episode(env: Any, policy: GaussianMLP, seed: int) -> dict[str, Any]:
    """One mean-action episode: raw observations [T+1, obs_dim], the policy's actions
    [T, act_dim], the return and whether the env ended it."""
    obs, _ = env.reset(seed=seed)
    observations, actions, total = [obs], [], 0.0
    while True:
        action = policy.mean_std(obs[None])[0][0]
        obs, reward, terminated, truncated, _ = env.step(action)
        observations.append(obs)
        actions.append(action)
        total += reward
        if terminated or truncated:
            return {"obs": np.array(observations), "actions": np.array(actions),
                    "return": total, "terminated": terminated}


def episode_row(k: int, episode: dict[str, Any], check: OneStepCheck,
                truncate_lim: float | None) -> list[Any]:
    error, dis = check.error.mean(0), check.disagreement
    over = np.flatnonzero(dis > truncate_lim) if truncate_lim is not None else np.array([])
    return [k, len(error), f"{episode['return']:.0f}", "fell" if episode["terminated"] else "",
            f"{error.mean():.4f} / {error.max():.4f}", f"{error[-10:].mean():.4f}",
            f"{dis.mean():.4f} / {dis.max():.4f}", f"{dis[-10:].mean():.4f}",
            f"{len(over)} (first {over[0]})" if len(over) else "0",
            f"{rank_correlation(error, dis):.2f}"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--job", required=True, help="run_morel.py job directory (models.pt)")
    p.add_argument("--policy", default=None, help="policy file (default: JOB/policy_final.pt)")
    p.add_argument("--episodes", type=int, default=4, help="real episodes")
    p.add_argument("--seed", type=seed_arg, default=None, help="default: the run's seed")
    p.add_argument("--plot", default=None, help="PNG of error and disagreement per step")
    args = p.parse_args()
    if args.episodes < 1:
        raise MorelError("--episodes must be >= 1")
    job = Path(args.job)
    plot = Path(args.plot) if args.plot else None
    if plot is not None:
        check_png_output(plot, "--plot")
    job_data = read_morel_job(job)
    model, _ = load_ensemble(str(job / "models.pt"))
    policy, meta = load_policy(args.policy or job / "policy_final.pt")
    if not isinstance(meta.get("env_name"), str):
        raise MorelError(f"{args.policy}: the policy's metadata names no env_name")
    env = make_env(meta["env_name"], meta.get("act_repeat", 1))
    if (model.obs_dim, model.act_dim) != (env.obs_dim, env.act_dim):
        raise MorelError(f"{job / 'models.pt'}: ensemble is for obs/act dims {model.obs_dim}/"
                         f"{model.act_dim}, env '{meta['env_name']}' has "
                         f"{env.obs_dim}/{env.act_dim}")
    mask = np.asarray(meta.get("trained_obs_mask", np.ones(env.obs_dim)), dtype=np.float64)
    box = env.action_box if job_data.get("clip_actions") else None
    seed = args.seed if args.seed is not None else job_data.get("seed", 0)
    truncate_lim = job_data["truncate_lim"]
    torch.set_num_threads(1)  # the episodes repeat exactly on one CPU
    rows, curves = [], []
    for k, env_seed in enumerate(episode_seeds(stream(seed, Stream.EVALUATION, 0),
                                               args.episodes)):
        episode = real_episode(env, policy, env_seed)
        actions = episode["actions"] if box is None else np.clip(episode["actions"], *box)
        s, s_next = (torch.as_tensor(x * mask, dtype=torch.float32)
                     for x in (episode["obs"][:-1], episode["obs"][1:]))
        check = one_step_check(model, s, torch.as_tensor(actions, dtype=torch.float32), s_next)
        rows.append(episode_row(k, episode, check, truncate_lim))
        curves.append((check.error.mean(0), check.disagreement))
    print(tabulate(rows, headers=["episode", "steps", "return", "", "error mean / max",
                                  "error last 10", "disagreement mean / max",
                                  "disagr. last 10", "steps over truncate_lim",
                                  "rank corr."]))
    log = DataLog.load(job / "logs").log if (job / "logs" / "log.pickle").is_file() else {}
    data = ", ".join(f"{key.split('_')[1]} {log[key][0]:.4f}" for key in DATA_KEYS
                     if log.get(key))
    lim = "none (no halting)" if truncate_lim is None else f"{truncate_lim:.4f}"
    print(f"truncate_lim {lim}" + (f"; disagreement on the dataset: {data}" if data else ""))
    if plot is not None:
        plot_model_check(curves, truncate_lim, plot, f"{job}: {args.policy or 'policy_final.pt'}")
        print(f"plot: {plot}")


if __name__ == "__main__":
    run_cli(main)

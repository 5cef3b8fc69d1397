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

--model_paths also rolls the policy's mean action through every member from each episode's
first state for the run's horizon (open loop in the model, as the P-MDP does) and prints, per
member, the step where the run's termination function ends the model path (T) or the horizon,
without halting, and the step where the run's threshold would halt it: does the model predict
falls that the real episode does not have, or miss the ones it has? --end_dims 0 1 adds the
values of those observation dimensions (raw units) at the last step of each real episode and
each model path: which way it fell (for Hopper: height and pitch).

--data_distance also prints how far each episode's (s, a) pairs lie from the run's dataset
(data_file; actions clipped as the models saw them): every dimension scaled by the data's std,
the distance to the nearest data pair, beside the data's own pairs' distances to their nearest
other pair (percentiles of a 2,000-pair sample): do the policy's states leave the data before
it falls, where any detector of unknown states could halt its model paths?
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tabulate import tabulate

from morel.core.errors import MorelError, run_cli
from morel.core.seeding import Stream, episode_seeds, seed_arg, stream
from morel.data.datasets import load_dataset, transitions
from morel.envs.reward_files import load_reward_file
from morel.envs.wrapper import clip_to_box, make_env
from morel.models.diagnostics import (
    DataDistance,
    OneStepCheck,
    data_distance,
    one_step_check,
    rank_correlation,
)
from morel.models.dynamics import DynamicsEnsemble
from morel.models.files import load_ensemble
from morel.npg.policies import GaussianMLP, load_policy
from morel.pmdp import HaltRules, Rollouts, pmdp_rollouts, zero_reward
from morel.runs.jobdir import read_morel_job
from morel.runs.logger import DataLog
from morel.runs.plots import check_png_output, plot_model_check

DATA_KEYS = ("disagreement_mean", "disagreement_p99", "disagreement_max")
FAR_PERCENTILE = 99.9  # of the data's own distances: beyond it a pair counts as far
OWN_PERCENTILES = (50, 99, FAR_PERCENTILE, 100)


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


def run_file(job_data: dict[str, Any], key: str, flag: str) -> Path:
    """The run's file under `key` (reward_file, data_file), which must exist here."""
    value = job_data.get(key)
    if not value or not Path(value).is_file():
        raise MorelError(f"{flag}: the run's {key} {value} is not found; run from the "
                         "directory the run was started in")
    return Path(value)


def dataset_distance(job_data: dict[str, Any], obs_dim: int, act_dim: int,
                     box: tuple[np.ndarray, np.ndarray] | None) -> DataDistance:
    """The run's dataset as (s, a) pairs [M, obs_dim + act_dim] (actions clipped to `box` as
    the models saw them), for --data_distance."""
    data = transitions(load_dataset(run_file(job_data, "data_file", "--data_distance"),
                                    obs_dim, act_dim).paths)
    actions = data["a"] if box is None else np.clip(data["a"], *box)
    return data_distance(np.concatenate([data["s"], actions], 1).astype(np.float64), 2000,
                         seed=0)


def steps_over(values: np.ndarray, limit: float | None) -> str:
    """How many of values [T] exceed `limit`, with the first such step ('0': none or no
    limit)."""
    over = np.flatnonzero(values > limit) if limit is not None else np.array([])
    return f"{len(over)} (first {over[0]})" if len(over) else "0"


def distance_row(k: int, distances: np.ndarray, limit: float) -> list[Any]:
    return [k, len(distances), f"{distances.mean():.2f} / {distances.max():.2f}",
            f"{distances[-10:].mean():.2f}", steps_over(distances, limit)]


def episode_row(k: int, episode: dict[str, Any], check: OneStepCheck,
                truncate_lim: float | None) -> list[Any]:
    error, dis = check.error.mean(0), check.disagreement
    return [k, len(error), f"{episode['return']:.0f}", "fell" if episode["terminated"] else "",
            f"{error.mean():.4f} / {error.max():.4f}", f"{error[-10:].mean():.4f}",
            f"{dis.mean():.4f} / {dis.max():.4f}", f"{dis[-10:].mean():.4f}",
            steps_over(dis, truncate_lim), f"{rank_correlation(error, dis):.2f}"]


def end_values(state: np.ndarray | torch.Tensor, dims: list[int]) -> str:
    """' (v0, v1, ...)': the state's values [obs_dim] at `dims` (none: '')."""
    return f" ({', '.join(f'{float(state[d]):+.2f}' for d in dims)})" if dims else ""


def model_fates(model: DynamicsEnsemble, policy: GaussianMLP, starts: torch.Tensor, horizon: int,
                job_data: dict[str, Any], box: tuple[np.ndarray, np.ndarray] | None,
                mask: np.ndarray, end_dims: list[int],
                distance: DataDistance | None = None) -> list[list[str]]:
    """Per start state [K, obs_dim] (masked units; `policy` takes them), per member: the
    model path's length without halting ('T' where the termination function ended it), with
    `end_dims` the raw values (masked / `mask` [obs_dim]) of those dimensions at its last
    step, and its halt step under the run's truncate_lim and halt_patience ('-': none); [K]
    rows of [E] cells each, as "length (values) / halt". With `distance`, " / step": the first
    step whose (s, a) lies beyond the data's FAR_PERCENTILE from the data ('-': none)."""
    termination = None
    if job_data.get("reward_file"):
        termination = load_reward_file(run_file(job_data, "reward_file",
                                                "--model_paths")).termination_function
    timing, repeat = job_data.get("reward_timing", "next"), job_data.get("act_repeat", 1)
    action_box = None if box is None else tuple(torch.as_tensor(b, dtype=torch.float32)
                                                for b in box)
    far = None if distance is None else distance.percentile(FAR_PERCENTILE)

    def roll(rules: HaltRules) -> Rollouts:
        return pmdp_rollouts(model, policy, starts, horizon, rules, zero_reward, termination,
                             timing, repeat, action_box=action_box, mean_action=True)

    free = roll(HaltRules(None, min_length=0))
    lim = job_data["truncate_lim"]
    halting = (roll(HaltRules(lim, min_length=0, halt_patience=job_data.get("halt_patience", 1)))
               if lim is not None else None)
    k, num = len(starts), model.num_models
    rows = []
    for i in range(k):
        cells = []
        for e in range(num):
            j = e * k + i  # paths are member-major
            length = int(free.batch.lengths[j])
            last = free.next_observations[j, length - 1].numpy() / mask
            cell = (f"{length}{'T' if free.env_terminated[j] else ''}"
                    f"{end_values(last, end_dims)}")
            halt = ("-" if halting is None or not halting.halted[j]
                    else str(int(halting.batch.lengths[j])))
            if distance is not None:
                pair = torch.cat([free.batch.observations[j, :length],
                                  clip_to_box(free.batch.actions[j, :length], action_box)], 1)
                over = np.flatnonzero(distance.of(pair.double().numpy()) > far)
                halt += f" / {over[0] if len(over) else '-'}"
            cells.append(f"{cell} / {halt}")
        rows.append(cells)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--job", required=True, help="run_morel.py job directory (models.pt)")
    p.add_argument("--policy", default=None, help="policy file (default: JOB/policy_final.pt)")
    p.add_argument("--episodes", type=int, default=4, help="real episodes")
    p.add_argument("--seed", type=seed_arg, default=None, help="default: the run's seed")
    p.add_argument("--plot", default=None, help="PNG of error and disagreement per step")
    p.add_argument("--model_paths", action="store_true",
                   help="also roll the policy through every member from each episode's start")
    p.add_argument("--end_dims", type=int, nargs="+", default=[], metavar="DIM",
                   help="with --model_paths: print these observation dimensions at each path's "
                        "end")
    p.add_argument("--data_distance", action="store_true",
                   help="also print how far each episode's (s, a) pairs lie from the dataset's")
    args = p.parse_args()
    if args.episodes < 1:
        raise MorelError("--episodes must be >= 1")
    if args.end_dims and not args.model_paths:
        raise MorelError("--end_dims needs --model_paths")
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
    bad = [d for d in args.end_dims if not 0 <= d < env.obs_dim]
    if bad:
        raise MorelError(f"--end_dims {bad[0]}: an observation dimension of "
                         f"'{meta['env_name']}' is in [0, {env.obs_dim - 1}]")
    box = env.action_box if job_data.get("clip_actions") else None
    seed = args.seed if args.seed is not None else job_data.get("seed", 0)
    truncate_lim = job_data["truncate_lim"]
    torch.set_num_threads(1)  # the episodes repeat exactly on one CPU
    distance = (dataset_distance(job_data, env.obs_dim, env.act_dim, box)
                if args.data_distance else None)
    rows, curves, starts, real, distances = [], [], [], [], []
    for k, env_seed in enumerate(episode_seeds(stream(seed, Stream.EVALUATION, 0),
                                               args.episodes)):
        episode = real_episode(env, policy, env_seed)
        actions = episode["actions"] if box is None else np.clip(episode["actions"], *box)
        s, s_next = (torch.as_tensor(x * mask, dtype=torch.float32)
                     for x in (episode["obs"][:-1], episode["obs"][1:]))
        check = one_step_check(model, s, torch.as_tensor(actions, dtype=torch.float32), s_next)
        rows.append(episode_row(k, episode, check, truncate_lim))
        if distance is not None:
            distances.append(distance.of(np.concatenate([episode["obs"][:-1] * mask,
                                                         actions], 1)))
        curves.append((check.error.mean(0), check.disagreement))
        starts.append(s[0])
        real.append(f"{len(actions)}{'T' if episode['terminated'] else ''}"
                    f"{end_values(episode['obs'][-1], args.end_dims)}")
    print(tabulate(rows, headers=["episode", "steps", "return", "", "error mean / max",
                                  "error last 10", "disagreement mean / max",
                                  "disagr. last 10", "steps over truncate_lim",
                                  "rank corr."]))
    log = DataLog.load(job / "logs").log if (job / "logs" / "log.pickle").is_file() else {}
    data = ", ".join(f"{key.split('_')[1]} {log[key][0]:.4f}" for key in DATA_KEYS
                     if log.get(key))
    lim = "none (no halting)" if truncate_lim is None else f"{truncate_lim:.4f}"
    print(f"truncate_lim {lim}" + (f"; disagreement on the dataset: {data}" if data else ""))
    if distance is not None:
        far = distance.percentile(FAR_PERCENTILE)
        print("\ndistance of each (s, a) to the nearest data pair (dimensions scaled by the "
              "data's std); the data's own pairs to their nearest other: "
              + ", ".join(f"p{q:g} {distance.percentile(q):.2f}" for q in OWN_PERCENTILES))
        print(tabulate([distance_row(k, d, far) for k, d in enumerate(distances)],
                       headers=["episode", "steps", "distance mean / max", "last 10",
                                f"steps over the data's p{FAR_PERCENTILE:g} ({far:.2f})"]))
    if args.model_paths:
        horizon = int(job_data.get("horizon", 1000))
        masked = copy.deepcopy(policy)
        masked.fold_obs_mask(1.0 / mask)  # takes the model's masked observations again
        fates = model_fates(model, masked, torch.stack(starts), horizon, job_data, box, mask,
                            args.end_dims, distance)
        print(f"\nmodel paths of the mean action from each episode's first state, horizon "
              f"{horizon}: steps without halting (T: the termination function ended it"
              + (f"; dims {', '.join(map(str, args.end_dims))} at the end" if args.end_dims
                 else "") + ") / halt step under truncate_lim"
              + (f" / first step over the data's p{FAR_PERCENTILE:g}" if distance is not None
                 else ""))
        print(tabulate([[k, real[k], *cells] for k, cells in enumerate(fates)],
                       headers=["episode", "real steps", *(f"member {e}" for e in
                                                           range(model.num_models))]))
    if plot is not None:
        plot_model_check(curves, truncate_lim, plot, f"{job}: {args.policy or 'policy_final.pt'}")
        print(f"plot: {plot}")


if __name__ == "__main__":
    run_cli(main)

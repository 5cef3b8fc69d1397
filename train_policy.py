"""Train a Gaussian MLP policy with NPG in the real environment (how logging policies are made).

    python train_policy.py --config configs/npg_hopper_v5.txt --output runs/npg_hopper
    python train_policy.py --config configs/npg_hopper_v5.txt --output runs/npg_hopper --resume

Each iteration samples `num_samples` env steps (whole episodes, stochastic policy) on
`num_envs` envs stepped together, takes one NPG step, fits the value baseline, and scores the
mean-action policy on `eval_rollouts` episodes. The job directory gets job_data.json, logs
(pickle + csv + plots), iterations/policy_N.pt every `save_freq` iterations, best_policy.pt
(best eval score) and policy_final.pt; iterations/checkpoint.pt makes the run resumable.
With --save_samples every iteration's episodes are also kept as samples/iter_N.npz (raw
observations), from which make_datasets.py builds medium-replay datasets.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from morel.agent import NPGAgent, NPGSettings, policy_from_config
from morel.baselines import MLPBaseline
from morel.config import load_config, override, write_config_json
from morel.data import Dataset, save_dataset
from morel.device import resolve_device
from morel.envs import check_env_id, make_vector_env
from morel.errors import run_cli
from morel.jobdir import (
    iteration_table,
    job_lock,
    load_checkpoint,
    prepare_job_dir,
    save_iteration,
)
from morel.logger import DataLog
from morel.paths import PathBatch
from morel.plots import SCORE_KEYS
from morel.policies import save_policy
from morel.sampling import (
    ActionMode,
    collect_episodes,
    episode_returns,
    gaussian_action_fn,
    mean_action_fn,
)
from morel.seeding import Stream, int_seed, seed_arg, stream, torch_generator
from morel.train_config import PolicyTrainConfig


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--config", required=True, help="config file (configs/npg_*.txt)")
    p.add_argument("--output", required=True, help="job directory")
    p.add_argument("--resume", action="store_true", help="continue the run in --output")
    p.add_argument("--force", action="store_true",
                   help="replace the run in --output (or resume despite a changed config)")
    p.add_argument("--seed", type=seed_arg, default=None, help="override the config's seed")
    p.add_argument("--device", default=None, help="override the config's device")
    p.add_argument("--num_iter", type=int, default=None, help="override the config's num_iter")
    p.add_argument("--save_samples", action="store_true",
                   help="keep each iteration's episodes as JOB/samples/iter_N.npz")
    return p.parse_args()


def build_agent(cfg: PolicyTrainConfig, obs_dim: int, act_dim: int,
                device: torch.device) -> NPGAgent:
    policy = policy_from_config(cfg, obs_dim, act_dim)
    baseline = MLPBaseline(obs_dim, cfg.vf_hidden_size, cfg.vf_lr, cfg.vf_wd, cfg.vf_batch_size,
                           cfg.vf_epochs, seed=int_seed(stream(cfg.seed, Stream.BASELINE_INIT)),
                           device=device)
    return NPGAgent(policy.to(device), baseline, NPGSettings.from_config(cfg))


def policy_meta(cfg: PolicyTrainConfig, obs_dim: int, iteration: int,
                score: float) -> dict[str, Any]:
    return {"env_name": cfg.env_name, "act_repeat": cfg.act_repeat, "obs_mask": [1.0] * obs_dim,
            "trained_by": "train_policy.py", "config": cfg.source, "seed": cfg.seed,
            "iteration": iteration, "eval_score": score}


def save_samples(job: Path, it: int, paths: list[dict[str, Any]], cfg: PolicyTrainConfig,
                 obs_dim: int) -> None:
    """Keep iteration `it`'s stochastic episodes (sampled before its update) as an npz dataset."""
    meta = {"env_name": cfg.env_name, "act_repeat": cfg.act_repeat, "obs_mask": [1.0] * obs_dim,
            "policy": f"train_policy.py iteration {it}", "mode": "pure", "seed": cfg.seed,
            "iteration": it}
    save_dataset(Dataset(paths, meta), job / "samples" / f"iter_{it}.npz", force=True)


def main() -> None:
    args = parse_args()
    cfg = load_config(args.config, PolicyTrainConfig)
    cfg = override(cfg, seed=args.seed, device=args.device, num_iter=args.num_iter)
    check_env_id(cfg.env_name)
    device = resolve_device(cfg.device)
    job = Path(args.output)
    with job_lock(job):
        prepare_job_dir(job, cfg.to_dict(), args.resume, args.force)
        train(cfg, job, device, args.resume, args.save_samples)


def train(cfg: PolicyTrainConfig, job: Path, device: torch.device, resume: bool,
          keep_samples: bool) -> None:
    """The NPG iterations of main (the job directory is prepared and locked)."""
    vec_env = make_vector_env(cfg.env_name, cfg.num_envs, cfg.act_repeat)
    eval_env = (make_vector_env(cfg.env_name, cfg.eval_rollouts, cfg.act_repeat)
                if cfg.eval_rollouts else None)
    env0 = vec_env.envs[0]
    low, high = env0.action_space.low, env0.action_space.high
    agent = build_agent(cfg, env0.obs_dim, env0.act_dim, device)
    policy = agent.policy
    explore = gaussian_action_fn(policy.mean_std, ActionMode("pure"), low, high)
    greedy = mean_action_fn(policy.mean_std)

    log, start, best_score = DataLog(), 0, -math.inf
    if resume:
        state = load_checkpoint(job, agent)
        log, start, best_score = DataLog(state["log"]), state["iteration"], state["best_score"]
        print(f"resuming {job} at iteration {start} (best eval score {best_score:.1f})")
    write_config_json(cfg, job / "job_data.json")

    bar = tqdm(range(start, cfg.num_iter), desc="NPG", unit="iter", dynamic_ncols=True,
               initial=start, total=cfg.num_iter)
    for it in bar:
        t_start = time.perf_counter()
        paths = collect_episodes(vec_env, explore, cfg.num_samples,
                                 stream(cfg.seed, Stream.SAMPLING, it), progress=False)
        time_sampling = time.perf_counter() - t_start
        if keep_samples:
            save_samples(job, it, paths, cfg, env0.obs_dim)
        batch = PathBatch.from_paths(paths, device)
        generator = torch_generator(stream(cfg.seed, Stream.ITERATION, it))
        stats, rejection = agent.guarded_step(batch, generator)
        if rejection:
            tqdm.write(f"warning: iteration {it} rejected: {rejection}")
        if eval_env is not None:
            episodes = stream(cfg.seed, Stream.EVALUATION, it)
            eval_score = float(np.mean(episode_returns(eval_env, greedy, episodes)))
        else:
            eval_score = stats["stoc_pol_mean"]
        log.log_dict({"eval_score": eval_score, "iter_time": time.perf_counter() - t_start,
                      "time_sampling": time_sampling, **stats})
        if eval_score > best_score:
            best_score = eval_score
            save_policy(policy, job / "best_policy.pt", policy_meta(cfg, env0.obs_dim, it,
                                                                    eval_score))
        bar.set_postfix(stoc=f"{stats['stoc_pol_mean']:.0f}", eval=f"{eval_score:.0f}")
        tqdm.write(iteration_table(log, it))
        if (it + 1) % cfg.save_freq == 0 or it + 1 == cfg.num_iter:
            save_iteration(job, it, policy, policy_meta(cfg, env0.obs_dim, it, eval_score), log,
                           {"iteration": it + 1, "agent": agent.state_dict(), "log": log.log,
                            "best_score": best_score}, SCORE_KEYS)
    bar.close()
    last = cfg.num_iter - 1
    save_policy(policy, job / "policy_final.pt",
                policy_meta(cfg, env0.obs_dim, last, log.current().get("eval_score", math.nan)))
    print(f"done: {job} (best eval score {best_score:.1f})")


if __name__ == "__main__":
    run_cli(main)

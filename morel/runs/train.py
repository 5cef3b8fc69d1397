"""NPG in the real environment (train_policy.py): how the logging policies are made.

Each iteration k samples `num_samples` env steps (whole episodes of the stochastic policy, on
`num_envs` envs stepped together, from the run seed's stream SAMPLING k), takes one NPG step,
fits the value baseline, and scores the mean-action policy on `eval_rollouts` episodes (the
stochastic return when 0). Resume, the best policy, saves and output are
`morel.runs.loop.RunLoop`'s. With `keep_samples` each iteration's episodes are also kept as
JOB/samples/iter_k.npz (raw observations), from which make_datasets.py builds medium-replay
datasets.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from morel.config.files import write_config_json
from morel.config.train import PolicyTrainConfig
from morel.core.floats import reproducible_cpu_math
from morel.core.seeding import Stream, stream, torch_generator
from morel.data.datasets import Dataset, save_dataset
from morel.envs.sampling import collect_episodes, sampled_action_fn
from morel.envs.wrapper import check_env_id, make_vector_env
from morel.npg.agent import NPGAgent, NPGSettings, baseline_from_config, policy_from_config
from morel.npg.paths import PathBatch
from morel.npg.policies import GaussianMLP
from morel.runs.jobdir import job_lock, prepare_job_dir
from morel.runs.logger import DataLog
from morel.runs.loop import RunLoop, evaluation_scores, policy_meta
from morel.runs.plots import SCORE_KEYS
from morel.runs.tensorboard import check_tensorboard


def save_samples(job: Path, it: int, paths: list[dict[str, Any]], cfg: PolicyTrainConfig,
                 obs_dim: int) -> None:
    """Keep iteration `it`'s stochastic episodes (sampled before its update) as an npz dataset."""
    meta = {"env_name": cfg.env_name, "act_repeat": cfg.act_repeat, "obs_mask": [1.0] * obs_dim,
            "policy": f"train_policy.py iteration {it}", "mode": "pure", "seed": cfg.seed,
            "iteration": it}
    save_dataset(Dataset(paths, meta), job / "samples" / f"iter_{it}.npz", force=True)


def finite_horizon(paths: list[dict[str, Any]], horizon: int | None,
                   cut_terminates: bool = True) -> list[dict[str, Any]]:
    """The paths with those cut at `horizon` steps marked terminal (bootstrap 0); None, or
    cut_terminates False: as they are (a cut path bootstraps from its last state's value)."""
    if horizon is None or not cut_terminates:
        return paths
    return [{**p, "terminated": bool(p["terminated"]) or len(p["rewards"]) >= horizon}
            for p in paths]


def train_policy(cfg: PolicyTrainConfig, job: Path, device: torch.device, resume: bool = False,
                 force: bool = False, keep_samples: bool = False) -> float:
    """Train (or resume) a policy for `cfg` into job directory `job`; returns the best score."""
    reproducible_cpu_math()
    check_env_id(cfg.env_name)
    check_tensorboard(cfg.tensorboard, cfg.source)
    with job_lock(job):
        prepare_job_dir(job, cfg.to_dict(), resume, force, cfg.default_dict())
        return _train_in_job(cfg, job, device, resume, keep_samples)


def _train_in_job(cfg: PolicyTrainConfig, job: Path, device: torch.device, resume: bool,
                  keep_samples: bool) -> float:
    """train_policy's work once the job directory is prepared and locked."""
    vec_env = make_vector_env(cfg.env_name, cfg.num_envs, cfg.act_repeat)
    if cfg.episode_horizon is not None:  # sampled episodes only: evaluation keeps the env's
        for env in vec_env.envs:
            env.horizon = min(env.horizon, cfg.episode_horizon)
    eval_env = (make_vector_env(cfg.env_name, cfg.eval_rollouts, cfg.act_repeat)
                if cfg.eval_rollouts else None)
    env0 = vec_env.envs[0]
    obs_dim, act_dim = env0.obs_dim, env0.act_dim
    policy = policy_from_config(cfg, obs_dim, act_dim)
    agent = NPGAgent(policy.to(device), baseline_from_config(cfg, obs_dim, device),
                     NPGSettings.from_config(cfg))
    explore = sampled_action_fn(policy.mean_std)

    def deployable(iteration: int, score: float) -> tuple[GaussianMLP, dict[str, Any]]:
        return agent.evaluated_policy, policy_meta(cfg, "train_policy.py", iteration, score,
                                                   obs_dim)

    loop = RunLoop(job, cfg, agent, deployable, DataLog(), SCORE_KEYS, "NPG")
    if resume:
        loop.resume()
    write_config_json(cfg, job / "job_data.json")
    for it in loop.iterations():
        t_start = time.perf_counter()
        paths = collect_episodes(vec_env, explore, cfg.num_samples,
                                 stream(cfg.seed, Stream.SAMPLING, it), progress=False)
        time_sampling = time.perf_counter() - t_start
        if keep_samples:
            save_samples(job, it, paths, cfg, obs_dim)
        batch = PathBatch.from_paths(finite_horizon(paths, cfg.episode_horizon,
                                                    cfg.cut_terminates), device)
        stats, rejection = agent.guarded_step(batch, torch_generator(stream(cfg.seed,
                                                                            Stream.ITERATION,
                                                                            it)))
        if rejection:
            tqdm.write(f"warning: iteration {it} rejected: {rejection}")
        scores = (evaluation_scores(eval_env, agent, cfg, it) if eval_env is not None
                  else {"eval_score": stats["stoc_pol_mean"]})
        eval_score = scores.pop("eval_score")
        loop.end_iteration(it, {"eval_score": eval_score,
                                "iter_time": time.perf_counter() - t_start,
                                "time_sampling": time_sampling, **stats, **scores}, eval_score)
    score = loop.finish()
    print(f"done: {job} (best eval score {score:.1f})")
    return score

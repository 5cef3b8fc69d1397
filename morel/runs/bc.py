"""The behaviour-cloning baseline (run_bc.py): MOReL's `bc_init` policy alone, scored in the env.

It loads the dataset exactly as run_morel.py does, clones it with the same settings and seed as
MOReL's BC initialisation (so it is the policy a `bc_init` run starts from), and scores the
mean-action policy on `episodes` real episodes.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from morel.config.files import write_config_json
from morel.config.schema import MorelConfig
from morel.core.floats import reproducible_cpu_math
from morel.core.seeding import Stream, stream, torch_generator
from morel.data.offline import OfflineData, load_offline_data, load_reward
from morel.envs.scores import normalized_score
from morel.envs.wrapper import check_env_id, make_env, make_vector_env
from morel.npg.agent import policy_from_config
from morel.npg.bc import BCSettings, behavior_clone
from morel.npg.policies import save_policy
from morel.runs.jobdir import check_job_dir, clear_run_files, job_lock
from morel.runs.logger import DataLog
from morel.runs.loop import deployable_policy, evaluation_returns
from morel.runs.tensorboard import TensorBoardLog, check_tensorboard


def run_bc(cfg: MorelConfig, job: Path, device: torch.device, episodes: int = 10,
           include: str | None = None, force: bool = False, progress: bool = True) -> float:
    """Clone the dataset into a policy, score it on `episodes` episodes, write the job directory
    (job_data.json, logs/log.pickle + log.csv, policy_final.pt; tensorboard/ with
    cfg.tensorboard); returns the mean return."""
    reproducible_cpu_math()
    check_env_id(cfg.env_name)
    check_tensorboard(cfg.tensorboard, cfg.source)
    probe = make_env(cfg.env_name, cfg.act_repeat)
    obs_dim, act_dim = probe.obs_dim, probe.act_dim
    reward = load_reward(cfg, include, obs_dim, act_dim)
    data = load_offline_data(cfg, obs_dim, act_dim, reward, device, probe.action_box)
    with job_lock(job):
        return _clone_into_job(cfg, job, device, data, episodes, force, progress)


def _clone_into_job(cfg: MorelConfig, job: Path, device: torch.device, data: OfflineData,
                    episodes: int, force: bool, progress: bool) -> float:
    """run_bc's work once the job directory is locked."""
    obs_dim, act_dim = data.tensors["s"].shape[1], data.tensors["a"].shape[1]
    old_run_files = check_job_dir(job, cfg.to_dict(), False, force)
    start = time.perf_counter()
    policy = policy_from_config(cfg, obs_dim, act_dim).to(device)
    bc_log = behavior_clone(policy, data.tensors["s"], data.raw_actions,
                            BCSettings.from_config(cfg),
                            torch_generator(stream(cfg.seed, Stream.BC)), progress)
    eval_env = make_vector_env(cfg.env_name, episodes, cfg.act_repeat, data.obs_mask)
    # the episodes of MOReL's iteration-0 evaluation (its first eval_rollouts of them)
    returns = evaluation_returns(eval_env, policy, cfg, 0)
    score = float(np.mean(returns))
    normalized = normalized_score(cfg.env_name, score, data.reference)
    clear_run_files(job, old_run_files)
    log = DataLog()
    log.log_dict({"rollout_score": data.mean_return, "dataset_samples": data.num_samples,
                  **bc_log, "eval_score": score,
                  "eval_score_std": float(np.std(returns)), "eval_episodes": episodes,
                  **({} if normalized is None else {"eval_score_normalized": normalized}),
                  "iter_time": time.perf_counter() - start})
    write_config_json(cfg, job / "job_data.json", baseline="bc", bc_eval_episodes=episodes)
    final, meta = deployable_policy(policy, cfg, data.obs_mask, "run_bc.py", 0, score)
    save_policy(final, job / "policy_final.pt", meta)
    log.save(job / "logs")
    if cfg.tensorboard:
        events = TensorBoardLog(job)
        events.write(log)
        events.close()
    return score

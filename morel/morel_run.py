"""MOReL's training loop (run_morel.py): dataset -> ensemble -> pessimistic MDP -> NPG.

Per iteration k (its random streams are the run seed's streams ITERATION k and EVALUATION k,
morel.seeding, so resumed runs repeat exactly):
draw `update_paths` start states, roll each through every ensemble member in the P-MDP, take an
NPG step on those paths, fit the baseline on them, and score the mean-action policy in the real
env (`eval_rollouts` episodes). The best policy is kept by eval score (by model return when
eval_rollouts is 0).
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from morel.agent import NPGAgent, NPGSettings, policy_from_config
from morel.baselines import MLPBaseline
from morel.bc import behavior_clone, match_residual_std
from morel.config import ConfigError, MorelConfig, write_config_json
from morel.data import load_dataset, transitions
from morel.dynamics import load_ensemble, save_ensemble
from morel.ensemble_fit import (
    ensemble_meta,
    ensemble_statistics,
    fit_or_load_ensemble,
    model_table,
)
from morel.envs import check_env_id, make_env, make_vector_env
from morel.errors import MorelError
from morel.floats import flush_subnormals
from morel.jobdir import (
    check_job_dir,
    clear_run_files,
    iteration_table,
    job_lock,
    load_checkpoint,
    save_iteration,
)
from morel.logger import DataLog
from morel.pmdp import HaltRules, pmdp_rollouts
from morel.policies import GaussianMLP, save_policy
from morel.reward_files import RewardFile, load_reward_file
from morel.reward_model import learned_reward_function
from morel.sampling import episode_returns, mean_action_fn
from morel.scores import normalized_score
from morel.seeding import Stream, int_seed, stream, torch_generator

PLOT_KEYS = ("train_score", "eval_score", "eval_score_normalized", "halt_frac")


@dataclass
class OfflineData:
    """Dataset transitions on the device: s, a, s_next [M, .], r [M]; init_states
    [paths, obs_dim]."""

    tensors: dict[str, torch.Tensor]
    mean_return: float
    num_samples: int
    obs_mask: np.ndarray  # [obs_dim]: what the observations were multiplied by


def load_reward(cfg: MorelConfig, include: str | None, obs_dim: int,
                act_dim: int | None = None) -> RewardFile:
    """The reward file's functions (--include wins over the config's reward_file), checked on a
    tiny batch of the env's dims. Without a reward_function the rewards are learned, which needs
    learn_reward: True."""
    path = Path(include) if include else (cfg.resolve_path("reward_file") if cfg.reward_file
                                          else None)
    reward = (load_reward_file(path, obs_dim, act_dim, cfg.reward_timing) if path
              else RewardFile(None, None, None, None))
    if reward.reward_function is None and not cfg.learn_reward:
        source = f"{path} defines no reward_function" if path else "no reward_file is set"
        raise MorelError(f"{cfg.source}: {source} and learn_reward is False; set reward_file "
                         "(e.g. utils/reward_functions/gym_hopper.py), pass --include, or set "
                         "learn_reward: True")
    return reward


def check_termination_on_data(path: Path, reward: RewardFile, data: dict[str, torch.Tensor],
                              timing: str, limit: float = 0.05) -> None:
    """Refuse data the termination function calls terminal at many steps: the usual cause is
    observations recorded without the reward file's obs_mask (or with another one)."""
    steps = {"observations": data["s"][None], "actions": data["a"][None],
             "next_observations": data["s_next"][None]}
    done = torch.as_tensor(reward.termination_function(steps, timing))
    share = float(done.float().mean())
    if share > limit:
        raise MorelError(f"{path}: {reward.path.name}'s termination_function ends {share:.0%} "
                         "of the dataset's transitions; were the observations recorded with its "
                         f"obs_mask? (collect_dataset.py --include {reward.path})")


def load_offline_data(cfg: MorelConfig, obs_dim: int, act_dim: int, reward: RewardFile,
                      device: torch.device) -> OfflineData:
    path = cfg.resolve_path("data_file")
    dataset = load_dataset(path, obs_dim, act_dim, min_length=2)
    meta_mask = dataset.meta.get("obs_mask")
    if reward.obs_mask is not None:
        obs_mask = reward.obs_mask
        if meta_mask is not None and not np.allclose(np.asarray(meta_mask), obs_mask):
            raise MorelError(f"{path}: observations were recorded with obs_mask "
                             f"{list(meta_mask)}, the reward file's is {obs_mask.tolist()}; "
                             "collect with the same --include")
    elif meta_mask is not None:  # no reward file: evaluate with the mask the data was made with
        obs_mask = np.asarray(meta_mask, dtype=np.float64)
    else:
        warnings.warn(f"{path}: no reward file and no obs_mask in the dataset's metadata (a "
                      "plain pickle); evaluating on unmasked observations", stacklevel=2)
        obs_mask = np.ones(obs_dim)
    repeat = dataset.meta.get("act_repeat")
    if repeat is not None and int(repeat) != cfg.act_repeat:
        raise MorelError(f"{path}: recorded with act_repeat {repeat}, the config has "
                         f"{cfg.act_repeat}")
    flat = transitions(dataset.paths)
    tensors = {k: torch.as_tensor(v, dtype=torch.float32, device=device)
               for k, v in flat.items()}
    if reward.termination_function is not None:
        check_termination_on_data(path, reward, tensors, cfg.reward_timing)
    returns = [float(np.sum(p["rewards"])) for p in dataset.paths]
    return OfflineData(tensors, float(np.mean(returns)), dataset.num_samples, obs_mask)


def start_states(cfg: MorelConfig, data: OfflineData, gen: torch.Generator) -> torch.Tensor:
    """Start states of one iteration [N, obs_dim], drawn with replacement (the original's counts:
    'buffer' with buffer_frac f takes int(U(1-f)) + 1 path starts and int(U f) + 1 dataset
    states; without buffer_frac U // 2 of each)."""
    inits, states = data.tensors["init_states"], data.tensors["s"]
    u = cfg.update_paths
    if cfg.start_state == "init":
        n_init, n_buf = u, 0
    elif cfg.buffer_frac is not None:
        n_init, n_buf = int(u * (1 - cfg.buffer_frac)) + 1, int(u * cfg.buffer_frac) + 1
    else:
        n_init, n_buf = u // 2, u // 2
    picks = [inits[torch.randint(len(inits), (n_init,), generator=gen).to(inits.device)]]
    if n_buf:
        picks.append(states[torch.randint(len(states), (n_buf,), generator=gen).to(inits.device)])
    return torch.cat(picks)


def deployable_policy(policy: GaussianMLP, cfg: MorelConfig, obs_mask: np.ndarray,
                      trained_by: str, iteration: int,
                      score: float) -> tuple[GaussianMLP, dict[str, Any]]:
    """A CPU copy of `policy` that takes raw observations (obs_mask folded in), and its
    metadata."""
    copy = GaussianMLP(policy.obs_dim, policy.act_dim, policy.hidden_sizes)
    copy.load_state_dict({k: v.cpu() for k, v in policy.state_dict().items()})
    copy.fold_obs_mask(obs_mask)
    return copy, {"env_name": cfg.env_name, "act_repeat": cfg.act_repeat,
                  "obs_mask": [1.0] * policy.obs_dim, "trained_obs_mask": obs_mask.tolist(),
                  "trained_by": trained_by, "config": cfg.source, "seed": cfg.seed,
                  "iteration": iteration, "eval_score": score}


def all_paths_ended_error(iteration: int, job: Path, min_length: int,
                          last: dict[str, Any]) -> MorelError:
    """The error when the termination function ended every model path of an iteration before
    min_length steps (such paths are dropped). The dataset passed the termination check, so the
    policy's actions end them: the initial policy at iteration 0, a collapsed one later (`last`:
    the log's latest values)."""
    ended = (f"iteration {iteration}: the termination function ended every model path within "
             f"{min_length} steps, so none is left to learn from")
    if iteration == 0:
        return MorelError(f"{ended}; the dataset's transitions pass it, so the initial policy's "
                          "actions end them: check the reward file's termination_function and "
                          "the policy's start (bc_init, init_log_std)")
    return MorelError(f"{ended}; the policy has collapsed in the model (the last step: kl_dist "
                      f"{last['kl_dist']:.3g}, mean_path_length {last['mean_path_length']:.3g}); "
                      f"the best policy so far is {job / 'best_policy.pt'}; rerun with a smaller "
                      "step_size, a max_kl or more num_models")


def run_morel(cfg: MorelConfig, job: Path, device: torch.device, include: str | None = None,
              resume: bool = False, force: bool = False, progress: bool = True) -> float:
    """Run (or resume) MOReL for `cfg` into job directory `job`; returns the best score."""
    flush_subnormals()
    check_env_id(cfg.env_name)
    if cfg.bc_init_std and not cfg.bc_init:
        raise ConfigError(f"{cfg.source or 'config'}: 'bc_init_std' needs 'bc_init': True")
    probe = make_env(cfg.env_name, cfg.act_repeat)
    obs_dim, act_dim, env_horizon = probe.obs_dim, probe.act_dim, probe.horizon
    reward = load_reward(cfg, include, obs_dim, act_dim)
    data = load_offline_data(cfg, obs_dim, act_dim, reward, device)
    with job_lock(job):
        return _run_in_job(cfg, job, device, reward, data, env_horizon, resume, force, progress)


def _run_in_job(cfg: MorelConfig, job: Path, device: torch.device, reward: RewardFile,
                data: OfflineData, env_horizon: int, resume: bool, force: bool,
                progress: bool) -> float:
    """run_morel's work once the job directory is locked."""
    obs_dim, act_dim = data.tensors["s"].shape[1], data.tensors["a"].shape[1]
    obs_mask = data.obs_mask
    # an old run in `job` (with --force) is cleared only once the ensemble is fitted or loaded
    old_run_files = check_job_dir(job, cfg.to_dict(), resume, force)
    if resume:
        model, _ = load_ensemble(str(job / "models.pt"), device)
        if (model.obs_dim, model.act_dim) != (obs_dim, act_dim):
            raise MorelError(f"{job / 'models.pt'}: ensemble is for obs/act dims "
                             f"{model.obs_dim}/{model.act_dim}, env '{cfg.env_name}' has "
                             f"{obs_dim}/{act_dim}; start again with --force")
    else:
        model, model_log = fit_or_load_ensemble(cfg, data.tensors, obs_dim, act_dim, device,
                                                reward.reward_function is None, progress)
        clear_run_files(job, old_run_files)
        save_ensemble(model, str(job / "models.pt"), ensemble_meta(cfg))
    model_stats = ensemble_statistics(model, data.tensors, cfg.pessimism_coef)
    truncate_lim = model_stats.pop("truncate_lim")
    log = DataLog()
    if not resume:
        log.log_dict({"rollout_score": data.mean_return, "dataset_samples": data.num_samples,
                      **model_log, **model_stats, "act_repeat": cfg.act_repeat})
        if progress:
            tqdm.write(model_table({**log.current(), "truncate_lim": truncate_lim},
                                   model.num_models))
    policy = policy_from_config(cfg, obs_dim, act_dim).to(device)
    baseline = MLPBaseline(obs_dim, (128, 128), 1e-3, 1e-3, 256, 1,
                           seed=int_seed(stream(cfg.seed, Stream.BASELINE_INIT)), device=device)
    agent = NPGAgent(policy, baseline, NPGSettings.from_config(cfg))
    start, best_score = 0, -math.inf
    if resume:
        state = load_checkpoint(job, agent)
        log, start, best_score = DataLog(state["log"]), state["iteration"], state["best_score"]
        print(f"resuming {job} at iteration {start} (best score {best_score:.1f})")
    elif cfg.bc_init:
        bc_before, bc_after = behavior_clone(policy, data.tensors["s"], data.tensors["a"],
                                             generator=torch_generator(stream(cfg.seed,
                                                                              Stream.BC)),
                                             progress=progress)
        log.log_dict({"bc_loss_before": bc_before, "bc_loss_after": bc_after})
        if cfg.bc_init_std:
            std = match_residual_std(policy, data.tensors["s"], data.tensors["a"])
            log.log_dict({"bc_init_std": float(std.mean())})
    # written once the checkpoint (when resuming) has been read and loaded: a damaged one
    # leaves the job directory as it was
    write_config_json(cfg, job / "job_data.json", truncate_lim=truncate_lim)

    # a reward file scores one env step: times act_repeat per model step (the original's rule);
    # a learned reward was fitted on the dataset's per-agent-step rewards already
    reward_fn = reward.reward_function or learned_reward_function(model)
    reward_scale = cfg.act_repeat if reward.reward_function else 1
    halt_reward = cfg.truncate_reward + (cfg.halt_penalty if cfg.halt_terminates else 0.0)
    rules = HaltRules(truncate_lim, halt_reward, cfg.halt_terminates)
    horizon = min(cfg.horizon, env_horizon)
    eval_env = (make_vector_env(cfg.env_name, cfg.eval_rollouts, cfg.act_repeat, obs_mask)
                if cfg.eval_rollouts else None)

    greedy = mean_action_fn(policy.mean_std)

    def deployable(iteration: int, score: float) -> tuple[GaussianMLP, dict[str, Any]]:
        return deployable_policy(policy, cfg, obs_mask, "run_morel.py", iteration, score)

    bar = tqdm(range(start, cfg.num_iter), desc="MOReL", unit="iter", dynamic_ncols=True,
               initial=start, total=cfg.num_iter, disable=not progress)
    for it in bar:
        t_start = time.perf_counter()
        gen = torch_generator(stream(cfg.seed, Stream.ITERATION, it))
        starts = start_states(cfg, data, gen)
        rollouts = pmdp_rollouts(model, policy, starts, horizon, rules, reward_fn,
                                 reward.termination_function, cfg.reward_timing,
                                 reward_scale, gen)
        if rollouts.batch.num_samples == 0:
            raise all_paths_ended_error(it, job, rules.min_length, log.current())
        time_sampling = time.perf_counter() - t_start
        stats, rejection = agent.guarded_step(rollouts.batch, gen)
        if rejection:
            tqdm.write(f"warning: iteration {it} rejected: {rejection}")
        t_eval = time.perf_counter()
        if eval_env is not None:
            episodes = stream(cfg.seed, Stream.EVALUATION, it)
            eval_score = float(np.mean(episode_returns(eval_env, greedy, episodes)))
        else:
            eval_score = math.nan
        score = eval_score if eval_env is not None else stats["stoc_pol_mean"]
        normalized = normalized_score(cfg.env_name, eval_score)
        log.log_dict({"train_score": stats["stoc_pol_mean"], "eval_score": eval_score,
                      **({} if normalized is None else {"eval_score_normalized": normalized}),
                      "iter_time": time.perf_counter() - t_start, "time_sampling": time_sampling,
                      **stats, "time_eval": time.perf_counter() - t_eval,
                      "halt_frac": float(rollouts.halted.float().mean()),
                      "dropped_paths": rollouts.num_dropped,
                      "mean_path_length": float(rollouts.batch.lengths.float().mean())})
        if score > best_score:
            best_score = score
            best, best_meta = deployable(it, score)
            save_policy(best, job / "best_policy.pt", best_meta)
        bar.set_postfix(train=f"{stats['stoc_pol_mean']:.0f}", eval=f"{eval_score:.0f}")
        tqdm.write(iteration_table(log, it))
        if (it + 1) % cfg.save_freq == 0 or it + 1 == cfg.num_iter:
            save_iteration(job, it, *deployable(it, eval_score), log,
                           {"iteration": it + 1, "agent": agent.state_dict(), "log": log.log,
                            "best_score": best_score}, PLOT_KEYS)
    bar.close()
    final, final_meta = deployable(cfg.num_iter - 1, log.current().get("eval_score", math.nan))
    save_policy(final, job / "policy_final.pt", final_meta)
    log.save(job / "logs")
    return best_score


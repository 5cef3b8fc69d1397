"""MOReL's training loop (run_morel.py): dataset -> ensemble -> pessimistic MDP -> NPG.

Per iteration k (its random streams are the run seed's streams ITERATION k and EVALUATION k,
morel.core.seeding, so resumed runs repeat exactly):
draw `update_paths` start states, roll each through every ensemble member in the P-MDP, take an
NPG step on those paths, fit the baseline on them, score the mean-action policy in the real
env (`eval_rollouts` episodes) and roll it without noise from the first MEAN_ACTION_STARTS start
states through every member (the model_mean_* keys: how the P-MDP sees the evaluated policy).
The best policy is kept by eval score (by model return when eval_rollouts is 0); resume, saves
and output are `morel.runs.loop.RunLoop`'s.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from morel.config.fields import ConfigError
from morel.config.files import write_config_json
from morel.config.schema import MorelConfig
from morel.core.errors import MorelError
from morel.core.floats import reproducible_cpu_math
from morel.core.seeding import Stream, stream, torch_generator
from morel.data.offline import OfflineData, load_offline_data, load_reward
from morel.envs.reward_files import RewardFile
from morel.envs.scores import normalized_score
from morel.envs.wrapper import MorelEnv, check_env_id, make_env, make_vector_env
from morel.models.dynamics import DynamicsEnsemble
from morel.models.files import load_ensemble, save_ensemble
from morel.models.fit import ensemble_meta, fit_or_load_ensemble
from morel.models.reward import learned_reward_function
from morel.npg.agent import NPGAgent, NPGSettings, baseline_from_config, policy_from_config
from morel.npg.bc import BCSettings, behavior_clone, match_residual_std
from morel.npg.policies import GaussianMLP
from morel.pmdp import HaltRules, Rollouts, ensemble_statistics, model_table, pmdp_rollouts
from morel.runs.jobdir import check_job_dir, clear_run_files, job_lock
from morel.runs.logger import DataLog
from morel.runs.loop import RunLoop, deployable_policy, evaluation_scores, policy_scores
from morel.runs.tensorboard import check_tensorboard

PLOT_KEYS = ("train_score", "eval_score", "eval_score_normalized", "halt_frac")
MEAN_ACTION_STARTS = 10  # start states of the mean-action model paths logged per iteration


def mean_action_stats(paths: Rollouts) -> dict[str, float]:
    """model_mean_score (the mean-action policy's mean return on the model paths), their
    halted share and mean length: the policy the real env evaluates, as the P-MDP sees it."""
    batch = paths.batch
    if batch.num_samples == 0:
        return {"model_mean_score": math.nan, "model_mean_halt_frac": math.nan,
                "model_mean_length": 0.0}
    return {"model_mean_score": float(batch.rewards.sum(1).mean()),
            "model_mean_halt_frac": float(paths.halted.float().mean()),
            "model_mean_length": float(batch.lengths.float().mean())}


@dataclass(frozen=True)
class PmdpSampler:
    """A run's pessimistic MDP as run_morel builds it from its config: `sampler(policy, starts,
    gen)` rolls the policy from start states [N, obs_dim] through every member."""

    model: DynamicsEnsemble
    rules: HaltRules
    reward_fn: Callable[..., torch.Tensor]
    termination_fn: Callable[..., torch.Tensor] | None
    reward_timing: str
    reward_scale: int
    horizon: int
    action_box: tuple[torch.Tensor, torch.Tensor] | None
    member_per_step: bool
    state_noise: torch.Tensor | None

    @classmethod
    def for_run(cls, cfg: MorelConfig, model: DynamicsEnsemble, reward: RewardFile,
                probe: MorelEnv, truncate_lim: float | None, disagreement_max: float,
                error_std: torch.Tensor, device: torch.device) -> PmdpSampler:
        """The P-MDP of `cfg` on `model`; truncate_lim, disagreement_max and error_std are
        `ensemble_statistics` of the model on the run's dataset."""
        # a reward file scores one env step: times act_repeat per model step (the original's
        # rule); a learned reward was fitted on the dataset's per-agent-step rewards already
        reward_fn = reward.reward_function or learned_reward_function(model)
        reward_scale = cfg.act_repeat if reward.reward_function else 1
        halt_reward = cfg.truncate_reward + (cfg.halt_penalty if cfg.halt_terminates else 0.0)
        # disagreement_penalty is per unit of the data's largest disagreement (none: one member)
        cost = cfg.disagreement_penalty / disagreement_max if disagreement_max > 0 else 0.0
        rules = HaltRules(truncate_lim, halt_reward, cfg.halt_terminates,
                          disagreement_cost=cost, halt_patience=cfg.halt_patience,
                          member_min_reward=cfg.member_min_reward,
                          falls_terminate=cfg.falls_terminate)
        action_box = (tuple(torch.as_tensor(b, dtype=torch.float32, device=device)
                            for b in probe.action_box) if cfg.clip_actions else None)
        return cls(model, rules, reward_fn, reward.termination_function, cfg.reward_timing,
                   reward_scale, min(cfg.horizon, probe.horizon), action_box,
                   cfg.rollout_member == "step",
                   cfg.model_noise * error_std if cfg.model_noise else None)

    def __call__(self, actor: GaussianMLP, starts: torch.Tensor, gen: torch.Generator,
                 mean_action: bool = False) -> Rollouts:
        return pmdp_rollouts(self.model, actor, starts, self.horizon, self.rules, self.reward_fn,
                             self.termination_fn, self.reward_timing, self.reward_scale, gen,
                             self.action_box, mean_action=mean_action,
                             member_per_step=self.member_per_step, state_noise=self.state_noise)


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
    reproducible_cpu_math()
    check_env_id(cfg.env_name)
    check_tensorboard(cfg.tensorboard, cfg.source)
    if cfg.bc_init_std and not cfg.bc_init:
        raise ConfigError(f"{cfg.source or 'config'}: 'bc_init_std' needs 'bc_init': True")
    probe = make_env(cfg.env_name, cfg.act_repeat)
    obs_dim, act_dim = probe.obs_dim, probe.act_dim
    reward = load_reward(cfg, include, obs_dim, act_dim)
    data = load_offline_data(cfg, obs_dim, act_dim, reward, device, probe.action_box)
    with job_lock(job):
        return _run_in_job(cfg, job, device, reward, data, probe, resume, force, progress)


def _run_in_job(cfg: MorelConfig, job: Path, device: torch.device, reward: RewardFile,
                data: OfflineData, probe: MorelEnv, resume: bool, force: bool,
                progress: bool) -> float:
    """run_morel's work once the job directory is locked."""
    obs_dim, act_dim = data.tensors["s"].shape[1], data.tensors["a"].shape[1]
    obs_mask = data.obs_mask
    # an old run in `job` (with --force) is cleared only once the ensemble is fitted or loaded
    old_run_files = check_job_dir(job, cfg.to_dict(), resume, force, cfg.default_dict())
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
    model_stats = ensemble_statistics(model, data.tensors, cfg.pessimism_coef,
                                      cfg.halt_quantile)
    truncate_lim = model_stats.pop("truncate_lim")
    error_std = model_stats.pop("error_std")
    disagreement_max = model_stats["disagreement_max"]
    log = DataLog()
    if not resume:
        log.log_dict({"rollout_score": data.mean_return, "dataset_samples": data.num_samples,
                      **model_log, **model_stats, "act_repeat": cfg.act_repeat})
        if progress:
            tqdm.write(model_table({**log.current(), "truncate_lim": truncate_lim},
                                   model.num_models))
    policy = policy_from_config(cfg, obs_dim, act_dim).to(device)
    agent = NPGAgent(policy, baseline_from_config(cfg, obs_dim, device),
                     NPGSettings.from_config(cfg))

    def deployable(iteration: int, score: float) -> tuple[GaussianMLP, dict[str, Any]]:
        return deployable_policy(agent.evaluated_policy, cfg, obs_mask, "run_morel.py",
                                 iteration, score)

    loop = RunLoop(job, cfg, agent, deployable, log, PLOT_KEYS, "MOReL", progress)
    if resume:
        loop.resume()
    elif cfg.bc_init:
        log.log_dict(behavior_clone(policy, data.tensors["s"], data.raw_actions,
                                    BCSettings.from_config(cfg),
                                    torch_generator(stream(cfg.seed, Stream.BC)), progress))
        if cfg.bc_init_std:
            std = match_residual_std(policy, data.tensors["s"], data.raw_actions)
            log.log_dict({"bc_init_std": float(std.mean())})
    # written once the checkpoint (when resuming) has been read and loaded: a damaged one
    # leaves the job directory as it was
    write_config_json(cfg, job / "job_data.json", truncate_lim=truncate_lim)

    sample = PmdpSampler.for_run(cfg, model, reward, probe, truncate_lim, disagreement_max,
                                 error_std, device)
    eval_env = (make_vector_env(cfg.env_name, cfg.eval_rollouts, cfg.act_repeat, obs_mask)
                if cfg.eval_rollouts else None)
    if cfg.bc_init and not resume:
        bc_line = f"behaviour cloning: loss {log.current()['bc_loss_after']:.4g}"
        if eval_env is not None:  # on iteration 0's evaluation episodes
            bc_scores = policy_scores(eval_env, policy, cfg, 0)
            log.log_dict({f"bc_{key}": value for key, value in bc_scores.items()})
            bc_line += f", eval_score {bc_scores['eval_score']:.4g}"
            if "eval_score_noisy" in bc_scores:
                bc_line += f", with its noise {bc_scores['eval_score_noisy']:.4g}"
            bc_line += f" (dataset {data.mean_return:.4g})"
        if progress:
            tqdm.write(bc_line)
    for it in loop.iterations():
        t_start = time.perf_counter()
        gen = torch_generator(stream(cfg.seed, Stream.ITERATION, it))
        starts = start_states(cfg, data, gen)
        rollouts = sample(policy, starts, gen)
        if rollouts.batch.num_samples == 0:
            raise all_paths_ended_error(it, job, sample.rules.min_length, loop.log.current())
        time_sampling = time.perf_counter() - t_start
        stats, rejection = agent.guarded_step(rollouts.batch, gen)
        if rejection:
            tqdm.write(f"warning: iteration {it} rejected: {rejection}")
        mean_paths = sample(agent.evaluated_policy, starts[:MEAN_ACTION_STARTS], gen,
                            mean_action=True)
        t_eval = time.perf_counter()
        scores = (evaluation_scores(eval_env, agent, cfg, it) if eval_env is not None
                  else {"eval_score": math.nan})
        eval_score = scores.pop("eval_score")
        normalized = normalized_score(cfg.env_name, eval_score, data.reference)
        loop.end_iteration(it, {
            "train_score": stats["stoc_pol_mean"], "eval_score": eval_score,
            **({} if normalized is None else {"eval_score_normalized": normalized}),
            "iter_time": time.perf_counter() - t_start, "time_sampling": time_sampling,
            **stats, "time_eval": time.perf_counter() - t_eval,
            "halt_frac": float(rollouts.halted.float().mean()),
            "terminated_frac": float(rollouts.env_terminated.float().mean()),
            "dropped_paths": rollouts.num_dropped,
            "mean_path_length": float(rollouts.batch.lengths.float().mean()),
            **mean_action_stats(mean_paths), **scores},
            eval_score if eval_env is not None else stats["stoc_pol_mean"])
    return loop.finish()

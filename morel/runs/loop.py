"""What every run does around its update: resume, evaluation episodes, the best policy, periodic
saves, progress output and the saved policies' metadata (run_morel.py, train_policy.py; run_bc.py
shares the evaluation rule and the policy files).

A run's iteration k is the caller's update (sampling, NPG step, baseline fit) followed by
`RunLoop.end_iteration`, which logs the values, keeps the best policy by score
(best_policy.pt), prints one progress line (the whole log table every `print_freq` iterations;
1 gives the original's table at every iteration), and every `save_freq` iterations and at the
last one saves the policy, logs, plot and the resume checkpoint (checkpoint last). Evaluation
episodes of iteration k come from the run seed's stream EVALUATION k, so a resumed run scores
the same episodes as an uninterrupted one.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from tabulate import tabulate
from tqdm import tqdm

from morel.config.schema import CommonKeys
from morel.core.seeding import Stream, stream
from morel.envs.sampling import episode_returns, mean_action_fn, sampled_action_fn
from morel.envs.wrapper import EnvBatch
from morel.npg.agent import NPGAgent
from morel.npg.policies import GaussianMLP, save_policy
from morel.runs.jobdir import load_checkpoint, save_iteration
from morel.runs.logger import DataLog
from morel.runs.tensorboard import FOLDER as TENSORBOARD_FOLDER
from morel.runs.tensorboard import TensorBoardLog

# keys of the one-line progress report, in this order, where the log has them
PROGRESS_KEYS = ("train_score", "stoc_pol_mean", "eval_score", "kl_dist", "halt_frac",
                 "mean_path_length", "iter_time")
# (policy to save, its metadata) for (iteration, score)
Deployable = Callable[[int, float], tuple[GaussianMLP, dict[str, Any]]]


def policy_meta(cfg: CommonKeys, trained_by: str, iteration: int, score: float, obs_dim: int,
                trained_obs_mask: np.ndarray | None = None) -> dict[str, Any]:
    """The metadata of a saved policy: it takes raw observations (`obs_mask` of ones); with
    `trained_obs_mask`, the mask it was trained under (folded into its input scale)."""
    meta: dict[str, Any] = {"env_name": cfg.env_name, "act_repeat": cfg.act_repeat,
                            "obs_mask": [1.0] * obs_dim}
    if trained_obs_mask is not None:
        meta["trained_obs_mask"] = np.asarray(trained_obs_mask).tolist()
    return {**meta, "trained_by": trained_by, "config": cfg.source, "seed": cfg.seed,
            "iteration": iteration, "eval_score": score}


def deployable_policy(policy: GaussianMLP, cfg: CommonKeys, obs_mask: np.ndarray,
                      trained_by: str, iteration: int,
                      score: float) -> tuple[GaussianMLP, dict[str, Any]]:
    """A CPU copy of `policy` (trained on observations times `obs_mask`) that takes raw
    observations, and its metadata."""
    copy = GaussianMLP(policy.obs_dim, policy.act_dim, policy.hidden_sizes)
    copy.load_state_dict({k: v.cpu() for k, v in policy.state_dict().items()})
    copy.fold_obs_mask(obs_mask)
    return copy, policy_meta(cfg, trained_by, iteration, score, policy.obs_dim, obs_mask)


def evaluation_returns(eval_env: EnvBatch, policy: GaussianMLP, cfg: CommonKeys,
                       iteration: int, noisy: bool = False) -> np.ndarray:
    """Returns [episodes] of the mean-action policy (with `noisy`: its actions with its own
    Gaussian noise) on iteration `iteration`'s evaluation episodes (stream EVALUATION of the
    run seed; the first k do not depend on how many)."""
    act = sampled_action_fn(policy.mean_std) if noisy else mean_action_fn(policy.mean_std)
    return episode_returns(eval_env, act, stream(cfg.seed, Stream.EVALUATION, iteration))


def policy_scores(eval_env: EnvBatch, policy: GaussianMLP, cfg: CommonKeys,
                  iteration: int) -> dict[str, float]:
    """eval_score: the mean return of `policy`'s mean action on iteration `iteration`'s
    evaluation episodes; with cfg.eval_noisy, also eval_score_noisy: its mean return with its
    own noise on the same episodes."""
    scores = {"eval_score": float(np.mean(evaluation_returns(eval_env, policy, cfg, iteration)))}
    if cfg.eval_noisy:
        scores["eval_score_noisy"] = float(np.mean(evaluation_returns(eval_env, policy, cfg,
                                                                      iteration, noisy=True)))
    return scores


def evaluation_scores(eval_env: EnvBatch, agent: NPGAgent, cfg: CommonKeys,
                      iteration: int) -> dict[str, float]:
    """The agent's evaluated policy's `policy_scores`; with a policy average, also
    iterate_eval_score: the NPG iterate's mean-action score on the same episodes."""
    scores = policy_scores(eval_env, agent.evaluated_policy, cfg, iteration)
    if agent.average is not None:
        scores["iterate_eval_score"] = float(np.mean(evaluation_returns(eval_env, agent.policy,
                                                                        cfg, iteration)))
    return scores


def iteration_table(log: DataLog, iteration: int) -> str:
    """The current value of every log key, as a table."""
    return tabulate(sorted(log.current().items()), floatfmt=".4g",
                    headers=[f"iteration {iteration}", "value"])


def progress_line(log: DataLog, iteration: int) -> str:
    """One line with the iteration's key numbers (PROGRESS_KEYS that the log holds)."""
    row = log.current()
    parts = [f"{key} {row[key]:.4g}" for key in PROGRESS_KEYS
             if isinstance(row.get(key), (int, float))]
    return f"iteration {iteration}: " + ", ".join(parts)


class RunLoop:
    """Resume, iterate, keep the best policy, save and print for one run in job directory
    `job`; `deployable(iteration, score)` gives the policy to save and its metadata."""

    def __init__(self, job: Path, cfg: CommonKeys, agent: NPGAgent, deployable: Deployable,
                 log: DataLog, plot_keys: tuple[str, ...], desc: str, progress: bool = True):
        self.job, self.cfg, self.agent, self.deployable = job, cfg, agent, deployable
        self.log, self.plot_keys, self.desc, self.progress = log, plot_keys, desc, progress
        self.start, self.best_score = 0, -math.inf
        self.bar: tqdm | None = None
        self.tensorboard: TensorBoardLog | None = None

    def resume(self) -> None:
        """Continue from the job's checkpoint: agent state, log, next iteration, best score."""
        state = load_checkpoint(self.job, self.agent)
        self.log, self.start = DataLog(state["log"]), state["iteration"]
        self.best_score = state["best_score"]
        print(f"resuming {self.job} at iteration {self.start} (best score "
              f"{self.best_score:.1f})")

    def iterations(self) -> Iterator[int]:
        """The iterations still to run, under a progress bar (and TensorBoard events of every
        log value with cfg.tensorboard)."""
        if self.cfg.tensorboard:  # a resumed run without events yet writes its whole log
            continued = self.start and (self.job / TENSORBOARD_FOLDER).is_dir()
            self.tensorboard = TensorBoardLog(self.job, self.log if continued else None,
                                              self.start)
        self.bar = tqdm(range(self.start, self.cfg.num_iter), desc=self.desc, unit="iter",
                        dynamic_ncols=True, initial=self.start, total=self.cfg.num_iter,
                        disable=not self.progress)
        yield from self.bar
        self.bar.close()

    def end_iteration(self, it: int, values: dict[str, Any], score: float) -> None:
        """Log iteration `it`'s values; keep the best policy by `score`; print; save."""
        self.log.log_dict(values)
        if self.tensorboard is not None:
            self.tensorboard.write(self.log)
        if score > self.best_score:
            self.best_score = score
            best, meta = self.deployable(it, score)
            save_policy(best, self.job / "best_policy.pt", meta)
        if self.bar is not None:
            self.bar.set_postfix(score=f"{score:.0f}")
        last = it + 1 == self.cfg.num_iter
        full = (it + 1) % self.cfg.print_freq == 0 or last
        tqdm.write(iteration_table(self.log, it) if full else progress_line(self.log, it))
        if (it + 1) % self.cfg.save_freq == 0 or last:
            eval_score = self.log.current().get("eval_score", math.nan)
            save_iteration(self.job, it, *self.deployable(it, eval_score), self.log,
                           {"iteration": it + 1, "agent": self.agent.state_dict(),
                            "log": self.log.log, "best_score": self.best_score},
                           self.plot_keys)

    def finish(self) -> float:
        """Save policy_final.pt and the logs; returns the best score."""
        final_score = self.log.current().get("eval_score", math.nan)
        policy, meta = self.deployable(self.cfg.num_iter - 1, final_score)
        save_policy(policy, self.job / "policy_final.pt", meta)
        self.log.save(self.job / "logs")
        if self.tensorboard is not None:
            self.tensorboard.close()
        return self.best_score

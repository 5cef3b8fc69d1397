"""One policy-iteration step on a batch of paths: returns, GAE, NPG update, baseline fit.

The order is the original's (mjrl NPG.train_step): advantages use the baseline as it was before
this batch; the baseline is fitted AFTER the policy update, on the same paths. `guarded_step`
rejects a step that meets a NaN/inf (paths, advantages, gradient, CG result, parameters, baseline):
policy and baseline are restored, and MAX_REJECTED_IN_A_ROW rejections in a row stop the run.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass
from typing import Any

import torch

from morel.config.schema import CommonKeys
from morel.core.errors import MorelError, NumericError, check_finite
from morel.core.seeding import Stream, int_seed, stream
from morel.npg.baselines import MLPBaseline
from morel.npg.gae import discounted_returns, gae_advantages, whiten
from morel.npg.mjrl_pickle import load_policy_source
from morel.npg.natural_gradient import npg_step
from morel.npg.paths import PathBatch
from morel.npg.policies import GaussianMLP

# the keys of train_step's log, in the original's order (a rejected step logs them as NaN)
STEP_LOG_KEYS = ("stoc_pol_mean", "stoc_pol_std", "stoc_pol_max", "stoc_pol_min", "alpha",
                 "delta", "time_vpg", "time_npg", "kl_dist", "kl_backtracks", "surr_improvement",
                 "running_score", "num_samples", "time_VF", "VF_error_before", "VF_error_after")
MAX_REJECTED_IN_A_ROW = 3


@dataclass
class NPGSettings:
    """Hyper-parameters of the update (config keys step_size, gamma, gae_lambda, npg_hp)."""

    step_size: float
    gamma: float
    gae_lambda: float
    cg_iters: int = 10
    damping: float = 1e-4
    hvp_sample_frac: float = 1.0
    max_kl: float | None = None
    policy_average: float = 0.0
    anchor_kl_coef: float = 0.0
    value_targets: str = "returns"

    @classmethod
    def from_config(cls, cfg: CommonKeys) -> NPGSettings:
        fim = cfg.npg_hp.FIM_invert_args
        return cls(cfg.step_size, cfg.gamma, cfg.gae_lambda, fim.iters, fim.damping,
                   cfg.npg_hp.hvp_sample_frac, cfg.max_kl, cfg.policy_average,
                   cfg.anchor_kl_coef, cfg.value_targets)


def policy_from_config(cfg: CommonKeys, obs_dim: int, act_dim: int) -> GaussianMLP:
    """The starting policy of a run: `init_policy` (dims checked) or a new one from the policy
    keys, initialised from the run seed's stream POLICY_INIT."""
    if not cfg.init_policy:
        return GaussianMLP(obs_dim, act_dim, cfg.policy_size, cfg.init_log_std, cfg.min_log_std,
                           seed=int_seed(stream(cfg.seed, Stream.POLICY_INIT)))
    policy, meta = load_policy_source(cfg.resolve_path("init_policy"))
    if (policy.obs_dim, policy.act_dim) != (obs_dim, act_dim):
        raise MorelError(f"init_policy {cfg.init_policy}: dims {policy.obs_dim}/"
                         f"{policy.act_dim} do not match env {obs_dim}/{act_dim}")
    if meta.get("env_name", cfg.env_name) != cfg.env_name:
        raise MorelError(f"init_policy {cfg.init_policy}: trained on env '{meta['env_name']}', "
                         f"the config's env is '{cfg.env_name}'")
    return policy


def baseline_from_config(cfg: CommonKeys, obs_dim: int,
                         device: str | torch.device = "cpu") -> MLPBaseline:
    """The value baseline of a run from the vf_* keys, initialised from the run seed's stream
    BASELINE_INIT."""
    return MLPBaseline(obs_dim, cfg.vf_hidden_size, cfg.vf_lr, cfg.vf_wd, cfg.vf_batch_size,
                       cfg.vf_epochs, seed=int_seed(stream(cfg.seed, Stream.BASELINE_INIT)),
                       device=device)


class NPGAgent:
    """Policy + baseline + settings; `train_step(batch)` updates both and returns log values.

    With settings.policy_average b > 0 the agent also keeps `average`, a copy of the policy
    whose weights follow the iterates: it starts as the policy before the first step and is
    b * average + (1 - b) * policy after each one. `evaluated_policy` is the policy a run
    evaluates and saves: the average when kept, else the iterate.

    With settings.anchor_kl_coef c > 0 the agent keeps `anchor`, a frozen copy of the policy
    before the first step (the BC policy of a run with bc_init), and each NPG step ascends the
    surrogate minus c x the mean KL(anchor || policy) on the batch's states.
    """

    def __init__(self, policy: GaussianMLP, baseline: MLPBaseline, settings: NPGSettings):
        self.policy, self.baseline, self.settings = policy, baseline, settings
        self.running_score: float | None = None
        self.rejected_in_a_row = 0
        self.average: GaussianMLP | None = None
        self.anchor: GaussianMLP | None = None

    @property
    def evaluated_policy(self) -> GaussianMLP:
        return self.average if self.average is not None else self.policy

    @torch.no_grad()
    def _update_average(self) -> None:
        b = self.settings.policy_average
        for avg, new in zip(self.average.parameters(), self.policy.parameters()):
            avg.mul_(b).add_(new, alpha=1 - b)

    def train_step(self, batch: PathBatch, generator: torch.Generator | None = None
                   ) -> dict[str, float]:
        """Update the policy and then the baseline on `batch`; the original's log keys, in order."""
        s = self.settings
        check_finite("the paths' observations, actions or rewards (model predictions or the "
                     "reward function)", batch.observations, batch.actions, batch.rewards)
        values = self.baseline.predict(batch)
        advantages = gae_advantages(batch.rewards, values, batch.mask, batch.terminated,
                                    s.gamma, s.gae_lambda)
        targets = (advantages + values if s.value_targets == "lambda"
                   else discounted_returns(batch.rewards, batch.mask, s.gamma))
        advantages = whiten(advantages, batch.mask)
        check_finite("the advantages (returns or baseline values)", advantages)

        path_returns = batch.path_returns()
        mean_return = float(path_returns.mean())
        self.running_score = (mean_return if self.running_score is None
                              else 0.9 * self.running_score + 0.1 * mean_return)
        log: dict[str, float] = {
            "stoc_pol_mean": mean_return,
            "stoc_pol_std": float(path_returns.std(unbiased=False)),
            "stoc_pol_max": float(path_returns.max()),
            "stoc_pol_min": float(path_returns.min()),
        }
        if s.policy_average and self.average is None:
            self.average = self._policy_copy()
        if s.anchor_kl_coef and self.anchor is None:
            self.anchor = self._policy_copy(frozen=True)
        step = npg_step(self.policy, batch.valid(batch.observations), batch.valid(batch.actions),
                        batch.valid(advantages), s.step_size, s.cg_iters, s.damping,
                        s.hvp_sample_frac, generator, s.max_kl, self.anchor, s.anchor_kl_coef)
        log.update(step)
        if self.average is not None:
            self._update_average()
        log["running_score"] = self.running_score
        log["num_samples"] = batch.num_samples

        start = time.perf_counter()
        error_before, error_after = self.baseline.fit(batch, targets, generator)
        check_finite("the value baseline after its fit", torch.tensor([error_before, error_after]),
                     *self.baseline.net.parameters())
        log.update(time_VF=time.perf_counter() - start, VF_error_before=error_before,
                   VF_error_after=error_after)
        return log

    def guarded_step(self, batch: PathBatch, generator: torch.Generator | None = None
                     ) -> tuple[dict[str, float], str | None]:
        """train_step plus 'rejected' (0/1), and None or the reason of a rejection. A rejected
        step leaves policy, baseline and running_score as they were and logs NaN for
        STEP_LOG_KEYS; the MAX_REJECTED_IN_A_ROW-th rejection in a row raises MorelError."""
        saved = copy.deepcopy(self.state_dict())
        try:
            log = self.train_step(batch, generator)
        except NumericError as err:
            self.load_state_dict(saved)
            self.rejected_in_a_row += 1
            if self.rejected_in_a_row >= MAX_REJECTED_IN_A_ROW:
                raise MorelError(f"{self.rejected_in_a_row} iterations in a row met a NaN/inf in "
                                 f"{err}; stopping (the last checkpoint is intact): lower "
                                 "step_size, check the dataset and the reward file, or refit "
                                 "the ensemble") from None
            keys = STEP_LOG_KEYS + (("anchor_kl",) if self.settings.anchor_kl_coef else ())
            log = {**dict.fromkeys(keys, math.nan), "num_samples": batch.num_samples}
            return {**log, "rejected": 1}, f"NaN/inf in {err}; policy and baseline restored"
        self.rejected_in_a_row = 0
        return {**log, "rejected": 0}, None

    def state_dict(self) -> dict[str, Any]:
        state = {"policy": self.policy.state_dict(), "baseline": self.baseline.state_dict(),
                 "running_score": self.running_score, "rejected_in_a_row": self.rejected_in_a_row}
        if self.average is not None:
            state["average"] = self.average.state_dict()
        if self.anchor is not None:
            state["anchor"] = self.anchor.state_dict()
        return state

    def _policy_copy(self, weights: dict[str, Any] | None = None,
                     frozen: bool = False) -> GaussianMLP:
        """A copy of the policy (the average's or the anchor's start), with `weights` loaded
        when given; `frozen`: no gradients."""
        kept = copy.deepcopy(self.policy).requires_grad_(not frozen)
        if weights is not None:
            kept.load_state_dict(weights)
        return kept

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.policy.load_state_dict(state["policy"])
        self.average = self._policy_copy(state["average"]) if "average" in state else None
        self.anchor = (self._policy_copy(state["anchor"], frozen=True) if "anchor" in state
                       else None)
        self.baseline.load_state_dict(state["baseline"])
        self.running_score = state["running_score"]
        self.rejected_in_a_row = state.get("rejected_in_a_row", 0)

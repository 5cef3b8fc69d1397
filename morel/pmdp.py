"""The pessimistic MDP (the heart of MOReL): ensemble disagreement, the halting threshold, and
batched model rollouts that halt where the members disagree.

disagreement(s, a) = max over member pairs i < j of ||f_i(s, a) - f_j(s, a)||_2 (raw units);
truncate_lim = max over the dataset of the disagreement / pessimism_coef, or None (no halting:
naive model-based RL) when pessimism_coef is None or 0; with halt_quantile q (ours) the
dataset's q-quantile of the disagreement takes the place of its max.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from tabulate import tabulate

from morel.envs.wrapper import clip_to_box
from morel.models.dynamics import DynamicsEnsemble, max_pairwise_distance
from morel.npg.paths import PathBatch
from morel.npg.policies import GaussianMLP


def truncate_limit(disagreement: torch.Tensor, pessimism_coef: float | None,
                   quantile: float | None = None) -> float | None:
    """The halting threshold from the dataset's disagreement [M]: its max (or its `quantile`)
    / pessimism_coef; None when the coef is None/0."""
    if not pessimism_coef:
        return None
    return quantile_value(disagreement, quantile or 1.0) / pessimism_coef


def quantile_value(values: torch.Tensor, q: float) -> float:
    """The q-quantile of values [M] as the ceil(q M)-th smallest (torch.quantile caps the input
    size); q = 1 gives the max."""
    return float(values.kthvalue(max(1, math.ceil(q * len(values)))).values)


@dataclass(frozen=True)
class HaltRules:
    """How model paths end (the original's post-processing, applied while rolling) and what
    their uncertainty costs.

    truncate_lim: halt threshold on the disagreement (None: never halt, naive MBRL);
    halt_reward: added to the last reward of a halted path (the original's truncate_reward);
    halt_terminates: halted paths are terminal (bootstrap 0; the paper's absorbing HALT) instead
    of the original's behaviour, where no path is terminal once the halting pass runs;
    disagreement_cost: reward subtracted per unit of disagreement at every step (ours, a
    MOPO-style soft penalty beside the hard halt; 0: none, the original);
    halt_patience: a path halts once its disagreement has exceeded truncate_lim on this many
    consecutive steps (ours; 1: the original, a single crossing halts);
    member_min_reward: each step earns the least reward any member's prediction of its next
    state gives (ours, a lower confidence bound on the reward; False: the path's own member's
    next state, the original);
    falls_terminate: paths the termination function ends are terminal (ours); None: as
    halt_terminates while halting runs (the original: not terminal), else terminal.
    """

    truncate_lim: float | None
    halt_reward: float = 0.0
    halt_terminates: bool = False
    min_length: int = 5  # paths the termination function ends earlier are dropped
    min_halt_length: int = 4  # a halted path keeps at least this many steps
    bound: float = 100.0  # states and actions are clamped to +-bound
    disagreement_cost: float = 0.0
    halt_patience: int = 1
    member_min_reward: bool = False
    falls_terminate: bool | None = None


@dataclass
class Rollouts:
    """Model paths as a PathBatch plus next_observations [P, T, obs_dim] and per-path flags."""

    batch: PathBatch
    next_observations: torch.Tensor
    halted: torch.Tensor  # [P] bool
    env_terminated: torch.Tensor  # [P] bool: the termination function ended the path
    num_dropped: int


RewardFn = Callable[..., torch.Tensor]


def zero_reward(paths: dict[str, torch.Tensor], _timing: str = "next") -> torch.Tensor:
    """A reward function of 0 for every step [N, T]: for model paths that only their lengths
    and states matter for (utils/check_model.py, utils/check_survival.py)."""
    return torch.zeros(paths["observations"].shape[:2])


def least_member_reward(preds: torch.Tensor, states: torch.Tensor, actions: torch.Tensor,
                        reward_fn: RewardFn, timing: str) -> torch.Tensor:
    """[L] the least reward of one step over the members' predicted next states preds
    [E, L, obs_dim] from states [L, obs_dim] under actions [L, act_dim]."""
    num_models, num, _ = preds.shape
    step = {"observations": states.repeat(num_models, 1)[:, None],
            "actions": actions.repeat(num_models, 1)[:, None],
            "next_observations": preds.reshape(num_models * num, 1, -1)}
    rewards = torch.as_tensor(reward_fn(step, timing), dtype=torch.float32, device=preds.device)
    return rewards.reshape(num_models, num).amin(0)


@torch.no_grad()
def pmdp_rollouts(model: DynamicsEnsemble, policy: GaussianMLP, start_states: torch.Tensor,
                  horizon: int, rules: HaltRules, reward_fn: RewardFn,
                  termination_fn: RewardFn | None, timing: str = "next",
                  act_repeat: int = 1, generator: torch.Generator | None = None,
                  action_box: tuple[torch.Tensor, torch.Tensor] | None = None,
                  mean_action: bool = False, member_per_step: bool = False,
                  state_noise: torch.Tensor | None = None) -> Rollouts:
    """Roll every start state [N, obs_dim] through every member: P = E * N paths (member-major).

    Each step runs ONE ensemble forward on the live paths' (s, a): member e's prediction advances
    member e's paths and the spread of all members is the disagreement. Actions are the policy
    mean plus exp(log_std) * N(0, 1) noise (drawn on the CPU from `generator`), clamped with the
    states to +-bound; with `action_box` (low, high [act_dim]) the models, the reward and the
    termination function see the actions clipped to it, as the env would execute them, while
    the paths keep the sampled actions (the policy's likelihood is of those). With
    `mean_action` the actions are the policy mean (no noise is drawn): the deterministic
    policy that the real env evaluates. With `member_per_step` each step of each path takes the
    prediction of a member drawn uniformly from `generator` (the MBPO/MOPO rollout) instead of
    its own member's. With `state_noise` ([obs_dim] standard deviations, raw units) each
    predicted next state gets that Gaussian noise (drawn from `generator` after the actions):
    a stochastic model whose paths the policy must be robust to. A path ends at
    its first done step (termination function, kept), or, after the first step t whose
    disagreement exceeds truncate_lim (not counted on the step that ends the path) and, with
    rules.halt_patience k, did so on each of the k - 1 steps before it, at length
    max(min_halt_length, t + 1). Paths the termination function ends before
    min_length steps are dropped. Rewards are reward_fn * act_repeat (with
    rules.member_min_reward the least of reward_fn over every member's predicted next state,
    clamped and without state noise), less rules.disagreement_cost times each step's
    disagreement; finished paths stop costing compute (the live set is compacted each step).
    """
    dev, num_models = start_states.device, model.num_models
    if (member_per_step or state_noise is not None) and generator is None:
        raise ValueError("member_per_step and state_noise draw from a generator: pass one")
    n_start, obs_dim = start_states.shape
    num = num_models * n_start
    act_dim = policy.act_dim
    member = torch.arange(num_models, device=dev).repeat_interleave(n_start)
    obs_buf = torch.zeros(num, horizon, obs_dim, device=dev)
    act_buf = torch.zeros(num, horizon, act_dim, device=dev)
    next_buf = torch.zeros(num, horizon, obs_dim, device=dev)
    length = torch.full((num,), horizon, dtype=torch.long, device=dev)
    env_done = torch.zeros(num, dtype=torch.bool, device=dev)
    violated = torch.full((num,), -1, dtype=torch.long, device=dev)  # first violation step
    streak = torch.zeros(num, dtype=torch.long, device=dev)  # consecutive steps over the limit
    live = torch.arange(num, device=dev)
    states = start_states.repeat(num_models, 1)
    std = torch.exp(policy.log_std)
    halt_on = rules.truncate_lim is not None and num_models > 1
    cost_on = rules.disagreement_cost != 0 and num_models > 1
    cost_buf = torch.zeros(num, horizon, device=dev) if cost_on else None
    min_reward_on = rules.member_min_reward and num_models > 1
    min_reward_buf = torch.zeros(num, horizon, device=dev) if min_reward_on else None
    for t in range(horizon):
        actions = policy(states)
        if not mean_action:
            actions = actions + std * torch.randn(len(live), act_dim, generator=generator).to(dev)
        actions = actions.clamp(-rules.bound, rules.bound)
        executed = clip_to_box(actions, action_box)
        preds = model.predict_all(states, executed)  # [E, L, obs_dim]
        rows = torch.arange(len(live), device=dev)
        members = (torch.randint(num_models, (len(live),), generator=generator).to(dev)
                   if member_per_step else member[live])
        next_states = preds[members, rows]
        if state_noise is not None:
            next_states = next_states + state_noise * torch.randn(
                len(live), obs_dim, generator=generator).to(dev)
        next_states = next_states.clamp(-rules.bound, rules.bound)
        obs_buf[live, t], act_buf[live, t], next_buf[live, t] = states, actions, next_states
        done = torch.zeros(len(live), dtype=torch.bool, device=dev)
        if termination_fn is not None:
            step = {"observations": states[:, None], "actions": executed[:, None],
                    "next_observations": next_states[:, None]}
            done = torch.as_tensor(termination_fn(step, timing), device=dev)[:, 0]
        stop = done.clone()
        disagreement = max_pairwise_distance(preds) if halt_on or cost_on else None
        if cost_on:
            cost_buf[live, t] = disagreement
        if min_reward_on:
            min_reward_buf[live, t] = least_member_reward(preds.clamp(-rules.bound, rules.bound),
                                                          states, executed, reward_fn, timing)
        if halt_on:
            # the original checks steps 0..T-2 of a path: not the step that ends it
            over = (disagreement > rules.truncate_lim) & ~done
            if t == horizon - 1:
                over[:] = False
            streak[live] = (streak[live] + 1) * over
            first = (streak[live] >= rules.halt_patience) & (violated[live] < 0)
            violated[live[first]] = t
            halting = (violated[live] >= 0) & ~done & (t + 1 >= rules.min_halt_length)
            length[live[halting]] = torch.clamp(violated[live[halting]] + 1,
                                                min=rules.min_halt_length)
            stop |= halting
        length[live[done]] = t + 1
        env_done[live[done]] = True
        keep = ~stop
        live, states = live[keep], next_states[keep]
        if len(live) == 0:
            break
    halted = (violated >= 0) & ~env_done
    # the original drops paths shorter than min_length after the termination cut (before halting)
    valid = ~(env_done & (length < rules.min_length)) & (horizon >= rules.min_length)
    steps = torch.arange(horizon, device=dev)
    mask = (steps[None, :] < length[:, None]).float()
    paths = {"observations": obs_buf, "actions": clip_to_box(act_buf, action_box),
             "next_observations": next_buf}
    rewards = (min_reward_buf if min_reward_on
               else torch.as_tensor(reward_fn(paths, timing), dtype=torch.float32, device=dev))
    rewards = rewards * act_repeat * mask
    if cost_on:
        rewards = rewards - rules.disagreement_cost * cost_buf * mask
    last = (length - 1).clamp(min=0)
    rewards[torch.arange(num, device=dev), last] += rules.halt_reward * halted.float()
    falls_terminate = rules.falls_terminate
    if falls_terminate is None:
        falls_terminate = rules.halt_terminates if halt_on else True
    terminated = (env_done & falls_terminate) | (halted & rules.halt_terminates)
    keep = valid.nonzero().squeeze(1)
    width = int(length[keep].max()) if len(keep) else 1
    batch = PathBatch(obs_buf[keep, :width], act_buf[keep, :width], rewards[keep, :width],
                      mask[keep, :width], terminated[keep])
    return Rollouts(batch, next_buf[keep, :width], halted[keep], env_done[keep],
                    int(num - len(keep)))


def ensemble_statistics(model: DynamicsEnsemble, data: dict[str, torch.Tensor],
                        pessimism_coef: float | None,
                        halt_quantile: float | None = None) -> dict[str, Any]:
    """One pass of the ensemble over the dataset: dyn_loss_gen_i (member i's next-state MSE, raw
    units), the disagreement's max / mean / 99th percentile, truncate_lim (None without
    pessimism; `truncate_limit`), halt_frac_data (share of dataset pairs over it) and
    error_std (a tensor [obs_dim], not a log value: the members' root mean squared one-step
    error per state dimension, the scale of `model_noise`)."""
    sq_error, disagreement = model.dataset_statistics(data["s"], data["a"], data["s_next"])
    limit = truncate_limit(disagreement, pessimism_coef, halt_quantile)
    mse = sq_error.mean(-1)
    stats: dict[str, Any] = {f"dyn_loss_gen_{i}": v for i, v in enumerate(mse.tolist())}
    stats.update(disagreement_max=float(disagreement.max()),
                 disagreement_mean=float(disagreement.mean()),
                 disagreement_p99=quantile_value(disagreement, 0.99), truncate_lim=limit,
                 halt_frac_data=(math.nan if limit is None
                                 else float((disagreement > limit).float().mean())),
                 error_std=sq_error.mean(0).sqrt())
    return stats


def model_table(log: dict[str, Any], num_models: int) -> str:
    """The ensemble's statistics as printed by learn_model.py and run_morel.py: a row per
    member, then the disagreement and threshold."""
    heldout = "dyn_loss_heldout_0" in log
    rows = [[i, log.get(f"dyn_loss_{i}", math.nan),
             *([log[f"dyn_loss_heldout_{i}"]] if heldout else []), log[f"dyn_loss_gen_{i}"]]
            for i in range(num_models)]
    members = tabulate(rows, headers=["member", "train loss (normalised)",
                                      *(["held-out loss"] if heldout else []),
                                      "next-state MSE on data"], floatfmt=".4g")
    limit = log["truncate_lim"]
    summary = tabulate([["disagreement on data: max", log["disagreement_max"]],
                        ["disagreement on data: mean", log["disagreement_mean"]],
                        ["disagreement on data: 99th percentile", log["disagreement_p99"]],
                        ["truncate_lim", "none (naive)" if limit is None else limit],
                        ["share of data pairs over truncate_lim", log["halt_frac_data"]]],
                       floatfmt=".4g")
    return f"{members}\n{summary}"

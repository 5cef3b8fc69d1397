"""Fit (or load) the dynamics ensemble of a MOReL config, and its statistics on the dataset."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import torch
from tabulate import tabulate

from morel.config import MorelConfig
from morel.dynamics import DynamicsEnsemble, load_ensemble
from morel.errors import MorelError
from morel.floats import flush_subnormals
from morel.pmdp import truncate_limit
from morel.reward_model import RewardEnsemble


def fit_or_load_ensemble(cfg: MorelConfig, data: dict[str, torch.Tensor], obs_dim: int,
                         act_dim: int, device: torch.device, learn_reward: bool = False,
                         progress: bool = True) -> tuple[DynamicsEnsemble, dict[str, Any]]:
    """The ensemble for `cfg` (loaded from `model_file`, else fitted on data['s', 'a', 's_next'])
    and its log values: fit_epochs, dyn_loss_i (last epoch's training loss, normalised units),
    model_learning_time, and with `learn_reward` a reward model per member (rew_loss_i: MSE,
    reward units).
    """
    flush_subnormals()
    start = time.perf_counter()
    log: dict[str, Any] = {}
    if cfg.model_file:
        path = cfg.resolve_path("model_file")
        model, meta = load_ensemble(str(path), device)
        if (model.obs_dim, model.act_dim) != (obs_dim, act_dim):
            raise MorelError(f"{path}: ensemble is for obs/act dims {model.obs_dim}/"
                             f"{model.act_dim}, env '{cfg.env_name}' has {obs_dim}/{act_dim}")
        if meta.get("env_name") not in (None, cfg.env_name):
            raise MorelError(f"{path}: ensemble was fitted for env '{meta['env_name']}', the "
                             f"config's env is '{cfg.env_name}'")
        log["fit_epochs"] = 0
        if learn_reward and model.reward is None:
            raise MorelError(f"{path}: has no learned reward model and the config has no "
                             "reward_function; fit it with learn_model.py and learn_reward: True")
    else:
        model = DynamicsEnsemble(cfg.num_models, obs_dim, act_dim, cfg.hidden_size,
                                 cfg.activation, seed=cfg.seed).to(device)
        history = model.fit(data["s"], data["a"], data["s_next"], cfg.fit_epochs,
                            cfg.fit_mb_size, cfg.fit_lr, cfg.fit_wd, cfg.max_steps,
                            seed=cfg.seed, progress=progress)
        log["fit_epochs"] = len(history)
        check_fit(history[-1], "dynamics")
        for i, loss in enumerate(history[-1].tolist()):
            log[f"dyn_loss_{i}"] = loss
        if learn_reward:
            model.reward = RewardEnsemble(cfg.num_models, obs_dim, act_dim,
                                          seed=cfg.seed).to(device)
            losses = model.reward.fit(model, data["s"], data["a"], data["r"], cfg.fit_epochs,
                                      cfg.fit_mb_size, cfg.fit_lr, cfg.max_steps, cfg.seed,
                                      progress)
            check_fit(losses, "reward")
            for i, loss in enumerate(losses.tolist()):
                log[f"rew_loss_{i}"] = loss
    log["model_learning_time"] = time.perf_counter() - start
    return model, log


def check_fit(losses: torch.Tensor, kind: str) -> None:
    """Stop when a member's last training loss [E] is NaN/inf (a diverged fit is never saved)."""
    bad = (~torch.isfinite(losses)).nonzero().flatten().tolist()
    if bad:
        raise MorelError(f"the {kind} model fit diverged (NaN/inf loss in member(s) {bad}); "
                         "lower fit_lr or check the dataset")


def ensemble_meta(cfg: MorelConfig, path: Path | str | None = None) -> dict[str, Any]:
    """Metadata stored with a fitted ensemble."""
    return {"env_name": cfg.env_name, "act_repeat": cfg.act_repeat, "data_file": cfg.data_file,
            "seed": cfg.seed, "config": str(path or cfg.source)}


def ensemble_statistics(model: DynamicsEnsemble, data: dict[str, torch.Tensor],
                        pessimism_coef: float | None) -> dict[str, Any]:
    """One pass of the ensemble over the dataset: dyn_loss_gen_i (member i's next-state MSE, raw
    units), the disagreement's max / mean / 99th percentile, truncate_lim (None without
    pessimism) and halt_frac_data (share of dataset pairs over truncate_lim)."""
    mse, disagreement = model.dataset_statistics(data["s"], data["a"], data["s_next"])
    limit = truncate_limit(disagreement, pessimism_coef)
    stats: dict[str, Any] = {f"dyn_loss_gen_{i}": v for i, v in enumerate(mse.tolist())}
    k99 = max(1, math.ceil(0.99 * len(disagreement)))  # torch.quantile caps the input size
    stats.update(disagreement_max=float(disagreement.max()),
                 disagreement_mean=float(disagreement.mean()),
                 disagreement_p99=float(disagreement.kthvalue(k99).values), truncate_lim=limit,
                 halt_frac_data=(math.nan if limit is None
                                 else float((disagreement > limit).float().mean())))
    return stats


def model_table(log: dict[str, Any], num_models: int) -> str:
    """The ensemble's statistics as printed by learn_model.py and run_morel.py: a row per
    member, then the disagreement and threshold."""
    rows = [[i, log.get(f"dyn_loss_{i}", math.nan), log[f"dyn_loss_gen_{i}"]]
            for i in range(num_models)]
    members = tabulate(rows, headers=["member", "train loss (normalised)",
                                      "next-state MSE on data"], floatfmt=".4g")
    limit = log["truncate_lim"]
    summary = tabulate([["disagreement on data: max", log["disagreement_max"]],
                        ["disagreement on data: mean", log["disagreement_mean"]],
                        ["disagreement on data: 99th percentile", log["disagreement_p99"]],
                        ["truncate_lim", "none (naive)" if limit is None else limit],
                        ["share of data pairs over truncate_lim", log["halt_frac_data"]]],
                       floatfmt=".4g")
    return f"{members}\n{summary}"

"""Fit (or load) the dynamics ensemble of a MOReL config, and its statistics on the dataset."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from morel.config.schema import MorelConfig
from morel.core.errors import MorelError
from morel.core.floats import flush_subnormals
from morel.models.dynamics import DynamicsEnsemble
from morel.models.files import load_ensemble
from morel.models.reward import RewardEnsemble


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

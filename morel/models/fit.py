"""Fit (or load) the dynamics ensemble of a MOReL config, and its statistics on the dataset."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import torch

from morel.config.fields import ConfigError
from morel.config.schema import MorelConfig
from morel.core.errors import MorelError
from morel.core.floats import reproducible_cpu_math
from morel.core.holdout import holdout_split
from morel.core.seeding import Stream, stream, torch_generator
from morel.models.batched import BestMembers
from morel.models.dynamics import DynamicsEnsemble, successor_index
from morel.models.files import load_ensemble
from morel.models.reward import RewardEnsemble


def fit_or_load_ensemble(cfg: MorelConfig, data: dict[str, torch.Tensor], obs_dim: int,
                         act_dim: int, device: torch.device, learn_reward: bool = False,
                         progress: bool = True) -> tuple[DynamicsEnsemble, dict[str, Any]]:
    """The ensemble for `cfg` (loaded from `model_file`, else fitted on data['s', 'a', 's_next'])
    and its log values: fit_epochs, dyn_loss_i (last epoch's training loss, normalised units),
    model_learning_time, and with `learn_reward` a reward model per member (rew_loss_i: MSE,
    reward units). With num_elites only that many members of the fit are kept (`keep_elites`),
    before the reward model is fitted.
    """
    reproducible_cpu_math()
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
        log.update(fit_dynamics(model, cfg, data, progress))
        if cfg.num_elites:
            model = keep_elites(model, log, cfg.num_elites)
        if learn_reward:
            model.reward = RewardEnsemble(model.num_models, obs_dim, act_dim,
                                          seed=cfg.seed).to(device)
            losses = model.reward.fit(model, data["s"], data["a"], data["r"], cfg.fit_epochs,
                                      cfg.fit_mb_size, cfg.fit_lr, cfg.max_steps, cfg.seed,
                                      progress)
            check_fit(losses, "reward")
            for i, loss in enumerate(losses.tolist()):
                log[f"rew_loss_{i}"] = loss
    log["model_learning_time"] = time.perf_counter() - start
    return model, log


def fit_dynamics(model: DynamicsEnsemble, cfg: MorelConfig, data: dict[str, torch.Tensor],
                 progress: bool = True) -> dict[str, Any]:
    """Fit the ensemble on data['s', 'a', 's_next'] [M, .]; returns the log values fit_epochs and
    dyn_loss_i (last epoch's training loss; with fit_horizon > 1 the multi-step loss of
    `DynamicsEnsemble.rollout_loss` along the dataset's paths). With fit_holdout a random
    share of the samples (stream DYNAMICS_HOLDOUT) is held out: dyn_loss_heldout_i is member
    i's one-step loss on it (the training loss's units), and with fit_patience each member
    keeps its weights of its best held-out epoch (dyn_best_epoch_i) and the fit stops once no
    member improved for fit_patience epochs."""
    source = cfg.source or "config"
    for key in ("fit_patience", "num_elites"):
        if getattr(cfg, key) and not cfg.fit_holdout:
            raise ConfigError(f"{source}: '{key}' needs 'fit_holdout' > 0 (the held-out share "
                              "it watches)")
    if cfg.num_elites and cfg.num_elites > cfg.num_models:
        raise ConfigError(f"{source}: 'num_elites' ({cfg.num_elites}) is more than the "
                          f"'num_models' fitted ({cfg.num_models}); lower it or fit more members")
    train = held = None
    if cfg.fit_holdout > 0:
        train, held = holdout_split(len(data["s"]), cfg.fit_holdout,
                                    torch_generator(stream(cfg.seed, Stream.DYNAMICS_HOLDOUT)))
        held_data = [data[k][held.to(data[k].device)] for k in ("s", "a", "s_next")]
    fit_data = [data[k] if train is None else data[k][train.to(data[k].device)]
                for k in ("s", "a", "s_next")]
    follow = (successor_index(data["s"], data["s_next"], train) if cfg.fit_horizon > 1
              else None)
    best = BestMembers(model) if held is not None and cfg.fit_patience else None

    def after_epoch(epoch: int) -> bool:
        losses = heldout_loss(model, *held_data)
        return best.update(losses, epoch) >= cfg.fit_patience

    history = model.fit(*fit_data, cfg.fit_epochs, cfg.fit_mb_size, cfg.fit_lr, cfg.fit_wd,
                        cfg.max_steps, seed=cfg.seed, progress=progress,
                        after_epoch=after_epoch if best is not None else None,
                        horizon=cfg.fit_horizon, follow=follow)
    check_fit(history[-1], "dynamics")
    log: dict[str, Any] = {"fit_epochs": len(history)}
    log.update({f"dyn_loss_{i}": loss for i, loss in enumerate(history[-1].tolist())})
    if best is not None:
        best.restore()
        log.update({f"dyn_best_epoch_{i}": int(e) for i, e in enumerate(best.epoch.tolist())})
    if held is not None:
        log.update({f"dyn_loss_heldout_{i}": loss
                    for i, loss in enumerate(heldout_loss(model, *held_data).tolist())})
    return log


def keep_elites(model: DynamicsEnsemble, log: dict[str, Any],
                num_elites: int) -> DynamicsEnsemble:
    """The `num_elites` members of a held-out fit with the lowest dyn_loss_heldout_i, in their
    fitted order, as a new ensemble. `log` is rewritten to describe it: its per-member keys
    (dyn_loss_i, dyn_loss_heldout_i, dyn_best_epoch_i) are renumbered to the kept members,
    dyn_elite_index_i is kept member i's index among the fitted ones, dyn_fitted_members their
    number and dyn_loss_heldout_dropped_min the lowest held-out loss of a dropped member."""
    fitted = model.num_models
    heldout = torch.tensor([log[f"dyn_loss_heldout_{i}"] for i in range(fitted)])
    ranked = torch.argsort(heldout, stable=True).tolist()
    kept = sorted(ranked[:num_elites])
    per_member = [k for k in ("dyn_loss", "dyn_loss_heldout", "dyn_best_epoch")
                  if f"{k}_0" in log]
    values = {k: [log.pop(f"{k}_{i}") for i in range(fitted)] for k in per_member}
    for j, i in enumerate(kept):
        log[f"dyn_elite_index_{j}"] = i
        log.update({f"{k}_{j}": values[k][i] for k in per_member})
    log["dyn_fitted_members"] = fitted
    log["dyn_loss_heldout_dropped_min"] = (float(heldout[ranked[num_elites:]].min())
                                           if num_elites < fitted else math.nan)
    return model.members_subset(kept)


@torch.no_grad()
def heldout_loss(model: DynamicsEnsemble, s: torch.Tensor, a: torch.Tensor,
                 s_next: torch.Tensor, batch_size: int = 16384) -> torch.Tensor:
    """Each member's training loss on held-out samples [M, .], in chunks: [E]."""
    total = torch.zeros(model.num_models, device=s.device)
    for start in range(0, len(s), batch_size):
        chunk = slice(start, start + batch_size)
        total += model.normalised_loss(s[chunk], a[chunk], s_next[chunk]) * len(s[chunk])
    return total / len(s)


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

"""The fitted ensemble's file: architecture, weights and normalisation (dynamics and, when it was
learned, the reward model) and metadata, a torch file read back with weights_only=True."""

from __future__ import annotations

from typing import Any

import torch

from morel.core.atomic import atomic_path
from morel.core.errors import MorelError
from morel.core.torch_files import load_torch_file
from morel.models.dynamics import DynamicsEnsemble
from morel.models.reward import RewardEnsemble

FORMAT = "morel.dynamics_ensemble.v1"


def save_ensemble(model: DynamicsEnsemble, path: str, meta: dict[str, Any] | None = None) -> None:
    """Write the ensemble (architecture, weights and normalisation on CPU, `meta`) atomically."""
    payload = {"format": FORMAT, "num_models": model.num_models, "obs_dim": model.obs_dim,
               "act_dim": model.act_dim, "hidden_sizes": list(model.hidden_sizes),
               "activation": model.activation,
               "reward_hidden_sizes": (list(model.reward.hidden_sizes)
                                       if model.reward is not None else None),
               "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
               "meta": dict(meta or {})}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_ensemble(path: str, device: str | torch.device = "cpu"
                  ) -> tuple[DynamicsEnsemble, dict[str, Any]]:
    """Read a file written by `save_ensemble` -> (model, meta), with weights_only=True."""
    payload = load_torch_file(path, "model")
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise MorelError(f"{path}: not a morel dynamics ensemble (expected format '{FORMAT}')")
    try:
        model = DynamicsEnsemble(payload["num_models"], payload["obs_dim"], payload["act_dim"],
                                 payload["hidden_sizes"], payload["activation"])
        if payload.get("reward_hidden_sizes") is not None:
            model.reward = RewardEnsemble(model.num_models, model.obs_dim, model.act_dim,
                                          payload["reward_hidden_sizes"])
        model.load_state_dict(payload["state_dict"])
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        raise MorelError(f"{path}: model file is damaged ({type(err).__name__})") from None
    meta = payload.get("meta", {})
    return model.to(device), meta if isinstance(meta, dict) else {}

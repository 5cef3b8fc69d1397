"""Gaussian MLP policy (mjrl's semantics) and its file format.

mean(s) = MLP((s - in_shift) / (in_scale + 1e-6)) * out_scale + out_shift, tanh hidden layers, last
layer scaled by 0.01 at init; a state-independent `log_std` (first in the flat parameter vector)
clamped to [min_log_std, max_log_std] after every update.

File: a torch file holding plain tensors and builtin values only (architecture, weights,
transforms, metadata), read with `torch.load(weights_only=True)`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from morel.core.atomic import atomic_path
from morel.core.errors import MorelError, check_finite
from morel.core.torch_files import load_torch_file
from morel.envs.metadata import check_meta

FORMAT = "morel.gaussian_mlp.v1"
MAX_LAYER_SIZE = 1 << 16


class GaussianMLP(nn.Module):
    """pi(a|s) = N(mean(s), diag(exp(log_std))^2); shapes: obs [N, obs_dim] -> [N, act_dim]."""

    def __init__(self, obs_dim: int, act_dim: int, hidden_sizes: Sequence[int] = (64, 64),
                 init_log_std: float = 0.0, min_log_std: float = -3.0,
                 max_log_std: float = 1.0, seed: int | None = None):
        super().__init__()
        self.obs_dim, self.act_dim = int(obs_dim), int(act_dim)
        self.hidden_sizes = tuple(int(h) for h in hidden_sizes)
        self.log_std = nn.Parameter(torch.full((act_dim,), float(init_log_std)))
        with torch.random.fork_rng(devices=[]):
            if seed is not None:
                torch.manual_seed(seed)
            sizes = (self.obs_dim, *self.hidden_sizes, self.act_dim)
            self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes, sizes[1:]))
        with torch.no_grad():
            self.layers[-1].weight.mul_(0.01)
            self.layers[-1].bias.mul_(0.01)
        self.register_buffer("min_log_std", torch.tensor(float(min_log_std)))
        self.register_buffer("max_log_std", torch.tensor(float(max_log_std)))
        self.register_buffer("in_shift", torch.zeros(obs_dim))
        self.register_buffer("in_scale", torch.ones(obs_dim))
        self.register_buffer("out_shift", torch.zeros(act_dim))
        self.register_buffer("out_scale", torch.ones(act_dim))
        self.clamp_log_std()

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """Mean action [N, act_dim] of observations [N, obs_dim]."""
        h = (obs - self.in_shift) / (self.in_scale + 1e-6)
        for layer in self.layers[:-1]:
            h = torch.tanh(layer(h))
        return self.layers[-1](h) * self.out_scale + self.out_shift

    @torch.no_grad()
    def mean_linearization(self, obs: torch.Tensor
                           ) -> tuple[Callable[[list[torch.Tensor]], torch.Tensor],
                                      Callable[[torch.Tensor], list[torch.Tensor]]]:
        """(J v, J^T u) of the mean at obs [N, obs_dim] with respect to the layers' parameters
        (weight, bias per layer, the order of `parameters()` after log_std), J = d mean / d theta.
        One forward is cached; each product then costs two matmuls per layer (the FLOP floor).
        jvp(list of tensors shaped like the parameters) -> [N, act_dim];
        vjp(u [N, act_dim]) -> list of tensors shaped like the parameters."""
        h = [(obs - self.in_shift) / (self.in_scale + 1e-6)]  # inputs of each layer
        for layer in self.layers[:-1]:
            h.append(torch.tanh(layer(h[-1])))
        slopes = [1 - x**2 for x in h[1:]]  # tanh' at each hidden layer

        # in-place updates where possible: at these shapes the elementwise passes over [N, hidden]
        # cost as much as the matmuls
        def jvp(v: list[torch.Tensor]) -> torch.Tensor:
            dh = None
            for i, layer in enumerate(self.layers):
                dz = torch.addmm(v[2 * i + 1], h[i], v[2 * i].T)  # db + h dW^T
                if dh is not None:
                    dz.addmm_(dh, layer.weight.T)  # + dh W^T
                if i < len(slopes):
                    dh = dz.mul_(slopes[i])
            return dz.mul_(self.out_scale)

        def vjp(u: torch.Tensor) -> list[torch.Tensor]:
            grads: list[torch.Tensor] = []
            g = u * self.out_scale
            for i in range(len(self.layers) - 1, -1, -1):
                grads[:0] = [g.T @ h[i], g.sum(0)]
                if i > 0:
                    g = torch.mm(g, self.layers[i].weight).mul_(slopes[i - 1])
            return grads

        return jvp, vjp

    def clamp_log_std(self) -> None:
        with torch.no_grad():
            self.log_std.copy_(torch.maximum(torch.minimum(self.log_std, self.max_log_std),
                                             self.min_log_std))

    def log_likelihood(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        """log N(act; mean(obs), diag sigma^2) per sample, [N]."""
        z = (act - self(obs)) / torch.exp(self.log_std)
        return (-0.5 * (z**2).sum(-1) - self.log_std.sum()
                - 0.5 * self.act_dim * math.log(2 * math.pi))

    def flat_params(self) -> torch.Tensor:
        """All parameters as one vector, log_std first (mjrl's order)."""
        return torch.cat([p.detach().reshape(-1) for p in self.parameters()])

    def set_flat_params(self, flat: torch.Tensor) -> None:
        """Load a flat vector (order of `flat_params`), then clamp log_std."""
        offset = 0
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(flat[offset:offset + p.numel()].view_as(p))
                offset += p.numel()
        if offset != flat.numel():
            raise ValueError(f"flat vector has {flat.numel()} entries, policy has {offset}")
        self.clamp_log_std()

    def mean_std(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """numpy in/out: (mean [N, act_dim], std [N, act_dim]) of observations [N, obs_dim],
        taken as float32. A CPU policy computes in numpy on views of its current parameters:
        at the batch sizes of env stepping (1-16 rows) that is several times faster than a
        torch call, the same values up to float rounding (a test checks); others on their
        device."""
        if self.log_std.device.type != "cpu":
            return self.torch_mean_std(obs)
        log_std, *layers, in_shift, in_scale, out_shift, out_scale = self._numpy_views()
        h = np.asarray(obs, dtype=np.float32).astype(log_std.dtype, copy=False)
        with np.errstate(all="ignore"):  # inf/NaN propagate silently, as in torch
            h = (h - in_shift) / (in_scale + 1e-6)
            for i in range(0, len(layers), 2):
                h = h @ layers[i].T + layers[i + 1]
                if i + 2 < len(layers):
                    h = np.tanh(h)
            mean = h * out_scale + out_shift
        return mean, np.broadcast_to(np.exp(log_std), mean.shape).copy()

    @torch.no_grad()
    def torch_mean_std(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """`mean_std` through the torch forward on the policy's device (a GPU policy's path)."""
        mean = self(torch.as_tensor(obs, dtype=torch.float32, device=self.log_std.device))
        std = torch.exp(self.log_std).expand_as(mean)
        return mean.cpu().numpy(), std.cpu().numpy()

    def _numpy_views(self) -> list[np.ndarray]:
        """numpy views of log_std, each layer's weight and bias, and the input and output
        transforms (a CPU policy), kept while every tensor keeps its storage: in-place updates
        show through them; a moved, cast or copied policy makes new ones."""
        tensors = [self.log_std, *(t for layer in self.layers for t in (layer.weight, layer.bias)),
                   self.in_shift, self.in_scale, self.out_shift, self.out_scale]
        key = tuple(t.data_ptr() for t in tensors)
        cached = self.__dict__.get("_numpy_cache")
        if cached is None or cached[0] != key:
            cached = (key, [t.detach().numpy() for t in tensors])
            self.__dict__["_numpy_cache"] = cached
        return cached[1]

    def act(self, obs: np.ndarray, deterministic: bool = False,
            rng: np.random.Generator | None = None) -> np.ndarray:
        """Actions [N, act_dim] for observations [N, obs_dim]: the mean, or a Gaussian sample."""
        mean, std = self.mean_std(np.atleast_2d(obs))
        if deterministic:
            return mean
        rng = rng if rng is not None else np.random.default_rng()
        return (mean + std * rng.standard_normal(mean.shape)).astype(np.float32)

    def fold_obs_mask(self, obs_mask: np.ndarray) -> None:
        """Make the policy take raw observations when it was trained on `obs_mask * obs`
        (the original's way: in_scale = 1 / obs_mask)."""
        mask = torch.as_tensor(np.asarray(obs_mask), dtype=torch.float32,
                               device=self.in_scale.device)
        with torch.no_grad():
            self.in_shift.div_(mask)
            self.in_scale.div_(mask)


def check_policy_dims(policy: GaussianMLP, source: str, env_name: str, obs_dim: int,
                      act_dim: int) -> None:
    """A one-line MorelError naming `source` when the policy's dims are not the env's."""
    if (policy.obs_dim, policy.act_dim) != (obs_dim, act_dim):
        raise MorelError(f"{source}: policy is for obs/act dims {policy.obs_dim}/"
                         f"{policy.act_dim}, env '{env_name}' has {obs_dim}/{act_dim}")


def save_policy(policy: GaussianMLP, path: str | Path, meta: dict[str, Any] | None = None) -> None:
    """Write the policy (architecture, weights on CPU, transforms, `meta`) atomically; a policy
    with a NaN/inf parameter is never written (NumericError)."""
    path = Path(path)
    check_finite(f"the policy to be saved as {path}", policy.flat_params())
    payload = {
        "format": FORMAT,
        "obs_dim": policy.obs_dim,
        "act_dim": policy.act_dim,
        "hidden_sizes": list(policy.hidden_sizes),
        "state_dict": {k: v.detach().cpu().clone() for k, v in policy.state_dict().items()},
        "meta": dict(meta or {}),
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_policy(path: str | Path, device: str | torch.device = "cpu"
                ) -> tuple[GaussianMLP, dict[str, Any]]:
    """Read a policy file written by `save_policy` -> (policy, meta). Never runs code from it.
    (`morel.npg.mjrl_pickle.load_policy_source` also takes mjrl pickles.)"""
    path = Path(path)
    payload = load_torch_file(path, "policy", "; an mjrl policy pickle is read when its name "
                              "ends in .pickle or .pkl")
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise MorelError(f"{path}: not a morel policy file (expected format '{FORMAT}')")
    try:
        dims = [payload["obs_dim"], payload["act_dim"], *payload["hidden_sizes"]]
        if not all(type(d) is int and 0 < d <= MAX_LAYER_SIZE for d in dims):
            raise ValueError(f"layer sizes {dims[:8]} must be ints in [1, {MAX_LAYER_SIZE}]")
        policy = GaussianMLP(payload["obs_dim"], payload["act_dim"], payload["hidden_sizes"])
        policy.load_state_dict(payload["state_dict"])
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        raise MorelError(f"{path}: policy file is damaged ({type(err).__name__}: "
                         f"{str(err).splitlines()[0] if str(err) else ''})") from None
    if not all(bool(torch.isfinite(t).all()) for t in policy.state_dict().values()):
        raise MorelError(f"{path}: policy file is damaged (a NaN/inf weight); its actions would "
                         "be NaN")
    meta = payload.get("meta", {})
    meta = meta if isinstance(meta, dict) else {}
    check_meta(meta, str(path), policy.obs_dim, ("obs_mask", "trained_obs_mask"), "metadata ")
    return policy.to(device), meta


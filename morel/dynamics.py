"""Ensemble of dynamics models as ONE batched network (MOReL's WorldModel x num_models).

Member e maps normalised (s, a) to the normalised residual s' - s through an MLP whose layer l
holds weights [E, in_l, out_l] and biases [E, 1, out_l], so all members run in one batched matmul
per layer. Normalisation per member (the original's): shift = mean, scale = mean absolute
deviation from the mean, for s, a and the residual d = s' - s; eps 1e-8. Prediction:
    s' = s + mask * (out * (d_scale + 1e-8) + d_shift),   mask = (d_scale >= 1e-8)
(dimensions whose residual never varies in the data never change). Training: MSE in normalised
residual space, Adam (elementwise, so one Adam over [E, ...] tensors equals E separate ones),
member e initialised and shuffled with its own streams of the run seed (morel.seeding:
DYNAMICS_INIT and DYNAMICS_ORDER, index e), so no two members or runs share one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from morel.atomic import atomic_path
from morel.errors import MorelError
from morel.seeding import Stream, stream, torch_generator
from morel.torch_files import load_torch_file

FORMAT = "morel.dynamics_ensemble.v1"
ACTIVATIONS = {"relu": torch.relu, "tanh": torch.tanh}


class BatchedMLP(nn.Module):
    """`num_models` MLPs of the same shape held as weights [E, in, out] and biases [E, 1, out];
    member e is initialised as nn.Linear would be, from stream (`init_stream`, e) of `seed`."""

    def __init__(self, num_models: int, sizes: Sequence[int], activation: str = "relu",
                 seed: int = 123, init_stream: Stream = Stream.DYNAMICS_INIT):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise MorelError(f"activation '{activation}' is not one of {', '.join(ACTIVATIONS)}")
        self.num_models, self.activation = int(num_models), activation
        weights = [torch.empty(num_models, a, b) for a, b in zip(sizes, sizes[1:])]
        biases = [torch.empty(num_models, 1, b) for b in sizes[1:]]
        for e in range(num_models):
            gen = torch_generator(stream(seed, init_stream, e))
            for w, b in zip(weights, biases):
                bound = 1.0 / math.sqrt(w.shape[1])
                w[e].uniform_(-bound, bound, generator=gen)
                b[e].uniform_(-bound, bound, generator=gen)
        self.weights = nn.ParameterList(nn.Parameter(w) for w in weights)
        self.biases = nn.ParameterList(nn.Parameter(b) for b in biases)

    def member(self, e: int) -> nn.Sequential:
        """Member e as an ordinary nn.Sequential of nn.Linear layers holding copies of its
        weights (on the same device): the one-model-at-a-time form of the original."""
        layers: list[nn.Module] = []
        for w, b in zip(self.weights, self.biases):
            linear = nn.Linear(w.shape[1], w.shape[2]).to(w.device)
            with torch.no_grad():
                linear.weight.copy_(w[e].T)
                linear.bias.copy_(b[e, 0])
            layers += [linear, nn.Tanh() if self.activation == "tanh" else nn.ReLU()]
        return nn.Sequential(*layers[:-1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Inputs [E, N, in] -> outputs [E, N, out]; each member on its own slice."""
        act = ACTIVATIONS[self.activation]
        for w, b in zip(self.weights[:-1], self.biases[:-1]):
            x = act(torch.baddbmm(b, x, w))
        return torch.baddbmm(self.biases[-1], x, self.weights[-1])


def member_orders(num: int, gens: list[torch.Generator], device: torch.device) -> torch.Tensor:
    """One epoch's data order per member, [E, num]: member e shuffles with its own generator."""
    return torch.stack([torch.randperm(num, generator=g) for g in gens]).to(device)


class DynamicsEnsemble(BatchedMLP):
    """`num_models` residual MLP dynamics models; shapes: s [N, obs_dim], a [N, act_dim]."""

    def __init__(self, num_models: int, obs_dim: int, act_dim: int,
                 hidden_sizes: Sequence[int] = (512, 512), activation: str = "relu",
                 seed: int = 123):
        hidden = tuple(int(h) for h in hidden_sizes)
        super().__init__(num_models, (obs_dim + act_dim, *hidden, obs_dim), activation, seed,
                         Stream.DYNAMICS_INIT)
        self.obs_dim, self.act_dim, self.hidden_sizes = int(obs_dim), int(act_dim), hidden
        for name, dim in (("s", obs_dim), ("a", act_dim), ("d", obs_dim)):
            self.register_buffer(f"{name}_shift", torch.zeros(num_models, dim))
            self.register_buffer(f"{name}_scale", torch.ones(num_models, dim))
        self.reward: nn.Module | None = None  # optional learned reward (morel.reward_model)

    def normalised_inputs(self, s: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """[E, N, obs_dim + act_dim] normalised inputs; s, a are [N, .] (shared) or [E, N, .]."""
        s_n = (s - self.s_shift[:, None]) / (self.s_scale[:, None] + 1e-8)
        a_n = (a - self.a_shift[:, None]) / (self.a_scale[:, None] + 1e-8)
        return torch.cat([s_n, a_n], dim=-1)

    @property
    def residual_mask(self) -> torch.Tensor:
        """[E, obs_dim]: 1 where the residual varies in the data, 0 where it never changes."""
        return (self.d_scale >= 1e-8).to(self.d_scale.dtype)

    def predict_all(self, s: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """Next states of every member, [E, N, obs_dim], for s [N, obs_dim] (or [E, N, obs_dim]:
        member e at its own states) and a likewise."""
        out = self(self.normalised_inputs(s, a))
        delta = out * (self.d_scale[:, None] + 1e-8) + self.d_shift[:, None]
        return s + self.residual_mask[:, None] * delta

    @torch.no_grad()
    def set_normalisation(self, s: torch.Tensor, a: torch.Tensor, s_next: torch.Tensor) -> None:
        """Shift = mean, scale = mean |x - mean| over the data [M, .], the same for every member."""
        for name, x in (("s", s), ("a", a), ("d", s_next - s)):
            mean = x.mean(0)
            getattr(self, f"{name}_shift").copy_(mean.expand(self.num_models, -1))
            getattr(self, f"{name}_scale").copy_((x - mean).abs().mean(0)
                                                 .expand(self.num_models, -1))

    def fit(self, s: torch.Tensor, a: torch.Tensor, s_next: torch.Tensor, epochs: int,
            batch_size: int, lr: float = 1e-3, weight_decay: float = 0.0,
            max_steps: float = math.inf, seed: int = 123,
            progress: bool = True) -> list[torch.Tensor]:
        """Train all members together on transitions s, a, s_next [M, .] (same device as the
        model). Each epoch, member e visits the data in its own order (stream DYNAMICS_ORDER, e) in
        M // batch_size minibatches; training stops after the epoch in which the total step
        count reaches max_steps. Returns the per-member mean minibatch loss of each epoch, [E]."""
        self.set_normalisation(s, a, s_next)
        num, dev = len(s), s.device
        if num < batch_size:
            raise MorelError(f"dataset has {num} transitions, fewer than fit_mb_size "
                             f"{batch_size}; lower fit_mb_size")
        optimizer = torch.optim.Adam(self.parameters(), lr=lr, weight_decay=weight_decay)
        gens = [torch_generator(stream(seed, Stream.DYNAMICS_ORDER, e))
                for e in range(self.num_models)]
        d_scale = self.d_scale[:, None] + 1e-8
        steps_per_epoch, total, history = num // batch_size, 0, []
        bar = tqdm(total=epochs, desc="fitting dynamics", unit="epoch", disable=not progress,
                   dynamic_ncols=True)
        for _ in range(epochs):
            order = member_orders(num, gens, dev)
            epoch_loss = torch.zeros(self.num_models, device=dev)
            for k in range(steps_per_epoch):
                idx = order[:, k * batch_size:(k + 1) * batch_size]  # [E, B]
                pred = self(self.normalised_inputs(s[idx], a[idx]))
                target = (s_next[idx] - s[idx] - self.d_shift[:, None]) / d_scale
                member_loss = ((pred - target) ** 2).mean(dim=(1, 2))
                optimizer.zero_grad(set_to_none=True)
                member_loss.sum().backward()  # members share no weights: independent gradients
                optimizer.step()
                epoch_loss += member_loss.detach()
            history.append(epoch_loss / steps_per_epoch)
            total += steps_per_epoch
            bar.update(1)
            bar.set_postfix(loss=f"{history[-1].mean().item():.4g}")
            if total >= max_steps:
                break
        bar.close()
        return history

    @torch.no_grad()
    @torch.no_grad()
    def dataset_statistics(self, s: torch.Tensor, a: torch.Tensor, s_next: torch.Tensor,
                           batch_size: int = 65536) -> tuple[torch.Tensor, torch.Tensor]:
        """One forward pass over a dataset [M, .]: each member's next-state MSE in raw units [E]
        and the disagreement (max pairwise L2 between members) at every pair [M]."""
        total = torch.zeros(self.num_models, device=s.device)
        disagreement = []
        for start in range(0, len(s), batch_size):
            chunk = slice(start, start + batch_size)
            preds = self.predict_all(s[chunk], a[chunk])
            total += ((preds - s_next[chunk]) ** 2).mean(-1).sum(-1)
            disagreement.append(max_pairwise_distance(preds))
        return total / len(s), torch.cat(disagreement)


def max_pairwise_distance(predictions: torch.Tensor) -> torch.Tensor:
    """[E, N, obs_dim] member predictions -> [N] largest L2 distance between two members."""
    if predictions.shape[0] < 2:
        return torch.zeros(predictions.shape[1], device=predictions.device)
    diffs = predictions[:, None] - predictions[None, :]  # [E, E, N, obs_dim]
    return torch.linalg.vector_norm(diffs, dim=-1).amax(dim=(0, 1))


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
            from morel.reward_model import RewardEnsemble

            model.reward = RewardEnsemble(model.num_models, model.obs_dim, model.act_dim,
                                          payload["reward_hidden_sizes"])
        model.load_state_dict(payload["state_dict"])
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        raise MorelError(f"{path}: model file is damaged ({type(err).__name__})") from None
    meta = payload.get("meta", {})
    return model.to(device), meta if isinstance(meta, dict) else {}

"""Ensemble of dynamics models as ONE batched network (MOReL's WorldModel x num_models).

Member e maps normalised (s, a) to the normalised residual s' - s through an MLP whose layer l
holds weights [E, in_l, out_l] and biases [E, 1, out_l], so all members run in one batched matmul
per layer. Normalisation per member (the original's): shift = mean, scale = mean absolute
deviation from the mean, for s, a and the residual d = s' - s; eps 1e-8. Prediction:
    s' = s + mask * (out * (d_scale + 1e-8) + d_shift),   mask = (d_scale >= 1e-8)
(dimensions whose residual never varies in the data never change). Training: MSE in normalised
residual space, Adam (elementwise, so one Adam over [E, ...] tensors equals E separate ones),
member e initialised and shuffled with its own streams of the run seed (morel.core.seeding:
DYNAMICS_INIT and DYNAMICS_ORDER, index e), so no two members or runs share one. The batched
layers and the member-wise fit loop are `morel.models.batched`; the file is `morel.models.files`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import nn

from morel.core.seeding import Stream
from morel.models.batched import BatchedMLP, fit_members, member_adam, member_generators


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
        self.reward: nn.Module | None = None  # optional learned reward (morel.models.reward)

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

    def members_subset(self, members: Sequence[int]) -> DynamicsEnsemble:
        """A new ensemble of the given members, in that order: their weights and normalisation
        copied (every parameter and buffer holds the member index first). For an ensemble
        without a learned reward (it is fitted after the members are chosen)."""
        idx = torch.as_tensor(list(members), dtype=torch.long, device=self.s_shift.device)
        subset = DynamicsEnsemble(len(idx), self.obs_dim, self.act_dim, self.hidden_sizes,
                                  self.activation).to(self.s_shift.device)
        subset.load_state_dict({k: v[idx] for k, v in self.state_dict().items()})
        return subset

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
            max_steps: float = math.inf, seed: int = 123, progress: bool = True,
            after_epoch: Callable[[int], bool] | None = None, horizon: int = 1,
            follow: torch.Tensor | None = None) -> list[torch.Tensor]:
        """Train all members together on transitions s, a, s_next [M, .] (same device as the
        model) with `fit_members` (member e's data order: stream DYNAMICS_ORDER, e; after_epoch:
        its early-stopping hook); returns the per-member mean minibatch loss of each epoch,
        [E]. With horizon > 1 the loss is `rollout_loss` along `follow` [M] (each pair's
        successor in its path, -1 at a path's end; default `successor_index(s, s_next)`)."""
        self.set_normalisation(s, a, s_next)
        optimizer = member_adam(self, lr, weight_decay)
        if horizon > 1 and follow is None:
            follow = successor_index(s, s_next)

        def member_loss(idx: torch.Tensor) -> torch.Tensor:
            if horizon > 1:
                return self.rollout_loss(s, a, s_next, follow, idx, horizon)
            return self.normalised_loss(s[idx], a[idx], s_next[idx])

        return fit_members(self, member_loss, len(s), batch_size, optimizer,
                           member_generators(seed, Stream.DYNAMICS_ORDER, self.num_models),
                           epochs, max_steps, "fitting dynamics", progress, after_epoch)

    def normalised_loss(self, s: torch.Tensor, a: torch.Tensor,
                        s_next: torch.Tensor) -> torch.Tensor:
        """The training loss [E]: MSE of the normalised residual; s, a, s_next are [E, B, .]
        (member e's minibatch) or [M, .] (the same samples for every member)."""
        pred = self(self.normalised_inputs(s, a))
        target = (s_next - s - self.d_shift[:, None]) / (self.d_scale[:, None] + 1e-8)
        return ((pred - target) ** 2).mean(dim=(1, 2))

    def rollout_loss(self, s: torch.Tensor, a: torch.Tensor, s_next: torch.Tensor,
                     follow: torch.Tensor, idx: torch.Tensor, horizon: int) -> torch.Tensor:
        """The multi-step training loss [E]: member e starts at the dataset states s[idx[e]]
        (idx [E, B]) and steps on its own predictions with the dataset path's actions for up
        to `horizon` steps; step k's term is the normalised residual MSE between the member's
        prediction and the path's true next state from the member's k-step state (k = 0: the
        one-step loss), gradients flowing through the earlier predictions. A step counts while
        its pair is still in the same path (`follow` [M]: successor index, -1 at a path's
        end); the loss is the mean over the counted (sample, step) terms."""
        mask = self.residual_mask[:, None]
        state, live = s[idx], torch.ones(idx.shape, dtype=torch.bool, device=idx.device)
        total = torch.zeros(self.num_models, device=s.device)
        count = torch.zeros(self.num_models, device=s.device)
        scale = self.d_scale[:, None] + 1e-8
        for k in range(horizon):
            state_next = self.predict_all(state, a[idx])  # [E, B, obs_dim]
            err = (((state_next - s_next[idx]) / scale * mask) ** 2).mean(-1)  # [E, B]
            total = total + (err * live).sum(1)
            count = count + live.sum(1)
            if k == horizon - 1:
                break
            state = state_next
            nxt = follow[idx]
            live = live & (nxt >= 0)
            idx = nxt.clamp(min=0)
        return total / count

    @torch.no_grad()
    def dataset_statistics(self, s: torch.Tensor, a: torch.Tensor, s_next: torch.Tensor,
                           batch_size: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
        """One forward pass over a dataset [M, .]: each member's mean squared next-state error per
        state dimension in raw units [E, obs_dim] (`.mean(-1)`: its next-state MSE) and the
        disagreement (max pairwise L2 between members) at every pair [M]. In chunks of
        `batch_size` pairs: a chunk's activations ([E, 1024, 512]) stay in a CPU's cache, about
        2x faster than chunks of 65536, and memory does not grow with the dataset."""
        total = torch.zeros(self.num_models, self.obs_dim, device=s.device)
        disagreement = []
        for start in range(0, len(s), batch_size):
            chunk = slice(start, start + batch_size)
            preds = self.predict_all(s[chunk], a[chunk])
            total += ((preds - s_next[chunk]) ** 2).sum(1)
            disagreement.append(max_pairwise_distance(preds))
        return total / len(s), torch.cat(disagreement)


def successor_index(s: torch.Tensor, s_next: torch.Tensor,
                    subset: torch.Tensor | None = None) -> torch.Tensor:
    """[M] index of each pair's successor in its path (pair i + 1 when s[i + 1] equals
    s_next[i] exactly, as in a dataset that stores its paths one after another), else -1.
    With `subset` (indices [K] of the pairs kept, in any order) the result is [K]: positions
    within the subset, -1 where the successor is not kept."""
    follow = torch.full((len(s),), -1, dtype=torch.long, device=s.device)
    same = (s[1:] == s_next[:-1]).all(dim=-1)
    follow[:-1][same] = torch.arange(1, len(s), device=s.device)[same]
    if subset is None:
        return follow
    subset = subset.to(s.device)
    position = torch.full_like(follow, -1)
    position[subset] = torch.arange(len(subset), device=s.device)
    chosen = follow[subset]
    return torch.where(chosen >= 0, position[chosen.clamp(min=0)], chosen)


def max_pairwise_distance(predictions: torch.Tensor) -> torch.Tensor:
    """[E, N, obs_dim] member predictions -> [N] largest L2 distance between two members."""
    if predictions.shape[0] < 2:
        return torch.zeros(predictions.shape[1], device=predictions.device)
    diffs = predictions[:, None] - predictions[None, :]  # [E, E, N, obs_dim]
    return torch.linalg.vector_norm(diffs, dim=-1).amax(dim=(0, 1))

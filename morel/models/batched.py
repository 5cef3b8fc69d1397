"""`num_models` MLPs of one shape as ONE network, and the one member-wise fit loop.

Layer l of the ensemble holds weights [E, in_l, out_l] and biases [E, 1, out_l], so all members run
in one batched matmul per layer (mbrl-lib's EnsembleLinearLayer layout). `fit_members` trains
them together: each epoch member e visits the data in its own order, every minibatch step sums
the members' losses (members share no weights, so their gradients are independent) and Adam,
being elementwise, then equals E separate optimisers. The dynamics and the learned reward models
both fit through it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import nn
from tqdm import tqdm

from morel.core.errors import MorelError
from morel.core.seeding import Stream, stream, torch_generator

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


def member_adam(model: nn.Module, lr: float, weight_decay: float = 0.0) -> torch.optim.Adam:
    """One Adam over the model's [E, ...] parameters, in torch's fused form (one kernel per step
    for every parameter: at minibatch 256 a CPU fit epoch is about 1.2x faster than with the
    default foreach form; the same update up to float rounding, which a test checks)."""
    return torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay, fused=True)


def member_generators(seed: int, purpose: Stream, num_models: int) -> list[torch.Generator]:
    """One CPU generator per member: stream (purpose, e) of the run seed."""
    return [torch_generator(stream(seed, purpose, e)) for e in range(num_models)]


def member_orders(num: int, gens: list[torch.Generator], device: torch.device) -> torch.Tensor:
    """One epoch's data order per member, [E, num]: member e shuffles with its own generator."""
    return torch.stack([torch.randperm(num, generator=g) for g in gens]).to(device)


def fit_members(model: nn.Module, member_loss: Callable[[torch.Tensor], torch.Tensor], num: int,
                batch_size: int, optimizer: torch.optim.Optimizer,
                generators: list[torch.Generator], epochs: int, max_steps: float = math.inf,
                desc: str = "fitting", progress: bool = True,
                after_epoch: Callable[[int], bool] | None = None) -> list[torch.Tensor]:
    """The member-wise minibatch loop. Each epoch, member e draws its own order of the `num`
    samples (generators[e]) and takes num // batch_size minibatches of it; `member_loss(idx)`
    maps indices [E, B] to the members' losses [E], and one optimizer step follows on their sum.
    Training stops after the epoch in which the step count reaches max_steps, or when
    `after_epoch(epoch)` (epochs count from 1) returns True. Returns each epoch's mean minibatch
    loss per member, [E] each."""
    if num < batch_size:
        raise MorelError(f"dataset has {num} transitions, fewer than fit_mb_size "
                         f"{batch_size}; lower fit_mb_size")
    device = next(model.parameters()).device
    num_models = len(generators)
    steps_per_epoch, total, history = num // batch_size, 0, []
    bar = tqdm(total=epochs, desc=desc, unit="epoch", disable=not progress, dynamic_ncols=True)
    for epoch in range(1, epochs + 1):
        order = member_orders(num, generators, device)
        epoch_loss = torch.zeros(num_models, device=device)
        for k in range(steps_per_epoch):
            loss = member_loss(order[:, k * batch_size:(k + 1) * batch_size])  # [E]
            optimizer.zero_grad(set_to_none=True)
            loss.sum().backward()  # members share no weights: independent gradients
            optimizer.step()
            epoch_loss += loss.detach()
        history.append(epoch_loss / steps_per_epoch)
        total += steps_per_epoch
        bar.update(1)
        bar.set_postfix(loss=f"{history[-1].mean().item():.4g}")
        if total >= max_steps or (after_epoch is not None and after_epoch(epoch)):
            break
    bar.close()
    return history


class BestMembers:
    """Each member's weights at its lowest held-out loss so far (early stopping per member)."""

    def __init__(self, model: BatchedMLP):
        self.params = [*model.weights, *model.biases]  # each [E, ...]
        self.kept = [p.detach().clone() for p in self.params]
        self.loss = torch.full((model.num_models,), math.inf, device=self.kept[0].device)
        self.epoch = torch.zeros(model.num_models, dtype=torch.long)
        self.last_improved = 0

    @torch.no_grad()
    def update(self, losses: torch.Tensor, epoch: int) -> int:
        """Keep the members whose held-out loss [E] is a new low; returns the epochs since any
        member last improved."""
        better = losses < self.loss
        if bool(better.any()):
            for kept, p in zip(self.kept, self.params):
                kept[better] = p[better]
            self.loss = torch.where(better, losses, self.loss)
            self.epoch[better.cpu()] = epoch
            self.last_improved = epoch
        return epoch - self.last_improved

    @torch.no_grad()
    def restore(self) -> None:
        """Put every member's kept weights back."""
        for kept, p in zip(self.kept, self.params):
            p.copy_(kept)

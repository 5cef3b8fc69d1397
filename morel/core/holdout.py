"""A random held-out share of a dataset's samples (behaviour cloning and the dynamics fit)."""

from __future__ import annotations

import torch


def holdout_split(num: int, share: float, generator: torch.Generator | None
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """(train, held-out) indices into range(num), on the CPU: a random `share` of them (at
    least one, never all) is held out."""
    order = torch.randperm(num, generator=generator, device="cpu")
    held = min(max(1, int(num * share)), num - 1)
    return order[held:], order[:held]

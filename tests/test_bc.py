"""Behaviour cloning recovers a known policy's mean from its (noisy) actions."""

from __future__ import annotations

import torch

from morel.bc import bc_loss, behavior_clone
from morel.policies import GaussianMLP


def test_bc_fits_a_known_policy():
    teacher = GaussianMLP(5, 2, (32, 32), seed=0)
    with torch.no_grad():
        teacher.layers[-1].weight.mul_(300)  # a policy with a clearly non-zero mean
    gen = torch.Generator().manual_seed(0)
    obs = torch.randn(20_000, 5, generator=gen)
    with torch.no_grad():
        clean = teacher(obs)
    actions = clean + 0.05 * torch.randn(clean.shape, generator=gen)
    student = GaussianMLP(5, 2, (32, 32), init_log_std=-1.0, seed=1)
    log_std = student.log_std.detach().clone()
    before, after = behavior_clone(student, obs, actions, epochs=5, batch_size=256,
                                   generator=torch.Generator().manual_seed(0), progress=False)
    assert before > 0.05
    assert after < 0.1 * before
    held_out = torch.randn(2000, 5, generator=gen)
    with torch.no_grad():
        assert bc_loss(student, held_out, teacher(held_out)) < 0.1 * before
    torch.testing.assert_close(student.log_std.detach(), log_std)  # no gradient to log_std

"""The benchmark's reference (the original's per-member rollouts, disagreement afterwards) computes
what pmdp_rollouts computes, so the speed ratios compare equal work."""

from __future__ import annotations

import sys

import torch
from conftest import ROOT

from morel.dynamics import DynamicsEnsemble
from morel.pmdp import HaltRules, pmdp_rollouts
from morel.policies import GaussianMLP

sys.path.insert(0, str(ROOT / "bench"))
from reference import reference_rollouts  # noqa: E402


def test_reference_rollouts_equal_the_batched_ones():
    model = DynamicsEnsemble(3, 4, 2, (16,), seed=0)
    data = torch.randn(300, 4) * 0.3
    model.set_normalisation(data, torch.rand(300, 2) * 2 - 1, data + 0.05 * torch.randn(300, 4))
    policy = GaussianMLP(4, 2, (8,), init_log_std=-20.0, min_log_std=-20.0, seed=1)
    starts = data[:5]
    ours = pmdp_rollouts(model, policy, starts, 12, HaltRules(None), lambda p, t: p["actions"]
                         .sum(-1), None, generator=torch.Generator().manual_seed(0))
    obs, disagreement = reference_rollouts(model, policy, starts, 12,
                                           torch.Generator().manual_seed(0))
    torch.testing.assert_close(ours.batch.observations, obs, rtol=1e-5, atol=1e-5)
    _, expected = model.dataset_statistics(obs.reshape(-1, 4),
                                           ours.batch.actions.reshape(-1, 2),
                                           obs.reshape(-1, 4))
    torch.testing.assert_close(disagreement.reshape(-1), expected, rtol=1e-4, atol=1e-5)

"""Disagreement and threshold against a per-pair, per-sample reference."""

from __future__ import annotations

import itertools

import pytest
import torch

from morel.dynamics import DynamicsEnsemble
from morel.pmdp import dataset_disagreement, max_pairwise_distance, truncate_limit


def reference_disagreement(predictions):
    n = predictions.shape[1]
    out = torch.zeros(n, dtype=torch.float64)
    for k in range(n):
        for i, j in itertools.combinations(range(predictions.shape[0]), 2):
            d = torch.sqrt(((predictions[i, k].double() - predictions[j, k].double()) ** 2).sum())
            out[k] = max(out[k], d)
    return out


@pytest.mark.parametrize("members", [1, 2, 4])
def test_max_pairwise_distance_matches_reference(members):
    preds = torch.randn(members, 30, 5)
    torch.testing.assert_close(max_pairwise_distance(preds).double(),
                               reference_disagreement(preds), rtol=1e-5, atol=1e-6)


def test_dataset_disagreement_in_batches_and_threshold():
    model = DynamicsEnsemble(3, 4, 2, (8,), seed=0)
    s, a = torch.randn(101, 4), torch.randn(101, 2)
    full = dataset_disagreement(model, s, a)
    torch.testing.assert_close(dataset_disagreement(model, s, a, batch_size=7), full)
    torch.testing.assert_close(full.double(), reference_disagreement(model.predict_all(s, a)),
                               rtol=1e-5, atol=1e-6)
    assert truncate_limit(full, 0.5) == pytest.approx(2 * float(full.max()))
    assert truncate_limit(full, None) is None and truncate_limit(full, 0.0) is None

"""Value baseline: features as the original, relative error, fitting reduces the error."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from morel.npg.baselines import MLPBaseline, baseline_features, relative_error
from morel.npg.paths import PathBatch


def ragged_paths(lengths, obs_dim=3, seed=0):
    rng = np.random.default_rng(seed)
    return [{"observations": rng.normal(scale=8, size=(n, obs_dim)).astype(np.float32),
             "actions": rng.normal(size=(n, 1)).astype(np.float32),
             "rewards": rng.normal(size=n).astype(np.float32)} for n in lengths]


def test_features_match_the_original_per_path_formula():
    paths = ragged_paths([5, 2, 7])
    batch = PathBatch.from_paths(paths)
    feats = baseline_features(batch.observations)
    for i, path in enumerate(paths):
        obs = path["observations"]
        u = np.arange(len(obs))[:, None] / 1000.0
        expected = np.concatenate([np.clip(obs, -10, 10) / 10.0, u, u**2, u**3, u**4], axis=1)
        np.testing.assert_allclose(feats[i, :len(obs)].numpy(), expected, rtol=1e-6, atol=1e-9)


def test_relative_error_closed_form():
    r, v = torch.tensor([1.0, 2.0, -2.0]), torch.tensor([0.0, 2.0, -1.0])
    assert relative_error(r, v) == pytest.approx((1 + 0 + 1) / (1 + 4 + 4 + 1e-8))


def test_fit_reduces_error_and_predict_zeroes_padding():
    paths = ragged_paths([40, 25, 60, 10] * 20, seed=1)
    batch = PathBatch.from_paths(paths)
    # a smooth target of the features: the net can learn it
    returns = (torch.tanh(batch.observations[..., 0] / 10) * 3
               + torch.arange(batch.mask.shape[1]) / 30.0) * batch.mask
    baseline = MLPBaseline(3, lr=1e-3, batch_size=64, epochs=20, seed=0)
    before, after = baseline.fit(batch, returns, torch.Generator().manual_seed(0))
    assert after < 0.05 < before
    values = baseline.predict(batch)
    assert torch.all(values[batch.mask == 0] == 0)
    assert relative_error(batch.valid(returns), batch.valid(values)) == pytest.approx(after)


def test_fit_takes_the_originals_number_of_minibatches():
    batch = PathBatch.from_paths(ragged_paths([100, 30]))
    baseline = MLPBaseline(3, batch_size=32, epochs=2, seed=0)
    baseline.fit(batch, batch.rewards, torch.Generator().manual_seed(0))
    steps = baseline.optimizer.state_dict()["state"][0]["step"]
    assert int(steps) == 2 * max(130 // 32 - 1, 1)  # one minibatch fewer per epoch


def test_same_seed_same_fit():
    batch = PathBatch.from_paths(ragged_paths([30, 20]))
    outs = []
    for _ in range(2):
        baseline = MLPBaseline(3, seed=3, batch_size=8)
        baseline.fit(batch, batch.rewards, torch.Generator().manual_seed(1))
        outs.append(baseline.predict(batch))
    torch.testing.assert_close(outs[0], outs[1], rtol=0, atol=0)

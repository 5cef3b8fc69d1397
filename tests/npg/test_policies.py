"""Gaussian MLP policy: semantics of mjrl's MLP, and a file format that never runs code."""

from __future__ import annotations

import os
import pickle
from copy import deepcopy

import numpy as np
import pytest
import torch

from morel.core.errors import MorelError
from morel.npg.policies import GaussianMLP, load_policy, save_policy


def test_init_order_and_clamp():
    policy = GaussianMLP(5, 2, (16, 16), init_log_std=-0.5, min_log_std=-1.0, seed=3)
    params = list(policy.parameters())
    assert params[0] is policy.log_std  # log_std first in the flat vector
    assert policy.layers[-1].weight.abs().max() < 0.01 * 0.26  # last layer scaled by 0.01
    flat = policy.flat_params()
    flat[:2] = torch.tensor([-5.0, 3.0])
    policy.set_flat_params(flat)
    assert policy.log_std.tolist() == [-1.0, 1.0]
    same = GaussianMLP(5, 2, (16, 16), init_log_std=-0.5, min_log_std=-1.0, seed=3)
    torch.testing.assert_close(same.layers[0].weight, policy.layers[0].weight)


def test_log_likelihood_matches_torch_distribution():
    policy = GaussianMLP(4, 3, (8,), init_log_std=-0.3, seed=0)
    obs, act = torch.randn(10, 4), torch.randn(10, 3)
    dist = torch.distributions.Normal(policy(obs), torch.exp(policy.log_std))
    torch.testing.assert_close(policy.log_likelihood(obs, act), dist.log_prob(act).sum(-1))


def test_numpy_mean_std_equals_the_torch_forward():
    """mean_std of a CPU policy runs in numpy on views of its tensors: the torch forward's values
    (float32 and float64 policies), in-place updates seen at once, a copied or cast policy on its
    own tensors."""
    policy = GaussianMLP(5, 2, (16, 16), init_log_std=-0.5, seed=4)
    with torch.no_grad():
        policy.layers[-1].weight.mul_(40)  # away from the tiny init
        policy.in_shift.fill_(0.3)
        policy.in_scale.fill_(2.0)
        policy.out_scale.copy_(torch.tensor([1.5, 0.5]))
        policy.out_shift.copy_(torch.tensor([0.1, -0.2]))
    obs = np.random.default_rng(0).normal(size=(7, 5))

    def torch_mean(p: GaussianMLP) -> np.ndarray:
        with torch.no_grad():
            return p(torch.as_tensor(obs, dtype=torch.float32)).double().numpy()

    mean, std = policy.mean_std(obs)
    assert mean.dtype == std.dtype == np.float32 and mean.shape == std.shape == (7, 2)
    np.testing.assert_allclose(mean, torch_mean(policy), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(std, np.exp(-0.5) * np.ones((7, 2)), rtol=1e-6)
    torch_mean_, torch_std = policy.torch_mean_std(obs)  # a GPU policy's path, here on the CPU
    assert torch_mean_.dtype == torch_std.dtype == np.float32
    np.testing.assert_allclose(torch_mean_, mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(torch_std, std)
    flat = policy.flat_params()
    policy.set_flat_params(flat * 1.1)  # in place: the cached views see it
    np.testing.assert_allclose(policy.mean_std(obs)[0], torch_mean(policy), rtol=1e-5, atol=1e-6)
    copy = deepcopy(policy)
    copy.set_flat_params(flat)  # the copy's own tensors; the original keeps its values
    np.testing.assert_allclose(copy.mean_std(obs)[0], torch_mean(copy), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(policy.mean_std(obs)[0], torch_mean(policy), rtol=1e-5, atol=1e-6)
    assert np.abs(copy.mean_std(obs)[0] - policy.mean_std(obs)[0]).max() > 1e-3
    double = policy.double()
    mean64 = double.mean_std(obs)[0]
    assert mean64.dtype == np.float64
    np.testing.assert_allclose(mean64, torch_mean(double), rtol=1e-12)


def test_save_load_round_trip_with_transforms(tmp_path):
    policy = GaussianMLP(11, 3, (8, 8), seed=1)
    policy.fold_obs_mask(np.array([1.0] * 5 + [0.02] * 6))
    save_policy(policy, tmp_path / "p.pt", {"env_name": "Hopper-v5", "obs_mask": None})
    loaded, meta = load_policy(tmp_path / "p.pt")
    obs = np.random.default_rng(0).normal(size=(6, 11))
    np.testing.assert_array_equal(loaded.act(obs, deterministic=True),
                                  policy.act(obs, deterministic=True))
    assert meta["env_name"] == "Hopper-v5"


def test_malicious_and_corrupt_files_are_refused(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    with open(tmp_path / "evil.pt", "wb") as f:
        pickle.dump({"format": "morel.gaussian_mlp.v1", "x": Evil()}, f)
    with pytest.raises(MorelError, match="evil.pt: not a readable policy file"):
        load_policy(tmp_path / "evil.pt")
    assert not marker.exists()
    torch.save({"something": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(MorelError, match="not a morel policy file"):
        load_policy(tmp_path / "other.pt")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(MorelError, match="junk.pt: not a readable policy file"):
        load_policy(tmp_path / "junk.pt")

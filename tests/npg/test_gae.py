"""Returns and GAE on padded batches against a straightforward float64 per-path reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from morel.npg.gae import discounted_returns, gae_advantages, whiten


def reference(rewards, values, terminated, gamma, lam):
    """Per-path loops, as written in the paper (float64 numpy)."""
    returns, advs = [], []
    for r, b, term in zip(rewards, values, terminated):
        t_len = len(r)
        ret, run = np.zeros(t_len), 0.0
        for t in reversed(range(t_len)):
            run = r[t] + gamma * run
            ret[t] = run
        b_next = np.append(b[1:], 0.0 if term else b[-1])
        delta = r + gamma * b_next - b
        adv, run = np.zeros(t_len), 0.0
        for t in reversed(range(t_len)):
            run = delta[t] + gamma * lam * run
            adv[t] = run
        returns.append(ret)
        advs.append(adv)
    return returns, advs


def padded(paths, horizon):
    out = torch.zeros(len(paths), horizon, dtype=torch.float64)
    for i, p in enumerate(paths):
        out[i, :len(p)] = torch.as_tensor(p)
    return out


@pytest.mark.parametrize("seed", range(5))
def test_matches_per_path_reference_on_ragged_batches(seed):
    rng = np.random.default_rng(seed)
    horizon = 60
    lengths = rng.integers(1, horizon + 1, size=12)
    lengths[0] = horizon  # a path that fills the batch
    rewards = [rng.normal(size=t) for t in lengths]
    values = [rng.normal(size=t) * 3 for t in lengths]
    terminated = rng.random(12) < 0.5
    gamma, lam = 0.99, 0.95
    ref_ret, ref_adv = reference(rewards, values, terminated, gamma, lam)
    mask = padded([np.ones(t) for t in lengths], horizon)
    ret = discounted_returns(padded(rewards, horizon), mask, gamma)
    adv = gae_advantages(padded(rewards, horizon), padded(values, horizon), mask,
                         torch.as_tensor(terminated), gamma, lam)
    for i, t in enumerate(lengths):
        np.testing.assert_allclose(ret[i, :t].numpy(), ref_ret[i], rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(adv[i, :t].numpy(), ref_adv[i], rtol=1e-10, atol=1e-10)
        assert (ret[i, t:] == 0).all() and (adv[i, t:] == 0).all()


def test_closed_form_constant_reward():
    mask = torch.ones(1, 5, dtype=torch.float64)
    ret = discounted_returns(torch.ones(1, 5, dtype=torch.float64), mask, 0.5)
    np.testing.assert_allclose(ret[0].numpy(), [2 - 0.5**4 * 1, 2 - 0.5**3, 1.75, 1.5, 1.0])


def test_whitening_uses_valid_steps_only():
    adv = torch.tensor([[1.0, 2.0, 3.0], [4.0, 0.0, 0.0]], dtype=torch.float64)
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]], dtype=torch.float64)
    w = whiten(adv, mask)
    valid = np.array([1.0, 2.0, 3.0, 4.0])
    expected = (valid - valid.mean()) / (valid.std() + 1e-6)
    np.testing.assert_allclose(w[mask.bool()].numpy(), expected)
    assert (w[~mask.bool()] == 0).all()

"""Batched dynamics ensemble: equals separate single models, fits a known linear system."""

from __future__ import annotations

import math

import pytest
import torch

from morel.config.fields import ConfigError
from morel.config.files import config_from_dict
from morel.core import seeding
from morel.core.errors import MorelError
from morel.models import batched
from morel.models.dynamics import DynamicsEnsemble, successor_index
from morel.models.files import load_ensemble, save_ensemble
from morel.models.fit import fit_dynamics, fit_or_load_ensemble


def reference_predict(model: DynamicsEnsemble, e: int, s: torch.Tensor, a: torch.Tensor):
    """The original's single-model formula, in float64."""
    net = model.member(e).double()
    x = torch.cat([(s - model.s_shift[e]) / (model.s_scale[e] + 1e-8),
                   (a - model.a_shift[e]) / (model.a_scale[e] + 1e-8)], -1).double()
    delta = net(x) * (model.d_scale[e].double() + 1e-8) + model.d_shift[e].double()
    return s.double() + delta * (model.d_scale[e] >= 1e-8).double()


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_batched_ensemble_equals_separate_models(activation):
    model = DynamicsEnsemble(3, 5, 2, (16, 8), activation, seed=0)
    with torch.no_grad():
        model.s_shift.normal_(), model.s_scale.uniform_(0.5, 2)
        model.a_shift.normal_(), model.a_scale.uniform_(0.5, 2)
        model.d_shift.normal_(), model.d_scale.uniform_(0.1, 1)
        model.d_scale[:, 3] = 0.0  # a dimension that never changes
    s, a = torch.randn(40, 5), torch.randn(40, 2)
    pred = model.predict_all(s, a)
    assert pred.shape == (3, 40, 5)
    for e in range(3):
        torch.testing.assert_close(pred[e].double(), reference_predict(model, e, s, a),
                                   rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(pred[:, :, 3], s[None, :, 3].expand(3, -1))
    own = model.predict_all(s.expand(3, -1, -1), a.expand(3, -1, -1))  # per-member states
    torch.testing.assert_close(own, pred)


def as_member(monkeypatch, e):
    """Make a 1-member ensemble take member e's streams (its weights and data order)."""
    monkeypatch.setattr(batched, "stream",
                        lambda seed, purpose, i: seeding.stream(seed, purpose, i + e))


def test_members_are_initialised_from_their_own_streams(monkeypatch):
    batched = DynamicsEnsemble(3, 4, 2, (8,), seed=10)
    for e in range(3):
        as_member(monkeypatch, e)
        alone = DynamicsEnsemble(1, 4, 2, (8,), seed=10)
        for wb, wa in zip(batched.weights, alone.weights):
            torch.testing.assert_close(wb[e], wa[0], rtol=0, atol=0)
    assert not torch.equal(batched.weights[0][0], batched.weights[0][1])


def linear_system(n, seed=0):
    """s' = s + s A + a B with state dim 2 constant; A, B fixed, data drawn from `seed`."""
    fixed = torch.Generator().manual_seed(1234)
    a_mat = torch.randn(4, 4, generator=fixed) * 0.1
    b_mat = torch.randn(2, 4, generator=fixed) * 0.2
    gen = torch.Generator().manual_seed(seed)
    s = torch.randn(n, 4, generator=gen)
    s[:, 2] = 1.5  # constant state dimension
    a = torch.rand(n, 2, generator=gen) * 2 - 1
    step = s @ a_mat + a @ b_mat
    step[:, 2] = 0.0
    return s, a, s + step


def test_fit_recovers_a_linear_system():
    s, a, s_next = linear_system(2000)
    model = DynamicsEnsemble(2, 4, 2, (32, 32), seed=0)
    history = model.fit(s, a, s_next, epochs=20, batch_size=32, lr=3e-3, progress=False)
    assert history[-1].shape == (2,)
    assert torch.all(history[-1] < 0.01 * history[0])
    s_test, a_test, next_test = linear_system(500, seed=1)
    err = model.dataset_statistics(s_test, a_test, next_test)[0].mean(-1)
    baseline = ((next_test - s_test) ** 2).mean()  # predicting "no change"
    assert torch.all(err < 2e-3 * baseline), (err, baseline)
    torch.testing.assert_close(model.predict_all(s_test, a_test)[:, :, 2],
                               torch.full((2, 500), 1.5))  # never-changing dim stays exact


def linear_paths(num_paths, length, constant_dim=True, seed=0):
    """Paths of the linear system of `linear_system` stored one after another (s[t + 1] is
    s_next[t] inside a path), each from its own random start, with random actions."""
    fixed = torch.Generator().manual_seed(1234)
    a_mat = torch.randn(4, 4, generator=fixed) * 0.1
    b_mat = torch.randn(2, 4, generator=fixed) * 0.2
    gen = torch.Generator().manual_seed(seed)
    states, actions, nexts = [], [], []
    for _ in range(num_paths):
        x = torch.randn(4, generator=gen)
        if constant_dim:
            x[2] = 1.5
        for _ in range(length):
            u = torch.rand(2, generator=gen) * 2 - 1
            step = x @ a_mat + u @ b_mat
            if constant_dim:
                step[2] = 0.0
            states.append(x)
            actions.append(u)
            nexts.append(x + step)
            x = x + step
    return torch.stack(states), torch.stack(actions), torch.stack(nexts)


def test_successor_index_follows_stored_paths_and_a_subset():
    s, _, s_next = linear_paths(3, 4)
    assert successor_index(s, s_next).tolist() == [1, 2, 3, -1, 5, 6, 7, -1, 9, 10, 11, -1]
    # kept pairs 5, 0, 1, 6, 11, 10: 5 -> 6 (position 3), 0 -> 1 (2), 1 -> 2 and 6 -> 7 not
    # kept, 11 ends its path, 10 -> 11 (4)
    subset = torch.tensor([5, 0, 1, 6, 11, 10])
    assert successor_index(s, s_next, subset).tolist() == [3, 2, -1, -1, -1, 4]


def test_rollout_loss_matches_a_float64_multi_step_recomputation():
    """Member e steps on its own predictions along the path's actions; each step's term is the
    normalised residual error against the path's true next state, averaged over the steps a
    path still has; the constant dimension (residual scale 0) adds nothing."""
    s, a, s_next = linear_paths(3, 6)
    model = DynamicsEnsemble(2, 4, 2, (8,), seed=0)
    model.set_normalisation(s, a, s_next)
    follow = successor_index(s, s_next)
    idx = torch.tensor([[0, 4, 9], [2, 5, 17]])  # pairs 5 and 17 end their paths
    loss = model.rollout_loss(s, a, s_next, follow, idx, horizon=3)
    mask = model.residual_mask.double()
    for e in range(2):
        terms = []
        for start in idx[e].tolist():
            state, j = s[start], start
            for _ in range(3):
                pred = reference_predict(model, e, state[None], a[j][None])[0]
                scaled = (pred - s_next[j].double()) / (model.d_scale[e].double() + 1e-8)
                terms.append(((scaled * mask[e]) ** 2).mean())
                if follow[j] < 0:
                    break
                state, j = pred.float(), int(follow[j])
        assert len(terms) == 3 + 2 + 3 if e == 0 else len(terms) == 3 + 1 + 1
        torch.testing.assert_close(loss[e].double(), torch.stack(terms).mean(),
                                   rtol=1e-4, atol=1e-7)
    # without successors only step 0 counts: the one-step training loss
    s, a, s_next = linear_paths(3, 6, constant_dim=False)
    model.set_normalisation(s, a, s_next)
    alone = model.rollout_loss(s, a, s_next, torch.full((len(s),), -1), idx, horizon=3)
    torch.testing.assert_close(alone, model.normalised_loss(s[idx], a[idx], s_next[idx]))


def test_multi_step_fit_without_successors_is_the_one_step_fit():
    """A dataset of one-step paths gives the multi-step loss nothing to chain: the fit with
    fit_horizon 3 equals the one-step fit weight for weight; with paths it differs."""
    s, a, s_next = linear_paths(300, 1, constant_dim=False)
    fits = []
    for horizon in (1, 3):
        model = DynamicsEnsemble(2, 4, 2, (16,), seed=0)
        model.fit(s, a, s_next, epochs=2, batch_size=50, progress=False, horizon=horizon)
        fits.append(model)
    for w1, w3 in zip(fits[0].weights, fits[1].weights):
        torch.testing.assert_close(w1, w3)
    s, a, s_next = linear_paths(30, 10, constant_dim=False)
    chained = [DynamicsEnsemble(2, 4, 2, (16,), seed=0) for _ in range(2)]
    for model, horizon in zip(chained, (1, 3)):
        model.fit(s, a, s_next, epochs=2, batch_size=50, progress=False, horizon=horizon)
    assert not torch.allclose(chained[0].weights[0], chained[1].weights[0])


def test_batched_fit_equals_fitting_each_member_alone(monkeypatch):
    s, a, s_next = linear_system(600)
    batched = DynamicsEnsemble(2, 4, 2, (16,), seed=3)
    hist = batched.fit(s, a, s_next, epochs=2, batch_size=50, seed=3, progress=False)
    for e in range(2):
        as_member(monkeypatch, e)
        alone = DynamicsEnsemble(1, 4, 2, (16,), seed=3)
        alone_hist = alone.fit(s, a, s_next, epochs=2, batch_size=50, seed=3, progress=False)
        torch.testing.assert_close(hist[-1][e], alone_hist[-1][0], rtol=1e-5, atol=1e-7)
        for wb, wa in zip(batched.weights, alone.weights):
            torch.testing.assert_close(wb[e], wa[0], rtol=1e-4, atol=1e-6)


def test_fused_adam_fit_equals_the_default_adam(monkeypatch):
    """member_adam is torch's fused Adam: the same fit as the default (foreach) Adam up to
    float rounding, weight decay included."""
    s, a, s_next = linear_system(600)
    fused = DynamicsEnsemble(3, 4, 2, (16, 16), seed=5)
    fused.fit(s, a, s_next, epochs=3, batch_size=50, weight_decay=1e-3, seed=5, progress=False)
    assert all(group["fused"] for group in batched.member_adam(fused, 1e-3).param_groups)
    monkeypatch.setattr("morel.models.dynamics.member_adam", lambda model, lr, wd=0.0:
                        torch.optim.Adam(model.parameters(), lr=lr, weight_decay=wd))
    default = DynamicsEnsemble(3, 4, 2, (16, 16), seed=5)
    default.fit(s, a, s_next, epochs=3, batch_size=50, weight_decay=1e-3, seed=5,
                progress=False)
    start = DynamicsEnsemble(3, 4, 2, (16, 16), seed=5)
    for wf, wd, w0 in zip([*fused.weights, *fused.biases], [*default.weights, *default.biases],
                          [*start.weights, *start.biases]):
        torch.testing.assert_close(wf, wd, rtol=1e-4, atol=1e-6)
        assert (wf - w0).abs().max() > 1e-3  # the fit moved every tensor


def test_max_steps_stops_after_the_epoch():
    s, a, s_next = linear_system(600)
    model = DynamicsEnsemble(2, 4, 2, (8,), seed=0)
    history = model.fit(s, a, s_next, epochs=50, batch_size=100, max_steps=13, progress=False)
    assert len(history) == 3  # 6 steps per epoch: stops once 18 >= 13


def noisy_fit_config(**keys):
    return config_from_dict({"env_name": "Hopper-v5", "data_file": "unused.npz",
                             "num_models": 3, "hidden_size": (64, 64), "fit_lr": 3e-3,
                             "fit_mb_size": 32, "fit_epochs": 60, "seed": 5, **keys})


def test_held_out_fit_keeps_each_members_best_epoch_and_stops():
    """fit_holdout + fit_patience: each member ends with the weights of its best held-out
    epoch (a fit capped at that epoch ends with the same member and the same held-out loss),
    and the fit stops before fit_epochs once no member improves."""
    s, a, s_next = linear_system(300)
    s_next = s_next + 0.3 * torch.randn(s_next.shape, generator=torch.Generator().manual_seed(7))
    s_next[:, 2] = 1.5
    data = {"s": s, "a": a, "s_next": s_next}
    model = DynamicsEnsemble(3, 4, 2, (64, 64), seed=5)
    log = fit_dynamics(model, noisy_fit_config(fit_holdout=0.3, fit_patience=4), data, False)
    assert log["fit_epochs"] < 60  # stopped early on the noisy data
    best = [log[f"dyn_best_epoch_{i}"] for i in range(3)]
    assert all(1 <= e <= log["fit_epochs"] - 4 for e in best)
    for i, epoch in enumerate(best):
        capped = DynamicsEnsemble(3, 4, 2, (64, 64), seed=5)
        capped_log = fit_dynamics(capped, noisy_fit_config(fit_holdout=0.3, fit_epochs=epoch),
                                  data, False)
        assert capped_log["fit_epochs"] == epoch and "dyn_best_epoch_0" not in capped_log
        assert capped_log[f"dyn_loss_heldout_{i}"] == log[f"dyn_loss_heldout_{i}"]
        for kept, direct in zip([*model.weights, *model.biases],
                                [*capped.weights, *capped.biases]):
            assert torch.equal(kept[i], direct[i])
    plain = fit_dynamics(DynamicsEnsemble(3, 4, 2, (64, 64), seed=5),
                         noisy_fit_config(fit_epochs=3), data, False)
    assert set(plain) == {"fit_epochs", "dyn_loss_0", "dyn_loss_1", "dyn_loss_2"}


def test_multi_step_fit_chains_only_training_pairs_of_one_path(monkeypatch):
    """fit_horizon with fit_holdout: the successors handed to the fit index the training
    pairs, and each one is the next pair of the same path."""
    s, a, s_next = linear_paths(20, 15)
    seen = {}
    fit = DynamicsEnsemble.fit

    def spy(self, s_fit, a_fit, next_fit, *args, **kwargs):
        seen.update(s=s_fit, s_next=next_fit, **kwargs)
        return fit(self, s_fit, a_fit, next_fit, *args, **kwargs)

    monkeypatch.setattr(DynamicsEnsemble, "fit", spy)
    log = fit_dynamics(DynamicsEnsemble(2, 4, 2, (16,), seed=0),
                       noisy_fit_config(fit_holdout=0.2, fit_horizon=3, fit_epochs=2),
                       {"s": s, "a": a, "s_next": s_next}, False)
    assert math.isfinite(log["dyn_loss_0"]) and seen["horizon"] == 3
    follow = seen["follow"]
    assert len(follow) == len(seen["s"]) == 240  # 300 pairs, 60 held out
    linked = follow >= 0
    assert 100 < int(linked.sum()) < 240 - 20  # path ends and held-out successors unlinked
    torch.testing.assert_close(seen["s"][follow[linked]], seen["s_next"][linked],
                               rtol=0, atol=0)


def test_elites_are_the_members_with_the_lowest_held_out_loss():
    """num_elites keeps the members ranked best on the held-out share, with their own weights
    (the same predictions as in the fitted ensemble) and the log renumbered to them."""
    s, a, s_next = linear_system(300)
    s_next = s_next + 0.3 * torch.randn(s_next.shape, generator=torch.Generator().manual_seed(7))
    data = {"s": s, "a": a, "s_next": s_next}
    cfg = noisy_fit_config(num_models=5, num_elites=2, fit_holdout=0.3, fit_epochs=4)
    full = DynamicsEnsemble(5, 4, 2, (64, 64), seed=5)
    full_log = fit_dynamics(full, cfg, data, False)
    model, log = fit_or_load_ensemble(cfg, data, 4, 2, torch.device("cpu"), progress=False)
    held = [full_log[f"dyn_loss_heldout_{i}"] for i in range(5)]
    expected = sorted(sorted(range(5), key=held.__getitem__)[:2])
    assert model.num_models == 2 and log["dyn_fitted_members"] == 5
    assert [log[f"dyn_elite_index_{j}"] for j in range(2)] == expected
    assert max(log[f"dyn_loss_heldout_{j}"] for j in range(2)) <= \
        log["dyn_loss_heldout_dropped_min"] == min(h for i, h in enumerate(held)
                                                    if i not in expected)
    for j, i in enumerate(expected):
        assert log[f"dyn_loss_{j}"] == full_log[f"dyn_loss_{i}"]
        assert log[f"dyn_loss_heldout_{j}"] == held[i]
    assert "dyn_loss_2" not in log and "dyn_loss_heldout_2" not in log
    torch.testing.assert_close(model.predict_all(s, a), full.predict_all(s, a)[expected],
                               rtol=0, atol=0)
    for key, value, message in (("fit_holdout", 0.0, "'num_elites' needs 'fit_holdout'"),
                                ("num_elites", 6, r"'num_elites' \(6\) is more than")):
        with pytest.raises(ConfigError, match=message):
            fit_dynamics(DynamicsEnsemble(5, 4, 2, (8,)), noisy_fit_config(
                **{"num_models": 5, "num_elites": 2, "fit_holdout": 0.3, key: value}), data,
                False)


def test_save_load_roundtrip_and_bad_files(tmp_path):
    model = DynamicsEnsemble(2, 4, 2, (8,), seed=0)
    s, a, s_next = linear_system(300)
    model.set_normalisation(s, a, s_next)
    save_ensemble(model, str(tmp_path / "m.pt"), {"env_name": "X"})
    loaded, meta = load_ensemble(str(tmp_path / "m.pt"))
    assert meta == {"env_name": "X"}
    torch.testing.assert_close(loaded.predict_all(s, a), model.predict_all(s, a))
    with pytest.raises(MorelError, match="model file not found"):
        load_ensemble(str(tmp_path / "missing.pt"))
    torch.save({"format": "other"}, tmp_path / "o.pt")
    with pytest.raises(MorelError, match="not a morel dynamics ensemble"):
        load_ensemble(str(tmp_path / "o.pt"))
    (tmp_path / "c.pt").write_bytes(b"garbage")
    with pytest.raises(MorelError, match="not a readable model file"):
        load_ensemble(str(tmp_path / "c.pt"))


def test_learned_reward_fits_a_known_function_and_is_saved(tmp_path):
    from morel.models.reward import RewardEnsemble, learned_reward_function

    s, a, s_next = linear_system(2000)
    r = s[:, 0] - 0.5 * (a**2).sum(-1) + (s_next[:, 1] - s[:, 1]) * 3  # uses s' too
    model = DynamicsEnsemble(2, 4, 2, (32, 32), seed=0)
    model.fit(s, a, s_next, epochs=20, batch_size=32, lr=3e-3, progress=False)
    model.reward = RewardEnsemble(2, 4, 2, (32, 32), seed=0)
    loss = model.reward.fit(model, s, a, r, epochs=20, batch_size=32, lr=3e-3, progress=False)
    assert loss.shape == (2,) and torch.all(loss < 0.02 * r.var())
    s_test, a_test, next_test = linear_system(300, seed=1)
    r_test = s_test[:, 0] - 0.5 * (a_test**2).sum(-1) + (next_test[:, 1] - s_test[:, 1]) * 3
    paths = {"observations": s_test.reshape(2, 150, 4), "actions": a_test.reshape(2, 150, 2),
             "next_observations": next_test.reshape(2, 150, 4)}
    pred = learned_reward_function(model)(paths)  # path 0 scored by member 0, path 1 by member 1
    assert pred.shape == (2, 150)
    assert ((pred.reshape(-1) - r_test) ** 2).mean() < 0.05 * r_test.var()
    save_ensemble(model, str(tmp_path / "m.pt"))
    loaded, _ = load_ensemble(str(tmp_path / "m.pt"))
    torch.testing.assert_close(learned_reward_function(loaded)(paths), pred)


def test_a_diverged_fit_stops_naming_the_member():
    from morel.models.fit import check_fit

    check_fit(torch.tensor([0.1, 0.2]), "dynamics")
    with pytest.raises(MorelError, match=r"dynamics model fit diverged .*member\(s\) \[1, 2\]"):
        check_fit(torch.tensor([0.1, math.nan, math.inf]), "dynamics")

"""Behaviour cloning recovers a known policy's mean from its (noisy) actions; run_bc.py's job."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import ROOT, collect_hopper_medium, read_job_log, run_script

from morel.core.holdout import holdout_split
from morel.core.seeding import Stream, stream
from morel.envs.sampling import episode_returns, mean_action_fn
from morel.envs.wrapper import make_vector_env
from morel.npg.bc import (
    BCSettings,
    bc_loss,
    behavior_clone,
    match_residual_std,
)
from morel.npg.policies import GaussianMLP, load_policy


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
    log = behavior_clone(student, obs, actions, BCSettings(epochs=5, batch_size=256),
                         torch.Generator().manual_seed(0), progress=False)
    before, after = log["bc_loss_before"], log["bc_loss_after"]
    assert set(log) == {"bc_loss_before", "bc_loss_after"}  # the original's fixed epochs
    assert before > 0.05
    assert after < 0.1 * before
    held_out = torch.randn(2000, 5, generator=gen)
    with torch.no_grad():
        assert bc_loss(student, held_out, teacher(held_out)) < 0.1 * before
    torch.testing.assert_close(student.log_std.detach(), log_std)  # no gradient to log_std


def noisy_teacher_data(num: int, noise: float, seed: int = 0
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """Observations [num, 5] (one dimension 0.02 times as wide, like masked velocities) and a
    random policy's mean actions [num, 2] plus Gaussian noise."""
    teacher = GaussianMLP(5, 2, (32, 32), seed=seed)
    with torch.no_grad():
        teacher.layers[-1].weight.mul_(300)
    gen = torch.Generator().manual_seed(seed)
    obs = torch.randn(num, 5, generator=gen) * torch.tensor([1.0, 1.0, 1.0, 1.0, 0.02])
    with torch.no_grad():
        clean = teacher(obs / torch.tensor([1.0, 1.0, 1.0, 1.0, 0.02]))
    return obs, clean + noise * torch.randn(clean.shape, generator=gen)


def test_held_out_bc_keeps_the_best_epochs_weights_and_stops():
    """With a held-out share the kept policy is the one after epoch bc_epochs (its held-out
    loss is the logged one, and a run capped at that epoch ends with the same weights); on
    small noisy data training stops before the cap."""
    obs, actions = noisy_teacher_data(600, 0.5)
    settings = BCSettings(epochs=200, batch_size=32, holdout=0.2, patience=3)
    student = GaussianMLP(5, 2, (32, 32), seed=1)
    log = behavior_clone(student, obs, actions, settings, torch.Generator().manual_seed(3),
                         progress=False)
    assert 1 <= log["bc_epochs"] < settings.epochs  # stopped early
    _, held = holdout_split(600, 0.2, torch.Generator().manual_seed(3))
    assert len(held) == 120
    assert bc_loss(student, obs[held], actions[held]) == log["bc_loss_heldout"]
    capped = GaussianMLP(5, 2, (32, 32), seed=1)
    capped_log = behavior_clone(capped, obs, actions,
                                BCSettings(epochs=log["bc_epochs"], batch_size=32, holdout=0.2,
                                           patience=3),
                                torch.Generator().manual_seed(3), progress=False)
    assert capped_log["bc_epochs"] == log["bc_epochs"]
    for kept, direct in zip(student.parameters(), capped.parameters()):
        assert torch.equal(kept, direct)


def test_normalised_bc_sets_the_input_transform_and_ignores_input_units():
    """bc_normalize: in_shift / in_scale are the data's float64 mean / std, so cloning on
    observations in other units (x 50 in one dimension) gives the same mean actions."""
    obs, actions = noisy_teacher_data(4000, 0.05)
    settings = BCSettings(epochs=2, normalize=True)
    student = GaussianMLP(5, 2, (32, 32), seed=1)
    behavior_clone(student, obs, actions, settings, torch.Generator().manual_seed(0),
                   progress=False)
    np.testing.assert_allclose(student.in_shift.numpy(), obs.double().mean(0).numpy(),
                               rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(student.in_scale.numpy(), obs.double().std(0).numpy(), rtol=1e-6)
    units = torch.tensor([1.0, 1.0, 1.0, 1.0, 50.0])
    rescaled = GaussianMLP(5, 2, (32, 32), seed=1)
    behavior_clone(rescaled, obs * units, actions, settings, torch.Generator().manual_seed(0),
                   progress=False)
    with torch.no_grad():
        torch.testing.assert_close(rescaled(obs * units), student(obs), atol=2e-4, rtol=1e-3)


def test_normalised_inputs_fit_steep_dimensions_better():
    """The narrow input dimension makes the raw-input fit steep; normalising fits it better in
    the same steps (the masked-velocity case of the shipped logging policies)."""
    obs, actions = noisy_teacher_data(8000, 0.05)
    losses = {}
    for normalize in (False, True):
        student = GaussianMLP(5, 2, (32, 32), seed=1)
        log = behavior_clone(student, obs, actions, BCSettings(epochs=3, normalize=normalize),
                             torch.Generator().manual_seed(0), progress=False)
        losses[normalize] = log["bc_loss_after"]
    assert losses[True] < 0.7 * losses[False]


def test_bc_init_std_is_the_residual_spread_per_dimension_clamped():
    policy = GaussianMLP(4, 3, (16,), init_log_std=-0.25, min_log_std=-2.0, seed=0)
    gen = torch.Generator().manual_seed(0)
    obs = torch.randn(5000, 4, generator=gen)
    with torch.no_grad():
        mean = policy(obs)
    spread = torch.tensor([0.3, 0.2, 0.0001])  # the last is below exp(min_log_std) = 0.135
    actions = mean + 0.02 + spread * torch.randn(mean.shape, generator=gen)  # a small bias too
    std = match_residual_std(policy, obs, actions)
    residual = actions.double() - mean.double()
    expected = np.sqrt((residual ** 2).mean(0).numpy())  # ML std around the cloned mean
    expected[2] = np.exp(-2.0)
    np.testing.assert_allclose(std.numpy(), expected, rtol=1e-5)
    np.testing.assert_allclose(policy.log_std.detach().numpy(), np.log(expected), rtol=1e-5)
    assert std[0] == pytest.approx(0.3, rel=0.05) and std[1] == pytest.approx(0.2, rel=0.05)


def test_run_bc_job_scores_the_saved_policy_on_the_raw_env(tmp_path):
    """run_bc.py: the logged score is the saved (mask-folded) policy's mean return on real
    episodes, recomputed here in float64 from the file; BC lowered its loss."""
    data = collect_hopper_medium(tmp_path / "d.npz", 2000)
    job = tmp_path / "bc"
    run = run_script("experiments/run_bc.py", "-c", ROOT / "configs" / "hopper_v5_quick.txt",
                     "-o", job,
                     "--set", f"data_file={data}", "--seed", "4", "--episodes", "3")
    assert run.returncode == 0, run.stderr
    log = read_job_log(job)
    assert log["bc_loss_after"][0] < log["bc_loss_before"][0]
    assert log["eval_episodes"] == [3] and log["dataset_samples"][0] >= 2000
    policy, meta = load_policy(job / "policy_final.pt")
    assert meta["trained_by"] == "run_bc.py" and meta["obs_mask"] == [1.0] * 11
    env = make_vector_env("Hopper-v5", 3, 1)  # raw observations: the mask is folded in
    returns = episode_returns(env, mean_action_fn(policy.double().mean_std),
                              stream(4, Stream.EVALUATION, 0))
    assert log["eval_score"][0] == pytest.approx(float(np.mean(returns)), rel=1e-3)
    again = run_script("experiments/run_bc.py", "-c", ROOT / "configs" / "hopper_v5_quick.txt",
                       "-o", job,
                       "--set", f"data_file={data}")
    assert again.returncode == 2 and "already holds a run" in again.stderr

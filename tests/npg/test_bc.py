"""Behaviour cloning recovers a known policy's mean from its (noisy) actions; run_bc.py's job."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import ROOT, collect_hopper_medium, read_job_log, run_script

from morel.core.seeding import Stream, stream
from morel.envs.sampling import episode_returns, mean_action_fn
from morel.envs.wrapper import make_vector_env
from morel.npg.bc import bc_loss, behavior_clone, match_residual_std
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
    before, after = behavior_clone(student, obs, actions, epochs=5, batch_size=256,
                                   generator=torch.Generator().manual_seed(0), progress=False)
    assert before > 0.05
    assert after < 0.1 * before
    held_out = torch.randn(2000, 5, generator=gen)
    with torch.no_grad():
        assert bc_loss(student, held_out, teacher(held_out)) < 0.1 * before
    torch.testing.assert_close(student.log_std.detach(), log_std)  # no gradient to log_std


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

"""The gradient check: the surrogate's gradient against finite differences, a batch's gradient
against a float64 recomputation with per-path loops, NPG's direction and the unit steps against
a direct solve with the KL's exact Hessian, the mean gain on synthetic noisy gradients of a
known answer, its jackknife error against the spread over repeated draws (at least it,
conservatively), the data's importance weights against Gaussian densities, the behaviour
estimate against a known policy, and utils/check_gradient.py on a tiny run."""

from __future__ import annotations

import copy
import math
import re

import pytest
import torch
from conftest import run, run_script

from morel.models.dynamics import DynamicsEnsemble
from morel.models.files import load_ensemble, save_ensemble
from morel.npg.baselines import MLPBaseline
from morel.npg.gradient_check import (
    batch_gradient,
    behaviour_estimate,
    importance_weights,
    jackknife_gain,
    mean_gain,
    step_gains,
    surrogate_gradient,
    unit_steps,
)
from morel.npg.natural_gradient import (
    fisher_vector_product_fn,
    gaussian_kl,
    npg_direction,
    npg_step,
)
from morel.npg.paths import PathBatch
from morel.npg.policies import GaussianMLP


def random_samples(policy: GaussianMLP, n: int, seed: int):
    gen = torch.Generator().manual_seed(seed)
    obs = torch.randn(n, policy.obs_dim, generator=gen)
    with torch.no_grad():
        act = policy(obs) + torch.exp(policy.log_std) * torch.randn(n, policy.act_dim,
                                                                    generator=gen)
    return obs, act, torch.randn(n, generator=gen)


def test_surrogate_gradient_is_the_finite_difference_of_the_surrogate():
    policy = GaussianMLP(3, 2, (5,), init_log_std=-0.5, seed=1).double()
    obs, act, adv = (x.double() for x in random_samples(policy, 40, seed=2))
    with torch.no_grad():
        old = policy.log_likelihood(obs, act)
    grad = surrogate_gradient(policy, obs, act, adv)
    theta = policy.flat_params().detach().clone()

    def surrogate_at(flat: torch.Tensor) -> float:
        policy.set_flat_params(flat)
        with torch.no_grad():
            return float((torch.exp(policy.log_likelihood(obs, act) - old) * adv).mean())

    for k in range(3):
        v = torch.randn(len(theta), generator=torch.Generator().manual_seed(k),
                        dtype=torch.float64)
        eps = 1e-6
        numeric = (surrogate_at(theta + eps * v) - surrogate_at(theta - eps * v)) / (2 * eps)
        assert float(grad @ v) == pytest.approx(numeric, rel=1e-6, abs=1e-9)


def reference_advantages(rewards, values, lengths, terminated, gamma, lam):
    """GAE with a loop over each path's steps, float64, then whitened over all valid steps."""
    out = []
    for r, v, n, end in zip(rewards, values, lengths, terminated):
        r, v = r[:n].double(), v[:n].double()
        adv, running = torch.zeros(n, dtype=torch.float64), 0.0
        for t in reversed(range(n)):
            following = v[t + 1] if t + 1 < n else (0.0 if end else v[n - 1])
            running = r[t] + gamma * following - v[t] + gamma * lam * running
            adv[t] = running
        out.append(adv)
    flat = torch.cat(out)
    return (flat - flat.mean()) / (flat.std(unbiased=False) + 1e-6)


def test_batch_gradient_against_a_float64_recomputation():
    policy = GaussianMLP(4, 2, (6,), init_log_std=-0.5, seed=3)
    gen = torch.Generator().manual_seed(4)
    lengths = [7, 3, 5]
    paths = [{"observations": torch.randn(n, 4, generator=gen).numpy(),
              "actions": torch.randn(n, 2, generator=gen).numpy(),
              "rewards": torch.rand(n, generator=gen).numpy(), "terminated": k == 1}
             for k, n in enumerate(lengths)]
    batch = PathBatch.from_paths(paths)
    baseline = MLPBaseline(4, (16,), batch_size=4, epochs=40, seed=5)
    grad, error = batch_gradient(policy, batch, baseline, 0.99, 0.95,
                                 torch.Generator().manual_seed(6))
    values = baseline.predict(batch)  # the fitted baseline, which the gradient used
    returns = torch.cat([torch.tensor([sum(0.99 ** (k - t) * float(r[k]) for k in range(t, n))
                                       for t in range(n)], dtype=torch.float64)
                         for r, n in zip(batch.rewards, lengths)])
    fitted = batch.valid(values).double()
    assert error == pytest.approx(float(((returns - fitted) ** 2).sum() / (returns**2).sum()),
                                  rel=1e-4)
    unfitted = batch.valid(MLPBaseline(4, (16,), seed=5).predict(batch)).double()
    assert error < float(((returns - unfitted) ** 2).sum() / (returns**2).sum())  # fitted
    adv = reference_advantages(batch.rewards, values, lengths, batch.terminated.tolist(),
                               0.99, 0.95)
    obs, act = batch.valid(batch.observations), batch.valid(batch.actions)
    expected = surrogate_gradient(policy.double(), obs.double(), act.double(), adv)
    torch.testing.assert_close(grad.double(), expected, rtol=1e-4, atol=1e-6)
    behaviour = GaussianMLP(4, 2, (6,), init_log_std=0.3, seed=7)
    baseline = MLPBaseline(4, (16,), batch_size=4, epochs=40, seed=5)  # fitted as before
    weighted, _ = batch_gradient(policy.float(), batch, baseline, 0.99, 0.95,
                                 torch.Generator().manual_seed(6), behaviour)
    ratio = gaussian_ratios(policy, behaviour, obs, act)
    expected = surrogate_gradient(policy.double(), obs.double(), act.double(),
                                  adv * ratio / ratio.mean())  # no weight reaches the cap
    assert float(ratio.max() / ratio.mean()) < 20
    torch.testing.assert_close(weighted.double(), expected, rtol=1e-4, atol=1e-6)
    assert not torch.allclose(weighted.double(), grad.double(), atol=1e-4)


def gaussian_ratios(policy: GaussianMLP, behaviour: GaussianMLP, obs: torch.Tensor,
                    act: torch.Tensor) -> torch.Tensor:
    """pi(a|s) / beta(a|s) [M] from torch.distributions' Normal densities, float64 (on copies:
    the policies keep their dtype)."""
    def density(p: GaussianMLP) -> torch.Tensor:
        p = copy.deepcopy(p).double()
        with torch.no_grad():
            normal = torch.distributions.Normal(p(obs.double()), p.log_std.exp())
        return normal.log_prob(act.double()).sum(-1)
    return torch.exp(density(policy) - density(behaviour))


def test_importance_weights_are_self_normalised_ratios_capped_at_clip():
    policy = GaussianMLP(3, 2, (5,), init_log_std=-1.0, seed=1)
    behaviour = GaussianMLP(3, 2, (5,), init_log_std=0.0, seed=2)
    obs, _, _ = random_samples(behaviour, 500, seed=3)
    with torch.no_grad():
        act = behaviour(obs) + torch.randn(500, 2, generator=torch.Generator().manual_seed(4))
    ratio = gaussian_ratios(policy, behaviour, obs, act)
    weights = importance_weights(policy, behaviour, obs, act, clip=3.0).double()
    assert float(weights.mean()) == pytest.approx(1.0, rel=1e-6)
    capped = weights >= weights.max() * (1 - 1e-6)
    assert 0 < int(capped.sum()) < 500  # the cap binds on some steps, not all
    reference = (ratio / ratio.mean()).clamp(max=3.0)  # capped at 3 x the mean ratio
    torch.testing.assert_close(weights, reference / reference.mean(), rtol=1e-4, atol=1e-12)


def test_behaviour_estimate_recovers_a_known_gaussian_policy():
    truth = GaussianMLP(4, 2, (8,), seed=5)
    std = torch.tensor([0.2, 0.5])
    gen = torch.Generator().manual_seed(6)
    obs = torch.randn(8000, 4, generator=gen)
    with torch.no_grad():
        act = truth(obs) + std * torch.randn(8000, 2, generator=gen)
    fitted = behaviour_estimate(obs, act, (32, 32), torch.Generator().manual_seed(7))
    with torch.no_grad():
        error = (fitted(obs) - truth(obs)).square().mean(0).sqrt()
    assert (error < 0.25 * std).all(), error  # the mean, well within the noise
    torch.testing.assert_close(fitted.log_std.exp(), std, rtol=0.06, atol=0)


def kl_hessian(policy: GaussianMLP, obs: torch.Tensor) -> torch.Tensor:
    """The exact Hessian [P, P] of the mean KL(policy || moved policy) at the policy, float64."""
    shapes = [(name, p.shape) for name, p in policy.named_parameters()]
    theta = policy.flat_params().detach().double()
    obs = obs.double()
    ref = policy.double()
    with torch.no_grad():
        mean0, log_std0 = ref(obs), ref.log_std.detach().clone()

    def kl(flat: torch.Tensor) -> torch.Tensor:
        params, start = {}, 0
        for name, shape in shapes:
            size = math.prod(shape)
            params[name] = flat[start:start + size].view(shape)
            start += size
        mean = torch.func.functional_call(ref, params, (obs,))
        return gaussian_kl(mean0, log_std0, mean, params["log_std"])

    return torch.autograd.functional.hessian(kl, theta)


def test_npg_direction_and_unit_steps_against_a_direct_solve_with_the_exact_kl_hessian():
    policy = GaussianMLP(3, 2, (5,), init_log_std=-0.7, seed=7)
    obs = torch.randn(30, 3, generator=torch.Generator().manual_seed(8))
    grads = torch.randn(3, len(policy.flat_params()), generator=torch.Generator().manual_seed(9))
    damping = 1e-2
    fisher = kl_hessian(GaussianMLP(3, 2, (5,), init_log_std=-0.7, seed=7), obs)
    solved = torch.linalg.solve(fisher + damping * torch.eye(len(fisher), dtype=torch.float64),
                                grads.double().T).T
    directions = torch.stack([npg_direction(policy, obs, g, damping, 300) for g in grads])
    torch.testing.assert_close(directions.double(), solved, rtol=1e-3, atol=1e-4)
    steps = unit_steps(directions, fisher_vector_product_fn(policy, obs, 0.0))
    torch.testing.assert_close(torch.einsum("sp,pq,sq->s", steps, fisher, steps),
                               torch.ones(3, dtype=torch.float64), rtol=1e-4, atol=0)
    scale = directions.double().norm(dim=1) / steps.norm(dim=1)
    torch.testing.assert_close(steps * scale[:, None], directions.double())  # same directions
    torch.testing.assert_close(step_gains(grads, steps), grads.double() @ steps.T)


def test_npg_direction_is_the_direction_of_npg_steps_with_few_cg_iterations():
    policy = GaussianMLP(3, 2, (6,), init_log_std=-0.3, seed=2)
    obs, act, adv = random_samples(policy, 64, seed=3)
    with torch.no_grad():
        old = policy.log_likelihood(obs, act)
    grad = surrogate_gradient(policy, obs, act, adv)
    torch.testing.assert_close(grad, flat_surrogate_grad(policy, obs, act, adv, old))
    direction = npg_direction(policy, obs, grad, 1e-3, 5)
    before = policy.flat_params().detach().clone()
    npg_step(policy, obs, act, adv, 0.01, cg_iters=5, damping=1e-3)
    step = policy.flat_params().detach() - before
    cos = float(step @ direction / (step.norm() * direction.norm()))
    assert cos == pytest.approx(1.0, abs=1e-5)


def flat_surrogate_grad(policy, obs, act, adv, old):
    value = (torch.exp(policy.log_likelihood(obs, act) - old) * adv).mean()
    return torch.cat([g.reshape(-1) for g in torch.autograd.grad(value, policy.parameters())])


def test_objective_gains_measure_a_step_against_a_real_step_without_its_own_noise():
    """Real gradients g + noise, real steps along them, model steps at a known angle to g: the
    ratio of mean gains is cos(angle) / E[cos(g, g + noise)], known in closed form here."""
    gen = torch.Generator().manual_seed(10)
    dim, count, noise, angle_cos = 20_000, 4, 1.5, 0.5
    true = torch.randn(dim, generator=gen, dtype=torch.float64)
    real = torch.stack([true + noise * torch.randn(dim, generator=gen, dtype=torch.float64)
                        for _ in range(count)])
    unit_true = true / true.norm()
    model = []
    for _ in range(count):
        side = torch.randn(dim, generator=gen, dtype=torch.float64)
        side -= (side @ unit_true) * unit_true
        model.append(angle_cos * unit_true + math.sqrt(1 - angle_cos**2) * side / side.norm())
    steps = unit_steps(torch.cat([torch.stack(model), real]), lambda v: v)
    gains = step_gains(real, steps)
    model_cols, real_cols = list(range(count)), list(range(count, 2 * count))
    real_gain = mean_gain(gains, real_cols, True)
    ratio = mean_gain(gains, model_cols, False) / real_gain
    real_cos = true.norm() / math.sqrt(true.norm() ** 2 + noise**2 * dim)  # about 0.55
    assert ratio == pytest.approx(angle_cos / float(real_cos), rel=0.05)
    # scored on its own batch, a real step also climbs that batch's noise: far larger
    assert mean_gain(gains, real_cols, False) > 1.5 * real_gain
    real_part = gains[:, count:]  # row r's own step is column r of it
    off_diagonal = real_part.sum() - real_part.diagonal().sum()
    assert real_gain == pytest.approx(float(off_diagonal) / (count * (count - 1)), rel=1e-12)
    assert mean_gain(gains, model_cols, False) == pytest.approx(float(gains[:, :count].mean()))
    # leaving batch 0 out: rows 1.. and steps 1.. alone
    assert mean_gain(gains, model_cols, False, 0) == pytest.approx(float(gains[1:, 1:count].mean()))


def test_jackknife_error_bounds_the_spread_of_the_mean_gain_over_repeated_draws():
    """Independent draws of 4 objectives and 4 steps, each a true part plus much noise: the
    jackknife error's mean square is at least the estimator's variance over draws (a jackknife
    is conservative, here 2-3 times the variance, since products of two noises dominate), while
    for steps scored on the other batches of their own source the spread over the objectives
    alone falls far short of it."""
    gen = torch.Generator().manual_seed(3)
    dim, count, draws = 50, 4, 3000
    true = torch.zeros(dim, dtype=torch.float64)
    true[0] = 1.0
    estimates, jack, rows_only = [], [], []
    for _ in range(draws):
        grads = true + 2.0 * torch.randn(count, dim, generator=gen, dtype=torch.float64)
        steps = true + 2.0 * torch.randn(count, dim, generator=gen, dtype=torch.float64)
        gains = step_gains(grads, torch.cat([steps, grads]))
        for columns, own in ((list(range(count)), False), (list(range(count, 2 * count)), True)):
            estimate, error = jackknife_gain(gains, columns, own)
            per_row = gains[:, columns].clone()
            if own:
                per_row.fill_diagonal_(float("nan"))
            row_means = per_row.nanmean(1)
            estimates.append(estimate)
            jack.append(error**2)
            rows_only.append(float(row_means.var() / count))
    estimates = torch.tensor(estimates).reshape(draws, 2)
    jack = torch.tensor(jack).reshape(draws, 2)
    rows_only = torch.tensor(rows_only).reshape(draws, 2)
    variance = estimates.var(0)
    assert estimates.mean(0) == pytest.approx([1.0, 1.0], abs=0.1)  # the true gain |true|^2
    ratio = jack.mean(0) / variance
    assert ((ratio > 0.9) & (ratio < 4.0)).all(), ratio
    # a real step scored on the other real batches: the rows share their steps, and their
    # spread alone leaves out most of the variance
    assert rows_only[:, 1].mean() < 0.6 * variance[1]


def gain_rows(stdout: str, table: int = 0) -> list[list[str]]:
    """The rows of the script's first table (real gains) or second (gains in the P-MDP)."""
    lines = stdout.split("\n\n")[table].split("---")[-1].splitlines()
    return [line.split() for line in lines if re.match(r"\s*(\d+|all)\s", line)]


def test_check_gradient_script_on_a_tiny_run(tiny_morel_job, tmp_path, monkeypatch, capsys):
    job = tiny_morel_job
    flags = ["--job", job, "--batches", "3", "--real_samples", "60", "--vf_epochs", "1"]
    res = run_script("utils/check_gradient.py", *flags, "--cut", "10")
    assert res.returncode == 0, res.stderr
    rows = gain_rows(res.stdout)
    assert [r[0] for r in rows] == ["0", "1", "all"]  # iterations/policy_0.pt, policy_1.pt
    cells = [re.findall(r"(-?\d+\.\d\d) ± (\d+\.\d\d)", " ".join(row)) for row in rows]
    assert [len(c) for c in cells] == [3, 3, 3]  # model, real and cut steps' gains
    for k in range(3):  # the pooled mean is the policies' mean (each as many objectives)
        pooled = (float(cells[0][k][0]) + float(cells[1][k][0])) / 2
        assert float(cells[2][k][0]) == pytest.approx(pooled, abs=0.011)
    assert "cut: the real episodes at 10 steps" in res.stdout
    in_model = gain_rows(res.stdout, 1)  # the same steps in the P-MDP's objective
    assert [r[0] for r in in_model] == ["0", "1", "all"]
    cells = [re.findall(r"(-?\d+\.\d\d) ± (\d+\.\d\d)", " ".join(row)) for row in in_model]
    assert [len(c) for c in cells] == [3, 3, 3]
    for k in range(3):
        pooled = (float(cells[0][k][0]) + float(cells[1][k][0])) / 2
        assert float(cells[2][k][0]) == pytest.approx(pooled, abs=0.011)
    again = run_script("utils/check_gradient.py", *flags, "--cut", "10")
    assert again.stdout == res.stdout  # seeded: the same batches and gains
    other = run_script("utils/check_gradient.py", *flags, "--seed", "3", "--policies",
                       job / "iterations" / "policy_1.pt")
    assert other.returncode == 0, other.stderr
    assert [r[0] for r in gain_rows(other.stdout)] == ["1"]  # one policy: no pooled row
    assert "cut step" not in other.stdout and len(gain_rows(other.stdout)[0]) == 7 + 6
    other_model, _ = load_ensemble(str(job / "models.pt"))  # its weights moved a little
    torch.manual_seed(0)
    with torch.no_grad():
        for w in other_model.parameters():
            w.add_(0.05 * torch.randn_like(w))
    save_ensemble(other_model, str(tmp_path / "other.pt"))
    both = run_script("utils/check_gradient.py", *flags, "--seed", "3", "--policies",
                      job / "iterations" / "policy_1.pt", "--models", job / "models.pt",
                      tmp_path / "other.pt")
    assert both.returncode == 0, both.stderr
    assert "model (models.pt) step's gain" in both.stdout and "2 / 2 members" in both.stdout
    one, two = (re.findall(r"-?\d+\.\d\d ± \d+\.\d\d", " ".join(gain_rows(r.stdout)[0]))
                for r in (other, both))
    assert len(two) == 3 and two[0] == one[0] and two[2] == one[1]  # own model and real alike
    assert two[1] != two[0]  # the other ensemble steps elsewhere
    one, two = (re.findall(r"-?\d+\.\d\d ± \d+\.\d\d", " ".join(gain_rows(r.stdout, 1)[0]))
                for r in (other, both))  # in the objective of the own model's batches
    assert len(two) == 3 and two[0] == one[0] and two[2] == one[1]
    data = run_script("utils/check_gradient.py", *flags, "--seed", "3", "--policies",
                      job / "iterations" / "policy_1.pt", "--data")
    assert data.returncode == 0, data.stderr
    assert "data (weighted) step's gain" in data.stdout and "episodes in 3 groups" in data.stdout
    for table in (0, 1):  # the model and real steps as without --data, two data columns more
        one, two = (re.findall(r"-?\d+\.\d\d ± \d+\.\d\d",
                               " ".join(gain_rows(r.stdout, table)[0])) for r in (other, data))
        assert len(two) == 4 and two[:2] == one
    more = run_script("utils/check_gradient.py", *flags, "--seed", "3", "--policies",
                      job / "iterations" / "policy_1.pt", "--set", "update_paths=9")
    assert more.returncode == 0, more.stderr
    assert "model: 9 starts x 2 members, horizon 20; --set update_paths=9" in more.stdout
    assert "model: 4 starts x 2 members, horizon 20)" in other.stdout
    one, two = (re.findall(r"-?\d+\.\d\d ± \d+\.\d\d", " ".join(gain_rows(r.stdout)[0]))
                for r in (other, more))  # the real batches as the run's 4 starts make them
    assert two[1] == one[1] and two[0] != one[0]
    save_ensemble(DynamicsEnsemble(2, 5, 3, (8,)), str(tmp_path / "small.pt"))
    for extra, message in ((["--batches", "2"], "--batches must be >= 3"),
                           (["--cut", "0"], "--cut must be >= 1"),
                           (["--data", "--batches", "99"], "fewer than --batches 99"),
                           (["--set", "update_paths=0"], "update_paths"),
                           (["--set", "gamma=0.9"], "only the model paths' keys"),
                           (["--models", tmp_path / "small.pt"], "obs_dim 5 and act_dim 3")):
        assert message in run("utils/check_gradient.py", [*flags, *extra], monkeypatch, capsys)

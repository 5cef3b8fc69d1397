"""Natural policy gradient pieces (mjrl's NPG): mean KL, Fisher-vector products, conjugate gradient.

F = Hessian at theta_old of mean_s KL(pi_old(.|s) || pi_theta(.|s)), the Fisher information of the
policy. mjrl computes F v by double backprop of the mean KL; we use the same matrix in closed form
for the Gaussian policy (J^T diag(1/sigma^2) J and the log_std block, by explicit J v and J^T u
products of the tanh MLP), plus damping * v, and solve F x = g by conjugate gradient started at
x0 = g (as the original).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import torch

from morel.core.errors import check_finite
from morel.npg.policies import GaussianMLP


def gaussian_kl(old_mean: torch.Tensor, old_log_std: torch.Tensor, new_mean: torch.Tensor,
                new_log_std: torch.Tensor) -> torch.Tensor:
    """Mean over samples of KL(old || new) for diagonal Gaussians; means [N, act_dim].

    KL = sum_d [ ((mu_old - mu_new)^2 + s_old^2 - s_new^2) / (2 s_new^2 + 1e-8)
                 + log s_new - log s_old ]   (mjrl's form, with its 1e-8).
    The per-sample terms are summed in float64: a float32 sum's rounding depends on the order
    and blocking of the vectorised summation, so the same samples could give KLs that differ
    in the last bits (the sample order alone changes them).
    """
    old_var, new_var = torch.exp(2 * old_log_std), torch.exp(2 * new_log_std)
    kl = ((old_mean - new_mean) ** 2 + old_var - new_var) / (2 * new_var + 1e-8) \
        + new_log_std - old_log_std
    return kl.to(torch.float64).sum(-1).mean().to(kl.dtype)


def mean_kl(policy: GaussianMLP, obs: torch.Tensor) -> torch.Tensor:
    """KL(detached current policy || policy) averaged over obs [N, obs_dim]: value 0, Hessian F."""
    mean = policy(obs)
    return gaussian_kl(mean.detach(), policy.log_std.detach(), mean, policy.log_std)


def flat_grad(output: torch.Tensor, params: list[torch.Tensor], create_graph: bool = False,
              retain_graph: bool | None = None) -> torch.Tensor:
    """d output / d params, flattened in the order of `params`."""
    grads = torch.autograd.grad(output, params, create_graph=create_graph,
                                retain_graph=retain_graph)
    return torch.cat([g.reshape(-1) for g in grads])


# rows of observations per block of the Fisher-vector product on a CPU: a block's activations
# ([4096, 64] per hidden layer, 1 MiB) stay in the core's cache between the J v and J^T u passes
CPU_FVP_BLOCK = 4096


def fisher_vector_product_fn(policy: GaussianMLP, obs: torch.Tensor, damping: float,
                             block: int | None = None) -> Callable[[torch.Tensor], torch.Tensor]:
    """v -> (F + damping I) v on observations obs [N, obs_dim], without double backprop.

    At theta_old the Hessian of `mean_kl` is block-diagonal: for the mean's parameters
    J^T diag(w) J / N, with J = d mean / d theta [N * act_dim, P] and w = 2 / (2 sigma^2 + 1e-8)
    per action dim; for log_std diag(4x (2x - 1e-8) / (2x + 1e-8)^2), x = sigma^2 (2 up to the
    1e-8 of mjrl's KL). J v and J^T u come from `GaussianMLP.mean_linearization` (one cached
    forward, two matmuls per layer each), taken over `block` rows of obs at a time and summed
    (default: CPU_FVP_BLOCK on a CPU, about 2x faster at N = 100,000 than one pass over all
    rows; all rows at once on a GPU); the result equals double backprop of the mean KL (tests
    check both against an explicit Fisher matrix)."""
    if block is None:
        block = CPU_FVP_BLOCK if obs.device.type == "cpu" else max(len(obs), 1)
    blocks = [policy.mean_linearization(rows) for rows in torch.split(obs, block)]
    shapes = [p.shape for p in list(policy.parameters())[1:]]  # log_std comes first
    sizes = [math.prod(s) for s in shapes]
    var = torch.exp(2 * policy.log_std.detach())
    weight = 2 / (2 * var + 1e-8) / len(obs)
    log_std_block = 4 * var * (2 * var - 1e-8) / (2 * var + 1e-8) ** 2
    k = policy.act_dim

    @torch.no_grad()
    def fvp(v: torch.Tensor) -> torch.Tensor:
        tangents = [t.view(s) for t, s in zip(torch.split(v[k:], sizes), shapes)]
        (jvp, vjp), *rest = blocks
        jtu = vjp(jvp(tangents).mul_(weight))
        for jvp, vjp in rest:
            for total, part in zip(jtu, vjp(jvp(tangents).mul_(weight))):
                total.add_(part)
        return torch.cat([log_std_block * v[:k], *(g.reshape(-1) for g in jtu)]) + damping * v

    return fvp


def conjugate_gradient(matvec: Callable[[torch.Tensor], torch.Tensor], b: torch.Tensor,
                       iters: int, residual_tol: float = 1e-10,
                       x0: torch.Tensor | None = None) -> torch.Tensor:
    """Solve A x = b for symmetric positive-definite A given as `matvec`.

    Starts at x0 (default b, as mjrl does), at most `iters` iterations, stops once r.r < tol.
    """
    x = (b if x0 is None else x0).clone()
    r = b - matvec(x)
    p = r.clone()
    rr = r @ r
    for _ in range(iters):
        if rr < residual_tol:
            break
        ap = matvec(p)
        alpha = rr / (p @ ap)
        x += alpha * p
        r -= alpha * ap
        rr_new = r @ r
        p = r + (rr_new / rr) * p
        rr = rr_new
    return x


def surrogate(policy: GaussianMLP, obs: torch.Tensor, act: torch.Tensor, adv: torch.Tensor,
              old_log_lik: torch.Tensor) -> torch.Tensor:
    """mean_i exp(log pi(a_i|s_i) - log pi_old(a_i|s_i)) * A_i (likelihood-ratio surrogate)."""
    return (torch.exp(policy.log_likelihood(obs, act) - old_log_lik) * adv).mean()


def npg_direction(policy: GaussianMLP, obs: torch.Tensor, grad: torch.Tensor, damping: float,
                  cg_iters: int) -> torch.Tensor:
    """The direction [P] of NPG's step for `grad`: (F + damping I)^-1 grad by `cg_iters` CG
    iterations from x0 = grad, F the Fisher matrix on obs [M, obs_dim]."""
    fvp = fisher_vector_product_fn(policy, obs, damping)
    return conjugate_gradient(fvp, grad, cg_iters, x0=grad)


def npg_step(policy: GaussianMLP, obs: torch.Tensor, act: torch.Tensor, adv: torch.Tensor,
             step_size: float, cg_iters: int, damping: float, hvp_sample_frac: float = 1.0,
             generator: torch.Generator | None = None,
             max_kl: float | None = None, anchor: GaussianMLP | None = None,
             anchor_kl_coef: float = 0.0) -> dict[str, float]:
    """One natural-gradient step on samples obs [M, obs_dim], act [M, act_dim], adv [M].

    g = grad of the surrogate at theta_old, minus `anchor_kl_coef` times the grad of the mean
    KL(anchor || policy) on obs when an `anchor` policy is given (ours: a pull towards it that
    grows with the distance; the step's size stays step_size, only its direction changes);
    x ~ (F + damping I)^-1 g by `cg_iters` CG iterations from x0 = g, with F on all samples or
    on one subsample (with replacement) of `hvp_sample_frac * M` samples; theta += alpha x with
    alpha = sqrt(|step_size / (g.x + 1e-10)|), so that the KL of the step is about
    step_size / 2. With `max_kl`, a step whose KL on obs exceeds it is halved until it does not
    (ours; the original has no such guard); `kl_backtracks` logs how often. Returns the
    original's log values plus kl_backtracks (and anchor_kl, the anchor's KL before the step,
    with an anchor). Raises NumericError (the parameters may then be changed) on a non-finite
    gradient, CG result, updated parameters or KL.
    """
    start = time.perf_counter()
    params = list(policy.parameters())
    with torch.no_grad():
        old_mean, old_log_std = policy(obs), policy.log_std.clone()
        old_log_lik = policy.log_likelihood(obs, act)
    surr_before = surrogate(policy, obs, act, adv, old_log_lik)
    objective, anchor_log = surr_before, {}
    if anchor is not None:
        with torch.no_grad():
            anchor_mean, anchor_log_std = anchor(obs), anchor.log_std.detach()
        kl_anchor = gaussian_kl(anchor_mean, anchor_log_std, policy(obs), policy.log_std)
        objective = surr_before - anchor_kl_coef * kl_anchor
        anchor_log = {"anchor_kl": float(kl_anchor.detach())}
    grad = flat_grad(objective, params)
    time_vpg = time.perf_counter() - start

    start = time.perf_counter()
    fisher_obs = obs
    if hvp_sample_frac < 0.99:
        count = max(int(hvp_sample_frac * len(obs)), 1)
        picks = torch.randint(len(obs), (count,), generator=generator, device="cpu")
        fisher_obs = obs[picks.to(obs.device)]
    direction = npg_direction(policy, fisher_obs, grad, damping, cg_iters)
    alpha = torch.sqrt(torch.abs(step_size / (grad @ direction + 1e-10)))
    check_finite("the policy gradient or the natural gradient (CG result)", grad, direction,
                 alpha)
    theta_old = policy.flat_params()

    def step_kl(scale: float) -> float:
        policy.set_flat_params(theta_old + scale * alpha * direction)
        check_finite("the policy parameters after the step", policy.flat_params())
        with torch.no_grad():
            kl = gaussian_kl(old_mean, old_log_std, policy(obs), policy.log_std)
        check_finite("the KL of the step", kl)
        return float(kl)

    # ends: once the halved step is below float resolution the policy is theta_old, KL 0
    kl, backtracks = step_kl(1.0), 0
    while max_kl is not None and kl > max_kl:
        backtracks += 1
        kl = step_kl(0.5 ** backtracks)
    time_npg = time.perf_counter() - start

    with torch.no_grad():
        surr_after = surrogate(policy, obs, act, adv, old_log_lik)
    return {"alpha": float(alpha), "delta": float(step_size), "time_vpg": time_vpg,
            "time_npg": time_npg, "kl_dist": kl, "kl_backtracks": backtracks,
            "surr_improvement": float(surr_after - surr_before.detach()), **anchor_log}

"""Natural policy gradient pieces (mjrl's NPG): mean KL, Fisher-vector products, conjugate gradient.

F = Hessian at theta_old of mean_s KL(pi_old(.|s) || pi_theta(.|s)), the Fisher information of the
policy. F v is computed by double backprop of the mean KL (Pearlmutter's trick) plus damping * v,
and F x = g is solved by conjugate gradient started at x0 = g (as the original).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from morel.policies import GaussianMLP


def gaussian_kl(old_mean: torch.Tensor, old_log_std: torch.Tensor, new_mean: torch.Tensor,
                new_log_std: torch.Tensor) -> torch.Tensor:
    """Mean over samples of KL(old || new) for diagonal Gaussians; means [N, act_dim].

    KL = sum_d [ ((mu_old - mu_new)^2 + s_old^2 - s_new^2) / (2 s_new^2 + 1e-8)
                 + log s_new - log s_old ]   (mjrl's form, with its 1e-8).
    """
    old_var, new_var = torch.exp(2 * old_log_std), torch.exp(2 * new_log_std)
    kl = ((old_mean - new_mean) ** 2 + old_var - new_var) / (2 * new_var + 1e-8) \
        + new_log_std - old_log_std
    return kl.sum(-1).mean()


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


def fisher_vector_product_fn(policy: GaussianMLP, obs: torch.Tensor,
                             damping: float) -> Callable[[torch.Tensor], torch.Tensor]:
    """v -> (F + damping I) v on observations obs [N, obs_dim], by double backprop of mean KL."""
    params = list(policy.parameters())
    kl_grad = flat_grad(mean_kl(policy, obs), params, create_graph=True)

    def fvp(v: torch.Tensor) -> torch.Tensor:
        return flat_grad(kl_grad @ v, params, retain_graph=True) + damping * v

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

"""Does an NPG step drawn from one source of paths climb another source's objective?
(utils/check_gradient.py)

Each batch of paths gives the gradient g [P] of NPG's surrogate at a policy, computed as
`NPGAgent.train_step` does but with a value baseline fitted afresh on the batch itself
(`batch_gradient`: GAE advantages from it, whitened, then the mean of grad log pi(a|s) A), and
the step NPG would take on it (`natural_gradient.npg_direction`: (F + damping I)^-1 g by CG
from g, F on the batch's own states). Steps are scaled to one unit of KL on a fixed set of
reference states (`unit_steps`: x / sqrt(x^T F_ref x)), and a step's first-order gain in
another batch's objective is g . x (`step_gains`; `mean_gain` over pairs of batches, with a
jackknife standard error over them: `jackknife_gain`). Averaged over independent batches,
g_real . x_model beside g_real . x_real' (another real batch's step) says how much real
progress a model step makes per unit of KL against a real step: as much, none (0), or a loss
(below 0). A batch of the dataset's own episodes gives the behaviour policy's advantages at its
states and actions; `importance_weights` (pi / beta per step, beta a clone of the data with its
residual std: `behaviour_estimate`) re-weights them to the policy's actions, as an off-policy
policy gradient from the data alone would.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from morel.npg.baselines import MLPBaseline
from morel.npg.bc import BCSettings, behavior_clone, match_residual_std
from morel.npg.gae import discounted_returns, gae_advantages, whiten
from morel.npg.natural_gradient import flat_grad, surrogate
from morel.npg.paths import PathBatch
from morel.npg.policies import GaussianMLP


def surrogate_gradient(policy: GaussianMLP, obs: torch.Tensor, act: torch.Tensor,
                       adv: torch.Tensor) -> torch.Tensor:
    """Gradient [P] of NPG's `surrogate` at pi_old = policy (mean_i grad log pi(a_i|s_i) A_i);
    obs [M, obs_dim], act [M, act_dim], adv [M]."""
    with torch.no_grad():
        old_log_lik = policy.log_likelihood(obs, act)
    return flat_grad(surrogate(policy, obs, act, adv, old_log_lik), list(policy.parameters()))


def batch_gradient(policy: GaussianMLP, batch: PathBatch, baseline: MLPBaseline, gamma: float,
                   gae_lambda: float, generator: torch.Generator | None = None,
                   behaviour: GaussianMLP | None = None) -> tuple[torch.Tensor, float]:
    """NPG's surrogate gradient [P] on `batch`, with `baseline` first fitted to the batch's
    discounted returns; returns it and the baseline's relative error after the fit. With
    `behaviour` (the policy that drew the batch's actions), each step's whitened advantage is
    multiplied by its `importance_weights`."""
    _, error = baseline.fit(batch, discounted_returns(batch.rewards, batch.mask, gamma),
                            generator)
    advantages = gae_advantages(batch.rewards, baseline.predict(batch), batch.mask,
                                batch.terminated, gamma, gae_lambda)
    advantages = batch.valid(whiten(advantages, batch.mask))
    obs, act = batch.valid(batch.observations), batch.valid(batch.actions)
    if behaviour is not None:
        advantages = advantages * importance_weights(policy, behaviour, obs, act)
    return surrogate_gradient(policy, obs, act, advantages), error


def importance_weights(policy: GaussianMLP, behaviour: GaussianMLP, obs: torch.Tensor,
                       act: torch.Tensor, clip: float = 20.0) -> torch.Tensor:
    """Per-step ratios pi(a|s) / beta(a|s) [M] on obs [M, obs_dim], act [M, act_dim], scaled
    to mean 1, capped at `clip`, scaled to mean 1 again (self-normalised, truncated)."""
    with torch.no_grad():
        log_ratio = (policy.log_likelihood(obs, act)
                     - behaviour.log_likelihood(obs, act)).double()
        weights = torch.exp(log_ratio - log_ratio.max())
        weights = (weights / weights.mean()).clamp(max=clip)
        return (weights / weights.mean()).to(obs.dtype)


def behaviour_estimate(observations: torch.Tensor, actions: torch.Tensor,
                       hidden_sizes: tuple[int, ...], generator: torch.Generator,
                       epochs: int = 30) -> GaussianMLP:
    """A Gaussian policy fitted to the data's observations [M, obs_dim] and recorded actions
    [M, act_dim]: its mean cloned on normalised inputs for `epochs` epochs, its std the
    residuals' (`match_residual_std`): the behaviour policy as the data shows it."""
    behaviour = GaussianMLP(observations.shape[1], actions.shape[1], hidden_sizes,
                            min_log_std=-5.0, seed=int(torch.randint(2**31, (1,),
                                                                     generator=generator)))
    behavior_clone(behaviour, observations, actions, BCSettings(epochs=epochs, normalize=True),
                   generator, progress=False)
    match_residual_std(behaviour, observations, actions)
    return behaviour


def unit_steps(directions: torch.Tensor,
               fvp: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """directions [S, P] scaled to x^T F x = 1, F given as `fvp` (v -> F v; the Fisher matrix on
    reference states, without damping): steps whose KL there is about 1/2 each, float64."""
    norms = torch.stack([torch.sqrt(x.double() @ fvp(x).double()) for x in directions])
    return directions.double() / norms[:, None]


def step_gains(grads: torch.Tensor, steps: torch.Tensor) -> torch.Tensor:
    """First-order gains [R, S]: gain[r, s] = grads[r] . steps[s] (float64)."""
    return grads.double() @ steps.double().T


def mean_gain(gains: torch.Tensor, columns: list[int], own_batches: bool,
              leave_out: int | None = None) -> float:
    """The mean gain of the steps in `columns` of gains [R, S] over the objectives (rows):
    mean of gains[r, columns[k]] over all pairs (r, k); own_batches: the k-th of those steps was
    drawn from the batch of row k, and that pair is left out (a step scored on its own batch's
    gradient also climbs that batch's noise). leave_out=b drops row b and step k=b (batch b of
    every source)."""
    pairs = [float(gains[r, c]) for r in range(len(gains)) for k, c in enumerate(columns)
             if not (own_batches and r == k) and leave_out not in (r, k)]
    return sum(pairs) / len(pairs)


def jackknife_gain(gains: torch.Tensor, columns: list[int],
                   own_batches: bool) -> tuple[float, float]:
    """`mean_gain` and its jackknife standard error over the batch index b (each b one draw of
    every source's batch; needs 3 or more): the noise of the steps as well as the objectives',
    which a spread over the rows alone would leave out (the rows share their steps)."""
    count = len(gains)
    estimate = mean_gain(gains, columns, own_batches)
    drops = torch.tensor([mean_gain(gains, columns, own_batches, b) for b in range(count)],
                         dtype=torch.float64)
    return estimate, float(((count - 1) / count * ((drops - drops.mean()) ** 2).sum()).sqrt())

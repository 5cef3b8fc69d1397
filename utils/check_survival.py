"""Does a fitted ensemble reproduce the dataset's own episodes? A closed-loop check of the
models against the data, without the env.

    python utils/check_survival.py --model runs/hopper_v5_quick/models.pt \
        --data datasets/hopper_v5_medium_100k.pickle \
        --include utils/reward_functions/gym_hopper.py --end_dims 0 1 --plot survival.png

Rolls the policy that logged the dataset (--policy; default: the dataset's metadata `policy`)
with its own Gaussian noise, as `collect_dataset.py --mode pure` records, from the first state
of every dataset episode through every member, open loop in the model and without halting,
until the termination function of --include ends the path or the dataset's longest episode is
reached. Actions are clipped to the env's box (as the env clips them), seed --seed draws the
noise. Prints, for the dataset's episodes and each member's paths: how many, their mean and
median length, the share that reach a tenth, a quarter, half and all of that length, and the
share the termination function ended; --end_dims 0 1 adds the mean of those observation
dimensions (raw units) at the last step before each ended path's end. A member whose paths end
much earlier than the data's episodes predicts falls the logging policy does not have (the
P-MDP then trains a policy away from falls that do not happen); much later, it misses falls.
--plot draws the share of paths still running per step.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tabulate import tabulate

from morel.core.errors import MorelError, run_cli
from morel.core.seeding import Stream, seed_arg, stream, torch_generator
from morel.data.datasets import Dataset, load_dataset, validate
from morel.envs.reward_files import load_reward_file
from morel.envs.wrapper import make_env
from morel.models.diagnostics import reach_steps, survival_curve, survival_row
from morel.models.dynamics import DynamicsEnsemble
from morel.models.files import load_ensemble
from morel.npg.mjrl_pickle import load_policy_source
from morel.npg.policies import GaussianMLP, check_policy_dims
from morel.pmdp import HaltRules, pmdp_rollouts, zero_reward
from morel.runs.plots import check_png_output, plot_survival


def logging_policy(data: Dataset, source: str, path: str | None, env_name: str,
                   mask: np.ndarray, obs_dim: int, act_dim: int) -> tuple[GaussianMLP, str]:
    """The policy that logged `data` (`path`, else its metadata's), made to take the dataset's
    masked observations; and its file name."""
    mode = data.meta.get("mode", "pure")
    if mode != "pure":
        raise MorelError(f"{source}: collected with --mode {mode}; this check rolls the "
                         "policy's own Gaussian (mode pure) and cannot reproduce that noise")
    path = path or data.meta.get("policy")
    if not isinstance(path, str) or not path or path == "random":
        raise MorelError(f"{source}: its metadata names no policy file; give --policy (the "
                         "policy that logged it)")
    if not Path(path).is_file():
        raise MorelError(f"{path}: policy file not found (run from the directory the dataset "
                         "was collected in, or give --policy)")
    policy, meta = load_policy_source(path, mjrl_obs_mask=mask)
    check_policy_dims(policy, path, env_name, obs_dim, act_dim)
    # it takes observations masked by its own obs_mask (ones: raw); the dataset holds mask * raw
    policy.fold_obs_mask(np.asarray(meta.get("obs_mask") or np.ones(obs_dim)) / mask)
    return policy, Path(path).name


def end_means(states: np.ndarray, dims: list[int]) -> str:
    """The mean of each of `dims` over states [K, obs_dim] (raw units), or '-' for none."""
    if len(states) == 0:
        return "-"
    return ", ".join(f"{states[:, d].mean():+.2f}" for d in dims)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--model", required=True, help="ensemble file (learn_model.py, JOB/models.pt)")
    p.add_argument("--data", required=True, help="the dataset the ensemble was fitted on")
    p.add_argument("--include", required=True, help="reward file with the termination_function")
    p.add_argument("--policy", default=None, help="default: the dataset's metadata 'policy'")
    p.add_argument("--reward_timing", choices=("next", "current"), default="next",
                   help="the state the termination function reads (the config key's meaning)")
    p.add_argument("--seed", type=seed_arg, default=0, help="seed of the action noise")
    p.add_argument("--end_dims", type=int, nargs="+", default=[], metavar="DIM",
                   help="print these observation dimensions at the ended paths' last steps")
    p.add_argument("--plot", default=None, help="PNG of the share of paths still running")
    args = p.parse_args()
    plot = Path(args.plot) if args.plot else None
    if plot is not None:
        check_png_output(plot, "--plot")
    data = load_dataset(args.data)
    env_name = data.meta.get("env_name")
    if not isinstance(env_name, str):
        raise MorelError(f"{args.data}: its metadata names no env_name (a dataset of "
                         "collect_dataset.py has one)")
    env = make_env(env_name, int(data.meta.get("act_repeat", 1)))
    obs_dim, act_dim = env.obs_dim, env.act_dim
    data.paths = validate(data.paths, args.data, obs_dim, act_dim)  # dims against the env
    bad = [d for d in args.end_dims if not 0 <= d < obs_dim]
    if bad:
        raise MorelError(f"--end_dims {bad[0]}: an observation dimension of '{env_name}' is in "
                         f"[0, {obs_dim - 1}]")
    model, _ = load_ensemble(args.model)
    if (model.obs_dim, model.act_dim) != (obs_dim, act_dim):
        raise MorelError(f"{args.model}: ensemble is for obs/act dims {model.obs_dim}/"
                         f"{model.act_dim}, the dataset's env '{env_name}' has "
                         f"{obs_dim}/{act_dim}")
    termination = load_reward_file(args.include, obs_dim, act_dim,
                                   args.reward_timing).termination_function
    if termination is None:
        raise MorelError(f"{args.include}: defines no termination_function; nothing would end "
                         "a model path")
    mask = np.asarray(data.meta.get("obs_mask") or np.ones(obs_dim), dtype=np.float64)
    policy, policy_name = logging_policy(data, args.data, args.policy, env_name, mask, obs_dim,
                                         act_dim)
    torch.set_num_threads(1)  # the paths repeat exactly on one CPU
    box = tuple(torch.as_tensor(b, dtype=torch.float32) for b in env.action_box)
    lengths = np.array([len(p["rewards"]) for p in data.paths])
    steps = reach_steps(int(lengths.max()))
    rows, curves = survival_rows(model, policy, data, lengths, steps, termination, box, args,
                                 mask)
    headers = ["paths", "mean length", "median", *(f"reach {k}" for k in steps), "ended"]
    if args.end_dims:
        headers.append(f"dims {', '.join(map(str, args.end_dims))} at the end (ended)")
    print(f"{args.data}: {len(data.paths)} episodes of {policy_name}; model paths of the same "
          f"policy with its noise (seed {args.seed}) from each episode's first state, without "
          f"halting, up to {steps[-1]} steps, through each member of {args.model}")
    numbers = 4 + len(steps)  # paths, mean, median, the reach shares, ended; then the end dims
    print(tabulate([[label, int(row[0]), f"{row[1]:.1f}", f"{row[2]:.1f}",
                     *(f"{x:.3f}" for x in row[3:numbers]), *row[numbers:]]
                    for label, *row in rows], headers=["", *headers], disable_numparse=True,
                   colalign=("left", *["right"] * len(headers))))
    if plot is not None:
        plot_survival(curves, plot, f"{args.model}: {policy_name} on {Path(args.data).name}")
        print(f"plot: {plot}")


def survival_rows(model: DynamicsEnsemble, policy: GaussianMLP, data: Dataset,
                  lengths: np.ndarray, steps: list[int], termination: Callable[..., Any],
                  box: tuple[torch.Tensor, torch.Tensor], args: argparse.Namespace,
                  mask: np.ndarray) -> tuple[list[list[Any]], dict[str, np.ndarray]]:
    """The table rows (the dataset, each member, all members) and the survival curves, for
    the dataset's episodes of `lengths` [P] and the model paths up to the longest of them,
    actions clipped to `box` (low, high)."""
    ended = np.array([bool(p.get("terminated", False)) for p in data.paths])
    horizon = int(lengths.max())
    starts = torch.as_tensor(np.stack([p["observations"][0] for p in data.paths]),
                             dtype=torch.float32)
    paths = pmdp_rollouts(model, policy, starts, horizon, HaltRules(None, min_length=0),
                          zero_reward, termination, args.reward_timing,
                          generator=torch_generator(stream(args.seed, Stream.SURVIVAL_CHECK)),
                          action_box=box)
    model_lengths = paths.batch.lengths.numpy()
    model_ended = paths.env_terminated.numpy()
    last = paths.batch.observations[torch.arange(len(model_lengths)),
                                    paths.batch.lengths - 1].numpy() / mask
    data_last = np.array([p["observations"][-1] for p in data.paths]) / mask
    rows = [["dataset", *survival_row(lengths, ended, steps)]]
    curves = {"dataset": survival_curve(lengths, horizon)}
    groups = [(f"member {e}", slice(e * len(starts), (e + 1) * len(starts)))
              for e in range(model.num_models)] + [("all members", slice(None))]
    for label, part in groups:
        rows.append([label, *survival_row(model_lengths[part], model_ended[part], steps)])
        if label != "all members":
            curves[label] = survival_curve(model_lengths[part], horizon)
    if args.end_dims:
        rows[0].append(end_means(data_last[ended], args.end_dims))
        for row, (_, part) in zip(rows[1:], groups):
            row.append(end_means(last[part][model_ended[part]], args.end_dims))
    return rows, curves


if __name__ == "__main__":
    run_cli(main)

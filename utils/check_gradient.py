"""Does a MOReL run's P-MDP point NPG where the real env would? The NPG step a saved policy
would take on model paths, scored by the real env's gradient beside a step taken on real
episodes.

    python utils/check_gradient.py --job runs/hopper_v5_quick
    python utils/check_gradient.py --job runs/hopper_v5_quick --cut 250 \
        --policies runs/hopper_v5_quick/iterations/policy_9.pt
    python utils/check_gradient.py --job runs/hopper_v5_quick \
        --models runs/hopper_v5_quick/models.pt runs/other_fit.pt
    python utils/check_gradient.py --job runs/hopper_v5_quick --data

For each policy (default: the run's JOB/iterations/policy_N.pt), --batches independent batches
of each source, all with the policy's own Gaussian noise, as NPG samples:
- model: the run's P-MDP rebuilt from job_data.json (its dataset, JOB/models.pt, halting,
  penalties and horizon; `update_paths` start states through every member; --set changes
  those keys for the model paths alone); with --models, one such source per ensemble file,
  each in place of JOB/models.pt (its threshold from its own disagreement on the run's
  dataset), all from the same start states and random numbers;
- real: whole real episodes, --real_samples steps or more (default: the run's model batch's
  most, update_paths x num_models x horizon, whatever --set says);
- cut (with --cut H): the real batches' episodes cut at H steps, the cut terminal: a world as
  short as the P-MDP's, with the real dynamics;
- data and data (weighted) (with --data): the run's dataset, its episodes dealt into --batches
  groups (episode i to group i mod --batches): the behaviour policy's advantages at the data's
  own actions, and the same re-weighted by pi/beta per step (beta: a clone of the data's mean
  with its residual std; weights self-normalised and capped at 20 x their mean): what an
  off-policy gradient from the data alone would step along.
On each batch: the gradient of NPG's surrogate with a value baseline fitted afresh on it (the
run's vf keys, --vf_epochs epochs) and the NPG step on it (the run's damping and CG
iterations, F on the batch's states), scaled to one unit of KL on the real batches' states
(morel/npg/gradient_check.py). A step's gain is its first-order progress in a real batch's
objective (the real gradient times the step), averaged over the real batches it was not drawn
from. Printed per policy: its eval_score, the real return of its noisy policy (over the real
batches' episodes), the model paths' mean return and length, and the mean gain x 1000 of a
model step, of a real step (scored on the other real batches) and of a cut-world step, each +-
its standard error (a jackknife over the batches: the steps' noise and the objectives'): a
model step that gains as much as a real one climbs the real return as fast per unit of KL,
about 0 is a random step for the real env, below 0 loses real return. The last row pools the
policies (their mean; their errors combined as independent). A second table scores the same
steps in the P-MDP's objective (the first model source's batches; a model step on the batches
it was not drawn from): a model step that climbs the P-MDP steadily but not the real env
follows the models' errors; one that climbs neither is noise (too few model paths). Seeds:
stream GRADIENT_CHECK of --seed (default: the run's seed).
"""

from __future__ import annotations

import argparse
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tabulate import tabulate
from tqdm import tqdm

from morel.config.files import apply_assignments, config_from_dict
from morel.config.schema import MorelConfig
from morel.core.errors import MorelError, run_cli
from morel.core.floats import reproducible_cpu_math
from morel.core.numbers import finite_number
from morel.core.seeding import Stream, int_seed, seed_arg, stream, torch_generator
from morel.data.datasets import load_dataset
from morel.data.offline import OfflineData, load_offline_data, load_reward
from morel.envs.reward_files import RewardFile
from morel.envs.sampling import collect_episodes, sampled_action_fn
from morel.envs.wrapper import EnvBatch, MorelEnv, make_env, make_vector_env
from morel.models.dynamics import DynamicsEnsemble
from morel.models.files import load_ensemble
from morel.npg.baselines import MLPBaseline
from morel.npg.gradient_check import (
    batch_gradient,
    behaviour_estimate,
    jackknife_gain,
    step_gains,
    unit_steps,
)
from morel.npg.natural_gradient import fisher_vector_product_fn, npg_direction
from morel.npg.paths import PathBatch
from morel.npg.policies import GaussianMLP, load_policy
from morel.pmdp import ensemble_statistics
from morel.runs.jobdir import read_morel_job
from morel.runs.morel import PmdpSampler, start_states
from morel.runs.train import finite_horizon

ENVS = 16  # real envs stepped together
OTHER_SOURCES = ("real", "cut", "data", "data (weighted)")  # in their fit streams
MODEL_KEYS = ("update_paths", "start_state", "buffer_frac", "horizon", "pessimism_coef",
              "halt_quantile", "truncate_reward", "halt_penalty", "halt_terminates",
              "halt_patience", "disagreement_penalty", "member_min_reward", "falls_terminate",
              "clip_actions", "rollout_member", "model_noise", "reward_timing")


def run_config(job: Path) -> tuple[MorelConfig, float | None]:
    """The run's config from JOB/job_data.json, and its truncate_lim."""
    data = read_morel_job(job)
    keys = {k: v for k, v in data.items() if k != "truncate_lim"}
    return config_from_dict(keys, source=str(job / "job_data.json")), data["truncate_lim"]


def run_data(cfg: MorelConfig, probe: MorelEnv) -> tuple[OfflineData, RewardFile]:
    """The run's dataset (on the CPU) and reward file."""
    reward = load_reward(cfg, None, probe.obs_dim, probe.act_dim)
    data = load_offline_data(cfg, probe.obs_dim, probe.act_dim, reward, torch.device("cpu"),
                             probe.action_box)
    return data, reward


def load_models(files: list[Path], probe: MorelEnv) -> list[DynamicsEnsemble]:
    """The ensembles in `files` (on the CPU); refused unless made for the run's env."""
    models = []
    for f in files:
        model, _ = load_ensemble(str(f), torch.device("cpu"))
        if (model.obs_dim, model.act_dim) != (probe.obs_dim, probe.act_dim):
            raise MorelError(f"{f}: an ensemble for obs_dim {model.obs_dim} and act_dim "
                             f"{model.act_dim}; the run's env has {probe.obs_dim} and "
                             f"{probe.act_dim}")
        models.append(model)
    return models


def run_pmdp(cfg: MorelConfig, data: OfflineData, reward: RewardFile, probe: MorelEnv,
             model: DynamicsEnsemble) -> PmdpSampler:
    """The run's P-MDP on `model`, its halting threshold from that ensemble's disagreement on
    the run's dataset."""
    stats = ensemble_statistics(model, data.tensors, cfg.pessimism_coef, cfg.halt_quantile)
    return PmdpSampler.for_run(cfg, model, reward, probe, stats["truncate_lim"],
                               stats["disagreement_max"], stats["error_std"],
                               torch.device("cpu"))


def check_own_pmdp(job: Path, cfg: MorelConfig, data: OfflineData, model: DynamicsEnsemble,
                   truncate_lim: float | None) -> None:
    """Refuse when the run's data_file and JOB/models.pt (`model`) give another halting
    threshold under the run's config than the run logged (another dataset under the same
    name)."""
    lim = ensemble_statistics(model, data.tensors, cfg.pessimism_coef,
                              cfg.halt_quantile)["truncate_lim"]
    if (lim is None) != (truncate_lim is None) or (
            lim is not None and not math.isclose(lim, truncate_lim, rel_tol=1e-4)):
        raise MorelError(f"{job}: the run's truncate_lim is {truncate_lim}, its data_file "
                         f"{cfg.data_file} and models.pt give {lim}: the dataset is not the "
                         "one the run was fitted on")


def dataset_batches(cfg: MorelConfig, probe: MorelEnv, count: int) -> list[PathBatch]:
    """The run's dataset as `count` batches of whole episodes (episode i in batch i mod count),
    with the recorded actions."""
    paths = load_dataset(cfg.resolve_path("data_file"), probe.obs_dim, probe.act_dim,
                         min_length=2).paths
    if len(paths) < count:
        raise MorelError(f"{cfg.data_file}: {len(paths)} episodes, fewer than --batches "
                         f"{count}: --data needs one or more per batch")
    return [PathBatch.from_paths(paths[k::count]) for k in range(count)]


def model_paths_config(cfg: MorelConfig, assignments: list[str]) -> MorelConfig:
    """The run's config with --set KEY=VALUE applied; refused for keys other than
    MODEL_KEYS (the real batches and every gradient keep the run's config)."""
    for item in assignments:
        key = item.partition("=")[0].strip()
        if key not in MODEL_KEYS:
            raise MorelError(f"--set {item!r}: only the model paths' keys can change here ("
                             + ", ".join(MODEL_KEYS) + ")")
    return apply_assignments(cfg, assignments)


def model_labels(files: list[Path], own: Path) -> list[str]:
    """Column names of the model sources: 'model' for the run's own ensemble alone, else
    'model (NAME)', NAME the file name (its path where two names are alike)."""
    if [f.resolve() for f in files] == [own.resolve()]:
        return ["model"]
    names = [f.name for f in files]
    if len(set(names)) < len(names):
        names = [str(f) for f in files]
    return [f"model ({n})" for n in names]


def run_policies(job: Path) -> list[Path]:
    """JOB/iterations/policy_N.pt in order of N."""
    found = [(int(m[1]), p) for p in (job / "iterations").glob("policy_*.pt")
             if (m := re.fullmatch(r"policy_(\d+)\.pt", p.name))]
    if not found:
        raise MorelError(f"{job / 'iterations'}: no policy_N.pt; pass --policies")
    return [p for _, p in sorted(found)]


def training_policy(path: Path, obs_mask: np.ndarray) -> tuple[GaussianMLP, dict[str, Any]]:
    """A saved policy as NPG trained it: on observations times the run's obs_mask."""
    policy, meta = load_policy(path)
    mask = np.asarray(meta.get("trained_obs_mask", np.ones(policy.obs_dim)), dtype=np.float64)
    if not np.allclose(mask, obs_mask):
        raise MorelError(f"{path}: trained under obs_mask {mask.tolist()}, the run's data has "
                         f"{np.asarray(obs_mask).tolist()}: not a policy of this run")
    policy.fold_obs_mask(1.0 / mask)
    return policy, meta


def cut_paths(paths: list[dict[str, Any]], horizon: int) -> list[dict[str, Any]]:
    """Episodes cut at `horizon` steps, the cut terminal."""
    cut = [{**p, **{k: p[k][:horizon] for k in ("observations", "actions", "rewards")}}
           for p in paths]
    return finite_horizon(cut, horizon)


def source_gains(policy: GaussianMLP, cfg: MorelConfig, model_cfg: MorelConfig,
                 samplers: dict[str, PmdpSampler], data: OfflineData, vec_env: EnvBatch,
                 count: int, real_samples: int, cut: int | None, vf_epochs: int, seed: int,
                 data_batches: list[PathBatch] | None = None,
                 behaviour: GaussianMLP | None = None
                 ) -> tuple[dict[str, list[PathBatch]], torch.Tensor, torch.Tensor]:
    """`count` batches of each source (one per P-MDP in `samplers`, all from the same start
    states, drawn as `model_cfg` says, and random numbers; real ones on `vec_env`; with
    `data_batches`, those twice: as they are, and weighted by pi / `behaviour`) and the
    gains [count, K] of every batch's unit NPG step (columns: source by source, count each, in
    the order of the returned dict) in each real batch's objective, then in each batch's
    objective of the first P-MDP."""
    sources = [*samplers, "real", *(["cut"] if cut is not None else [])]
    batches: dict[str, list[PathBatch]] = {s: [] for s in sources}
    if data_batches is not None:
        batches.update({"data": data_batches, "data (weighted)": data_batches})
    for k in range(count):
        for label, sample in samplers.items():
            gen = torch_generator(stream(seed, Stream.GRADIENT_CHECK, 0, k))
            batch = sample(policy, start_states(model_cfg, data, gen), gen).batch
            if batch.num_samples == 0:
                raise MorelError(f"{label}: the termination function ended every model path "
                                 f"within {sample.rules.min_length} steps: no model step to "
                                 "score")
            batches[label].append(batch)
        paths = collect_episodes(vec_env, sampled_action_fn(policy.mean_std), real_samples,
                                 stream(seed, Stream.GRADIENT_CHECK, 1, k), progress=False)
        batches["real"].append(PathBatch.from_paths(paths))
        if cut is not None:
            batches["cut"].append(PathBatch.from_paths(cut_paths(paths, cut)))
    fim = cfg.npg_hp.FIM_invert_args
    grads, directions = {}, []
    for source, source_batches in batches.items():
        for k, batch in enumerate(source_batches):
            baseline = MLPBaseline(policy.obs_dim, cfg.vf_hidden_size, cfg.vf_lr, cfg.vf_wd,
                                   cfg.vf_batch_size, vf_epochs,
                                   seed=int_seed(stream(seed, Stream.GRADIENT_CHECK, 2)))
            grad, _ = batch_gradient(policy, batch, baseline, cfg.gamma, cfg.gae_lambda,
                                     torch_generator(fit_stream(seed, source, k, count,
                                                                list(samplers))),
                                     behaviour if source == "data (weighted)" else None)
            grads.setdefault(source, []).append(grad)
            directions.append(npg_direction(policy, batch.valid(batch.observations), grad,
                                            fim.damping, fim.iters))
    ref_obs = torch.cat([b.valid(b.observations) for b in batches["real"]])
    steps = unit_steps(torch.stack(directions), fisher_vector_product_fn(policy, ref_obs, 0.0))
    first_model = torch.stack(grads[next(iter(samplers))])
    return batches, step_gains(torch.stack(grads["real"]), steps), step_gains(first_model, steps)


def fit_stream(seed: int, source: str, k: int, count: int,
               models: list[str]) -> np.random.SeedSequence:
    """The stream of the baseline fit on batch k of `source`: the first model source, real,
    cut, data and data (weighted) as with one ensemble (index k, count + k, 2 count + k, ...),
    the other models apart, so adding ensembles or the data leaves the real batches' gradients
    as they were."""
    if source in models[1:]:
        return stream(seed, Stream.GRADIENT_CHECK, 4, models.index(source), k)
    position = 0 if source == models[0] else OTHER_SOURCES.index(source) + 1
    return stream(seed, Stream.GRADIENT_CHECK, 3, position * count + k)


def gain_summary(gains: torch.Tensor, index: dict[str, list[int]],
                 same_paths: list[str]) -> np.ndarray:
    """Per source (in the order of `index`), its steps' mean gain in the objectives of `gains`
    and the jackknife standard error over the batches [sources, 2], leaving out the step of
    an objective's own batch for the sources in `same_paths` (those drawn from the objectives'
    paths or their start states and random numbers)."""
    return np.array([jackknife_gain(gains, index[s], s in same_paths) for s in index])


def gain_cells(summary: np.ndarray) -> list[str]:
    """Each source's mean gain x 1000 +- its standard error, from summaries [policies,
    sources, 2] (several policies: the mean over them, their independent errors combined)."""
    mean = summary[:, :, 0].mean(0) * 1000
    error = np.sqrt((summary[:, :, 1] ** 2).sum(0)) / len(summary) * 1000
    return [f"{m:.2f} ± {e:.2f}" for m, e in zip(mean, error)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--job", required=True, help="run_morel.py job directory")
    p.add_argument("--policies", nargs="+", default=None, metavar="FILE",
                   help="policy files of the run (default: JOB/iterations/policy_N.pt)")
    p.add_argument("--models", nargs="+", default=None, metavar="FILE",
                   help="ensembles whose P-MDPs to score side by side, e.g. learn_model.py "
                        "outputs (default: JOB/models.pt)")
    p.add_argument("--batches", type=int, default=4,
                   help="batches per source (>= 3: a real step is scored on the others, "
                        "and the errors leave one batch out)")
    p.add_argument("--real_samples", type=int, default=None,
                   help="real steps per batch (default: update_paths x num_models x horizon)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="change a key of the model paths (the P-MDP's and its start states': "
                        + ", ".join(MODEL_KEYS) + "), e.g. --set update_paths=400")
    p.add_argument("--cut", type=int, default=None, metavar="H",
                   help="also compare real episodes cut at H steps (terminal)")
    p.add_argument("--data", action="store_true",
                   help="also score steps on the dataset's own episodes (behaviour's "
                        "advantages), as they are and weighted by pi/beta")
    p.add_argument("--vf_epochs", type=int, default=5,
                   help="epochs of each batch's fresh value baseline")
    p.add_argument("--seed", type=seed_arg, default=None, help="default: the run's seed")
    args = p.parse_args()
    for flag, low in (("batches", 3), ("real_samples", 1), ("cut", 1), ("vf_epochs", 1)):
        value = getattr(args, flag)
        if value is not None and value < low:
            raise MorelError(f"--{flag} must be >= {low}")
    job = Path(args.job)
    cfg, truncate_lim = run_config(job)
    model_cfg = model_paths_config(cfg, args.set)
    policies = [Path(f) for f in args.policies] if args.policies else run_policies(job)
    model_files = [Path(f) for f in args.models] if args.models else [job / "models.pt"]
    probe = make_env(cfg.env_name, cfg.act_repeat)
    models = load_models(model_files, probe)
    reproducible_cpu_math()
    torch.set_num_threads(1)  # the batches repeat exactly on one CPU
    data, reward = run_data(cfg, probe)
    labels = model_labels(model_files, job / "models.pt")
    for m, f in zip(models, model_files):
        if f.resolve() == (job / "models.pt").resolve():
            check_own_pmdp(job, cfg, data, m, truncate_lim)
    samplers = {label: run_pmdp(model_cfg, data, reward, probe, m)
                for label, m in zip(labels, models)}
    real_samples = args.real_samples or (cfg.update_paths * cfg.num_models
                                         * min(cfg.horizon, probe.horizon))
    seed = args.seed if args.seed is not None else cfg.seed
    sources = [*labels, "real", *(["cut"] if args.cut else []),
               *(["data", "data (weighted)"] if args.data else [])]
    data_batches, behaviour = None, None
    if args.data:
        data_batches = dataset_batches(cfg, probe, args.batches)
        behaviour = behaviour_estimate(data.tensors["s"], data.raw_actions, cfg.policy_size,
                                       torch_generator(stream(seed, Stream.GRADIENT_CHECK, 5)))
    count = args.batches
    index = {s: list(range(k * count, (k + 1) * count)) for k, s in enumerate(sources)}
    vec_env = make_vector_env(cfg.env_name, ENVS, cfg.act_repeat, data.obs_mask)
    rows, model_rows, summaries, model_summaries = [], [], [], []
    real_sources = [s for s in sources if s in ("real", "cut")]  # drawn as the objectives
    for path in tqdm(policies, desc="policies", unit="policy", dynamic_ncols=True):
        policy, meta = training_policy(path, data.obs_mask)
        batches, gains, model_gains = source_gains(policy, cfg, model_cfg, samplers, data,
                                                   vec_env, count, real_samples, args.cut,
                                                   args.vf_epochs, seed, data_batches,
                                                   behaviour)
        real_returns = torch.cat([b.path_returns() for b in batches["real"]])
        model_cells = []
        for label in labels:
            returns = torch.cat([b.path_returns() for b in batches[label]])
            lengths = torch.cat([b.lengths for b in batches[label]]).float()
            model_cells.append(f"{float(returns.mean()):.0f} / {float(lengths.mean()):.0f}")
        iteration, score = meta.get("iteration"), finite_number(meta.get("eval_score"))
        name = iteration if isinstance(iteration, int) else path.stem
        summaries.append(gain_summary(gains, index, real_sources))
        model_summaries.append(gain_summary(model_gains, index, labels))
        rows.append([name, "-" if score is None else f"{score:.0f}",
                     f"{float(real_returns.mean()):.0f} ({len(real_returns)})",
                     *model_cells, *gain_cells(np.stack(summaries[-1:]))])
        model_rows.append([name, *gain_cells(np.stack(model_summaries[-1:]))])
    if len(rows) > 1:  # the policies' objectives pooled
        rows.append(["all", "", "", *[""] * len(labels),
                     *gain_cells(np.stack(summaries))])
        model_rows.append(["all", *gain_cells(np.stack(model_summaries))])
    headers = ["iteration", "eval_score", "real return (episodes)",
               *(f"{s} return / length" for s in labels),
               *(f"{s} step's gain" for s in sources)]
    members = " / ".join(str(samplers[s].model.num_models) for s in labels)
    print(f"first-order real gain of NPG's step per unit of KL, {count} batches per source "
          f"(real: {real_samples} steps or more; model: {model_cfg.update_paths} starts x "
          f"{members} members, horizon {samplers[labels[0]].horizon}"
          + "".join(f"; --set {a}" for a in args.set)
          + (f"; cut: the real episodes at {args.cut} steps" if args.cut else "")
          + (f"; data: the dataset's {sum(len(b.lengths) for b in data_batches)} episodes in "
             f"{count} groups, weighted by pi/beta" if data_batches else "") + ")")
    print(tabulate(rows, headers=headers, disable_numparse=True))
    print(f"\nthe same steps' first-order gain in the objective of the {labels[0]} source's "
          "batches (a model step scored on the others): how far each step climbs the P-MDP")
    print(tabulate(model_rows, headers=["iteration", *(f"{s} step's gain" for s in sources)],
                   disable_numparse=True))


if __name__ == "__main__":
    run_cli(main)

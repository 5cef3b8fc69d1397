"""Benchmarks of MOReL's hot paths, each as a RATIO measured in the same run (so that a noisy,
shared machine still gives stable answers), printed as a table and written as JSON.

    python bench/run_all.py                  # CPU, a few minutes on 2 cores
    python bench/run_all.py --device cuda    # on a GPU
    python bench/run_all.py --quick          # smaller workloads, for a smoke test

1. matmul peak at the ensemble's shapes (the reference for the rest);
2. ensemble fitting (4 x 512x512, minibatch 1000 and 256): achieved FLOP/s / peak, and the
   speed-up over fitting the members one after another;
3. P-MDP sampling (50 start states x 4 members, horizon 500, disagreement every step): time
   against its floor (the ensemble and policy FLOPs it needs / peak) and against the original's
   method (bench/reference.py) at the same number of samples;
4. a whole NPG iteration, part by part (sampling, GAE, NPG/CG, baseline, evaluation), and the
   Fisher-vector product against its floor;
5. a long run: a whole iteration of an agent after 150 iterations, and a baseline fit with the
   subnormal weights a long run leaves, each against the same of a fresh agent (slowdowns that
   grow during a run);
6. real-env collection (collect_dataset.py's loop) against the raw env.step rate.
Subnormal floats are flushed, as every morel script does (--keep-subnormals: not).
Each time is the best of a few repeats after a warm-up; the two sides of a ratio are timed in
alternation, and the matmul peak is taken at the start and at the end (the larger counts).
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from unittest import mock

import gymnasium as gym
import numpy as np
import torch
from reference import (
    double_backprop_fvp,
    reference_rollouts,
    sequential_returns,
)
from tabulate import tabulate

from morel.core.floats import fix_mkl_thread_count, flush_subnormals
from morel.envs.reward_files import load_reward_file
from morel.envs.sampling import (
    collect_episodes,
    episode_returns,
    mean_action_fn,
    sampled_action_fn,
)
from morel.envs.wrapper import make_vector_env
from morel.models.dynamics import DynamicsEnsemble
from morel.npg import natural_gradient
from morel.npg.agent import NPGAgent, NPGSettings
from morel.npg.baselines import MLPBaseline
from morel.npg.gae import discounted_returns, gae_advantages, whiten
from morel.npg.natural_gradient import fisher_vector_product_fn
from morel.npg.policies import load_policy
from morel.pmdp import HaltRules, pmdp_rollouts

ROOT = Path(__file__).resolve().parents[1]
OBS, ACT, HIDDEN, MEMBERS = 11, 3, 512, 4  # Hopper with the original's ensemble


def paired_best_times(fns: list[Callable[[], object]], device: torch.device,
                      rounds: int = 3) -> list[float]:
    """Best time of each of `fns`, timed in alternation (a, b, a, b, ...) after one warm-up each,
    so that a slow spell of a shared machine hits both sides of a ratio alike."""
    for fn in fns:
        fn()
    best = [float("inf")] * len(fns)
    for _ in range(rounds):
        for i, fn in enumerate(fns):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            fn()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            best[i] = min(best[i], time.perf_counter() - start)
    return best


def best_time(fn: Callable[[], object], device: torch.device, repeat: int = 3) -> float:
    """Seconds of one call of `fn`: the best of `repeat` timed calls after one warm-up."""
    return paired_best_times([fn], device, repeat)[0]


def mlp_flops(sizes: tuple[int, ...]) -> int:
    """Multiply-add FLOPs of one forward of one sample through an MLP with these layer sizes."""
    return sum(2 * a * b for a, b in zip(sizes, sizes[1:]))


def matmul_peak(device: torch.device, quick: bool) -> dict:
    """Best FLOP/s of batched matmuls at the ensemble's shapes (the peak the other figures are
    measured against); a large square matmul is reported beside it for reference."""
    shapes = [(MEMBERS, 200, HIDDEN, HIDDEN), (MEMBERS, 256, HIDDEN, HIDDEN),
              (MEMBERS, 1000, HIDDEN, HIDDEN), (1, 2048, 2048, 2048)]
    rates = {}
    for e, n, k, m in shapes:
        a = torch.randn(e, n, k, device=device)
        b = torch.randn(e, k, m, device=device)
        reps = max(1, int(2e10 / (2 * e * n * k * m)))
        seconds = best_time(lambda a=a, b=b, reps=reps: [torch.bmm(a, b) for _ in range(reps)],
                            device) / reps
        rates[f"{e}x{n}x{k}x{m}"] = 2 * e * n * k * m / seconds
    square = rates.pop("1x2048x2048x2048")
    return {"peak_flops": max(rates.values()), "by_shape": rates, "square_2048_flops": square}


def hopper_like_data(num: int, device: torch.device, seed: int = 0) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(seed)
    s = torch.randn(num, OBS, generator=gen) * 0.5
    a = torch.rand(num, ACT, generator=gen) * 2 - 1
    s_next = s + 0.05 * torch.randn(num, OBS, generator=gen) + 0.01 * a.sum(1, keepdim=True)
    return s.to(device), a.to(device), s_next.to(device)


def ensemble_fitting(device: torch.device, peak: float, quick: bool) -> dict:
    """One epoch of fitting (forward + backward + Adam) at minibatch 1000 and 256."""
    num = 8000 if quick else 32000
    s, a, s_next = hopper_like_data(num, device)
    sizes = (OBS + ACT, HIDDEN, HIDDEN, OBS)
    out = {}
    models = {m: DynamicsEnsemble(m, OBS, ACT, (HIDDEN, HIDDEN), seed=0).to(device)
              for m in (MEMBERS, 1)}
    for batch in (1000, 256):
        def fit(members: int, batch: int = batch) -> None:  # one more epoch of the same model
            models[members].fit(s, a, s_next, 1, batch, progress=False)

        batched, one = paired_best_times([lambda: fit(MEMBERS), lambda: fit(1)], device, 2)
        flops = 3 * MEMBERS * (num // batch) * batch * mlp_flops(sizes)  # fwd + 2x for bwd
        out[batch] = {"epoch_s": batched, "flops": flops / batched,
                      "fraction_of_peak": flops / batched / peak,
                      "speedup_over_sequential": MEMBERS * one / batched}
    return out


def bench_model(device: torch.device) -> DynamicsEnsemble:
    model = DynamicsEnsemble(MEMBERS, OBS, ACT, (HIDDEN, HIDDEN), seed=0).to(device)
    model.set_normalisation(*hopper_like_data(4096, device))
    return model


def start_states(num: int, device: torch.device) -> torch.Tensor:
    env = gym.make("Hopper-v5")
    starts = np.stack([env.reset(seed=i)[0] for i in range(num)])
    return torch.as_tensor(starts, dtype=torch.float32, device=device)


def pmdp_sampling(device: torch.device, peak: float, quick: bool) -> dict:
    """50 start states x 4 members, no halting (every path runs the horizon: a fixed workload)."""
    horizon, n_start = (100 if quick else 500), 50
    model = bench_model(device)
    policy, _ = load_policy(ROOT / "logging_policy" / "hopper_v5_medium.pt", device)
    reward = load_reward_file(ROOT / "utils" / "reward_functions" / "gym_hopper.py", OBS)
    starts = start_states(n_start, device)
    rules = HaltRules(None)

    def ours():
        return pmdp_rollouts(model, policy, starts, horizon, rules, reward.reward_function,
                             None, generator=torch.Generator().manual_seed(0))

    ours_s, ref_s = paired_best_times(
        [ours, lambda: reference_rollouts(model, policy, starts, horizon,
                                          torch.Generator().manual_seed(0))], device, 2)
    rollouts = ours()
    samples = rollouts.batch.num_samples  # = E * N * horizon, the reference's count
    live = MEMBERS * n_start
    per_step = (MEMBERS * live * mlp_flops((OBS + ACT, HIDDEN, HIDDEN, OBS))
                + live * mlp_flops((OBS, *policy.hidden_sizes, ACT)))
    floor_s = horizon * per_step / peak
    return {"samples": samples, "ours_s": ours_s, "floor_s": floor_s,
            "over_floor": ours_s / floor_s, "reference_s": ref_s,
            "speedup_over_reference": ref_s / ours_s, "rollouts": rollouts, "policy": policy}


def npg_iteration(device: torch.device, peak: float, sampling: dict) -> dict:
    """The parts of one iteration on the sampled batch (the original's NPG settings for
    d4rl hopper: CG 20, damping 1e-3), plus 4 evaluation episodes of the medium policy."""
    batch, policy = sampling["rollouts"].batch, sampling["policy"]
    baseline = MLPBaseline(OBS, (128, 128), 1e-3, 1e-3, 256, 1, seed=0, device=device)
    settings = NPGSettings(0.02, 0.999, 0.97, cg_iters=20, damping=1e-3)
    gen = torch.Generator().manual_seed(0)

    def gae():
        values = baseline.predict(batch)
        adv = gae_advantages(batch.rewards, values, batch.mask, batch.terminated, 0.999, 0.97)
        return discounted_returns(batch.rewards, batch.mask, 0.999), whiten(adv, batch.mask)

    gae_s = best_time(gae, device)
    agent = NPGAgent(policy, baseline, settings)
    saved = copy.deepcopy(agent.state_dict())
    steps = []
    for _ in range(3):  # the best of 3 steps from the same start
        steps.append(agent.train_step(batch, torch.Generator().manual_seed(0)))
        agent.load_state_dict(copy.deepcopy(saved))
    step = {k: min(s[k] for s in steps) for k in ("time_vpg", "time_npg", "time_VF")}
    ref_steps = []
    with mock.patch.object(natural_gradient, "fisher_vector_product_fn", double_backprop_fvp):
        for _ in range(2):  # the same step with mjrl's double-backprop products
            ref_steps.append(agent.train_step(batch, torch.Generator().manual_seed(0)))
            agent.load_state_dict(copy.deepcopy(saved))
    ref_npg = min(s["time_npg"] for s in ref_steps)
    obs = batch.valid(batch.observations)
    fvp = fisher_vector_product_fn(policy, obs, 1e-3)
    v = torch.randn(policy.flat_params().numel(), generator=gen).to(device)
    double = double_backprop_fvp(policy, obs, 1e-3)
    fvp_s, double_s = paired_best_times([lambda: fvp(v), lambda: double(v)], device, 5)
    # J v (dW x + W dx per layer) and J^T u (weight and input gradients): 4 forwards' FLOPs
    fvp_floor = 4 * len(obs) * mlp_flops((OBS, *policy.hidden_sizes, ACT)) / peak
    eval_env = make_vector_env("Hopper-v5", 4)
    cpu_policy = copy.deepcopy(policy).cpu()
    eval_s, ref_eval_s = paired_best_times(
        [lambda: episode_returns(eval_env, mean_action_fn(policy.mean_std),
                                 np.random.SeedSequence(0)),
         lambda: sequential_returns("Hopper-v5", cpu_policy, 4, 0)], device, 1)
    parts = {"sampling": sampling["ours_s"], "gae": gae_s, "npg_vpg": step["time_vpg"],
             "npg_cg": step["time_npg"], "baseline": step["time_VF"], "evaluation": eval_s}
    ours = sum(parts.values())
    # the original's method: its sampling, CG on double-backprop products, sequential evaluation
    reference = (ours - parts["sampling"] - parts["npg_cg"] - parts["evaluation"]
                 + sampling["reference_s"] + ref_npg + ref_eval_s)
    return {"parts": parts, "reference_parts": {"sampling": sampling["reference_s"],
                                                "npg_cg": ref_npg, "evaluation": ref_eval_s},
            "iteration_s": ours, "reference_iteration_s": reference,
            "speedup_over_reference": reference / ours, "samples": batch.num_samples,
            "fvp_s": fvp_s, "fvp_floor_s": fvp_floor, "fvp_over_floor": fvp_s / fvp_floor,
            "fvp_double_backprop_s": double_s, "fvp_speedup": double_s / fvp_s}


def subnormal_count(tensors: list[torch.Tensor]) -> int:
    """How many float32 values of `tensors` are subnormal, read from their bits (exponent 0,
    mantissa not 0): with the flush on, float comparisons would see them as 0."""
    bits = [t.detach().contiguous().view(torch.int32) for t in tensors]
    return sum(int(((b & 0x7F800000) == 0).logical_and_((b & 0x007FFFFF) != 0).sum())
               for b in bits)


def agent_values(agent: NPGAgent) -> list[torch.Tensor]:
    """The baseline's and the policy's parameters and Adam moments."""
    moments = [v for state in agent.baseline.optimizer.state.values() for v in state.values()
               if isinstance(v, torch.Tensor) and v.dim() > 0]
    return [*agent.baseline.net.parameters(), *agent.policy.parameters(), *moments]


# a 50-iteration demo run (bash quickstart.sh demo) leaves 14% of its baseline's parameters and
# Adam moments subnormal (7,765 of 56,073 at iteration 50, measured on 2026-12-02): the weights
# into and out of about 28 of its 128 first-layer units, which the shifting data has left dead
DEAD_UNITS = 28


def plant_subnormals(baseline: MLPBaseline, units: int, seed: int = 0) -> None:
    """Make `units` first-layer units of `baseline` look like dead units after a long run: their
    incoming and outgoing weights and those weights' Adam moments subnormal (|x| ~ 1e-40)."""
    gen = torch.Generator().manual_seed(seed)
    first, second = baseline.net[0].weight, baseline.net[2].weight
    dead = torch.randperm(first.shape[0], generator=gen)[:units].to(first.device)

    def tiny_like(x: torch.Tensor) -> torch.Tensor:  # built from bits: no float op flushes it
        sign = torch.randint(0, 2, x.shape, generator=gen, dtype=torch.int32) << 31
        return (sign | 0x000116C2).view(torch.float32).to(x.device)  # +-1e-40

    with torch.no_grad():
        for param, index in ((first, (dead, slice(None))), (second, (slice(None), dead))):
            param[index] = tiny_like(param[index])
            state = baseline.optimizer.state[param]
            state["exp_avg"][index] = tiny_like(state["exp_avg"][index])


def long_run(device: torch.device, sampling: dict, quick: bool) -> dict:
    """Slowdowns that grow during a run, as ratios to a fresh agent (target: within 1.2x).

    - A whole iteration (P-MDP sampling of 20 start states x 4 members x horizon 500, NPG step,
      baseline fit) of an agent after `updates` iterations of the same loop on 10 start states
      and a fifth of the horizon, against the same iteration of a fresh agent.
    - A baseline fit (1 epoch on the sampling benchmark's batch) with subnormal weights and Adam
      moments planted where a run leaves them (DEAD_UNITS), against a fresh baseline's fit.
      Without the flush (--keep-subnormals) x86 CPUs compute on them many times slower."""
    updates, horizon = (5, 100) if quick else (150, 500)
    drift_horizon = horizon // 5
    model = bench_model(device)
    reward = load_reward_file(ROOT / "utils" / "reward_functions" / "gym_hopper.py", OBS)
    starts = start_states(20, device)

    def fresh_agent() -> NPGAgent:
        baseline = MLPBaseline(OBS, (128, 128), 1e-3, 1e-3, 256, 1, seed=0, device=device)
        return NPGAgent(copy.deepcopy(sampling["policy"]), baseline,
                        NPGSettings(0.02, 0.999, 0.97, 20, 1e-3))

    def iteration(agent: NPGAgent, states: torch.Tensor, seed: int, steps: int) -> None:
        rollouts = pmdp_rollouts(model, agent.policy, states, steps, HaltRules(None),
                                 reward.reward_function, None,
                                 generator=torch.Generator().manual_seed(seed))
        agent.train_step(rollouts.batch, torch.Generator().manual_seed(seed))

    fresh, drifted = fresh_agent(), fresh_agent()
    start = time.perf_counter()
    for k in range(updates):
        iteration(drifted, starts[:10], k, drift_horizon)
    drift_s = time.perf_counter() - start

    def restoring(agent: NPGAgent, fn: Callable[[], object]) -> Callable[[], object]:
        saved = copy.deepcopy(agent.state_dict())

        def run() -> None:
            fn()
            agent.load_state_dict(copy.deepcopy(saved))
        return run

    fresh_it, drifted_it = paired_best_times(
        [restoring(a, lambda a=a: iteration(a, starts, updates, horizon))
         for a in (fresh, drifted)],
        device, 2)
    batch = sampling["rollouts"].batch
    returns = discounted_returns(batch.rewards, batch.mask, 0.999)
    planted = fresh_agent()
    for agent in (fresh, planted):  # one fit first, so that Adam's moments exist
        agent.baseline.fit(batch, returns, torch.Generator().manual_seed(0))
    plant_subnormals(planted.baseline, DEAD_UNITS)
    fresh_fit, planted_fit = paired_best_times(
        [restoring(a, lambda a=a: a.baseline.fit(batch, returns,
                                                 torch.Generator().manual_seed(1)))
         for a in (fresh, planted)], device, 3)
    return {"updates": updates, "drift_s": drift_s, "fresh_iteration_s": fresh_it,
            "drifted_iteration_s": drifted_it, "iteration_ratio": drifted_it / fresh_it,
            "drifted_subnormals": subnormal_count(agent_values(drifted)),
            "values": sum(v.numel() for v in agent_values(drifted)),
            "planted_subnormals": subnormal_count(agent_values(planted)),
            "fresh_fit_s": fresh_fit, "planted_fit_s": planted_fit,
            "fit_ratio": planted_fit / fresh_fit}


def collection(quick: bool) -> dict:
    """Steps/s of collect_episodes (8 envs, medium policy, 'pure' noise) vs a bare env.step loop
    with precomputed random actions."""
    steps = 3000 if quick else 20000
    env = gym.make("Hopper-v5")
    env.reset(seed=0)
    actions = np.random.default_rng(0).uniform(-1, 1, (steps, ACT)).astype(np.float32)

    def raw():
        for a in actions:
            _, _, terminated, truncated, _ = env.step(a)
            if terminated or truncated:
                env.reset()

    policy, _ = load_policy(ROOT / "logging_policy" / "hopper_v5_medium.pt")
    vec_env = make_vector_env("Hopper-v5", 8)
    act = sampled_action_fn(policy.mean_std)
    counted = {}

    def collect():
        paths = collect_episodes(vec_env, act, steps, np.random.SeedSequence(0),
                                progress=False)
        counted["n"] = sum(len(p["rewards"]) for p in paths)

    raw_s, seconds = paired_best_times([raw, collect], torch.device("cpu"), 2)
    raw_rate, rate = steps / raw_s, counted["n"] / seconds
    return {"raw_steps_per_s": raw_rate, "collect_steps_per_s": rate,
            "fraction_of_raw": rate / raw_rate}


def cpu_name() -> str:
    """The CPU's model name (/proc/cpuinfo on Linux), else what platform knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True,
                              capture_output=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def table(r: dict, tablefmt: str = "simple") -> str:
    fit, samp, it, col = r["fitting"], r["sampling"], r["iteration"], r["collection"]
    run = r["long_run"]
    g = 1e9
    rows = [
        ["matmul peak at the ensemble's shapes (4 x N x 512 x 512, N = 200, 256, 1000)",
         f"{r['peak_flops'] / g:.1f} GFLOP/s", "1", ""],
        ["matmul 2048 x 2048 x 2048 (for reference)", f"{r['square_flops'] / g:.1f} GFLOP/s",
         f"{r['square_flops'] / r['peak_flops']:.2f}", ""],
        *[[f"ensemble fit, minibatch {b}: FLOP/s / peak",
           f"{fit[b]['flops'] / g:.1f} GFLOP/s", f"{fit[b]['fraction_of_peak']:.2f}",
           f">= {0.8 if b == 1000 else 0.6}"] for b in (1000, 256)],
        *[[f"ensemble fit, minibatch {b}: speed-up over one member at a time",
           f"{fit[b]['epoch_s']:.2f} s/epoch", f"{fit[b]['speedup_over_sequential']:.2f}x",
           ""] for b in (1000, 256)],
        [f"P-MDP sampling ({samp['samples']} samples): time / floor", f"{samp['ours_s']:.2f} s",
         f"{samp['over_floor']:.2f}", "<= 1.5"],
        ["P-MDP sampling: speed-up over the original's method", f"{samp['reference_s']:.2f} s",
         f"{samp['speedup_over_reference']:.2f}x", ">= 3"],
        *[[f"iteration part: {k}", f"{v:.3f} s", f"{v / it['iteration_s']:.0%}",
           (f"original's method: {it['reference_parts'][k]:.3f} s"
            if k in it["reference_parts"] else "")]
          for k, v in it["parts"].items()],
        ["whole iteration: speed-up over the original's method", f"{it['iteration_s']:.2f} s",
         f"{it['speedup_over_reference']:.2f}x", ">= 3 (CPU), >= 10 (GPU)"],
        ["Fisher-vector product: time / floor", f"{it['fvp_s'] * 1e3:.1f} ms",
         f"{it['fvp_over_floor']:.2f}", "<= 2"],
        ["Fisher-vector product: speed-up over double backprop",
         f"{it['fvp_double_backprop_s'] * 1e3:.1f} ms", f"{it['fvp_speedup']:.2f}x", ""],
        [f"whole iteration after {run['updates']} iterations: time / a fresh agent's",
         f"{run['drifted_iteration_s']:.2f} s", f"{run['iteration_ratio']:.2f}", "<= 1.2"],
        [f"baseline fit with a long run's subnormals ({run['planted_subnormals']} planted, "
         f"flush {'on' if r['flush_subnormals'] else 'off'}): time / a fresh baseline's",
         f"{run['planted_fit_s']:.3f} s", f"{run['fit_ratio']:.2f}", "<= 1.2"],
        ["collection: steps/s / raw env.step rate", f"{col['collect_steps_per_s']:.0f} steps/s",
         f"{col['fraction_of_raw']:.2f}", ">= 0.7"],
    ]
    return tabulate(rows, headers=["measure", "value", "ratio", "target"], tablefmt=tablefmt)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--quick", action="store_true", help="small workloads (a smoke test)")
    p.add_argument("--output", default=None, help="JSON file (default bench/results_DEVICE.json)")
    p.add_argument("--keep-subnormals", action="store_true",
                   help="do not flush subnormal floats (shows the slowdown the long-run rows "
                        "catch; every morel script flushes them)")
    p.add_argument("--markdown", default=None,
                   help="also write the table as Markdown (with device, date, commit) here")
    args = p.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("error: --device cuda: CUDA is not available on this machine")
    fix_mkl_thread_count()
    flush = not args.keep_subnormals and flush_subnormals()
    started = time.perf_counter()
    peak = matmul_peak(device, args.quick)
    print(f"matmul peak {peak['peak_flops'] / 1e9:.1f} GFLOP/s", flush=True)
    fitting = ensemble_fitting(device, peak["peak_flops"], args.quick)
    print("ensemble fitting done", flush=True)
    sampling = pmdp_sampling(device, peak["peak_flops"], args.quick)
    print("P-MDP sampling done", flush=True)
    iteration = npg_iteration(device, peak["peak_flops"], sampling)
    again = matmul_peak(device, args.quick)  # a slow spell at the start must not lower the peak
    if again["peak_flops"] > peak["peak_flops"]:
        scale = again["peak_flops"] / peak["peak_flops"]
        for part in fitting.values():
            part["fraction_of_peak"] /= scale
        sampling["floor_s"] /= scale
        sampling["over_floor"] *= scale
        iteration["fvp_floor_s"] /= scale
        iteration["fvp_over_floor"] *= scale
        peak = again
    drift = long_run(device, sampling, args.quick)
    print("long-run iteration done", flush=True)
    col = collection(args.quick)
    for key in ("rollouts", "policy"):
        sampling.pop(key)
    results = {"peak_flops": peak["peak_flops"], "matmul": peak["by_shape"],
               "square_flops": peak["square_2048_flops"],
               "fitting": fitting, "sampling": sampling, "iteration": iteration,
               "long_run": drift, "flush_subnormals": flush,
               "collection": col, "device": str(device),
               "device_name": (torch.cuda.get_device_name(device) if device.type == "cuda"
                               else cpu_name()),
               "threads": torch.get_num_threads(), "torch": torch.__version__,
               "commit": git_commit(), "date": time.strftime("%Y-%m-%d"), "quick": args.quick,
               "wall_s": time.perf_counter() - started}
    print(table(results))
    out = Path(args.output or ROOT / "bench" / f"results_{device.type}.json")
    out.write_text(json.dumps(results, indent=1, default=float) + "\n", encoding="utf-8")
    print(f"wrote {out} ({results['wall_s']:.0f} s)")
    if args.markdown:
        header = (f"{results['date']}, {results['device_name']} ({results['device']}, "
                  f"{results['threads']} threads), torch {results['torch']}, commit "
                  f"{results['commit']}, {results['wall_s']:.0f} s\n\n")
        Path(args.markdown).write_text(header + table(results, "github") + "\n",
                                       encoding="utf-8")
        print(f"wrote {args.markdown}")


if __name__ == "__main__":
    main()

"""Behaviour-cloning settings against each other: the mean-action return of the cloned policy.

    python experiments/bc_settings.py --envs hopper walker2d halfcheetah --seeds 1 2 3 4 5

For each env's quick config (configs/ENV_v5_quick.txt and its 100k medium dataset), each setting
and each seed, clones the dataset as MOReL's bc_init does (stream BC of the seed) and scores the
mean-action policy on the 10 real episodes run_bc.py uses (iteration 0's evaluation episodes of
the seed). Prints one line per run and a summary per env and setting: mean ± std over seeds
(lowest), beside the dataset's mean return. One thread per process.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np
import torch

from morel.config.files import load_config
from morel.core.errors import run_cli
from morel.core.seeding import Stream, stream, torch_generator
from morel.data.offline import load_offline_data, load_reward
from morel.envs.wrapper import make_env, make_vector_env
from morel.npg.agent import policy_from_config
from morel.npg.bc import BCSettings, behavior_clone
from morel.runs.loop import evaluation_returns

SETTINGS = {
    "original": {"bc_epochs": 5, "bc_normalize": False, "bc_holdout": 0.0},
    "normalized": {"bc_epochs": 5, "bc_normalize": True, "bc_holdout": 0.0},
    "normalized_holdout": {"bc_epochs": 100, "bc_normalize": True, "bc_holdout": 0.1},
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--envs", nargs="+", default=["hopper", "walker2d", "halfcheetah"])
    p.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3, 4, 5])
    p.add_argument("--settings", nargs="+", choices=SETTINGS, default=list(SETTINGS))
    p.add_argument("--episodes", type=int, default=10)
    args = p.parse_args()
    torch.set_num_threads(1)
    for env_key in args.envs:
        base = load_config(f"configs/{env_key}_v5_quick.txt")
        probe = make_env(base.env_name, base.act_repeat)
        reward = load_reward(base, None, probe.obs_dim, probe.act_dim)
        data = load_offline_data(base, probe.obs_dim, probe.act_dim, reward,
                                 torch.device("cpu"), probe.action_box)
        eval_env = make_vector_env(base.env_name, args.episodes, base.act_repeat, data.obs_mask)
        for name in args.settings:
            scores = []
            for seed in args.seeds:
                cfg = dataclasses.replace(base, seed=seed, **SETTINGS[name])
                policy = policy_from_config(cfg, probe.obs_dim, probe.act_dim)
                start = time.perf_counter()
                log = behavior_clone(policy, data.tensors["s"], data.raw_actions,
                                     BCSettings.from_config(cfg),
                                     torch_generator(stream(seed, Stream.BC)), progress=False)
                returns = evaluation_returns(eval_env, policy, cfg, 0)
                scores.append(float(np.mean(returns)))
                extra = ", ".join(f"{k} {v:.4g}" for k, v in log.items())
                print(f"{env_key} {name} seed {seed}: return {scores[-1]:.0f} ± "
                      f"{np.std(returns):.0f}, {extra}, {time.perf_counter() - start:.0f} s",
                      flush=True)
            print(f"SUMMARY {env_key} {name}: {np.mean(scores):.0f} ± {np.std(scores):.0f} "
                  f"(lowest {np.min(scores):.0f}) over seeds {args.seeds}; dataset "
                  f"{data.mean_return:.0f}", flush=True)


if __name__ == "__main__":
    run_cli(main)

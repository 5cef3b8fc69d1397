"""Print how closely each shipped reward file reproduces its env's reward and termination.

    python utils/check_reward_files.py [--episodes 30] [--seed 0]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tabulate import tabulate

from morel.envs.reward_check import check_reward_file

FILES = {"Hopper-v5": "gym_hopper.py", "Walker2d-v5": "gym_walker2d.py",
         "HalfCheetah-v5": "gym_halfcheetah.py"}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--episodes", type=int, default=30)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    folder = Path(__file__).resolve().parent / "reward_functions"
    rows = []
    for env_name, file in FILES.items():
        for policy in ("random", "scripted"):
            c = check_reward_file(env_name, folder / file, policy, args.episodes, args.seed)
            rows.append([env_name, policy, c.episodes, c.steps,
                         f"{c.error_next[0]:.4f} / {c.error_next[1]:.3f}",
                         f"{c.error_current[0]:.4f} / {c.error_current[1]:.3f}",
                         f"{c.terminations_matched}/{c.episodes}"])
    print(tabulate(rows, headers=["env", "actions", "episodes", "steps",
                                  "reward error 'next' mean / max",
                                  "reward error 'current' mean / max", "termination exact"],
                   tablefmt="github"))


if __name__ == "__main__":
    main()

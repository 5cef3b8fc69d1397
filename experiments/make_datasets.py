"""Build the offline dataset suite (D4RL's kinds on our v5 envs) from a suite file.

    python experiments/make_datasets.py --suite experiments/configs/dataset_suite.txt
    python experiments/make_datasets.py --suite experiments/configs/dataset_suite.txt \
        --only hopper-random hopper-medium

Each dataset is written as OUTPUT_DIR/NAME.npz (observations masked by its env's reward file, as
`collect_dataset.py --include` does); finished ones are skipped unless --force. A `replay`
dataset needs the samples of a train_policy.py run: when they are missing the run is made
(`train_policy.py --save_samples`, a few to 20 minutes on 2 cores). A table of every dataset
(samples, episodes, return mean and std, D4RL-normalised mean) is printed and written to
OUTPUT_DIR/summary.md (and, with --readme docs/results.md, into its `<!-- dataset-suite -->` block).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from morel.core.errors import MorelError, run_cli
from morel.core.marked_block import check_marked_block, replace_marked_block
from morel.data.collect import collect_dataset
from morel.data.datasets import Dataset, load_dataset, save_dataset, summarize
from morel.envs.reward_files import load_reward_file
from morel.envs.scores import normalized_score
from morel.experiments.suite import Suite, SuiteEntry, load_suite

ROOT = Path(__file__).resolve().parents[1]  # the project folder


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--suite", default="experiments/configs/dataset_suite.txt", help="suite file")
    p.add_argument("--only", nargs="+", default=None, metavar="NAME", help="build these only")
    p.add_argument("--force", action="store_true", help="rebuild datasets that exist")
    p.add_argument("--readme", default=None,
                   help="Markdown file whose <!-- dataset-suite --> block gets the table")
    return p.parse_args()


def build_parts(suite: Suite, entry: SuiteEntry, mask: np.ndarray) -> Dataset:
    """Collect each (policy, mode) part at size / len(parts) steps, part k seeded seed + 1000 k."""
    paths = []
    for k, (policy, mode) in enumerate(entry.parts):
        part = collect_dataset(entry.env_name, policy, suite.size // len(entry.parts), mode,
                               suite.seed + 1000 * k, obs_mask=mask)
        paths += part.paths
    return Dataset(paths, {"env_name": entry.env_name, "act_repeat": 1, "obs_mask": mask.tolist(),
                           "policy": " + ".join(p for p, _ in entry.parts),
                           "mode": " + ".join(m for _, m in entry.parts), "seed": suite.seed,
                           "suite_name": entry.name})


def replay_samples(entry: SuiteEntry) -> list[Path]:
    """The sample files of iterations 0 ... last_iteration, training the run if they are absent."""
    job = Path(entry.replay)
    files = [job / "samples" / f"iter_{i}.npz" for i in range(entry.last_iteration + 1)]
    if all(f.is_file() for f in files):
        return files
    if job.exists():
        raise MorelError(f"{job}: holds no samples for iterations 0-{entry.last_iteration}; "
                         "remove it, or rerun it with train_policy.py --save_samples")
    cmd = [sys.executable, str(ROOT / "train_policy.py"), "--config", entry.replay_config,
           "--output", str(job), "--num_iter", str(entry.last_iteration + 1), "--save_samples"]
    print(f"{entry.name}: training the replay run: {' '.join(cmd[1:])}")
    if subprocess.run(cmd).returncode != 0:
        raise MorelError(f"{entry.name}: the replay run failed ({' '.join(cmd[1:])})")
    return files


def build_replay(suite: Suite, entry: SuiteEntry, mask: np.ndarray) -> Dataset:
    """A random subset of whole episodes (at least `size` steps) of the replay run's samples,
    kept in training order, observations multiplied by `mask`."""
    paths = []
    for f in replay_samples(entry):
        paths += load_dataset(f).paths
    rng = np.random.default_rng(suite.seed)
    order = rng.permutation(len(paths))
    lengths = np.array([len(paths[i]["rewards"]) for i in order])
    count = int(np.searchsorted(np.cumsum(lengths), suite.size) + 1)
    keep = np.sort(order[:count])
    picked = [{**paths[i], "observations": (paths[i]["observations"] * mask).astype(np.float32)}
              for i in keep]
    total = int(sum(len(p["rewards"]) for p in paths))
    if total < suite.size:
        print(f"warning: {entry.name}: the replay run sampled only {total} steps in iterations "
              f"0-{entry.last_iteration}, fewer than size {suite.size}; all are kept")
    return Dataset(picked, {"env_name": entry.env_name, "act_repeat": 1,
                            "obs_mask": mask.tolist(), "mode": "pure", "seed": suite.seed,
                            "policy": f"{entry.replay} iterations 0-{entry.last_iteration}",
                            "replay_samples": total, "suite_name": entry.name})


def summary_table(suite: Suite, entries: list[SuiteEntry]) -> str:
    rows = ["| dataset | env | samples | episodes | return (mean ± std) | normalised mean | "
            "made from |", "|---|---|---|---|---|---|---|"]
    for entry in entries:
        data = load_dataset(suite.path(entry))
        s = summarize(data)
        norm = normalized_score(entry.env_name, s.return_mean)
        source = data.meta.get("policy", "?")
        if data.meta.get("mode") not in (None, "pure"):
            source += f" ({data.meta['mode']})"
        rows.append(f"| {entry.name} | {entry.env_name} | {s.samples} | {s.trajectories} | "
                    f"{s.return_mean:.0f} ± {s.return_std:.0f} | "
                    f"{'' if norm is None else f'{norm:.1f}'} | {source} |")
    return "\n".join(rows) + "\n"


def main() -> None:
    args = parse_args()
    suite = load_suite(args.suite)
    names = [e.name for e in suite.entries]
    unknown = sorted(set(args.only or []) - set(names))
    if unknown:
        raise MorelError(f"--only: {unknown} not in {args.suite} (it has {', '.join(names)})")
    if args.readme:
        check_marked_block(args.readme, "dataset-suite")
    chosen = [e for e in suite.entries if args.only is None or e.name in args.only]
    for entry in chosen:
        out = suite.path(entry)
        if out.exists() and not args.force:
            print(f"{entry.name}: {out} exists, skipped (--force rebuilds it)")
            continue
        start = time.time()
        reward = load_reward_file(entry.reward_file)
        if reward.obs_mask is None:
            raise MorelError(f"{entry.reward_file}: defines no obs_mask (the suite masks every "
                             "dataset with its env's reward file)")
        mask = np.asarray(reward.obs_mask, np.float64)
        build = build_replay if entry.replay else build_parts
        dataset = build(suite, entry, mask)
        save_dataset(dataset, out, force=True)
        print(f"{entry.name}: {summarize(dataset).table()} ({time.time() - start:.0f} s)")
    table = summary_table(suite, [e for e in suite.entries if suite.path(e).exists()])
    (suite.output_dir / "summary.md").write_text(table, encoding="utf-8")
    if args.readme:
        replace_marked_block(args.readme, "dataset-suite", table)
    print(table)


if __name__ == "__main__":
    run_cli(main)

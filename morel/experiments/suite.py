"""The dataset suite file (`experiments/configs/dataset_suite.txt`): which datasets
experiments/make_datasets.py builds.

The file is one dict literal, parsed like a config (nothing in it runs):

    {'size': 100000, 'seed': 123, 'output_dir': 'datasets/suite',
     'reward_files': {'Hopper-v5': 'utils/reward_functions/gym_hopper.py', ...},
     'datasets': {
        'hopper-medium': {'env_name': 'Hopper-v5',
                          'parts': [('logging_policy/hopper_v5_medium.pt', 'pure')]},
        'hopper-medium-replay': {'env_name': 'Hopper-v5', 'replay': 'runs/suite/npg_hopper',
                                 'replay_config': 'configs/npg_hopper_v5.txt',
                                 'last_iteration': 19}, ...}}

A dataset is either `parts`, (policy file or 'random', collect_dataset.py mode) pairs each
collected at size / len(parts) steps and concatenated, or `replay`, the episodes a
train_policy.py --save_samples run sampled in iterations 0 ... last_iteration.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from morel.config.fields import ConfigError
from morel.config.files import parse_config_text

SUITE_KEYS = {"size", "seed", "output_dir", "reward_files", "datasets"}
ENTRY_KEYS = {"env_name", "parts", "replay", "replay_config", "last_iteration"}


@dataclass(frozen=True)
class SuiteEntry:
    """One dataset of the suite."""

    name: str
    env_name: str
    reward_file: str
    parts: tuple[tuple[str, str], ...] = ()
    replay: str | None = None
    replay_config: str | None = None
    last_iteration: int = 0

    @property
    def kind(self) -> str:
        """The D4RL-style kind: the name without its env prefix ('medium-replay')."""
        return self.name.split("-", 1)[1] if "-" in self.name else self.name


@dataclass(frozen=True)
class Suite:
    """The whole suite: shared size, seed and output folder, and its datasets in file order."""

    size: int
    seed: int
    output_dir: Path
    entries: tuple[SuiteEntry, ...]

    def path(self, entry: SuiteEntry) -> Path:
        return self.output_dir / f"{entry.name}.npz"


def _entry(name: str, raw: Any, reward_files: dict[str, str], src: str) -> SuiteEntry:
    where = f"{src}: dataset '{name}'"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a dict, got {type(raw).__name__}")
    unknown = set(raw) - ENTRY_KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)} (known: "
                          f"{sorted(ENTRY_KEYS)})")
    env = raw.get("env_name")
    if not isinstance(env, str) or env not in reward_files:
        raise ConfigError(f"{where}: env_name {env!r} has no entry in reward_files")
    parts, replay = raw.get("parts"), raw.get("replay")
    if (parts is None) == (replay is None):
        raise ConfigError(f"{where}: give exactly one of 'parts' or 'replay'")
    if parts is not None:
        ok = (isinstance(parts, (list, tuple)) and parts
              and all(isinstance(p, (list, tuple)) and len(p) == 2
                      and all(isinstance(x, str) for x in p) for p in parts))
        if not ok:
            raise ConfigError(f"{where}: 'parts' must be a list of (policy, mode) string pairs")
        return SuiteEntry(name, env, reward_files[env], tuple(tuple(p) for p in parts))
    last = raw.get("last_iteration")
    config = raw.get("replay_config")
    if not isinstance(replay, str) or not isinstance(config, str) or not isinstance(last, int):
        raise ConfigError(f"{where}: 'replay' (a train_policy.py job directory) needs "
                          "'replay_config' (its config file) and 'last_iteration' (an int)")
    return SuiteEntry(name, env, reward_files[env], replay=replay, replay_config=config,
                      last_iteration=last)


def load_suite(path: str | Path) -> Suite:
    """Parse and check a suite file; errors name the file and the dataset."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: suite file not found")
    raw, _ = parse_config_text(path.read_text(encoding="utf-8"), str(path))
    unknown = set(raw) - SUITE_KEYS
    missing = SUITE_KEYS - set(raw)
    if unknown or missing:
        raise ConfigError(f"{path}: unknown keys {sorted(unknown)}, missing keys "
                          f"{sorted(missing)} (a suite has {sorted(SUITE_KEYS)})")
    if not isinstance(raw["size"], (int, float)) or raw["size"] < 1:
        raise ConfigError(f"{path}: 'size' must be a positive number")
    if not isinstance(raw["seed"], int) or not isinstance(raw["output_dir"], str):
        raise ConfigError(f"{path}: 'seed' must be an int and 'output_dir' a string")
    if not isinstance(raw["reward_files"], dict) or not isinstance(raw["datasets"], dict):
        raise ConfigError(f"{path}: 'reward_files' and 'datasets' must be dicts")
    entries = tuple(_entry(name, value, raw["reward_files"], str(path))
                    for name, value in raw["datasets"].items())
    return Suite(int(raw["size"]), raw["seed"], Path(raw["output_dir"]), entries)

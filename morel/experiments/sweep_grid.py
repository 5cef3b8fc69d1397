"""The sweep grid file (`experiments/configs/sweep_suite.txt`) and the runs it expands to.

The file is one dict literal, parsed like a config (nothing in it runs):

    {'output_dir': 'runs/sweep_suite',
     'suite': 'experiments/configs/dataset_suite.txt',         # the datasets (make_datasets.py)
     'datasets': None,                             # or a list of suite names
     'base_configs': {'Hopper-v5': 'configs/hopper_v5_quick.txt', ...},
     'seeds': {'Hopper-v5': [1, 2, 3], ...},
     'algos': {'morel': ('run_morel.py', []),
               'naive': ('run_morel.py', ['pessimism_coef=None']),
               'bc': ('run_bc.py', []),
               'tuned': ('run_morel.py', {'Hopper-v5': [...], ...})}}   # per env

Every (dataset, algo, seed) is one run: `SCRIPT --config BASE --output OUTPUT_DIR/DATASET/ALGO_sSEED
--seed SEED --set data_file=DATASET_FILE --set ...`, with the algo's `--set` assignments (a list
for every env, or a dict of lists by env name).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from morel.config.fields import ConfigError
from morel.config.files import parse_config_text
from morel.experiments.suite import load_suite
from morel.runs.jobdir import run_finished

GRID_KEYS = {"output_dir", "suite", "datasets", "base_configs", "seeds", "algos"}
# a grid names its algos' scripts by name; where they live in the project
SCRIPTS = {"run_morel.py": "run_morel.py", "run_bc.py": "experiments/run_bc.py"}
ROOT = Path(__file__).resolve().parents[2]  # the project folder


@dataclass(frozen=True)
class SweepRun:
    """One (dataset, algo, seed) run of a sweep."""

    dataset: str
    env_name: str
    algo: str
    seed: int
    script: str
    config: str
    data_file: str
    assignments: tuple[str, ...]
    job: Path

    @property
    def name(self) -> str:
        return f"{self.dataset}/{self.algo}_s{self.seed}"

    @property
    def log_file(self) -> Path:
        return self.job.with_name(self.job.name + ".log")

    def finished(self) -> bool:
        return run_finished(self.job)

    def resumable(self) -> bool:
        checkpoint = self.job / "iterations" / "checkpoint.pt"
        return self.script == "run_morel.py" and checkpoint.is_file()

    def command(self, resume: bool = False) -> list[str]:
        """The command line (python and the script by absolute path); --resume continues a
        checkpointed run, otherwise --force starts it afresh."""
        sets = [x for a in (f"data_file={self.data_file}", *self.assignments)
                for x in ("--set", a)]
        return [sys.executable, str(ROOT / SCRIPTS[self.script]), "--config", self.config,
                "--output", str(self.job), "--seed", str(self.seed), *sets,
                "--resume" if resume else "--force"]


def _check(cond: bool, path: Path, message: str) -> None:
    if not cond:
        raise ConfigError(f"{path}: {message}")


Assignments = tuple[str, ...]


def _algos(raw: Any, path: Path) -> dict[str, tuple[str, Assignments | dict[str, Assignments]]]:
    """{algo: (script, assignments for every env, or a dict of them by env name)}."""
    _check(isinstance(raw, dict) and bool(raw), path, "'algos' must be a non-empty dict")

    def strings(v: Any) -> bool:
        return isinstance(v, (list, tuple)) and all(isinstance(a, str) for a in v)

    algos = {}
    for name, value in raw.items():
        ok = (isinstance(value, (list, tuple)) and len(value) == 2 and value[0] in SCRIPTS
              and (strings(value[1]) or (isinstance(value[1], dict)
                                         and all(strings(v) for v in value[1].values()))))
        _check(ok, path, f"algo '{name}' must be (script, [KEY=VALUE, ...]) or (script, "
               f"{{ENV_NAME: [KEY=VALUE, ...], ...}}) with script one of {', '.join(SCRIPTS)}")
        by_env = isinstance(value[1], dict)
        algos[name] = (value[0], {k: tuple(v) for k, v in value[1].items()} if by_env
                       else tuple(value[1]))
    return algos


def load_grid(path: str | Path) -> list[SweepRun]:
    """Parse a grid file and expand it into runs (paths made absolute, relative to the working
    directory, so the runs do not depend on where a Ray worker starts)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: grid file not found")
    raw, _ = parse_config_text(path.read_text(encoding="utf-8"), str(path))
    _check(set(raw) == GRID_KEYS, path, f"a grid has exactly the keys {sorted(GRID_KEYS)}; "
           f"unknown {sorted(set(raw) - GRID_KEYS)}, missing {sorted(GRID_KEYS - set(raw))}")
    suite = load_suite(raw["suite"])
    names = [e.name for e in suite.entries]
    chosen = raw["datasets"]
    if chosen is not None:
        _check(isinstance(chosen, (list, tuple)) and all(c in names for c in chosen), path,
               f"'datasets' must be None or a list of names from {raw['suite']}: "
               f"{', '.join(names)}")
    algos = _algos(raw["algos"], path)
    out = Path(raw["output_dir"]).resolve()
    runs = []
    for entry in suite.entries:
        if chosen is not None and entry.name not in chosen:
            continue
        base, seeds = raw["base_configs"].get(entry.env_name), raw["seeds"].get(entry.env_name)
        _check(isinstance(base, str), path, f"'base_configs' has no config for {entry.env_name}")
        _check(Path(base).is_file(), path, f"base config {base} not found")
        _check(isinstance(seeds, (list, tuple)) and bool(seeds)
               and all(isinstance(s, int) for s in seeds), path,
               f"'seeds' needs a list of ints for {entry.env_name}")
        for algo, (script, assignments) in algos.items():
            if isinstance(assignments, dict):
                _check(entry.env_name in assignments, path, f"algo '{algo}' has no assignments "
                       f"for {entry.env_name} (dataset {entry.name}); add '{entry.env_name}': "
                       "[...]")
                assignments = assignments[entry.env_name]
            for seed in seeds:
                runs.append(SweepRun(entry.name, entry.env_name, algo, seed, script,
                                     str(Path(base).resolve()),
                                     str(suite.path(entry).resolve()), assignments,
                                     out / entry.name / f"{algo}_s{seed}"))
    return runs

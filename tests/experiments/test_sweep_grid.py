"""Grid files expand into runs: one per (dataset, algo, seed), with an algo's assignments given
for every env or per env; a grid that misses an env is refused with the fix."""

from __future__ import annotations

import pytest
from conftest import ROOT

from morel.config.fields import ConfigError
from morel.experiments.sweep_grid import load_grid

GRID = """{{'output_dir': '{out}', 'suite': 'experiments/configs/dataset_suite.txt',
'datasets': ['hopper-medium', 'walker2d-random'],
'base_configs': {{'Hopper-v5': 'configs/hopper_v5_quick.txt',
                 'Walker2d-v5': 'configs/walker2d_v5_quick.txt'}},
'seeds': {{'Hopper-v5': [1, 2], 'Walker2d-v5': [7]}},
'algos': {{'bc': ('run_bc.py', []), 'tuned': ('run_morel.py', {algo})}}}}"""


def _grid(tmp_path, algo: str):
    path = tmp_path / "grid.txt"
    path.write_text(GRID.format(out=tmp_path / "out", algo=algo))
    return path


def test_per_env_assignments_go_to_that_envs_runs_only(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    runs = load_grid(_grid(tmp_path, "{'Hopper-v5': ['fit_epochs=40'], "
                                     "'Walker2d-v5': ['bc_init_std=True', 'horizon=50']}"))
    got = {(r.dataset, r.algo, r.seed): r for r in runs}
    assert sorted(got) == [("hopper-medium", "bc", 1), ("hopper-medium", "bc", 2),
                           ("hopper-medium", "tuned", 1), ("hopper-medium", "tuned", 2),
                           ("walker2d-random", "bc", 7), ("walker2d-random", "tuned", 7)]
    hopper = got["hopper-medium", "tuned", 2]
    assert hopper.assignments == ("fit_epochs=40",)
    assert hopper.job == tmp_path / "out" / "hopper-medium" / "tuned_s2"
    command = hopper.command()
    assert command[command.index("--seed") + 1] == "2"
    assert command[-5:] == ["--set", f"data_file={ROOT / 'datasets/suite/hopper-medium.npz'}",
                            "--set", "fit_epochs=40", "--force"]
    assert got["walker2d-random", "tuned", 7].assignments == ("bc_init_std=True", "horizon=50")
    assert got["walker2d-random", "bc", 7].assignments == ()


def test_list_assignments_go_to_every_env(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    runs = load_grid(_grid(tmp_path, "['pessimism_coef=None']"))
    assert {r.assignments for r in runs if r.algo == "tuned"} == {("pessimism_coef=None",)}


@pytest.mark.parametrize("algo, message", [
    ("{'Hopper-v5': ['fit_epochs=40']}",
     "algo 'tuned' has no assignments for Walker2d-v5 (dataset walker2d-random); add "
     "'Walker2d-v5': [...]"),
    ("{'Hopper-v5': 'fit_epochs=40', 'Walker2d-v5': []}",
     "algo 'tuned' must be (script, [KEY=VALUE, ...]) or (script, {ENV_NAME: [KEY=VALUE, ...], "
     "...})"),
    ("[1]", "algo 'tuned' must be (script, [KEY=VALUE, ...])"),
])
def test_bad_assignments_are_refused_naming_the_algo_and_fix(tmp_path, monkeypatch, algo,
                                                              message):
    monkeypatch.chdir(ROOT)
    path = _grid(tmp_path, algo)
    with pytest.raises(ConfigError) as err:
        load_grid(path)
    assert str(err.value).startswith(f"{path}: {message}")

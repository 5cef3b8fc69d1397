"""Config parsing: the original's files parse; hostile files are refused without running."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest
from conftest import ROOT

from morel.config.fields import ConfigError
from morel.config.files import (
    apply_assignments,
    load_config,
    override,
    parse_config_text,
    write_config_json,
)
from morel.config.keys import BLOCKS, key_fields, key_table
from morel.config.schema import MorelConfig
from morel.experiments.suite import load_suite

ORIGINAL_CONFIGS = ["hopper_v5_morel", "hopper_v5_naive", "d4rl_hopper_medium"]


@pytest.mark.parametrize("name", ORIGINAL_CONFIGS)
def test_original_configs_parse_with_their_values(name):
    cfg = load_config(ROOT / "configs" / f"{name}.txt")
    assert cfg.env_name == "Hopper-v5"
    assert cfg.hidden_size == (512, 512) and cfg.policy_size == (64, 64)
    assert cfg.max_steps == 100_000_000 and isinstance(cfg.max_steps, int)  # written as 1e8
    assert cfg.npg_hp.FIM_invert_args.damping == 1e-3
    expected = {"hopper_v5_morel": (0.5, 25, 500), "hopper_v5_naive": (None, 25, 500),
                "d4rl_hopper_medium": (3.0, 20, 700)}[name]
    assert (cfg.pessimism_coef, cfg.npg_hp.FIM_invert_args.iters, cfg.horizon) == expected


def test_defaults_are_filled_and_json_round_trips(tmp_path):
    cfg = load_config(_write(tmp_path, "{'env_name': 'Hopper-v5', 'data_file': 'd.pickle'}"))
    assert cfg.act_repeat == 1 and cfg.learn_reward is True and cfg.start_state == "init"
    assert cfg.gamma == 0.995 and cfg.npg_hp.FIM_invert_args.iters == 10
    out = tmp_path / "job_data.json"
    write_config_json(cfg, out, truncate_lim=1.5)
    data = json.loads(out.read_text())
    assert data["truncate_lim"] == 1.5 and data["hidden_size"] == [64, 64]
    assert data["npg_hp"] == {"FIM_invert_args": {"iters": 10, "damping": 1e-4},
                              "hvp_sample_frac": 1.0}
    data.pop("truncate_lim")
    reloaded = load_config(_write(tmp_path, repr(data), "again.txt"))
    assert reloaded == cfg


def test_literal_forms_comments_and_trailing_commas():
    text = """{
    # comment
    'a': (1, 2,), 'b': [1.5, -2], 'c': None, 'd': True,
    'e': dict(x={'y': -1e-3}),   # trailing comment
    }"""
    value, lines = parse_config_text(text)
    assert value == {"a": (1, 2), "b": [1.5, -2], "c": None, "d": True, "e": {"x": {"y": -1e-3}}}
    assert lines["a"] == 3 and lines["e.x.y"] == 4


HOSTILE = [
    "{'env_name': __import__('os').system('touch {marker}')}",
    "__import__('os').system('touch {marker}')",
    "{'a': open('{marker}', 'w')}",
    "{'a': (lambda: __import__('os').system('touch {marker}'))()}",
    "{'a': ().__class__.__base__.__subclasses__()}",
    "{'a': [x for x in ().__class__.__mro__]}",
    "{'a': f'{{open(\"{marker}\", \"w\")}}'}",
    "{'a': dict(**{{'b': 1}})}",
    "{**{{'a': 1}}}",
    "{'a': 1 + 1}",
    "{'a': exec('import os')}",
]


@pytest.mark.parametrize("template", HOSTILE)
def test_hostile_configs_are_refused_and_nothing_runs(tmp_path, template):
    marker = tmp_path / "pwned"
    path = _write(tmp_path, template.replace("{marker}", str(marker)))
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(path) in str(err.value)
    assert not marker.exists()


def test_unknown_key_names_closest_key_file_and_line(tmp_path):
    path = _write(tmp_path, "{'env_name': 'Hopper-v5', 'data_file': 'd',\n'fit_lrr': 1e-3}")
    with pytest.raises(ConfigError, match=r"line 2: unknown key 'fit_lrr' \(did you mean "
                                          r"'fit_lr'\?\)"):
        load_config(path)


def test_unknown_nested_key_and_dead_original_key(tmp_path):
    nested = "{'env_name': 'H', 'data_file': 'd', 'npg_hp': dict(FIM_invert_args={'iterz': 3})}"
    with pytest.raises(ConfigError, match="npg_hp.FIM_invert_args.iterz.*npg_hp.FIM_invert_args"
                                          ".iters"):
        load_config(_write(tmp_path, nested))
    dead = "{'env_name': 'H', 'data_file': 'd', 'hvp_frac': 0.5}"
    with pytest.raises(ConfigError, match="hvp_sample_frac"):
        load_config(_write(tmp_path, dead, "dead.txt"))


@pytest.mark.parametrize("key, value, expect", [
    ("fit_lr", "'fast'", "expects float, got str 'fast'"),
    ("num_models", "2.5", "expects int, got float 2.5"),
    ("num_models", "True", "expects int, got bool True"),
    ("hidden_size", "(512, 'x')", "expects tuple of int"),
    ("start_state", "'random'", "expects 'init' or 'buffer'"),
    ("pessimism_coef", "'high'", "expects float or None"),
    ("gamma", "1.5", "must be in \\[0, 1\\]"),
    ("fit_mb_size", "0", r"must be in \[1, 10000000\], got 0"),
    ("num_models", "100000000000000000000", r"must be a finite number \(ints within"),
    ("step_size", "1e999", r"must be a finite number"),
    ("hidden_size", "(64, 100000)", r"must be 1 to 16 sizes in \[1, 65536\]"),
    ("npg_hp", "3", "expects a dict"),
])
def test_wrong_types_name_key_type_file_and_line(tmp_path, key, value, expect):
    path = _write(tmp_path, f"{{'env_name': 'Hopper-v5',\n'data_file': 'd',\n'{key}': {value}}}")
    with pytest.raises(ConfigError, match=f"{path} line 3: key '{key}' {expect}"):
        load_config(path)


def test_structural_errors(tmp_path):
    with pytest.raises(ConfigError, match="missing required key.*'data_file'"):
        load_config(_write(tmp_path, "{'env_name': 'Hopper-v5'}"))
    with pytest.raises(ConfigError, match="line 2: key 'seed' appears twice"):
        load_config(_write(tmp_path, "{'seed': 1,\n'seed': 2}", "dup.txt"))
    with pytest.raises(ConfigError, match="not a valid dict literal"):
        load_config(_write(tmp_path, "{'seed': ", "syntax.txt"))
    with pytest.raises(ConfigError, match="one dict literal"):
        load_config(_write(tmp_path, "[1, 2]", "list.txt"))
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "absent.txt")


def test_relative_paths_resolve_cwd_then_config_folder_then_project(tmp_path, monkeypatch):
    cfg_dir = tmp_path / "cfgs"
    cfg_dir.mkdir()
    (cfg_dir / "next_to_config.pickle").write_bytes(b"")
    work = tmp_path / "work"
    work.mkdir()
    (work / "in_cwd.pickle").write_bytes(b"")
    monkeypatch.chdir(work)
    cfg = load_config(_write(cfg_dir, "{'env_name': 'H', 'data_file': 'in_cwd.pickle', "
                                      "'model_file': 'next_to_config.pickle', "
                                      "'reward_file': 'utils/reward_functions/gym_hopper.py', "
                                      "'init_policy': 'absent.pt'}"))
    assert cfg.resolve_path("data_file") == Path("in_cwd.pickle")
    assert cfg.resolve_path("model_file") == cfg_dir.resolve() / "next_to_config.pickle"
    assert cfg.resolve_path("reward_file") == ROOT / "utils/reward_functions/gym_hopper.py"
    with pytest.raises(ConfigError, match="'init_policy' file not found \\(tried absent.pt, "):
        cfg.resolve_path("init_policy")


def test_overrides_are_validated(tmp_path):
    cfg = load_config(_write(tmp_path, "{'env_name': 'Hopper-v5', 'data_file': 'd'}"))
    assert override(cfg, seed=7, device=None).seed == 7
    assert override(cfg).seed == cfg.seed
    with pytest.raises(ConfigError, match="key 'seed' expects int"):
        override(cfg, seed="x")


def test_schema_fields_all_documented():
    for f in dataclasses.fields(MorelConfig):
        assert f.metadata.get("doc"), f.name


def _write(folder: Path, text: str, name: str = "cfg.txt") -> Path:
    path = folder / name
    path.write_text(text)
    return path


def test_config_size_limit(tmp_path):
    path = tmp_path / "big.txt"
    with open(path, "w") as f:
        f.write("{'a': '" + "x" * 1_100_000 + "'}")
    with pytest.raises(ConfigError, match="larger than"):
        load_config(path)
    assert os.path.getsize(path) > 1_000_000


@pytest.mark.parametrize("block, schema", list(BLOCKS.items()))
def test_docs_list_every_key_as_the_schema_says(block, schema):
    """docs/config.md's tables are the schemas' own (python -m morel.config.keys rewrites them),
    and every key is in one group."""
    page = (ROOT / "docs" / "config.md").read_text()
    table = page.split(f"<!-- {block} -->\n")[1].split(f"<!-- /{block} -->")[0]
    assert table == key_table(schema)
    for name in key_fields(schema):
        assert table.count(f"| `{name}` |") == 1, name


@pytest.mark.parametrize("env", ["hopper", "walker2d", "halfcheetah"])
def test_shipped_npg_configs_parse(env):
    from morel.config.train import PolicyTrainConfig

    cfg = load_config(ROOT / "configs" / f"npg_{env}_v5.txt", PolicyTrainConfig)
    assert cfg.env_name.lower().startswith(env) and cfg.num_samples == 20_000
    with pytest.raises(ConfigError, match="unknown key 'num_samples'"):
        load_config(ROOT / "configs" / f"npg_{env}_v5.txt")  # not a MOReL config


GRIDS = ROOT / "experiments" / "configs"
SHIPPED = sorted([*(ROOT / "configs").glob("*.txt"), *GRIDS.glob("*.txt")])


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_every_shipped_config_loads(path, monkeypatch):
    from morel.config.train import PolicyTrainConfig
    from morel.experiments.sweep_grid import load_grid

    monkeypatch.chdir(ROOT)
    if path.name == "dataset_suite.txt":
        assert len(load_suite(path).entries) == 14
        return
    if path.name == "sweep_suite.txt":
        assert {run.algo for run in load_grid(path)} == {"morel", "naive", "bc", "morel_datastd",
                                                         "morel_datastd_ep40"}
        return
    if path.name == "sweep_heldout.txt":  # per env, one of the suite sweep's MOReL columns
        suite = {(r.env_name, r.algo): r.assignments
                 for r in load_grid(GRIDS / "sweep_suite.txt")}
        chosen = {"Hopper-v5": "morel_datastd", "HalfCheetah-v5": "morel_datastd_ep40",
                  "Walker2d-v5": "morel_datastd"}
        runs = load_grid(path)
        assert {r.algo for r in runs} == {"bc", "morel_per_env"} and len(runs) == 2 * 14 * 3
        for r in runs:
            assert r.seed in (4, 5, 6) and r.assignments == (
                () if r.algo == "bc" else suite[r.env_name, chosen[r.env_name]])
        return
    if path.name == "sweep_current.txt":  # the quick configs as shipped, fresh seeds 4-6
        runs = load_grid(path)
        assert {(r.algo, r.assignments) for r in runs} == {("bc", ()), ("morel", ())}
        assert len(runs) == 2 * 14 * 3 and {r.seed for r in runs} == {4, 5, 6}
        return
    if path.name == "sweep_screen.txt":  # "data std" plus one valid change per candidate
        datastd = next(r.assignments for r in load_grid(GRIDS / "sweep_suite.txt")
                       if r.algo == "morel_datastd")
        runs = load_grid(path)
        assert len(runs) == 5 * 3 * 2 and {r.env_name for r in runs} == {"Hopper-v5"}
        extra = {r.algo: r.assignments[len(datastd):] for r in runs if r.algo.startswith("morel")}
        assert extra == {"morel_datastd": (), "morel_datastd_p3": ("pessimism_coef=3.0",),
                         "morel_datastd_hp100": ("halt_penalty=-100.0",),
                         "morel_datastd_m8": ("num_models=8",)}
        base = load_config(runs[0].config)
        for r in runs:
            if r.algo != "bc":
                assert r.assignments[:len(datastd)] == datastd
                cfg = apply_assignments(base, list(r.assignments))
                assert cfg.bc_init_std and cfg.min_log_std == -2.0
        return
    members_seeds = {"sweep_members.txt": {1, 2, 3}, "sweep_heldout_members.txt": {4, 5, 6}}
    if path.name in members_seeds:  # the screen's 8-member candidate on all of Hopper
        screen = {r.algo: r.assignments for r in load_grid(GRIDS / "sweep_screen.txt")}
        runs = load_grid(path)
        assert len(runs) == 2 * 8 * 3 and {r.seed for r in runs} == members_seeds[path.name]
        assert {r.dataset for r in runs} == {e.name for e in load_suite(
            GRIDS / "dataset_suite.txt").entries if e.env_name == "Hopper-v5"}
        assert {(r.algo, r.assignments) for r in runs} == {
            ("bc", ()), ("morel_datastd_m8", screen["morel_datastd_m8"])}
        return
    if path.name == "sweep_kl_guard.txt":  # the 8-member candidate plus max_kl, hopper-random
        members = {r.algo: r.assignments for r in load_grid(GRIDS / "sweep_members.txt")}
        runs = load_grid(path)
        assert len(runs) == 2 * 6 and {r.dataset for r in runs} == {"hopper-random"}
        assert {(r.algo, r.assignments) for r in runs} == {
            ("bc", ()), ("morel_datastd_m8_kl", (*members["morel_datastd_m8"], "max_kl=0.1"))}
        guarded = next(r for r in runs if r.algo != "bc")
        cfg = apply_assignments(load_config(guarded.config), list(guarded.assignments))
        assert cfg.max_kl == 0.1 and cfg.num_models == 8
        return
    if path.name == "npg_hopper_v5_from_bc.txt":  # real-env NPG with the quick config's NPG
        real = load_config(path, PolicyTrainConfig)
        quick = load_config(ROOT / "configs" / "hopper_v5_quick.txt")
        for key in ("env_name", "act_repeat", "num_iter", "eval_rollouts", "policy_size",
                    "init_log_std", "min_log_std", "step_size", "gamma", "gae_lambda",
                    "npg_hp"):
            assert getattr(real, key) == getattr(quick, key), key
        assert real.num_samples == quick.update_paths * quick.num_models * quick.horizon
        return
    schema = PolicyTrainConfig if path.name.startswith("npg_") else MorelConfig
    cfg = load_config(path, schema)
    assert cfg.env_name.endswith("-v5") and cfg.device in ("auto", "cpu")
    if schema is MorelConfig:
        assert cfg.data_file.startswith("datasets/")
        assert cfg.resolve_path("reward_file").is_file()


@pytest.mark.parametrize("env", ["halfcheetah", "walker2d"])
def test_full_configs_keep_the_quick_configs_choices_at_the_hopper_sizes(env):
    """The full-size configs justify their per-env keys by the quick trials: keep them in step."""
    full = load_config(ROOT / "configs" / f"{env}_v5_morel.txt")
    quick = load_config(ROOT / "configs" / f"{env}_v5_quick.txt")
    hopper = load_config(ROOT / "configs" / "hopper_v5_morel.txt")
    per_env = ("env_name", "reward_file", "pessimism_coef", "halt_quantile", "gamma",
               "halt_terminates", "act_repeat", "clip_actions")
    assert [getattr(full, k) for k in per_env] == [getattr(quick, k) for k in per_env]
    sizes = ("hidden_size", "fit_mb_size", "fit_epochs", "num_iter", "update_paths", "horizon",
             "npg_hp", "num_models")
    assert [getattr(full, k) for k in sizes] == [getattr(hopper, k) for k in sizes]


def test_set_assignments_override_any_key_and_refuse_bad_ones():
    from morel.config.files import apply_assignments

    cfg = load_config(ROOT / "configs" / "hopper_v5_quick.txt")
    sets = ["pessimism_coef=None", "data_file=d/x.npz", "hidden_size=(32, 16)",
            "npg_hp={'FIM_invert_args': {'iters': 3}}"]  # a dict replaces the whole key
    new = apply_assignments(cfg, sets)
    assert new.pessimism_coef is None and new.data_file == "d/x.npz"
    assert new.hidden_size == (32, 16) and new.npg_hp.FIM_invert_args.iters == 3
    assert new.npg_hp.FIM_invert_args.damping == 1e-4  # absent sub-keys take their defaults
    assert new.gamma == cfg.gamma and new.source == cfg.source
    assert apply_assignments(cfg, []) is cfg
    for bad, message in [("fit_lrr=1", "unknown key 'fit_lrr'"), ("gamma=fast", "expects float"),
                         ("gamma", "expected KEY=VALUE"), ("=3", "expected KEY=VALUE")]:
        with pytest.raises(ConfigError, match=message):
            apply_assignments(cfg, [bad])

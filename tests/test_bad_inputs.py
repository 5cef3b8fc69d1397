"""The catalogue of bad inputs (README "Errors"): each is one line on stderr starting 'error: ',
exit code 2, and nothing written or lost. One case per README row, run in-process as a user
would run the script."""

from __future__ import annotations

import pickle
import re
import runpy
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REWARDS, ROOT, collect_hopper_medium

from morel.config import load_config, override, write_config_json
from morel.data import Dataset, load_dataset, save_dataset
from morel.dynamics import DynamicsEnsemble, save_ensemble

CONFIG = """{{
'env_name': '{env}', 'seed': 0, 'num_iter': 2, 'eval_rollouts': 1, 'num_models': 2,
'data_file': '{data}', 'reward_file': '{reward}', 'learn_reward': False,
'model_file': {model}, 'hidden_size': (8,), 'fit_epochs': 1, 'policy_size': (8,),
'update_paths': 4, 'horizon': 20, 'pessimism_coef': 1.0, 'device': 'cpu', {extra}
}}
"""
HOPPER_REWARD = REWARDS / "gym_hopper.py"


@pytest.fixture(scope="module")
def hopper_data(tmp_path_factory) -> Path:
    """A small valid Hopper dataset (medium logging policy, obs_mask of the reward file)."""
    return collect_hopper_medium(tmp_path_factory.mktemp("bad_inputs") / "hopper.pickle", 400)


def write_config(folder: Path, data: Path, env: str = "Hopper-v5", model: str = "None",
                 extra: str = "", reward: Path = HOPPER_REWARD) -> Path:
    path = folder / "c.txt"
    path.write_text(CONFIG.format(env=env, data=data, model=model, extra=extra, reward=reward))
    return path


def write_paths(path: Path, paths: list[dict]) -> Path:
    path.write_bytes(pickle.dumps(paths))
    return path


def hopper_paths(n: int = 3, steps: int = 6) -> list[dict]:
    rng = np.random.default_rng(0)
    return [{"observations": rng.normal(size=(steps, 11)).astype(np.float32) * 0.01 + 1.25,
             "actions": rng.uniform(-1, 1, size=(steps, 3)).astype(np.float32),
             "rewards": np.ones(steps, dtype=np.float32)} for _ in range(n)]


def make_job(job: Path) -> dict[str, bytes]:
    """A directory holding a previous run; returns its files' contents."""
    (job / "iterations").mkdir(parents=True)
    files = {"job_data.json": b'{"seed": 7}', "models.pt": b"old ensemble",
             "iterations/checkpoint.pt": b"old checkpoint"}
    for name, content in files.items():
        (job / name).write_bytes(content)
    return files


def run(script: str, args: list, monkeypatch, capsys) -> str:
    """Run `python SCRIPT ARGS` in-process; assert exit code 2 and one 'error: ' line; return it."""
    monkeypatch.setattr(sys, "argv", [script, *map(str, args)])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(ROOT / script), run_name="__main__")
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 2, err
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def case_config_missing(tmp, data):
    return ["-c", tmp / "absent.txt", "-o", tmp / "job"]


def case_config_unreadable(tmp, data):
    (tmp / "folder.txt").mkdir()
    return ["-c", tmp / "folder.txt", "-o", tmp / "job"]


def case_config_corrupt(tmp, data):
    (tmp / "c.txt").write_text("{'env_name': 'Hopper-v5',\n'seed': (1,\n")
    return ["-c", tmp / "c.txt", "-o", tmp / "job"]


def case_config_with_code(tmp, data):
    (tmp / "c.txt").write_text(f"{{'env_name': __import__('os').system('touch {tmp}/ran')}}")
    return ["-c", tmp / "c.txt", "-o", tmp / "job"]


def case_unknown_key(tmp, data):
    return ["-c", write_config(tmp, data, extra="'pesimism_coef': 2.0"), "-o", tmp / "job"]


def case_mistyped_value(tmp, data):
    return ["-c", write_config(tmp, data, extra="'gamma': 'high'"), "-o", tmp / "job"]


def case_dataset_missing(tmp, data):
    return ["-c", write_config(tmp, tmp / "absent.pickle"), "-o", tmp / "job"]


def case_dataset_corrupt(tmp, data):
    (tmp / "d.pickle").write_bytes(b"\x80\x04not a pickle at all")
    return ["-c", write_config(tmp, tmp / "d.pickle"), "-o", tmp / "job"]


def case_dataset_with_code(tmp, data):
    class Evil:
        def __reduce__(self):
            return (print, ("ran",))

    (tmp / "d.pickle").write_bytes(pickle.dumps([Evil()]))
    return ["-c", write_config(tmp, tmp / "d.pickle"), "-o", tmp / "job"]


def case_dataset_dims(tmp, data):
    paths = hopper_paths()
    for p in paths:
        p["observations"] = p["observations"][:, :4]
    return ["-c", write_config(tmp, write_paths(tmp / "d.pickle", paths)), "-o", tmp / "job"]


def case_dataset_empty(tmp, data):
    return ["-c", write_config(tmp, write_paths(tmp / "d.pickle", [])), "-o", tmp / "job"]


def case_dataset_nan(tmp, data):
    paths = hopper_paths()
    paths[1]["rewards"][2] = np.nan
    return ["-c", write_config(tmp, write_paths(tmp / "d.pickle", paths)), "-o", tmp / "job"]


def case_dataset_short(tmp, data):
    paths = hopper_paths(steps=6)
    paths[2] = {k: v[:1] for k, v in paths[2].items()}
    return ["-c", write_config(tmp, write_paths(tmp / "d.pickle", paths)), "-o", tmp / "job"]


def case_dataset_wrong_mask(tmp, data):
    raw = load_dataset(data)
    out = save_dataset(Dataset(raw.paths, {**raw.meta, "obs_mask": [1.0] * 11}), tmp / "d.npz")
    return ["-c", write_config(tmp, out), "-o", tmp / "job"]


def case_env_mujoco_py(tmp, data):
    return ["-c", write_config(tmp, data, env="Hopper-v2"), "-o", tmp / "job"]


def case_cuda_without_cuda(tmp, data):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    return ["-c", write_config(tmp, data), "-o", tmp / "job", "--device", "cuda"]


def case_output_holds_a_run(tmp, data):
    make_job(tmp / "job")
    return ["-c", write_config(tmp, data), "-o", tmp / "job"]


def case_resume_without_a_run(tmp, data):
    return ["-c", write_config(tmp, data), "-o", tmp / "job", "--resume"]


def case_resume_changed_config(tmp, data):
    make_job(tmp / "job")
    config = write_config(tmp, data)
    write_config_json(override(load_config(config), seed=1), tmp / "job" / "job_data.json")
    return ["-c", config, "-o", tmp / "job", "--resume"]


def case_include_missing_functions(tmp, data):
    (tmp / "r.py").write_text("obs_mask = None\n")
    return ["-c", write_config(tmp, data), "-o", tmp / "job", "-i", tmp / "r.py"]


def case_include_missing(tmp, data):
    return ["-c", write_config(tmp, data), "-o", tmp / "job", "-i", tmp / "absent.py"]


def case_model_missing(tmp, data):
    make_job(tmp / "job")  # with --force the old run stays until the new model is ready
    return ["-c", write_config(tmp, data, model=f"'{tmp}/absent.pt'"), "-o", tmp / "job",
            "--force"]


def case_model_corrupt(tmp, data):
    make_job(tmp / "job")  # with --force the old run stays until the new model is ready
    (tmp / "m.pt").write_bytes(b"PK\x03\x04 not a torch file")
    return ["-c", write_config(tmp, data, model=f"'{tmp}/m.pt'"), "-o", tmp / "job", "--force"]


def case_model_other_env(tmp, data):
    make_job(tmp / "job")  # with --force the old run stays until the new model is ready
    save_ensemble(DynamicsEnsemble(2, 17, 6, (8,)), str(tmp / "m.pt"), {"env_name": "Walker2d-v5"})
    return ["-c", write_config(tmp, data, model=f"'{tmp}/m.pt'"), "-o", tmp / "job", "--force"]


def case_model_other_env_same_dims(tmp, data):
    make_job(tmp / "job")  # with --force the old run stays until the new model is ready
    save_ensemble(DynamicsEnsemble(2, 11, 3, (8,)), str(tmp / "m.pt"), {"env_name": "Hopper-v4"})
    return ["-c", write_config(tmp, data, model=f"'{tmp}/m.pt'"), "-o", tmp / "job", "--force"]


def case_policy_missing(tmp, data):
    return ["--env_name", "Hopper-v5", "--policy", tmp / "absent.pt", "--output",
            tmp / "o.pickle", "--size", "10"]


def case_policy_corrupt(tmp, data):
    (tmp / "p.pt").write_bytes(b"garbage")
    return ["--env_name", "Hopper-v5", "--policy", tmp / "p.pt", "--output", tmp / "o.pickle",
            "--size", "10"]


def case_policy_with_code(tmp, data):
    torch.save({"format": "x", "f": print}, tmp / "p.pt")
    return ["--env_name", "Hopper-v5", "--policy", tmp / "p.pt", "--output", tmp / "o.pickle",
            "--size", "10"]


def case_policy_other_env(tmp, data):
    return ["--env_name", "Walker2d-v5", "--policy",
            ROOT / "logging_policy" / "hopper_v5_medium.pt", "--output", tmp / "o.pickle",
            "--size", "10"]


# (case, script, regex the one-line message must match); README's table lists the same cases
CASES = [
    (case_config_missing, "run_morel.py", r"absent\.txt: config file not found"),
    (case_config_unreadable, "run_morel.py", r"folder\.txt: cannot read"),
    (case_config_corrupt, "run_morel.py", r"c\.txt.*line \d"),
    (case_config_with_code, "run_morel.py", r"c\.txt line 1: only literals .* found a call"),
    (case_unknown_key, "run_morel.py", r"unknown key 'pesimism_coef'.*pessimism_coef"),
    (case_mistyped_value, "run_morel.py", r"'gamma'.*float"),
    (case_dataset_missing, "run_morel.py",
     r"c\.txt: 'data_file' file not found \(tried .*absent\.pickle\)"),
    (case_dataset_corrupt, "run_morel.py", r"d\.pickle: unsafe or invalid pickle"),
    (case_dataset_with_code, "run_morel.py", r"d\.pickle: .*refused"),
    (case_dataset_dims, "run_morel.py", r"'observations' has dimension 4, but the env's is 11"),
    (case_dataset_empty, "run_morel.py", r"d\.pickle: the dataset holds no trajectories"),
    (case_dataset_nan, "run_morel.py", r"trajectory 1: field 'rewards' has a NaN/inf value"),
    (case_dataset_short, "run_morel.py", r"trajectory 2: 1 steps, at least 2 needed"),
    (case_dataset_wrong_mask, "run_morel.py", r"recorded with obs_mask"),
    (case_env_mujoco_py, "run_morel.py", r"'Hopper-v2' needs mujoco-py.*'Hopper-v5'"),
    (case_cuda_without_cuda, "run_morel.py", r"cuda.*not available"),
    (case_output_holds_a_run, "run_morel.py", r"already holds a run.*--resume.*--force"),
    (case_resume_without_a_run, "run_morel.py", r"no run to resume"),
    (case_resume_changed_config, "run_morel.py", r"config differs .* in seed; resume with"),
    (case_include_missing_functions, "run_morel.py", r"r\.py defines no reward_function"),
    (case_include_missing, "run_morel.py", r"absent\.py: reward/include file not found"),
    (case_model_missing, "run_morel.py",
     r"c\.txt: 'model_file' file not found \(tried .*absent\.pt\)"),
    (case_model_corrupt, "run_morel.py", r"m\.pt: not a readable model file"),
    (case_model_other_env, "run_morel.py", r"m\.pt: ensemble is for obs/act dims 17/6"),
    (case_model_other_env_same_dims, "run_morel.py", r"fitted for env 'Hopper-v4'"),
    (case_policy_missing, "collect_dataset.py", r"absent\.pt: policy file not found"),
    (case_policy_corrupt, "collect_dataset.py", r"p\.pt: not a readable policy file"),
    (case_policy_with_code, "collect_dataset.py",
     r"p\.pt: not a readable policy file .*nothing in it was run"),
    (case_policy_other_env, "collect_dataset.py",
     r"policy is for obs/act dims 11/3, env 'Walker2d-v5' has 17/6"),
]


@pytest.mark.parametrize("case, script, message", CASES, ids=[c[0].__name__[5:] for c in CASES])
def test_bad_input_is_one_line_exit_2_and_nothing_is_lost(case, script, message, tmp_path,
                                                          hopper_data, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    args = case(tmp_path, hopper_data)
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    line = run(script, args, monkeypatch, capsys)
    assert re.search(message, line), line
    after = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert after == before  # nothing written, changed or removed (an old run kept, even --force)
    assert not (tmp_path / "ran").exists()


def test_readme_lists_every_case():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme[readme.index("<!-- bad-inputs -->"):readme.index("<!-- /bad-inputs -->")]
    for case, _, _ in CASES:
        assert f"`{case.__name__[5:]}`" in table, case.__name__

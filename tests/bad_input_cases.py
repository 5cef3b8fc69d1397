"""The first part of the bad-input catalogue (docs/errors.md): missing, corrupt and mistaken
files, keys, flags and env ids. Each case builds its input in a folder and returns the script's
arguments; tests/test_bad_inputs.py runs them."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from conftest import ROOT, hopper_paths, make_job, write_config, write_paths

from morel.config.files import load_config, override, write_config_json
from morel.data.datasets import Dataset, load_dataset, save_dataset
from morel.models.dynamics import DynamicsEnsemble
from morel.models.files import save_ensemble


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


# (case, script, regex the one-line message must match); docs/errors.md's table lists the same cases
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

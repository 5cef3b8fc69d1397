"""The second part of the bad-input catalogue (docs/errors.md): hostile and broken inputs
(forged pickles, trusted metadata, out-of-range configs, unwritable outputs, broken reward files
and env ids, data a run would have accepted silently, damaged job directories, HDF5 files that
point elsewhere). Each case builds its input in a folder and returns the script's arguments;
tests/test_bad_inputs.py runs them."""

from __future__ import annotations

import json
import os
import pickle

import h5py
import numpy as np
import torch
from conftest import (
    REWARDS,
    ROOT,
    hopper_paths,
    write_config,
    write_paths,
)

from morel.config.files import load_config, write_config_json
from morel.models.dynamics import DynamicsEnsemble
from morel.models.files import save_ensemble
from morel.npg.policies import load_policy
from morel.runs.logger import DataLog

MEDIUM = ROOT / "logging_policy" / "hopper_v5_medium.pt"
REDUCE = np._core.multiarray._reconstruct


class Reduced:
    """Pickles as `fn(*args)` followed by BUILD with `state`: any request a file can make."""

    def __init__(self, fn, args, state=None):
        self.fn, self.args, self.state = fn, args, state

    def __reduce__(self):
        return (self.fn, self.args) if self.state is None else (self.fn, self.args, self.state)


def forged_array(dtype_state, shape, data, dtype_name="f8"):
    """An ndarray request with a dtype built from `dtype_state` (numpy's own is
    np.dtype(dtype_name).__reduce__()[2])."""
    dtype = Reduced(np.dtype, (dtype_name, False, True), dtype_state)
    return Reduced(REDUCE, (np.ndarray, (0,), b"b"), (1, shape, dtype, False, data))


def dataset_of(tmp, obj):
    """A run_morel config whose data_file is a pickle of `obj` (as the first path's
    observations when obj is not a list)."""
    paths = obj if isinstance(obj, list) else [{**hopper_paths(1)[0], "observations": obj}]
    (tmp / "d.pickle").write_bytes(pickle.dumps(paths, protocol=4))
    return ["-c", write_config(tmp, tmp / "d.pickle"), "-o", tmp / "job"]


# ----------------------------------------------------------------------------- 1. pickles


def case_pickle_object_array_from_bytes(tmp, data):
    # numpy would read these 32 raw bytes as 4 object pointers: a crash
    state = np.dtype("O").__reduce__()[2]
    return dataset_of(tmp, forged_array(state, (4,), b"\x41" * 32, "O8"))


FORGED_FLAGS = (3, "|", None, None, None, -1, -1, 0)  # an object dtype without its flags


def case_pickle_forged_dtype_flags(tmp, data):
    # numpy's unpickler then copies the 32 bytes in as object pointers: SIGSEGV (test_fuzz.py)
    return dataset_of(tmp, forged_array(FORGED_FLAGS, (4,), b"\x41" * 32, "O8"))


def case_pickle_shape_beyond_data(tmp, data):
    state = np.dtype("f8").__reduce__()[2]
    return dataset_of(tmp, forged_array(state, (10**9, 11), b"\x00" * 88))


def case_pickle_shared_references(tmp, data):
    # a 0.6 MB file whose shared references stand for 10,000 paths of 10k steps (6 GB)
    path = {k: np.repeat(v, 500, axis=0) for k, v in hopper_paths(1, 20)[0].items()}
    return dataset_of(tmp, [path] * 10_000)


def case_pickle_nested_deep(tmp, data):
    (tmp / "d.pickle").write_bytes(b"\x80\x02" + b"]" * 100_000 + b"a" * 99_999 + b".")
    return ["-c", write_config(tmp, tmp / "d.pickle"), "-o", tmp / "job"]


def case_pickle_cycle(tmp, data):
    paths = hopper_paths(2)
    paths.append(paths)
    return dataset_of(tmp, paths)


def case_dataset_is_a_pipe(tmp, data):
    os.mkfifo(tmp / "d.pickle")  # reading it would wait for ever
    return ["-c", write_config(tmp, tmp / "d.pickle"), "-o", tmp / "job"]


# ----------------------------------------------------------------------------- 2. metadata


def with_sidecar(tmp, meta_text):
    write_paths(tmp / "d.pickle", hopper_paths())
    (tmp / "d.pickle.meta.json").write_text(meta_text)
    return ["-c", write_config(tmp, tmp / "d.pickle"), "-o", tmp / "job"]


def case_sidecar_mask_length(tmp, data):
    return with_sidecar(tmp, json.dumps({"obs_mask": [1.0] * 5}))


def case_sidecar_act_repeat_text(tmp, data):
    return with_sidecar(tmp, json.dumps({"act_repeat": "two"}))


def case_sidecar_nested_deep(tmp, data):
    return with_sidecar(tmp, "[" * 100_000 + "]" * 100_000)


def policy_file(tmp, meta=None, **buffers):
    """The medium logging policy re-saved with other metadata or buffers (bypassing the
    NaN check of save_policy)."""
    policy, old_meta = load_policy(MEDIUM)
    state = {k: v.clone() for k, v in policy.state_dict().items()}
    state.update(buffers)
    payload = {"format": "morel.gaussian_mlp.v1", "obs_dim": 11, "act_dim": 3,
               "hidden_sizes": [64, 64], "state_dict": state, "meta": meta or old_meta}
    torch.save(payload, tmp / "p.pt")
    return tmp / "p.pt"


def collect_args(tmp, policy, *extra):
    return ["--env_name", "Hopper-v5", "--policy", policy, "--output", tmp / "o.pickle",
            "--size", "50", *extra]


def case_policy_meta_mask(tmp, data):
    meta = {"env_name": "Hopper-v5", "act_repeat": 1, "obs_mask": [1.0] * 5}
    return collect_args(tmp, policy_file(tmp, meta))


def case_sidecar_exists(tmp, data):
    (tmp / "o.pickle.meta.json").write_text('{"mine": true}')
    return collect_args(tmp, MEDIUM)


# ----------------------------------------------------------------------------- 3. configs


def case_config_num_models_huge(tmp, data):
    config = write_config(tmp, data)
    config.write_text(config.read_text().replace("'num_models': 2",
                                                 "'num_models': 100000000000000000000"))
    return ["-c", config, "-o", tmp / "job"]


def case_config_seed_negative(tmp, data):
    return ["-c", write_config(tmp, data, seed="-1"), "-o", tmp / "job"]


def case_config_seed_too_large(tmp, data):
    return ["-c", write_config(tmp, data, seed=str(2**64)), "-o", tmp / "job"]


def case_config_infinite_float(tmp, data):
    return ["-c", write_config(tmp, data, extra="'step_size': 1e999"), "-o", tmp / "job"]


def case_config_endless_stream(tmp, data):
    return ["-c", "/dev/zero", "-o", tmp / "job"]


# ----------------------------------------------------------------------------- 4. outputs


def case_output_dangling_symlink(tmp, data):
    os.symlink(tmp / "missing", tmp / "job")
    return ["-c", write_config(tmp, data), "-o", tmp / "job"]


def case_output_below_a_file(tmp, data):
    (tmp / "notes").write_text("mine")
    return ["-c", write_config(tmp, data), "-o", tmp / "notes" / "job"]


def case_collect_output_below_a_file(tmp, data):
    (tmp / "notes").write_text("mine")
    return ["--env_name", "Hopper-v5", "--policy", "random", "--output",
            tmp / "notes" / "d.npz", "--size", "50"]


def case_plot_over_another_file(tmp, data):
    log = DataLog()
    for k in range(3):
        log.log_dict({"eval_score": float(k)})
    log.save(tmp / "job" / "logs")
    (tmp / "plot.png").write_text("my notes, not an image")
    return ["--data", tmp / "job", "--output", tmp / "plot.png"]


# ----------------------------------------------------------------------------- 5. reward files


def reward_file(tmp, data, body):
    """gym_hopper.py's functions with `body` appended (overriding some of them)."""
    (tmp / "r.py").write_text((REWARDS / "gym_hopper.py").read_text() + "\n" + body)
    return ["-c", write_config(tmp, data, reward=tmp / "r.py"), "-o", tmp / "job", "-i",
            tmp / "r.py"]


def case_reward_mask_not_numeric(tmp, data):
    return reward_file(tmp, data, "obs_mask = ['position'] * 5 + ['velocity'] * 6\n")


def case_reward_function_wrong_shape(tmp, data):
    return reward_file(tmp, data, "def reward_function(paths, timing='next'):\n"
                                  "    return paths['actions'].sum()\n")


def case_termination_function_wrong_shape(tmp, data):
    return reward_file(tmp, data, "def termination_function(paths, timing='next'):\n"
                                  "    return paths['observations'][:, 0, 0] > 10\n")


def case_reward_function_raises(tmp, data):
    return reward_file(tmp, data, "def reward_function(paths, timing='next'):\n"
                                  "    raise ValueError('no rewards today')\n")


def case_env_missing_dependency(tmp, data):
    return ["-c", write_config(tmp, data, env="BipedalWalker-v3"), "-o", tmp / "job"]


# ----------------------------------------------------------------------------- 6. silent data


def case_dataset_complex_observations(tmp, data):
    paths = hopper_paths()
    paths[1]["observations"] = paths[1]["observations"] * (1 + 1j)
    return ["-c", write_config(tmp, write_paths(tmp / "d.pickle", paths)), "-o", tmp / "job"]


def case_policy_nan_weights(tmp, data):
    policy, _ = load_policy(MEDIUM)
    weight = policy.state_dict()["layers.0.weight"].clone()
    weight[3, 2] = float("nan")
    return collect_args(tmp, policy_file(tmp, **{"layers.0.weight": weight}))


def case_policy_infinite_actions(tmp, data):
    # finite weights whose actions overflow float32: the dataset would hold inf
    return collect_args(tmp, policy_file(tmp, out_scale=torch.full((3,), 3e38),
                                         out_shift=torch.full((3,), 3e38)))


def case_policy_other_env_id(tmp, data):
    return collect_args(tmp, policy_file(tmp, {"env_name": "Hopper-v4", "act_repeat": 1}))


# ----------------------------------------------------------------------------- 7. resume


def resumable_job(tmp, data, checkpoint=None, job_data=None, model=None):
    """A job directory whose job_data.json matches the config; returns run_morel --resume."""
    config = write_config(tmp, data)
    job = tmp / "job"
    (job / "iterations").mkdir(parents=True)
    if job_data is None:
        write_config_json(load_config(config), job / "job_data.json")
    else:
        (job / "job_data.json").write_text(job_data)
    save_ensemble(model or DynamicsEnsemble(2, 11, 3, (8,)), str(job / "models.pt"))
    if checkpoint is not None:
        torch.save(checkpoint, job / "iterations" / "checkpoint.pt")
    return ["-c", config, "-o", job, "--resume"]


def case_resume_checkpoint_missing_key(tmp, data):
    return resumable_job(tmp, data, {"iteration": 2, "agent": {}, "best_score": 1.0})


def case_resume_job_data_not_a_dict(tmp, data):
    return resumable_job(tmp, data, {"iteration": 2}, job_data="[1, 2, 3]")


def case_resume_model_other_dims(tmp, data):
    checkpoint = {"iteration": 2, "agent": {}, "log": {}, "best_score": 1.0}
    return resumable_job(tmp, data, checkpoint, model=DynamicsEnsemble(2, 17, 6, (8,)))


def case_resume_before_first_checkpoint(tmp, data):
    return resumable_job(tmp, data)


def case_restart_before_first_checkpoint(tmp, data):
    return resumable_job(tmp, data)[:-1]  # the same job, without --resume


# ----------------------------------------------------------------------------- 8. HDF5


def h5_dataset(tmp, data, store):
    """Our .h5 dataset format with `store(f, name, array)` writing each field."""
    arrays = {"observations": np.zeros((12, 11), np.float32),
              "actions": np.zeros((12, 3), np.float32), "rewards": np.zeros(12, np.float32),
              "path_lengths": np.array([6, 6])}
    with h5py.File(tmp / "d.h5", "w") as f:
        for name, arr in arrays.items():
            store(f, name, arr)
    return ["-c", write_config(tmp, tmp / "d.h5"), "-o", tmp / "job"]


def case_h5_external_storage(tmp, data):
    (tmp / "secret.bin").write_bytes(b"\x01" * 1024)

    def store(f, name, arr):
        if name == "observations":  # read from another file on this machine
            f.create_dataset(name, arr.shape, arr.dtype,
                             external=[(str(tmp / "secret.bin"), 0, arr.nbytes)])
        else:
            f[name] = arr
    return h5_dataset(tmp, data, store)


def case_h5_external_link(tmp, data):
    with h5py.File(tmp / "other.h5", "w") as other:
        other["obs"] = np.zeros((12, 11), np.float32)

    def store(f, name, arr):
        if name == "observations":
            f[name] = h5py.ExternalLink(str(tmp / "other.h5"), "/obs")
        else:
            f[name] = arr
    return h5_dataset(tmp, data, store)


def case_d4rl_external_storage(tmp, data):
    (tmp / "secret.bin").write_bytes(b"\x01" * 4096)
    with h5py.File(tmp / "d4rl.hdf5", "w") as f:
        f.create_dataset("observations", (10, 11), np.float32,
                         external=[(str(tmp / "secret.bin"), 0, 440)])
        for key, shape in (("actions", (10, 3)), ("rewards", (10,)), ("terminals", (10,))):
            f[key] = np.zeros(shape, np.float32)
    return ["--input", tmp / "d4rl.hdf5", "--output", tmp / "out.npz"]


def minari_folder(tmp, metadata_text, fill_episode):
    """A Minari dataset folder tmp/ds/data: metadata.json as given, main_data.hdf5 with one
    episode whose datasets `fill_episode(group)` writes."""
    data = tmp / "ds" / "data"
    data.mkdir(parents=True)
    (data / "metadata.json").write_text(metadata_text)
    with h5py.File(data / "main_data.hdf5", "w") as f:
        fill_episode(f.create_group("episode_0"))
    return ["--input", tmp / "ds", "--output", tmp / "out.npz"]


def minari_episode(group, steps=5):
    group["observations"] = np.zeros((steps + 1, 11), np.float32)
    group["actions"] = np.zeros((steps, 3), np.float32)
    group["rewards"] = np.zeros(steps, np.float32)
    group["terminations"] = np.zeros(steps, bool)


def case_minari_external_link(tmp, data):
    with h5py.File(tmp / "other.h5", "w") as other:
        other["obs"] = np.zeros((6, 11), np.float32)

    def fill(group):
        minari_episode(group)
        del group["observations"]
        group["observations"] = h5py.ExternalLink(str(tmp / "other.h5"), "/obs")
    return minari_folder(tmp, '{"dataset_id": "t/d-v0", "minari_version": "0.5.4"}', fill)


def case_minari_metadata_not_json(tmp, data):
    return minari_folder(tmp, '{"dataset_id": "t/d-v0", ', minari_episode)


# (case, script, regex the one-line message must match); docs/errors.md's table lists the same cases
CASES = [
    (case_pickle_object_array_from_bytes, "run_morel.py",
     r"d\.pickle: unsafe or invalid pickle: an object array stored as raw bytes"),
    (case_pickle_forged_dtype_flags, "run_morel.py", r"dtype O8: its state .* is not numpy's"),
    (case_pickle_shape_beyond_data, "run_morel.py",
     r"array \(1000000000, 11\) of float64 needs 88000000000 bytes, the file holds 88"),
    (case_pickle_shared_references, "run_morel.py",
     r"its shared references stand for .* far more than the \d+ bytes it holds"),
    (case_pickle_nested_deep, "run_morel.py", r"containers nested deeper than 100 levels"),
    (case_pickle_cycle, "run_morel.py", r"a container that contains itself"),
    (case_dataset_is_a_pipe, "run_morel.py", r"d\.pickle: not a regular file"),
    (case_sidecar_mask_length, "run_morel.py",
     r"d\.pickle\.meta\.json: obs_mask has 5 entries but the env's observations have 11"),
    (case_sidecar_act_repeat_text, "run_morel.py",
     r"d\.pickle\.meta\.json: act_repeat must be an integer in \[1, 10000\], got two"),
    (case_sidecar_nested_deep, "run_morel.py", r"'meta' is JSON nested too deeply"),
    (case_policy_meta_mask, "collect_dataset.py",
     r"p\.pt: metadata obs_mask has 5 entries"),
    (case_sidecar_exists, "collect_dataset.py",
     r"o\.pickle\.meta\.json: metadata file exists \(it would be replaced\)"),
    (case_config_num_models_huge, "run_morel.py",
     r"key 'num_models' must be a finite number \(ints within"),
    (case_config_seed_negative, "run_morel.py", r"key 'seed' must be in \[0, 2\*\*63 - 1\]"),
    (case_config_seed_too_large, "run_morel.py", r"key 'seed' must be in \[0, 2\*\*63 - 1\]"),
    (case_config_infinite_float, "run_morel.py", r"key 'step_size' must be a finite number"),
    (case_config_endless_stream, "run_morel.py", r"/dev/zero: not a regular file"),
    (case_output_dangling_symlink, "run_morel.py",
     r"job: .*job is a symbolic link to a missing target"),
    (case_output_below_a_file, "run_morel.py", r"notes is a file, not a folder"),
    (case_collect_output_below_a_file, "collect_dataset.py", r"notes is a file, not a folder"),
    (case_plot_over_another_file, "utils/explore_results.py",
     r"plot\.png: exists and is not a PNG image; it is not replaced"),
    (case_reward_mask_not_numeric, "run_morel.py",
     r"r\.py: obs_mask must be a list of positive numbers"),
    (case_reward_function_wrong_shape, "run_morel.py",
     r"r\.py: reward_function returned .* shape \(\) .*must return a numpy \[N, T\] float"),
    (case_termination_function_wrong_shape, "run_morel.py",
     r"r\.py: termination_function returned .* shape \(2,\)"),
    (case_reward_function_raises, "run_morel.py",
     r"r\.py: reward_function failed on a numpy batch \[2, 3, 11\] \(ValueError: no rewards"),
    (case_env_missing_dependency, "run_morel.py",
     r"env 'BipedalWalker-v3' needs a package that is not installed: Box2D"),
    (case_dataset_complex_observations, "run_morel.py",
     r"trajectory 1: field 'observations' is complex \(complex64\); a dataset holds real"),
    (case_policy_nan_weights, "collect_dataset.py", r"p\.pt: policy file is damaged \(a NaN/inf"),
    (case_policy_infinite_actions, "collect_dataset.py",
     r"p\.pt: the policy's actions are NaN/inf \(episode \d+\); no dataset written"),
    (case_policy_other_env_id, "collect_dataset.py",
     r"policy was trained on env 'Hopper-v4', the collection asks for 'Hopper-v5'"),
    (case_resume_checkpoint_missing_key, "run_morel.py",
     r"checkpoint\.pt: not a complete checkpoint \(needs iteration, agent, log, best_score\); "
     r"start again with --force"),
    (case_resume_job_data_not_a_dict, "run_morel.py",
     r"job_data\.json: not a JSON object .*start again with --force"),
    (case_resume_model_other_dims, "run_morel.py",
     r"models\.pt: ensemble is for obs/act dims 17/6, env 'Hopper-v5' has 11/3; start again"),
    (case_resume_before_first_checkpoint, "run_morel.py",
     r"the run stopped before its first checkpoint .*start it again with --force"),
    (case_restart_before_first_checkpoint, "run_morel.py",
     r"holds a run that stopped before its first checkpoint .*--resume cannot continue it"),
    (case_h5_external_storage, "run_morel.py",
     r"d\.h5: 'observations' is stored in other files \(external or virtual storage is "
     r"refused\)"),
    (case_h5_external_link, "run_morel.py", r"d\.h5: 'observations' is an external link to"),
    (case_d4rl_external_storage, "prep_d4rl_dataset.py",
     r"d4rl\.hdf5: 'observations' is stored in other files"),
    (case_minari_external_link, "prep_d4rl_dataset.py",
     r"main_data\.hdf5: 'episode_0/observations' is an external link to"),
    (case_minari_metadata_not_json, "prep_d4rl_dataset.py",
     r"metadata\.json: unreadable Minari metadata \(JSONDecodeError\)"),
]

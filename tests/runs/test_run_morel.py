"""run_morel.py and learn_model.py end to end on a tiny Hopper dataset made by the shipped
medium logging policy: job files, log values, threshold, a killed and resumed run equal to an
uninterrupted one, loaded models."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import (
    ROOT,
    assert_same_run,
    collect_hopper_medium,
    kill_at_first_checkpoint,
    read_job_log,
    run_script,
)

from morel.envs.wrapper import make_vector_env
from morel.models.files import load_ensemble
from morel.npg.policies import load_policy
from morel.runs.loop import evaluation_returns

CONFIG = """{{
'env_name': 'Hopper-v5', 'data_file': '{data}', 'learn_reward': False,
'reward_file': 'utils/reward_functions/gym_hopper.py', 'seed': 5,
'num_iter': 4, 'eval_rollouts': 2, 'num_models': 3, 'save_freq': 2, 'bc_init': True,
'pessimism_coef': 1.0, 'hidden_size': (32, 32), 'fit_mb_size': 128, 'fit_epochs': 2,
'horizon': 60, 'update_paths': 8, 'step_size': 0.02,
'npg_hp': dict(FIM_invert_args={{'iters': 5, 'damping': 1e-3}}),
{extra}}}"""
TIMING = {"iter_time", "time_sampling", "time_vpg", "time_npg", "time_VF", "time_eval",
          "model_learning_time"}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("morel")
    data = collect_hopper_medium(root / "hopper.pickle", 3000)
    config = root / "tiny.txt"
    config.write_text(CONFIG.format(data=data, extra=""))
    full = run_script("run_morel.py", "--config", config, "--output", root / "full")
    return root, data, config, full


def test_job_directory_and_log(setup):
    root, _, _, full = setup
    assert full.returncode == 0, full.stderr
    job = root / "full"
    for name in ("job_data.json", "models.pt", "logs/log.pickle", "logs/log.csv",
                 "logs/scores.png", "iterations/policy_1.pt", "iterations/policy_3.pt",
                 "iterations/checkpoint.pt", "best_policy.pt", "policy_final.pt"):
        assert (job / name).is_file(), name
    job_data = json.loads((job / "job_data.json").read_text())
    assert job_data["truncate_lim"] > 0 and job_data["pessimism_coef"] == 1.0
    assert "share of data pairs over truncate_lim" in full.stdout + full.stderr
    log = read_job_log(job)
    for key in ("train_score", "eval_score", "eval_score_normalized", "kl_dist", "halt_frac",
                "terminated_frac", "VF_error_after", "model_mean_score", "model_mean_length"):
        assert len(log[key]) == 4, key
        assert all(math.isfinite(v) for v in log[key]), key
    # every kept model path halts, falls or reaches the horizon (60)
    for halted, fell, length in zip(log["halt_frac"], log["terminated_frac"],
                                    log["mean_path_length"]):
        assert 0 <= halted and 0 <= fell and halted + fell <= 1
        assert (1 - halted - fell) * 60 <= length + 1e-9
    # the mean-action policy's model paths: 10 starts x 3 members, horizon 60
    assert all(0 <= h <= 1 for h in log["model_mean_halt_frac"])
    assert all(0 < n <= 60 for n in log["model_mean_length"])
    assert all(math.isfinite(v) and abs(v) < 60 * 10 for v in log["model_mean_score"])
    expected = [100 * (r + 20.272305) / (3234.3 + 20.272305) for r in log["eval_score"]]
    assert log["eval_score_normalized"] == pytest.approx(expected)
    for key in ("rollout_score", "dataset_samples", "dyn_loss_0", "dyn_loss_gen_2",
                "bc_loss_after", "fit_epochs", "disagreement_max", "halt_frac_data",
                "bc_eval_score"):
        assert len(log[key]) == 1 and math.isfinite(log[key][0]), key
    assert log["bc_loss_after"][0] < log["bc_loss_before"][0]
    assert all(0 < n <= 3 * 8 * 60 for n in log["num_samples"])
    model, meta = load_ensemble(str(job / "models.pt"))
    assert model.num_models == 3 and meta["env_name"] == "Hopper-v5"
    # saved policies take raw observations: obs_mask folded into the input transform
    best, policy_meta = load_policy(job / "best_policy.pt")
    assert policy_meta["trained_by"] == "run_morel.py" and policy_meta["obs_mask"] == [1.0] * 11
    assert policy_meta["trained_obs_mask"][5] == 0.02
    state = torch.load(job / "iterations" / "checkpoint.pt", weights_only=True)["agent"]["policy"]
    live = load_policy(job / "policy_final.pt")[0]
    live.load_state_dict(state)  # the unfolded policy of the last iteration
    final, _ = load_policy(job / "policy_final.pt")
    raw = torch.randn(16, 11) * 3
    mask = torch.tensor(policy_meta["trained_obs_mask"])
    torch.testing.assert_close(final(raw), live(raw * mask), rtol=1e-4, atol=1e-5)


def test_killed_run_resumes_exactly(setup):
    root, _, config, _ = setup
    job = root / "killed"
    done = kill_at_first_checkpoint("run_morel.py", "--config", config, "--output", job, job=job)
    assert done == 2  # save_freq 2 of 4 iterations: killed during iteration 2 or 3
    resumed = run_script("run_morel.py", "--config", config, "--output", job, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stdout and "at iteration 2" in resumed.stdout
    assert_same_run(root / "full", job, TIMING)  # logs: no duplicates, no gaps, same values


def test_learn_model_then_run_with_model_file(setup):
    root, data, _, _ = setup
    config = root / "fit.txt"
    config.write_text(CONFIG.format(data=data, extra=""))
    fitted = run_script("learn_model.py", "--config", config, "--output", root / "m.pt")
    assert fitted.returncode == 0, fitted.stderr
    assert "truncate_lim" in fitted.stdout and "next-state MSE on data" in fitted.stdout
    again = run_script("learn_model.py", "--config", config, "--output", root / "m.pt")
    assert again.returncode == 2 and "file exists" in again.stderr
    held = run_script("learn_model.py", "-c", config, "-o", root / "held.pt",
                      "--set", "fit_holdout=0.2", "--set", "fit_patience=2")
    assert held.returncode == 0, held.stderr
    assert "held-out loss" in held.stdout
    elites = run_script("learn_model.py", "-c", config, "-o", root / "elites.pt",
                        "--set", "fit_holdout=0.2", "--set", "num_elites=2",
                        "--set", "halt_quantile=0.5")
    assert elites.returncode == 0, elites.stderr
    assert load_ensemble(str(root / "elites.pt"))[0].num_models == 2  # of the 3 fitted
    share = next(line for line in elites.stdout.splitlines()
                 if line.startswith("share of data pairs over truncate_lim"))
    assert float(share.split()[-1]) == pytest.approx(0.5, abs=0.01)  # limit: the median
    too_many = run_script("learn_model.py", "-c", config, "-o", root / "many.pt",
                          "--set", "fit_holdout=0.2", "--set", "num_elites=4")
    assert too_many.returncode == 2 and "'num_elites' (4) is more than" in too_many.stderr
    assert not (root / "many.pt").exists()
    no_share = run_script("learn_model.py", "-c", config, "-o", root / "none.pt",
                          "--set", "fit_patience=2")
    assert no_share.returncode == 2 and "'fit_patience' needs 'fit_holdout'" in no_share.stderr
    assert not (root / "none.pt").exists()
    # the same seed and data: the saved ensemble equals the one run_morel.py fitted
    a, _ = load_ensemble(str(root / "m.pt"))
    b, _ = load_ensemble(str(root / "full" / "models.pt"))
    for wa, wb in zip(a.weights, b.weights):
        torch.testing.assert_close(wa, wb, rtol=0, atol=0)
    loaded = root / "loaded.txt"
    loaded.write_text(CONFIG.format(data=data, extra=f"'model_file': '{root / 'm.pt'}',\n")
                      .replace("'num_iter': 4", "'num_iter': 1"))
    run = run_script("run_morel.py", "--config", loaded, "--output", root / "loaded")
    assert run.returncode == 0, run.stderr
    assert read_job_log(root / "loaded")["fit_epochs"] == [0]
    # per-step members: the same model, BC start and start states, other model paths
    step = run_script("run_morel.py", "--config", loaded, "--output", root / "step",
                      "--set", "rollout_member=step")
    assert step.returncode == 0, step.stderr
    path_log, step_log = read_job_log(root / "loaded"), read_job_log(root / "step")
    assert step_log["bc_loss_after"] == path_log["bc_loss_after"]
    assert json.loads((root / "step" / "job_data.json").read_text())["rollout_member"] == "step"
    assert step_log["train_score"] != path_log["train_score"]
    # model noise: the same BC start, other (noisier) model paths
    noisy = run_script("run_morel.py", "--config", loaded, "--output", root / "noisy",
                       "--set", "model_noise=1.0")
    assert noisy.returncode == 0, noisy.stderr
    noisy_log = read_job_log(root / "noisy")
    assert noisy_log["bc_loss_after"] == path_log["bc_loss_after"]
    assert noisy_log["train_score"] != path_log["train_score"]
    # disagreement penalty: iteration 0 rolls the same paths (it draws nothing) and pays for them
    paid = run_script("run_morel.py", "--config", loaded, "--output", root / "paid",
                      "--set", "disagreement_penalty=5.0")
    assert paid.returncode == 0, paid.stderr
    paid_log = read_job_log(root / "paid")
    assert paid_log["mean_path_length"][0] == path_log["mean_path_length"][0]
    assert paid_log["train_score"][0] < path_log["train_score"][0]
    # the least member's reward: iteration 0 rolls the same paths and earns less on them
    least = run_script("run_morel.py", "--config", loaded, "--output", root / "least",
                       "--set", "member_min_reward=True")
    assert least.returncode == 0, least.stderr
    least_log = read_job_log(root / "least")
    assert least_log["mean_path_length"][0] == path_log["mean_path_length"][0]
    assert least_log["halt_frac"][0] == path_log["halt_frac"][0]
    assert least_log["train_score"][0] < path_log["train_score"][0]
    # terminal falls (halts still bootstrap): iteration 0 rolls the same paths, and the
    # advantages of those that fall in the model change
    falls = run_script("run_morel.py", "--config", loaded, "--output", root / "falls",
                       "--set", "falls_terminate=True")
    assert falls.returncode == 0, falls.stderr
    falls_log = read_job_log(root / "falls")
    assert falls_log["mean_path_length"][0] == path_log["mean_path_length"][0]
    assert path_log["terminated_frac"][0] > 0
    assert falls_log["surr_improvement"][0] != path_log["surr_improvement"][0]
    # halt patience longer than any path: the same start, and iteration 0's paths never halt
    patient = run_script("run_morel.py", "--config", loaded, "--output", root / "patient",
                         "--set", "halt_patience=1000")
    assert patient.returncode == 0, patient.stderr
    patient_log = read_job_log(root / "patient")
    assert patient_log["bc_loss_after"] == path_log["bc_loss_after"]
    assert path_log["halt_frac"][0] > 0 and patient_log["halt_frac"][0] == 0
    assert patient_log["mean_path_length"][0] > path_log["mean_path_length"][0]
    assert json.loads((root / "patient" / "job_data.json").read_text())["halt_patience"] == 1000


def run_on_loaded_models(setup, tmp_path, key_value: str):
    """Run the tiny config on the full run's fitted models with `--set key_value`; its job
    directory and log, and the full run's log."""
    root, data, _, full = setup
    assert full.returncode == 0, full.stderr
    config = tmp_path / "loaded.txt"
    config.write_text(CONFIG.format(data=data,
                                    extra=f"'model_file': '{root / 'full' / 'models.pt'}',\n"))
    job = tmp_path / "job"
    out = run_script("run_morel.py", "--config", config, "--output", job, "--set", key_value)
    assert out.returncode == 0, out.stderr
    return job, read_job_log(job), read_job_log(root / "full")


def test_policy_average_is_evaluated_and_saved_beside_the_same_iterates(setup, tmp_path):
    job, log, plain = run_on_loaded_models(setup, tmp_path, "policy_average=0.5")
    # the NPG iterates are those of the run without it; the iterate's score is logged beside
    assert log["train_score"] == plain["train_score"] and log["kl_dist"] == plain["kl_dist"]
    assert log["iterate_eval_score"] == plain["eval_score"]
    assert "iterate_eval_score" not in plain
    assert log["eval_score"] != plain["eval_score"]  # the average is another policy
    # policy_final.pt is the average (the checkpoint's), folded to raw observations
    agent = torch.load(job / "iterations" / "checkpoint.pt", weights_only=True)["agent"]
    final, meta = load_policy(job / "policy_final.pt")
    live = load_policy(job / "policy_final.pt")[0]
    live.load_state_dict(agent["average"])
    raw = torch.randn(16, 11) * 3
    mask = torch.tensor(meta["trained_obs_mask"])
    torch.testing.assert_close(final(raw), live(raw * mask), rtol=1e-4, atol=1e-5)
    live.load_state_dict(agent["policy"])
    assert not torch.allclose(final(raw), live(raw * mask), rtol=1e-4, atol=1e-5)


def test_eval_noisy_logs_the_noisy_return_of_the_same_run(setup, tmp_path):
    job, log, plain = run_on_loaded_models(setup, tmp_path, "eval_noisy=True")
    # the NPG iterates and mean-action scores are those of the run without it
    for key in ("train_score", "kl_dist", "eval_score"):
        assert log[key] == plain[key], key
    assert "eval_score_noisy" not in plain and len(log["eval_score_noisy"]) == 4
    assert log["eval_score_noisy"] != log["eval_score"]
    # the BC start is scored both ways on iteration 0's episodes
    assert log["bc_eval_score"] == plain["bc_eval_score"] and "bc_eval_score_noisy" not in plain
    assert len(log["bc_eval_score_noisy"]) == 1 and math.isfinite(log["bc_eval_score_noisy"][0])
    assert log["bc_eval_score_noisy"] != log["bc_eval_score"]
    # the last iteration's scores, recomputed from the checkpoint's policy on the same episodes
    policy, meta = load_policy(job / "policy_final.pt")
    policy.load_state_dict(torch.load(job / "iterations" / "checkpoint.pt",
                                      weights_only=True)["agent"]["policy"])
    eval_env = make_vector_env("Hopper-v5", 2, 1, meta["trained_obs_mask"])
    cfg = SimpleNamespace(seed=5)
    noisy = evaluation_returns(eval_env, policy, cfg, 3, noisy=True)
    assert np.mean(evaluation_returns(eval_env, policy, cfg, 3)) == log["eval_score"][3]
    assert np.mean(noisy) == log["eval_score_noisy"][3]


def test_unmasked_data_and_missing_reward_file_are_clear_errors(setup, tmp_path):
    root, _, _, _ = setup
    raw = tmp_path / "raw.pickle"
    made = run_script("collect_dataset.py", "--env_name", "Hopper-v5", "--policy",
                      ROOT / "logging_policy" / "hopper_v5_medium.pt", "--output", raw,
                      "--size", "500")
    assert made.returncode == 0, made.stderr
    config = tmp_path / "raw.txt"
    config.write_text(CONFIG.format(data=raw, extra=""))
    out = run_script("run_morel.py", "--config", config, "--output", tmp_path / "job")
    assert out.returncode == 2 and "recorded with obs_mask" in out.stderr  # from its metadata
    assert "--include" in out.stderr and not (tmp_path / "job").exists()
    (tmp_path / "raw.pickle.meta.json").unlink()  # as an original-format pickle
    out = run_script("run_morel.py", "--config", config, "--output", tmp_path / "job")
    assert out.returncode == 2 and "termination_function ends" in out.stderr
    assert "--include" in out.stderr and not (tmp_path / "job").exists()
    config.write_text(CONFIG.format(data=raw, extra="").replace(
        "'reward_file': 'utils/reward_functions/gym_hopper.py',", ""))
    out = run_script("run_morel.py", "--config", config, "--output", tmp_path / "job")
    assert out.returncode == 2 and "learn_reward is False" in out.stderr


def test_bc_init_std_starts_the_policy_at_the_data_spread(setup, tmp_path):
    root, data, _, _ = setup
    config = tmp_path / "std.txt"
    config.write_text(CONFIG.format(data=data, extra="'bc_init_std': True,\n").replace(
        "'num_iter': 4", "'num_iter': 1"))
    out = run_script("run_morel.py", "--config", config, "--output", tmp_path / "job")
    assert out.returncode == 0, out.stderr
    # the data was sampled with the logging policy's own std; BC's residual is at least that
    logging_policy = load_policy(ROOT / "logging_policy" / "hopper_v5_medium.pt")[0]
    logging_std = logging_policy.log_std.detach().exp()
    std = read_job_log(tmp_path / "job")["bc_init_std"][0]
    assert 0.9 * float(logging_std.mean()) < std < float(torch.exp(torch.tensor(-0.25)))
    config.write_text(config.read_text().replace("'bc_init': True", "'bc_init': False"))
    out = run_script("run_morel.py", "--config", config, "--output", tmp_path / "job2")
    assert out.returncode == 2 and "'bc_init_std' needs 'bc_init': True" in out.stderr
    assert not (tmp_path / "job2").exists()


def test_learned_rewards_without_a_reward_file(setup):
    """No reward file and learn_reward: a reward model per member is fitted and saved, the
    dataset's obs_mask (from its metadata) is kept for evaluation, nothing terminates."""
    root, data, _, _ = setup  # its metadata (obs_mask included) is in hopper.pickle.meta.json
    config = root / "learned.txt"
    config.write_text(CONFIG.format(data=data, extra="").replace(
        "'reward_file': 'utils/reward_functions/gym_hopper.py',", "").replace(
        "'learn_reward': False", "'learn_reward': True").replace("'num_iter': 4", "'num_iter': 2"))
    out = run_script("run_morel.py", "--config", config, "--output", root / "learned")
    assert out.returncode == 0, out.stderr
    log = read_job_log(root / "learned")
    assert all(math.isfinite(log[f"rew_loss_{i}"][0]) for i in range(3))
    assert all(math.isfinite(v) for v in log["train_score"] + log["eval_score"])
    model, _ = load_ensemble(str(root / "learned" / "models.pt"))
    assert model.reward is not None
    _, meta = load_policy(root / "learned" / "best_policy.pt")
    assert meta["trained_obs_mask"][5] == 0.02


# ends a step when the action's L1 norm exceeds 4.5: under 1% of the logging policy's steps
ACTION_LIMIT_REWARD = """import sys
sys.path.insert(0, {folder!r})
from gym_hopper import obs_mask, reward_function  # noqa: F401


def termination_function(paths, timing="next"):
    return abs(paths["actions"]).sum(-1) > 4.5
"""


def action_limit_config(tmp_path, data, changes: dict[str, str], extra: str = ""):
    """CONFIG with ACTION_LIMIT_REWARD as its reward file and `changes` (old: new) applied."""
    reward = tmp_path / "action_limit.py"
    reward.write_text(ACTION_LIMIT_REWARD.format(folder=str(ROOT / "utils" / "reward_functions")))
    text = CONFIG.format(data=data, extra=extra).replace(
        "utils/reward_functions/gym_hopper.py", str(reward))
    for old, new in changes.items():
        text = text.replace(old, new)
    config = tmp_path / "c.txt"
    config.write_text(text)
    return config


@pytest.mark.parametrize("changes, iteration, cause", [
    # a wide initial policy: its first actions end every model path
    ({"'bc_init': True": "'bc_init': False, 'init_log_std': 1.0"}, 0,
     "the initial policy's actions end them"),
    # a huge NPG step (KL ~1e4) from the cloned policy: its actions end every later path
    ({"'step_size': 0.02": "'step_size': 1000.0, 'init_log_std': -2.0"}, 1,
     "the policy has collapsed in the model"),
])
def test_every_model_path_ended_names_the_cause(setup, tmp_path, changes, iteration, cause):
    """The termination function passes the data check but ends every model path: a one-line
    error that tells the initial policy from a collapsed one; nothing is written as final."""
    config = action_limit_config(tmp_path, setup[1], changes)
    out = run_script("run_morel.py", "--config", config, "--output", tmp_path / "job")
    assert out.returncode == 2, out.stderr
    assert f"iteration {iteration}: the termination function ended every model path" in out.stderr
    assert cause in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "job" / "policy_final.pt").exists()
    if iteration:
        assert "kl_dist" in out.stderr and (tmp_path / "job" / "best_policy.pt").is_file()


def test_max_kl_keeps_a_huge_step_from_collapsing_the_policy(setup, tmp_path):
    """The collapsing case above with max_kl: every step is halved to a KL within it, so model
    paths survive and the run finishes."""
    config = action_limit_config(
        tmp_path, setup[1], {"'step_size': 0.02": "'step_size': 1000.0, 'init_log_std': -2.0"},
        extra="'max_kl': 0.05,\n")
    out = run_script("run_morel.py", "--config", config, "--output", tmp_path / "job")
    assert out.returncode == 0, out.stderr
    log = read_job_log(tmp_path / "job")
    assert all(kl <= 0.05 for kl in log["kl_dist"]) and min(log["kl_backtracks"]) >= 5
    assert all(n > 0 for n in log["num_samples"])


def test_anchored_run_logs_its_kl_and_resumes_exactly(setup, tmp_path):
    """anchor_kl_coef: the anchor is the BC policy (KL 0 at iteration 0, then > 0), kept in the
    checkpoint, so that a killed and resumed run equals an uninterrupted one."""
    root, data, _, full = setup
    assert full.returncode == 0, full.stderr
    config = tmp_path / "anchor.txt"
    models = root / "full" / "models.pt"
    config.write_text(CONFIG.format(
        data=data, extra=f"'model_file': '{models}', 'anchor_kl_coef': 2.0,\n"))
    whole = run_script("run_morel.py", "--config", config, "--output", tmp_path / "whole")
    assert whole.returncode == 0, whole.stderr
    log, plain = read_job_log(tmp_path / "whole"), read_job_log(root / "full")
    assert log["bc_loss_after"] == plain["bc_loss_after"]
    assert log["anchor_kl"][0] == 0.0 and all(k > 0 for k in log["anchor_kl"][1:])
    # the first paths come from the BC policy either way; the steps then differ
    assert "anchor_kl" not in plain and log["train_score"][0] == plain["train_score"][0]
    assert log["train_score"][1:] != plain["train_score"][1:]
    job = tmp_path / "killed"
    assert kill_at_first_checkpoint("run_morel.py", "--config", config, "--output", job,
                                    job=job) == 2
    assert "anchor" in torch.load(job / "iterations" / "checkpoint.pt",
                                  weights_only=True)["agent"]
    resumed = run_script("run_morel.py", "--config", config, "--output", job, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert_same_run(tmp_path / "whole", job, TIMING)

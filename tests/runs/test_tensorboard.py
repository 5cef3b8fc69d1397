"""TensorBoard events (config key / flag tensorboard): run_morel.py, train_policy.py and
run_bc.py write every numeric log key per iteration, read back here with TensorBoard's own
reader; a resumed run continues the events without duplicates. Needs the optional extra:
pip install -e '.[test-extras]' (the refusal without it is in test_tensorboard_missing.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import kill_at_first_checkpoint, read_job_log, run_script, write_config

pytest.importorskip("tensorboard", reason="optional extra 'tensorboard' not installed "
                    "(pip install -e '.[test-extras]')")
from tensorboard.backend.event_processing.event_accumulator import (  # noqa: E402
    EventAccumulator,
)

from morel.runs.logger import DataLog  # noqa: E402
from morel.runs.tensorboard import TensorBoardLog  # noqa: E402

TRAIN = """{
'env_name': 'Hopper-v5', 'seed': 7, 'num_iter': 4, 'num_samples': 300, 'num_envs': 2,
'eval_rollouts': 1, 'save_freq': 2, 'policy_size': (8, 8), 'vf_hidden_size': (16, 16),
'npg_hp': dict(FIM_invert_args={'iters': 5, 'damping': 1e-3}), 'tensorboard': True,
}"""


def read_events(job) -> dict[str, list[tuple[int, float]]]:
    """Tag -> [(step, value)] of every scalar in job/tensorboard, in step order."""
    events = EventAccumulator(str(job / "tensorboard"), size_guidance={"scalars": 0})
    events.Reload()
    return {tag: sorted((e.step, e.value) for e in events.Scalars(tag))
            for tag in events.Tags()["scalars"]}


def assert_events_hold_log(job) -> None:
    """Every numeric, finite value of the job's log is an event at its index (float32)."""
    log, events = read_job_log(job), read_events(job)
    expected = {key: [(i, v) for i, v in enumerate(values)
                      if isinstance(v, (int, float)) and math.isfinite(v)]
                for key, values in log.items()}
    expected = {key: pairs for key, pairs in expected.items() if pairs}
    assert set(events) == set(expected)
    for key, pairs in expected.items():
        assert [s for s, _ in events[key]] == [s for s, _ in pairs], key
        np.testing.assert_allclose([v for _, v in events[key]], [v for _, v in pairs],
                                   rtol=1e-6, err_msg=key)


def test_writer_adds_new_values_at_their_index_and_skips_non_numbers(tmp_path):
    log = DataLog()
    log.log_dict({"rollout_score": 1306.5, "note": "text", "flag": True})
    log.log_dict({"eval_score": 10.0, "kl": math.nan})
    events = TensorBoardLog(tmp_path)
    events.write(log)
    log.log_dict({"eval_score": 12.5, "kl": 0.25})
    events.write(log)
    events.write(log)  # nothing new: nothing added
    events.close()
    assert read_events(tmp_path) == {"rollout_score": [(0, 1306.5)],
                                     "eval_score": [(0, 10.0), (1, 12.5)], "kl": [(1, 0.25)]}


def test_run_morel_writes_every_log_key(hopper_data, tmp_path):
    job = tmp_path / "job"
    run = run_script("run_morel.py", "--config", write_config(tmp_path, hopper_data, num_iter=3),
                     "--output", job, "--tensorboard")
    assert run.returncode == 0, run.stderr
    assert_events_hold_log(job)
    events = read_events(job)
    assert [s for s, _ in events["eval_score"]] == [0, 1, 2]
    assert [s for s, _ in events["rollout_score"]] == [0]  # logged once, before iteration 0


def test_train_policy_resumed_continues_the_events(tmp_path):
    config = tmp_path / "npg.txt"
    config.write_text(TRAIN)
    job = tmp_path / "job"
    killed_at = kill_at_first_checkpoint("train_policy.py", "--config", config, "--output", job,
                                         job=job)
    resumed = run_script("train_policy.py", "--config", config, "--output", job, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert killed_at == 2
    assert_events_hold_log(job)  # one event per step: the killed run's later ones purged


def test_tensorboard_turned_on_at_resume_writes_the_whole_log(tmp_path):
    config = tmp_path / "npg.txt"
    config.write_text(TRAIN.replace("'tensorboard': True,", ""))
    job = tmp_path / "job"
    kill_at_first_checkpoint("train_policy.py", "--config", config, "--output", job, job=job)
    assert not (job / "tensorboard").exists()
    resumed = run_script("train_policy.py", "--config", config, "--output", job, "--resume",
                         "--tensorboard")
    assert resumed.returncode == 0, resumed.stderr
    assert_events_hold_log(job)  # iterations 0-1 from the checkpoint's log, 2-3 as they ran


def test_run_bc_writes_its_one_row(hopper_data, tmp_path):
    job = tmp_path / "bc"
    run = run_script("experiments/run_bc.py", "--config", write_config(tmp_path, hopper_data),
                     "--output", job, "--episodes", "2", "--tensorboard")
    assert run.returncode == 0, run.stderr
    assert_events_hold_log(job)
    assert "bc_loss_after" in read_events(job)

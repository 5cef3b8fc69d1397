"""Job directory rules: never write into a run without --resume/--force; checkpoints load safely."""

from __future__ import annotations

import json

import pytest
import torch

from morel.config.schema import MorelConfig
from morel.core.errors import MorelError
from morel.runs.jobdir import CHECKPOINT, load_checkpoint, prepare_job_dir, save_checkpoint


def make_run(job, config):
    prepare_job_dir(job, config, resume=False, force=False)
    (job / "job_data.json").write_text(json.dumps(config))
    save_checkpoint(job, {"iteration": 3, "agent": {"w": torch.ones(2)}, "log": {},
                          "best_score": 0.0})


def test_existing_run_is_refused_then_replaced_with_force(tmp_path):
    job = tmp_path / "job"
    make_run(job, {"seed": 1})
    (job / "notes.txt").write_text("mine")
    with pytest.raises(MorelError, match="already holds a run .*--resume"):
        prepare_job_dir(job, {"seed": 1}, resume=False, force=False)
    assert (job / CHECKPOINT).exists()
    prepare_job_dir(job, {"seed": 1}, resume=False, force=True)
    assert not (job / "iterations").exists() and not (job / "job_data.json").exists()
    assert (job / "notes.txt").read_text() == "mine"  # files not ours are kept


def test_resume_checks_the_config(tmp_path):
    job = tmp_path / "job"
    make_run(job, {"seed": 1, "num_iter": 5})
    prepare_job_dir(job, {"seed": 1, "num_iter": 10}, resume=True, force=False)  # may extend
    with pytest.raises(MorelError, match="differs .* in seed"):
        prepare_job_dir(job, {"seed": 2, "num_iter": 5}, resume=True, force=False)
    prepare_job_dir(job, {"seed": 2, "num_iter": 5}, resume=True, force=True)
    with pytest.raises(MorelError, match="no run to resume"):
        prepare_job_dir(tmp_path / "empty", {}, resume=True, force=False)
    assert load_checkpoint(job)["iteration"] == 3


def test_a_run_from_before_a_new_key_resumes_at_the_keys_default(tmp_path):
    """job_data.json of a run made before `halt_patience` existed lacks it: resuming with its
    default (the behaviour that run had) is no change, another value is one."""
    job = tmp_path / "job"
    defaults = MorelConfig.default_dict()
    config = {**defaults, "env_name": "Hopper-v5", "data_file": "d.npz"}
    make_run(job, {k: v for k, v in config.items() if k != "halt_patience"})
    prepare_job_dir(job, config, resume=True, force=False, defaults=defaults)
    with pytest.raises(MorelError, match="differs .* in halt_patience;"):
        prepare_job_dir(job, {**config, "halt_patience": 3}, resume=True, force=False,
                        defaults=defaults)
    with pytest.raises(MorelError, match="differs .* in halt_patience;"):
        prepare_job_dir(job, config, resume=True, force=False)  # no defaults: a change


def test_checkpoint_that_would_run_code_is_refused(tmp_path):
    job = tmp_path / "job"
    (job / "iterations").mkdir(parents=True)
    torch.save({"iteration": 1, "f": print}, job / CHECKPOINT)
    with pytest.raises(MorelError, match="not a readable checkpoint file .*--force"):
        load_checkpoint(job)


def test_a_directory_holding_only_an_ensemble_is_a_run(tmp_path):
    job = tmp_path / "job"
    job.mkdir()
    (job / "models.pt").write_bytes(b"old ensemble")
    with pytest.raises(MorelError, match=r"already holds a run \(models.pt\)"):
        prepare_job_dir(job, {}, resume=False, force=False)
    assert (job / "models.pt").read_bytes() == b"old ensemble"
    prepare_job_dir(job, {}, resume=False, force=True)
    assert not (job / "models.pt").exists()

"""Without the tensorboard extra, `tensorboard: True` (or --tensorboard) is refused before any
work, with the install command; the job directory stays as it was."""

from __future__ import annotations

import importlib.util

import pytest
from conftest import file_contents, run, write_config

REAL_FIND_SPEC = importlib.util.find_spec


@pytest.fixture
def no_tensorboard(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None
                        if name == "tensorboard" else REAL_FIND_SPEC(name, *a))


@pytest.mark.parametrize("script", ["run_morel.py", "experiments/run_bc.py"])
def test_refused_before_any_work(script, no_tensorboard, hopper_data, tmp_path, monkeypatch,
                                 capsys):
    config = write_config(tmp_path, hopper_data)
    (tmp_path / "job").mkdir()
    before = file_contents(tmp_path)
    line = run(script, ["--config", config, "--output", tmp_path / "job", "--tensorboard"],
               monkeypatch, capsys)
    assert "tensorboard package is not installed: pip install -e '.[tensorboard]'" in line
    assert str(config) in line
    assert file_contents(tmp_path) == before

"""Atomic writes: an exception or a SIGKILL during a save leaves the previous good file."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest
import torch
from conftest import ROOT

from morel.core.atomic import write_text_atomic
from morel.runs import jobdir
from morel.runs.jobdir import CHECKPOINT, load_checkpoint, save_checkpoint


def test_a_failing_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    save_checkpoint(tmp_path, {"iteration": 3, "agent": {"w": torch.ones(4)}, "log": {},
                               "best_score": 1.0})
    before = (tmp_path / CHECKPOINT).read_bytes()

    def half_written(obj, path):
        with open(path, "wb") as f:
            f.write(b"PK\x03\x04 half a file")
        raise OSError("disk full")

    monkeypatch.setattr(jobdir.torch, "save", half_written)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(tmp_path, {"iteration": 4, "agent": {}, "log": {}, "best_score": 2.0})
    assert (tmp_path / CHECKPOINT).read_bytes() == before
    assert sorted(p.name for p in (tmp_path / "iterations").iterdir()) == ["checkpoint.pt"]
    monkeypatch.undo()
    assert load_checkpoint(tmp_path)["iteration"] == 3


WRITER = """
import sys
from morel.core.atomic import write_text_atomic
path, n = sys.argv[1], 0
while True:
    n += 1
    write_text_atomic(path, f"version {n}\\n" + "x" * 4_000_000 + "\\nend\\n")
    print(n, flush=True)
"""


def test_sigkill_during_writes_leaves_a_whole_file(tmp_path):
    target = tmp_path / "log.csv"
    write_text_atomic(target, "version 0\nend\n")
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(target)], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "1"  # it is writing in a loop now
    time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    text = target.read_text()
    assert text.startswith("version ") and text.endswith("\nend\n")  # one whole version
    assert int(text.split()[1]) >= 1

"""Shared test helpers: project paths and running a script as a user would."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REWARDS = ROOT / "utils" / "reward_functions"


def run_script(script: str, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run `python SCRIPT ARGS` from the project root (or cwd), capturing its output."""
    return subprocess.run([sys.executable, str(ROOT / script), *map(str, args)],
                          cwd=cwd or ROOT, capture_output=True, text=True, timeout=600)


@pytest.fixture
def hopper_reward_file() -> Path:
    return REWARDS / "gym_hopper.py"

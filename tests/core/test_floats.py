"""CPU float settings: subnormals flushed, MKL's thread count fixed (checked in MKL's own
verbose report of each call, in a fresh process)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

PRODUCT = ("import torch\n"
           "torch.nn.functional.linear(torch.randn(300, 11), torch.randn(8, 11))")


def mkl_report(setup: str) -> str:
    env = {**os.environ, "MKL_VERBOSE": "1"}
    env.pop("MKL_DYNAMIC", None)
    done = subprocess.run([sys.executable, "-c", f"{setup}\n{PRODUCT}"], env=env,
                          capture_output=True, text=True, check=True)
    return done.stdout + done.stderr


@pytest.mark.skipif(not torch.backends.mkl.is_available(), reason="torch built without MKL")
def test_mkl_uses_a_fixed_thread_count_after_the_settings():
    assert "Dyn:1" in mkl_report("")  # MKL's default: the thread count chosen per call
    report = mkl_report("from morel.core.floats import reproducible_cpu_math\n"
                        "reproducible_cpu_math()")
    assert "SGEMM" in report and "Dyn:0" in report and "Dyn:1" not in report


def test_subnormals_are_flushed_after_the_settings():
    from morel.core.floats import reproducible_cpu_math

    if not reproducible_cpu_math():  # left on, as the library's run functions leave it
        pytest.skip("this CPU cannot flush subnormals")
    tiny = torch.tensor([1e-39], dtype=torch.float32)  # subnormal in float32
    assert float(tiny * 1.0) == 0.0

"""CPU float settings of a run: subnormal floats are flushed to zero, and MKL keeps one thread
count.

Long runs drift into subnormal floats (|x| < 1.2e-38 in float32): weight decay pulls unused ReLU
weights and their Adam moments towards 0, and x86 CPUs compute on subnormals about 100x slower,
so without the flush the value baseline's fit slows 16x within a few dozen iterations. It
changes results only where a value would have been subnormal.

MKL (torch's CPU matrix products) by default may pick a matrix product's thread count call by
call (MKL_DYNAMIC), and a product run on another split of the threads can round differently;
Intel's first condition for run-to-run reproducible results is to turn that off. Every script
calls `reproducible_cpu_math` at start (`morel.core.errors.run_cli`), and so do the library's run
functions.
"""

from __future__ import annotations

import ctypes
from pathlib import Path

import torch


def flush_subnormals() -> bool:
    """Flush subnormal floats to zero on the CPU (x86 FTZ/DAZ) for this thread and the threads it
    starts later (torch's intra-op pool among them, when it is not running yet); returns whether
    the CPU supports it. The GPU is not affected."""
    return bool(torch.set_flush_denormal(True))


def fix_mkl_thread_count() -> bool:
    """Turn MKL's dynamic thread count off (mkl_set_dynamic(0), as MKL_DYNAMIC=FALSE would), so
    every MKL call uses torch's thread count; returns whether torch's MKL was found (a torch
    built without MKL, or on another OS, is left as it is)."""
    if not torch.backends.mkl.is_available():
        return False
    try:
        mkl = ctypes.CDLL(str(Path(torch.__file__).parent / "lib" / "libtorch_cpu.so"))
        set_dynamic = mkl.MKL_Set_Dynamic
    except (OSError, AttributeError):
        return False
    set_dynamic(ctypes.c_int(0))
    return True


def reproducible_cpu_math() -> bool:
    """`fix_mkl_thread_count`, then `flush_subnormals`; returns whether subnormals are flushed."""
    fix_mkl_thread_count()
    return flush_subnormals()

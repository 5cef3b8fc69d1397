"""CPU float settings of a run: subnormal floats are flushed to zero.

Long runs drift into subnormal floats (|x| < 1.2e-38 in float32): weight decay pulls unused ReLU
weights and their Adam moments towards 0, and x86 CPUs compute on subnormals about 100x slower,
so without the flush the value baseline's fit slows 16x within a few dozen iterations. Every
script calls `flush_subnormals` at start (`morel.core.errors.run_cli`), and so do the library's run
functions. It changes results only where a value would have been subnormal.
"""

from __future__ import annotations

import torch


def flush_subnormals() -> bool:
    """Flush subnormal floats to zero on the CPU (x86 FTZ/DAZ) for this thread and the threads it
    starts later (torch's intra-op pool among them, when it is not running yet); returns whether
    the CPU supports it. The GPU is not affected."""
    return bool(torch.set_flush_denormal(True))

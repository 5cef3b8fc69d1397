"""TensorBoard events of a run's log (config key `tensorboard`, flag --tensorboard; needs the
optional extra `tensorboard`): every numeric log key as a scalar under JOB/tensorboard, its step
the value's index in the log, so per-iteration keys sit at their iteration and the values
logged once before the first iteration (dataset, model fit, behaviour cloning) at step 0.

    tensorboard --logdir runs/
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from morel.core.errors import MorelError
from morel.core.numbers import finite_number
from morel.runs.logger import DataLog

FOLDER = "tensorboard"
INSTALL_HINT = "pip install -e '.[tensorboard]'"


def check_tensorboard(enabled: bool, source: str | None) -> None:
    """Refuse `tensorboard: True` before any work when the package is missing."""
    if enabled and importlib.util.find_spec("tensorboard") is None:
        raise MorelError(f"{source or 'config'}: tensorboard is True (or --tensorboard) but the "
                         f"tensorboard package is not installed: {INSTALL_HINT}")


class TensorBoardLog:
    """Writes the values a DataLog gained since the last `write` as TensorBoard scalars."""

    def __init__(self, job: Path, resumed: DataLog | None = None, resume_step: int = 0):
        """Events go to job/tensorboard. A run resumed at iteration `resume_step` with log
        `resumed` takes that log's values as written and drops the events an earlier run wrote
        at that step or later."""
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(job / FOLDER),
                                    purge_step=resume_step if resumed is not None else None)
        self.written = ({key: len(values) for key, values in resumed.log.items()}
                        if resumed is not None else {})

    def write(self, log: DataLog) -> None:
        """Add every new numeric value of `log` (step = its index) and flush."""
        for key, values in log.log.items():
            for step in range(self.written.get(key, 0), len(values)):
                value = finite_number(values[step])
                if value is not None:
                    self.writer.add_scalar(key, value, step)
            self.written[key] = len(values)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()

"""Per-iteration log of a run (mjrl's DataLog): key -> list of values, saved as pickle and CSV.

`log.pickle` is the plain dict of lists of Python floats/ints (readable by the original's tools
and by our restricted unpickler); `log.csv` has a header 'iteration' + keys in first-logged order
and one row per index up to the longest list, blank where a key has no value. Both are written
atomically.
"""

from __future__ import annotations

import csv
import io
import math
import pickle
from pathlib import Path
from typing import Any

from morel.core.atomic import atomic_path, write_text_atomic
from morel.core.errors import MorelError
from morel.core.safe_pickle import safe_load


def _plain(value: Any) -> Any:
    """0-d arrays / tensors / numpy scalars -> Python numbers; others unchanged."""
    if hasattr(value, "item") and getattr(value, "ndim", 0) == 0:
        return value.item()
    return value


class DataLog:
    """Key -> list of logged values."""

    def __init__(self, log: dict[str, list[Any]] | None = None):
        self.log: dict[str, list[Any]] = {k: list(v) for k, v in (log or {}).items()}

    @property
    def max_len(self) -> int:
        return max((len(v) for v in self.log.values()), default=0)

    def log_kv(self, key: str, value: Any) -> None:
        self.log.setdefault(key, []).append(_plain(value))

    def log_dict(self, values: dict[str, Any]) -> None:
        for key, value in values.items():
            self.log_kv(key, value)

    def current(self) -> dict[str, Any]:
        """Last value of every key."""
        return {k: v[-1] for k, v in self.log.items() if v}

    def truncate(self, length: int) -> None:
        """Keep the first `length` values of every key (rewinding to a checkpoint)."""
        self.log = {k: v[:length] for k, v in self.log.items()}

    def csv_text(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        keys = list(self.log)
        writer.writerow(["iteration", *keys])
        for i in range(self.max_len):
            writer.writerow([i, *(self.log[k][i] if i < len(self.log[k]) else "" for k in keys)])
        return out.getvalue()

    def save(self, folder: str | Path) -> None:
        """Write folder/log.pickle and folder/log.csv atomically."""
        folder = Path(folder)
        with atomic_path(folder / "log.pickle") as tmp, open(tmp, "wb") as f:
            pickle.dump(self.log, f, protocol=4)
        write_text_atomic(folder / "log.csv", self.csv_text())

    @classmethod
    def load(cls, folder: str | Path) -> DataLog:
        """Read folder/log.pickle through the restricted unpickler."""
        path = Path(folder) / "log.pickle"
        log = safe_load(path)
        if not isinstance(log, dict) or not all(isinstance(v, list) for v in log.values()):
            raise MorelError(f"{path}: not a log (expected a dict of lists)")
        return cls(log)


def read_log_csv(path: str | Path) -> dict[str, list[float]]:
    """Parse a log.csv into key -> list of floats (NaN where blank); never evaluates cells."""
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    if not rows or rows[0][:1] != ["iteration"]:
        raise MorelError(f"{path}: not a log.csv (first column must be 'iteration')")
    keys = rows[0][1:]
    out: dict[str, list[float]] = {k: [] for k in keys}
    for row in rows[1:]:
        for key, cell in zip(keys, row[1:]):
            try:
                out[key].append(float(cell) if cell != "" else math.nan)
            except ValueError:
                out[key].append(math.nan)
    return out

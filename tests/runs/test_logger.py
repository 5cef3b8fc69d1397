"""DataLog: pickle/csv round trips through the restricted unpickler and a no-eval CSV reader."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest

from morel.core.errors import MorelError
from morel.runs.logger import DataLog, read_log_csv


def test_log_saves_pickle_and_csv_with_blanks(tmp_path):
    log = DataLog()
    log.log_kv("fit_epochs", 25)  # logged once, before the loop
    for i in range(3):
        log.log_dict({"eval_score": np.float32(i * 1.5), "alpha": np.array(0.25 * i)})
    log.save(tmp_path)
    raw = pickle.loads((tmp_path / "log.pickle").read_bytes())
    assert raw == {"fit_epochs": [25], "eval_score": [0.0, 1.5, 3.0], "alpha": [0.0, 0.25, 0.5]}
    assert all(type(v) in (int, float) for vals in raw.values() for v in vals)
    assert DataLog.load(tmp_path).log == raw
    lines = (tmp_path / "log.csv").read_text().splitlines()
    assert lines[0] == "iteration,fit_epochs,eval_score,alpha"
    assert lines[2] == "1,,1.5,0.25"
    parsed = read_log_csv(tmp_path / "log.csv")
    assert parsed["eval_score"] == [0.0, 1.5, 3.0]
    assert parsed["fit_epochs"][0] == 25 and math.isnan(parsed["fit_epochs"][1])


def test_truncate_and_current():
    log = DataLog({"a": [1, 2, 3], "b": [4]})
    assert log.current() == {"a": 3, "b": 4}
    log.truncate(2)
    assert log.log == {"a": [1, 2], "b": [4]} and log.max_len == 2


def test_load_refuses_code_and_non_logs(tmp_path):
    (tmp_path / "log.pickle").write_bytes(pickle.dumps(print))
    with pytest.raises(MorelError, match="unsafe"):
        DataLog.load(tmp_path)
    (tmp_path / "log.pickle").write_bytes(pickle.dumps([1, 2]))
    with pytest.raises(MorelError, match="not a log"):
        DataLog.load(tmp_path)
    (tmp_path / "log.csv").write_text("a,b\n1,2\n")
    with pytest.raises(MorelError, match="not a log.csv"):
        read_log_csv(tmp_path / "log.csv")

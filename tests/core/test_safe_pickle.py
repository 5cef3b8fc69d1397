"""Restricted unpickling: numpy data loads; anything that names another global is refused."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest

from morel.core.errors import MorelError
from morel.core.safe_pickle import safe_load, safe_loads


class _RunsCommand:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _Plain:
    pass


class _Evaluates:
    def __reduce__(self):
        return (eval, ("1 + 1",))


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_original_style_paths_load_at_every_protocol(protocol):
    paths = [{"observations": np.arange(6, dtype=np.float64).reshape(3, 2),
              "actions": np.ones((3, 1), np.float32), "rewards": np.array([1.0, 2.0, 3.0]),
              "terminated": np.bool_(True), "score": np.float64(1.5),
              "env_infos": {"x": np.array([{"a": 1}, None, (2, 3)], dtype=object)},
              "tags": {1, 2}, "shape": (3, 2)}]
    loaded = safe_loads(pickle.dumps(paths, protocol=protocol))
    assert np.array_equal(loaded[0]["observations"], paths[0]["observations"])
    assert loaded[0]["actions"].dtype == np.float32
    assert loaded[0]["terminated"] == np.bool_(True) and loaded[0]["score"] == 1.5
    assert loaded[0]["env_infos"]["x"][0] == {"a": 1} and loaded[0]["tags"] == {1, 2}


def test_os_system_pickle_is_refused_and_does_not_run(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pickle"
    path.write_bytes(pickle.dumps([{"observations": _RunsCommand(marker)}]))
    with pytest.raises(MorelError, match=r"evil.pickle: unsafe .*'posix.system'"):
        safe_load(path)
    assert not marker.exists()
    pickle.loads(path.read_bytes())  # the same bytes do run under the plain unpickler
    assert marker.exists()


def test_eval_and_class_globals_are_refused():
    with pytest.raises(pickle.UnpicklingError, match="builtins.eval"):
        safe_loads(pickle.dumps(_Evaluates()))
    with pytest.raises(pickle.UnpicklingError, match="_Plain"):
        safe_loads(pickle.dumps(_Plain()))
    with pytest.raises(pickle.UnpicklingError, match="codec"):
        safe_loads(b"\x80\x02c_codecs\nencode\nq\x00X\x01\x00\x00\x00aX\x04\x00\x00\x00zlib"
                   b"\x86R.")


def test_corrupt_and_missing_files_are_one_line_errors(tmp_path):
    bad = tmp_path / "bad.pickle"
    bad.write_bytes(pickle.dumps([1, 2, 3])[:-4])
    with pytest.raises(MorelError, match="bad.pickle: unsafe or invalid pickle: pickle data"):
        safe_load(bad)
    with pytest.raises(MorelError, match="cannot read"):
        safe_load(tmp_path / "absent.pickle")

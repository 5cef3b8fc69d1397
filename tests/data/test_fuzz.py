"""Property-based tests of every loader of user files: arbitrary or mutated input never runs code,
never hangs (a deadline per example), and ends in a clean load or our own MorelError."""

from __future__ import annotations

import pickle
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from morel.config.files import config_from_dict, parse_config_text
from morel.config.schema import MorelConfig
from morel.core.errors import MorelError
from morel.core.safe_pickle import safe_load
from morel.data.datasets import Dataset, load_dataset, save_dataset

FUZZ = settings(max_examples=150, deadline=2000, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])
MARKER = "fuzz_ran_code"
SHIPPED_CONFIG = (ROOT / "configs" / "hopper_v5_quick.txt").read_text(encoding="utf-8")


@st.composite
def mutated(draw, original: bytes) -> bytes:
    """`original` with a few random byte flips, insertions, deletions and truncation."""
    data = bytearray(original)
    for _ in range(draw(st.integers(1, 8))):
        kind = draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "flip" and data:
            data[pos] ^= draw(st.integers(1, 255))
        elif kind == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "delete" and data:
            del data[pos:pos + draw(st.integers(1, 16))]
        elif kind == "truncate":
            del data[pos:]
    return bytes(data)


def parse(text: str) -> None:
    """The whole config path of load_config: parse the text, then build the schema."""
    data, lines = parse_config_text(text, "fuzz.txt")
    config_from_dict(data, lines, "fuzz.txt", MorelConfig)


def assert_clean(load, *args) -> None:
    try:
        load(*args)
    except MorelError:
        pass


CODE = [f"__import__('os').system('touch {MARKER}')", f"open('{MARKER}', 'w')",
        f"exec(\"open('{MARKER}', 'w')\")", "(lambda: 1)()", "[x for x in range(9**9)]"]


@FUZZ
@given(text=st.text(max_size=400))
def test_config_parser_on_arbitrary_text(text, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert_clean(parse, text)
    assert not (tmp_path / MARKER).exists()


@FUZZ
@given(data=st.data())
def test_config_parser_on_mutated_and_injected_configs(data, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    text = data.draw(mutated(SHIPPED_CONFIG.encode())).decode("utf-8", "replace")
    if data.draw(st.booleans()):  # splice code somewhere a value or key could be
        pos = data.draw(st.integers(0, len(text)))
        text = text[:pos] + data.draw(st.sampled_from(CODE)) + text[pos:]
    assert_clean(parse, text)
    assert not (tmp_path / MARKER).exists()


def test_deep_nesting_is_an_error_not_a_crash():
    for depth in (50, 1000, 100000):
        with pytest.raises(MorelError):
            parse("{'seed': " + "[" * depth + "]" * depth + "}")


class RunsCode:
    def __reduce__(self):
        return (open, (MARKER, "w"))


def dataset_pickle() -> bytes:
    rng = np.random.default_rng(0)
    paths = [{"observations": rng.normal(size=(4, 3)).astype(np.float32),
              "actions": rng.normal(size=(4, 2)), "rewards": rng.normal(size=4),
              "terminated": True} for _ in range(2)]
    return pickle.dumps(paths, protocol=4)


@pytest.mark.parametrize("protocol", [2, 4])
@FUZZ
@given(data=st.data())
def test_restricted_unpickler_on_mutated_pickles(protocol, data, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    base = pickle.dumps(pickle.loads(dataset_pickle()), protocol=protocol)
    if data.draw(st.booleans()):  # a pickle that asks for a callable, then mutated
        base = pickle.dumps([RunsCode(), *pickle.loads(base)], protocol=protocol)
    path = tmp_path / "d.pickle"
    path.write_bytes(data.draw(mutated(base)))
    assert_clean(safe_load, path)
    assert_clean(load_dataset, path)
    assert not (tmp_path / MARKER).exists()


@FUZZ
@given(blob=st.binary(max_size=300))
def test_restricted_unpickler_on_arbitrary_bytes(blob, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "d.pickle"
    path.write_bytes(blob)
    assert_clean(load_dataset, path)
    assert not (tmp_path / MARKER).exists()


def dataset_bytes(tmp: Path, ext: str) -> bytes:
    rng = np.random.default_rng(1)
    paths = [{"observations": rng.normal(size=(5, 3)).astype(np.float32),
              "actions": rng.normal(size=(5, 2)).astype(np.float32),
              "rewards": rng.normal(size=5).astype(np.float32), "terminated": False}
             for _ in range(3)]
    out = save_dataset(Dataset(paths, {"env_name": "Hopper-v5"}), tmp / f"base{ext}", force=True)
    return out.read_bytes()


@pytest.mark.parametrize("ext", [".npz", ".h5"])
@FUZZ
@given(data=st.data())
def test_npz_and_hdf5_loaders_on_mutated_files(ext, data, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fuzz")
    path = tmp / f"d{ext}"
    path.write_bytes(data.draw(mutated(dataset_bytes(tmp, ext))))
    assert_clean(load_dataset, path)


@pytest.mark.parametrize("ext", [".npz", ".h5"])
def test_hostile_array_contents_are_errors(ext, tmp_path):
    """Well-formed containers with wrong shapes, dtypes and lengths: MorelError, not a crash."""
    cases = [
        {"observations": np.zeros(()), "actions": np.zeros((2, 1)), "rewards": np.zeros(2),
         "path_lengths": np.array([2])},
        {"observations": np.zeros((2, 3)), "actions": np.zeros((2, 1)), "rewards": np.zeros(2),
         "path_lengths": np.array([2**62, -(2**62) + 2])},
        {"observations": np.array([["a", "b"]] * 2), "actions": np.zeros((2, 1)),
         "rewards": np.zeros(2), "path_lengths": np.array([2])},
        {"observations": np.zeros((2, 3)), "actions": np.zeros((2, 1)), "rewards": np.zeros(2),
         "path_lengths": np.array([[1.5]]), "terminated": np.zeros((3, 3))},
        {"observations": np.zeros((2, 3)), "actions": np.zeros((2, 1)), "rewards": np.zeros(2),
         "path_lengths": np.array([2]), "meta": np.array("[1, 2]")},
    ]
    for i, arrays in enumerate(cases):
        path = tmp_path / f"c{i}{ext}"
        if ext == ".npz":
            np.savez(path, **arrays)
        else:
            import h5py

            with h5py.File(path, "w") as f:
                for key, value in arrays.items():
                    if key == "meta":
                        f.attrs["meta"] = str(value)
                    else:
                        f[key] = value if value.dtype.kind != "U" else value.astype("S")
        with pytest.raises(MorelError):
            load_dataset(path)


def test_pickle_bombs_are_bounded(tmp_path):
    """A list nested 200,000 deep and an array header claiming 2**31 - 1 elements over 24 bytes
    of data: each ends in MorelError, quickly, allocating nothing large."""
    depth = 200000
    nested = b"\x80\x04" + b"]" * depth + b"a" * (depth - 1) + b"."
    array = pickle.dumps(np.zeros(3), protocol=2)
    assert array.count(b"K\x01K\x03\x85") == 1  # the shape (3,)
    huge = array.replace(b"K\x01K\x03\x85", b"K\x01J\xff\xff\xff\x7f\x85")
    for name, raw in (("nested", nested), ("huge", huge)):
        path = tmp_path / f"{name}.pickle"
        path.write_bytes(raw)
        with pytest.raises(MorelError):
            load_dataset(path)


@FUZZ
@given(data=st.data())
def test_policy_loader_on_mutated_files(data, tmp_path_factory):
    from morel.npg.policies import GaussianMLP, load_policy, save_policy

    tmp = tmp_path_factory.mktemp("fuzz")
    save_policy(GaussianMLP(3, 2, (4,), seed=0), tmp / "base.pt", {"env_name": "Hopper-v5"})
    path = tmp / "p.pt"
    path.write_bytes(data.draw(mutated((tmp / "base.pt").read_bytes())))
    assert_clean(load_policy, path)


LOAD_ALL = """
import pathlib, sys
from morel.core.errors import MorelError
from morel.core.safe_pickle import safe_load
for path in sorted(pathlib.Path(sys.argv[1]).glob("*.pickle")):
    try:
        safe_load(path)
    except MorelError:
        pass
print("survived")
"""


def load_in_subprocess(folder: Path, code: str = LOAD_ALL) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code, str(folder)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)


def test_a_forged_pickle_kills_numpy_but_not_the_restricted_unpickler(tmp_path):
    """The subprocess check below can see a crash: numpy's own unpickler dies with a signal on
    an object array forged from raw bytes; ours loads it as an error and lives."""
    from hostile_input_cases import FORGED_FLAGS, forged_array

    blob = pickle.dumps([forged_array(FORGED_FLAGS, (4,), b"\x41" * 32, "O8")], protocol=4)
    (tmp_path / "forged.pickle").write_bytes(blob)
    plain = load_in_subprocess(tmp_path, "import pickle, sys, pathlib\n"
                                         "pickle.loads(pathlib.Path(sys.argv[1], "
                                         "'forged.pickle').read_bytes())[0][0].__repr__()")
    assert plain.returncode < 0, (plain.returncode, plain.stderr[-300:])  # killed by a signal
    ours = load_in_subprocess(tmp_path)
    assert ours.returncode == 0 and "survived" in ours.stdout, ours.stderr


def array_pickles() -> list[bytes]:
    """Pickles of the array kinds a dataset can hold (numbers, byte orders, Fortran order,
    strings, objects, scalars) at protocols 2 and 5."""
    values = [np.arange(6.0).reshape(2, 3), np.asfortranarray(np.ones((2, 3), np.float32)),
              np.arange(4, dtype=">i4"), np.array(["ab", "c"]),
              np.array([{"a": 1}, None, np.zeros(2)], dtype=object), np.float32(1.5),
              np.bool_(True)]
    return [pickle.dumps([{"observations": v}], protocol=p) for v in values for p in (2, 5)]


def byte_mutations(base: bytes, rng: random.Random) -> bytes:
    """`base` with 1-4 bytes replaced (often by a small int: a flag, a size, an opcode)."""
    data = bytearray(base)
    for _ in range(rng.randint(1, 4)):
        data[rng.randrange(len(data))] = rng.choice([0, 1, 63, 255, rng.randrange(256)])
    return bytes(data)


@settings(max_examples=2, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1))
def test_mutated_array_pickles_never_crash_the_loading_process(seed, tmp_path_factory):
    """Replaced bytes in arrays' dtypes, flags, shapes and data: each example writes 420 such
    files (from its seed) and loads them all in one subprocess, which must not die of a
    signal."""
    tmp = tmp_path_factory.mktemp("fuzz")
    rng = random.Random(seed)
    for i, base in enumerate(array_pickles()):
        for k in range(30):
            (tmp / f"{i}_{k}.pickle").write_bytes(byte_mutations(base, rng))
    res = load_in_subprocess(tmp)
    assert res.returncode == 0 and "survived" in res.stdout, (res.returncode, res.stderr[-500:])

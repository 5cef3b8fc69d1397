"""A restricted unpickler: numpy arrays, numpy scalars/dtypes and builtin containers, nothing else.

A pickle names the callables it wants run when it is loaded (`find_class`). Ours admits only the
names that numpy's own pickles use to rebuild an array, a dtype or a scalar, and even those never
reach numpy: they build stand-ins that record what the file asks for, and the arrays are made
afterwards with plain numpy constructors, once the request has been checked:
- dtypes: booleans, integers, floats, complex numbers, fixed-length strings and Python objects
  only, rebuilt from their name and byte order; the rest of the file's dtype state (flags that
  numpy would trust: forged ones make it read raw bytes as pointers) must be numpy's own;
- shapes: non-negative ints whose product times the item size equals the bytes the file holds;
- size: the arrays and containers reachable from the result, counted once per reference (so a
  small file of shared references cannot stand for gigabytes), may not outgrow the file itself.
BUILD (which sets an object's state) applies to those stand-ins only. A file that asks for
`os.system`, `builtins.eval` or any other global is refused before anything runs, and a
malformed request is a pickle error, never a crash.
"""

from __future__ import annotations

import builtins
import codecs
import io
import math
import pickle
import re
from pathlib import Path
from typing import Any

import numpy as np

from morel.core.errors import MorelError

MAX_DEPTH = 100  # containers nested deeper than this are refused
_FIXED = re.compile(r"^(b1|[iu][1248]|f[248]|c(8|16)|O8)$")  # dtype names numpy pickles
_FLEXIBLE = re.compile(r"^[US][0-9]{1,9}$")  # fixed-length strings (item size from the state)
_LEAVES = (str, bytes, bytearray, int, float, complex, bool, type(None), np.generic)


def _refuse(text: str) -> pickle.UnpicklingError:
    return pickle.UnpicklingError(text)


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    """Protocol-2 pickles store bytes as `_codecs.encode(str, 'latin1')`; admit only that codec."""
    try:
        latin1 = isinstance(encoding, str) and codecs.lookup(encoding).name == "iso8859-1"
    except LookupError:
        latin1 = False
    if not isinstance(text, str) or not latin1:
        raise _refuse(f"codec {str(encoding)[:40]!r} is not allowed")
    return text.encode("latin1")


class _Marker:
    """What `numpy.ndarray` resolves to: a marker for `_reconstruct`'s first argument."""

    __slots__ = ()


_NDARRAY = _Marker()


class _DtypeStub:
    """A requested dtype: `dtype(name, align, copy)` then BUILD with numpy's state tuple."""

    def __init__(self, name: Any, align: Any = False, copy: Any = True):
        if not isinstance(name, str) or not (_FIXED.match(name) or _FLEXIBLE.match(name)):
            raise _refuse(f"dtype {name!r} is not allowed (booleans, numbers, strings and "
                          "objects only)")
        self.name, self.dtype = name, None if _FLEXIBLE.match(name) else np.dtype(name)

    def __setstate__(self, state: Any) -> None:
        """Rebuild the dtype from its name, byte order and (strings) item size; the rest of the
        state must be what numpy itself writes for that dtype (forged flags are refused)."""
        if not isinstance(state, tuple) or len(state) != 8 or state[1] not in ("<", ">", "|"):
            raise _refuse(f"dtype {self.name}: unsupported state {str(state)[:80]}")
        order, itemsize = state[1], state[5]
        dtype = self.dtype
        if _FLEXIBLE.match(self.name):
            unit = 4 if self.name[0] == "U" else 1
            if type(itemsize) is not int or not 0 <= itemsize <= 1 << 20 or itemsize % unit:
                raise _refuse(f"dtype {self.name}: item size {itemsize!r}")
            dtype = np.dtype(f"{self.name[0]}{itemsize // unit}")
        if order in "<>" and dtype.itemsize > 1 and dtype.kind != "O":
            dtype = dtype.newbyteorder(order)
        if state != dtype.__reduce__()[2]:
            raise _refuse(f"dtype {self.name}: its state {str(state)[:80]} is not numpy's")
        self.dtype = dtype

    def checked(self) -> np.dtype:
        if self.dtype is None:
            raise _refuse(f"dtype {self.name} has no size")
        return self.dtype


def _dtype_of(value: Any) -> np.dtype:
    if not isinstance(value, _DtypeStub):
        raise _refuse("an array or scalar without a dtype")
    return value.checked()


def _count(shape: Any) -> tuple[tuple[int, ...], int]:
    if not isinstance(shape, tuple) or len(shape) > 32 \
            or not all(type(n) is int and n >= 0 for n in shape):
        raise _refuse(f"array shape {str(shape)[:80]} is not a tuple of sizes")
    return shape, math.prod(shape)


def _from_bytes(data: Any, dtype: np.dtype, shape: Any, fortran: bool) -> np.ndarray:
    """A fresh array of `shape` from raw `data`, which must hold exactly its bytes."""
    shape, count = _count(shape)
    if dtype.kind == "O":
        raise _refuse("an object array stored as raw bytes (numpy would read them as pointers)")
    if not isinstance(data, (bytes, bytearray)) or len(data) != count * dtype.itemsize:
        size = len(data) if isinstance(data, (bytes, bytearray)) else type(data).__name__
        raise _refuse(f"array {shape} of {dtype} needs {count * dtype.itemsize} bytes, the file "
                      f"holds {size}")
    flat = np.frombuffer(bytes(data), dtype=dtype, count=count).copy()
    return flat.reshape(shape, order="F" if fortran else "C")


class _ArrayStub:
    """A requested ndarray: `_reconstruct(ndarray, (0,), b'b')` then BUILD with
    (version, shape, dtype, is_fortran, data); the array is made at BUILD."""

    def __init__(self, subtype: Any, shape: Any, typecode: Any):
        if subtype is not _NDARRAY or shape != (0,) or typecode not in (b"b", "b"):
            raise _refuse("only plain numpy arrays may be rebuilt")
        self.array: np.ndarray | None = None
        self.items: list[Any] | None = None  # an object array's elements, resolved later

    def __setstate__(self, state: Any) -> None:
        if self.array is not None or self.items is not None:
            raise _refuse("an array's state is set twice")
        if not isinstance(state, tuple) or len(state) != 5 or state[0] != 1:
            raise _refuse("unsupported array state")
        _, shape, dtype_stub, fortran, data = state
        dtype = _dtype_of(dtype_stub)
        if fortran not in (True, False):
            raise _refuse("array order flag is not a bool")
        if dtype.kind != "O":
            self.array = _from_bytes(data, dtype, shape, bool(fortran))
            return
        shape, count = _count(shape)
        if isinstance(data, (bytes, bytearray)):
            raise _refuse("an object array stored as raw bytes (numpy would read them as "
                          "pointers)")
        if not isinstance(data, list) or len(data) != count:
            raise _refuse(f"object array {shape} needs {count} items")
        self.array = np.empty(count, dtype=object)
        self.items = data
        self.shape, self.fortran = shape, bool(fortran)


def _frombuffer(buffer: Any, dtype_stub: Any, shape: Any, order: Any) -> np.ndarray:
    """numpy's protocol-5 array constructor, checked."""
    if order not in ("C", "F"):
        raise _refuse(f"array order {order!r}")
    return _from_bytes(buffer, _dtype_of(dtype_stub), shape, order == "F")


def _scalar(dtype_stub: Any, data: Any = None) -> np.generic:
    """numpy's scalar constructor, checked (no object scalars)."""
    return _from_bytes(data, _dtype_of(dtype_stub), (), False)[()]


def _reconstruct(subtype: Any, shape: Any, typecode: Any) -> _ArrayStub:
    return _ArrayStub(subtype, shape, typecode)


def _dtype(name: Any, align: Any = False, copy: Any = True) -> _DtypeStub:
    return _DtypeStub(name, align, copy)


# (module, name) -> object. numpy 1.x pickles say `numpy.core.*`, numpy 2.x say `numpy._core.*`.
ALLOWED: dict[tuple[str, str], Any] = {("_codecs", "encode"): _latin1_encode,
                                        ("numpy", "ndarray"): _NDARRAY,
                                        ("numpy", "dtype"): _dtype}
for _mod in ("numpy.core", "numpy._core"):
    ALLOWED[(f"{_mod}.multiarray", "_reconstruct")] = _reconstruct
    ALLOWED[(f"{_mod}.multiarray", "scalar")] = _scalar
    ALLOWED[(f"{_mod}.numeric", "_frombuffer")] = _frombuffer
for _name in ("list", "dict", "tuple", "set", "frozenset", "int", "float", "bool", "complex"):
    ALLOWED[("builtins", _name)] = getattr(builtins, _name)
    ALLOWED[("__builtin__", _name)] = getattr(builtins, _name)  # protocol < 3 spelling


class _Opcodes(dict):
    """The unpickler's opcode table; an unknown opcode is a pickle error, as in C pickle."""

    def __missing__(self, opcode: int) -> Any:
        raise _refuse(f"invalid load key, {chr(opcode)!r}.")


class RestrictedUnpickler(pickle._Unpickler):
    """The pure-Python unpickler (as fast here: a dataset is a few large byte strings), so that
    BUILD, which would set attributes on whatever object precedes it, can be restricted to
    the stand-ins. A subclass may admit more globals (`allowed`) and more stand-in types whose
    own `__setstate__` checks the state (`buildable`)."""

    dispatch = _Opcodes(pickle._Unpickler.dispatch)
    allowed: dict[tuple[str, str], Any] = ALLOWED
    buildable: tuple[type, ...] = (_ArrayStub, _DtypeStub)
    admits = "only numpy arrays and builtin containers are allowed in data pickles"

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self.allowed[(module, name)]
        except KeyError:
            raise _refuse(f"refused to load global '{module}.{name}': {self.admits}") from None

    def load_build(self) -> None:
        state = self.stack.pop()
        target = self.stack[-1]
        if not isinstance(target, self.buildable):
            raise _refuse(f"a data pickle may set the state of arrays and dtypes only, not of "
                          f"{type(target).__name__}")
        target.__setstate__(state)

    dispatch[pickle.BUILD[0]] = load_build


class _Resolver:
    """Replaces the stand-ins by their arrays throughout the loaded object (shared references
    stay shared) and counts, once per reference, the nodes and array bytes reachable."""

    def __init__(self) -> None:
        self.done: dict[int, tuple[Any, int, int]] = {}  # id -> (value, nodes, array bytes)
        self.active: set[int] = set()
        self.keep: list[Any] = []  # keeps visited objects alive, so ids stay unique

    def resolve(self, obj: Any, depth: int = 0) -> tuple[Any, int, int]:
        if isinstance(obj, _LEAVES):
            return obj, 1, 0
        key = id(obj)
        if key in self.done:
            return self.done[key]
        if key in self.active:
            raise _refuse("a container that contains itself")
        if depth > MAX_DEPTH:
            raise _refuse(f"containers nested deeper than {MAX_DEPTH} levels")
        self.active.add(key)
        self.keep.append(obj)
        value, nodes, size = self._resolve_new(obj, depth)
        self.active.discard(key)
        self.done[key] = (value, nodes, size)
        return value, nodes, size

    def _children(self, items: Any, depth: int) -> tuple[list[Any], int, int]:
        values, nodes, size = [], 1, 0
        for item in items:
            value, n, s = self.resolve(item, depth + 1)
            values.append(value)
            nodes, size = nodes + n, size + s
        return values, nodes, size

    def _resolve_new(self, obj: Any, depth: int) -> tuple[Any, int, int]:
        if isinstance(obj, np.ndarray):  # from _frombuffer: already checked
            return obj, 1, obj.nbytes
        if isinstance(obj, _ArrayStub):
            if obj.array is None:
                raise _refuse("an array without its data")
            if obj.items is None:
                return obj.array, 1, obj.array.nbytes
            values, nodes, size = self._children(obj.items, depth)
            for i, value in enumerate(values):
                obj.array[i] = value
            return obj.array.reshape(obj.shape, order="F" if obj.fortran else "C"), nodes, size
        if isinstance(obj, _DtypeStub):
            return obj.checked(), 1, 0
        if isinstance(obj, list):
            return self._children(obj, depth)
        if isinstance(obj, tuple):
            values, nodes, size = self._children(obj, depth)
            return tuple(values), nodes, size
        if isinstance(obj, dict):
            keys, _, _ = self._children(obj.keys(), depth)
            if not all(isinstance(k, _LEAVES) or isinstance(k, tuple) for k in keys):
                raise _refuse("a dict key that is not a plain value")
            values, nodes, size = self._children(obj.values(), depth)
            return dict(zip(keys, values)), nodes + len(keys), size
        if isinstance(obj, (set, frozenset)):
            if any(isinstance(x, (_ArrayStub, _DtypeStub)) for x in obj):
                raise _refuse("an array inside a set")
            return obj, 1 + len(obj), 0
        raise _refuse(f"unsupported object {type(obj).__name__}")


def resolve_arrays(obj: Any) -> Any:
    """`obj` with the numpy stand-ins of a `RestrictedUnpickler` result replaced by arrays."""
    return _Resolver().resolve(obj)[0]


def safe_loads(data: bytes) -> Any:
    """Unpickle `data`, admitting only numpy arrays/scalars/dtypes and builtin containers. The
    result may hold at most len(data) + 10,000 nodes and 2 * len(data) + 1 MiB of array bytes,
    counted once per reference."""
    raw = RestrictedUnpickler(io.BytesIO(data)).load()
    value, nodes, size = _Resolver().resolve(raw)
    if nodes > len(data) + 10_000 or size > 2 * len(data) + (1 << 20):
        raise _refuse(f"its shared references stand for {nodes} objects and {size} bytes of "
                      f"arrays, far more than the {len(data)} bytes it holds")
    return value


def safe_load(path: str | Path) -> Any:
    """Read a pickle file through the restricted unpickler; any failure is a one-line MorelError."""
    path = Path(path)
    try:
        if path.exists() and not path.is_file():  # a FIFO or device (/dev/zero): endless
            raise MorelError(f"{path}: not a regular file")
        data = path.read_bytes()
    except OSError as err:
        raise MorelError(f"{path}: cannot read file ({err.strerror or err})") from None
    try:
        return safe_loads(data)
    except pickle.UnpicklingError as err:
        raise MorelError(f"{path}: unsafe or invalid pickle: {err}") from None
    except EOFError:
        raise MorelError(f"{path}: unsafe or invalid pickle: pickle data was truncated") from None
    except Exception as err:  # any other failure of a hostile file: one line, named
        raise MorelError(f"{path}: corrupt or unsupported pickle ({type(err).__name__}: "
                         f"{str(err)[:120]})") from None

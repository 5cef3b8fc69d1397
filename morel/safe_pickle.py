"""A restricted unpickler: numpy arrays, numpy scalars/dtypes and builtin containers, nothing else.

A pickle names the callables it wants run when it is loaded (`find_class`). Ours admits only the
few numpy functions that rebuild an array or scalar from bytes, so a file that asks for
`os.system`, `builtins.eval` or any other global is refused before anything runs.
"""

from __future__ import annotations

import builtins
import codecs
import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np
from numpy._core import multiarray as _multiarray
from numpy._core import numeric as _numeric

from morel.errors import MorelError


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    """Protocol-2 pickles store bytes as `_codecs.encode(str, 'latin1')`; admit only that codec."""
    if codecs.lookup(encoding).name != "iso8859-1":
        raise pickle.UnpicklingError(f"codec {encoding!r} is not allowed")
    return text.encode("latin1")


# (module, name) -> object. numpy 1.x pickles say `numpy.core.*`, numpy 2.x say `numpy._core.*`.
_ALLOWED: dict[tuple[str, str], Any] = {("_codecs", "encode"): _latin1_encode}
for _mod in ("numpy.core", "numpy._core"):
    _ALLOWED[(f"{_mod}.multiarray", "_reconstruct")] = _multiarray._reconstruct
    _ALLOWED[(f"{_mod}.multiarray", "scalar")] = _multiarray.scalar
    _ALLOWED[(f"{_mod}.numeric", "_frombuffer")] = _numeric._frombuffer
_ALLOWED[("numpy", "ndarray")] = np.ndarray
_ALLOWED[("numpy", "dtype")] = np.dtype
for _name in ("list", "dict", "tuple", "set", "frozenset", "int", "float", "bool", "complex"):
    _ALLOWED[("builtins", _name)] = getattr(builtins, _name)
    _ALLOWED[("__builtin__", _name)] = getattr(builtins, _name)  # protocol < 3 spelling


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refused to load global '{module}.{name}': only numpy arrays and builtin "
                "containers are allowed in data pickles"
            ) from None


def safe_loads(data: bytes) -> Any:
    """Unpickle `data`, admitting only numpy arrays/scalars/dtypes and builtin containers."""
    return _RestrictedUnpickler(io.BytesIO(data)).load()


def safe_load(path: str | Path) -> Any:
    """Read a pickle file through the restricted unpickler; any failure is a one-line MorelError."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise MorelError(f"{path}: cannot read file ({err.strerror or err})") from None
    try:
        return safe_loads(data)
    except pickle.UnpicklingError as err:
        raise MorelError(f"{path}: unsafe or invalid pickle: {err}") from None
    except (EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            MemoryError, RecursionError, OverflowError, UnicodeDecodeError) as err:
        raise MorelError(
            f"{path}: corrupt or unsupported pickle ({type(err).__name__}: {err})"
        ) from None

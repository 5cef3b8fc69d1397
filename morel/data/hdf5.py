"""Opening HDF5 files (our datasets, D4RL and Minari files) read-only, refusing files that point
outside themselves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from morel.core.errors import MorelError


def open_hdf5(path: str | Path) -> Any:
    """h5py.File(path, "r"), refused (one-line MorelError, file closed) when it links to other
    files; use it as a context manager."""
    import h5py

    path = Path(path)
    try:
        f = h5py.File(path, "r")
    except OSError as err:
        raise MorelError(f"{path}: corrupt or unsupported HDF5 file ({err})") from None
    try:
        refuse_external_storage(f, path)
    except BaseException:
        f.close()
        raise
    return f


def refuse_external_storage(f: Any, path: Path) -> None:
    """Refuse an HDF5 file that links to other files (external links, external or virtual
    datasets): reading it would read whatever local file it names."""
    import h5py

    def check(name: str) -> None:
        link = f.get(name, getlink=True)
        if isinstance(link, h5py.ExternalLink):
            raise MorelError(f"{path}: '{name}' is an external link to {link.filename}; "
                             "datasets must hold their own data (external links are refused)")
        item = f.get(name)
        if isinstance(item, h5py.Dataset) and (item.external or item.is_virtual):
            raise MorelError(f"{path}: '{name}' is stored in other files (external or virtual "
                             "storage is refused); datasets must hold their own data")

    names: list[str] = []
    f.visit_links(names.append)  # every link, external ones included, without following them
    for name in names:
        check(name)

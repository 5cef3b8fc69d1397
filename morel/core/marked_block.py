"""Replace the generated block of a Markdown file: the lines between `<!-- NAME -->` and
`<!-- /NAME -->` (both kept), so the docs' tables come straight from the tool that measured them.
"""

from __future__ import annotations

from pathlib import Path

from morel.core.atomic import write_text_atomic
from morel.core.errors import MorelError


def _split(path: Path, name: str) -> tuple[str, str]:
    """(text up to and including the start marker line, text from the end marker on)."""
    start, end = f"<!-- {name} -->\n", f"<!-- /{name} -->"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise MorelError(f"{path}: cannot read ({exc.strerror}); name an existing Markdown "
                         "file") from exc
    head, found, rest = text.partition(start)
    if not found or end not in rest or text.count(start) != 1:
        raise MorelError(f"{path}: needs exactly one '{start.strip()}' line followed by a "
                         f"'{end}' line where the table goes")
    return head + start, rest[rest.index(end):]


def check_marked_block(path: str | Path, name: str) -> None:
    """Fail early (before long work) when `path` has no single `name` block."""
    _split(Path(path), name)


def replace_marked_block(path: str | Path, name: str, body: str) -> None:
    """Put `body` between the `<!-- name -->` and `<!-- /name -->` lines of `path` (atomic)."""
    head, tail = _split(Path(path), name)
    write_text_atomic(path, head + body.rstrip("\n") + "\n" + tail)

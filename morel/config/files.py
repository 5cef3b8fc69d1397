"""Config files: the original's dict-literal text files, parsed without executing anything.

A config file holds one Python dict literal (comments, trailing commas, tuples, `None`, `1e8`,
nested dicts and `dict(k=v)` calls allowed). We parse it with `ast` and admit only literal
nodes, so `__import__('os')`, attribute access, lambdas or any other call are refused before
anything runs. Every key is checked against `MorelConfig`: an unknown key names the closest known
one; a wrong type names the key, the expected type, the file and the line.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import json
import math
import types
import typing
from pathlib import Path
from typing import Any, Literal

from morel.config.fields import MAX_INT, ConfigError
from morel.config.schema import ConfigMethods, MorelConfig
from morel.core.atomic import write_text_atomic

MAX_CONFIG_BYTES = 1_000_000


Schema = typing.TypeVar("Schema", bound=ConfigMethods)
NOT_KEYS = {"source"}
HINTS = {
    "hvp_frac": "it was never used by the original; set npg_hp=dict(hvp_sample_frac=...)",
    "num_cpu": "model rollouts are batched on the device; remove it",
}


# ----------------------------------------------------------------------------- parsing


def _literal(node: ast.AST, src: str, lines: dict[str, int], prefix: str = "") -> Any:
    """Turn an AST node into a value, admitting only literal forms."""
    where = f"{src} line {getattr(node, 'lineno', '?')}"
    if isinstance(node, ast.Constant) and isinstance(node.value, (str, int, float, bool,
                                                                   type(None))):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = _literal(node.operand, src, lines, prefix)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: unary sign on a non-number")
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, (ast.Tuple, ast.List)):
        items = [_literal(e, src, lines, prefix) for e in node.elts]
        return tuple(items) if isinstance(node, ast.Tuple) else items
    if isinstance(node, ast.Dict):
        pairs = []
        for k, v in zip(node.keys, node.values, strict=True):
            if k is None:
                raise ConfigError(f"{where}: '**' unpacking is not allowed in a config")
            key = _literal(k, src, lines, prefix)
            if not isinstance(key, str):
                raise ConfigError(f"{src} line {k.lineno}: dict keys must be strings, got "
                                  f"{key!r}")
            pairs.append((key, k.lineno, v))
        return _build_dict(pairs, src, lines, prefix)
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            and node.func.id == "dict" and not node.args):
        pairs = []
        for kw in node.keywords:
            if kw.arg is None:
                raise ConfigError(f"{where}: '**' unpacking is not allowed in a config")
            pairs.append((kw.arg, kw.value.lineno, kw.value))
        return _build_dict(pairs, src, lines, prefix)
    raise ConfigError(
        f"{where}: only literals (numbers, strings, True/False/None, tuples, lists, dicts, "
        f"dict(k=v)) are allowed in a config, found {_describe(node)}"
    )


def _build_dict(pairs: list[tuple[str, int, ast.AST]], src: str, lines: dict[str, int],
                prefix: str) -> dict:
    out: dict[str, Any] = {}
    for key, lineno, value_node in pairs:
        if key in out:
            raise ConfigError(f"{src} line {lineno}: key '{prefix}{key}' appears twice")
        lines[prefix + key] = lineno
        out[key] = _literal(value_node, src, lines, f"{prefix}{key}.")
    return out


def _describe(node: ast.AST) -> str:
    if isinstance(node, ast.Call):
        try:
            return f"a call to '{ast.unparse(node.func)}'"
        except (ValueError, RecursionError):
            return "a call"
    if isinstance(node, ast.Name):
        return f"the name '{node.id}'"
    if isinstance(node, ast.Attribute):
        return "attribute access"
    if isinstance(node, ast.Lambda):
        return "a lambda"
    return f"a {type(node).__name__} expression"


def parse_config_text(text: str, source: str = "<config>") -> tuple[dict, dict[str, int]]:
    """Parse config text into (dict, line of each key), never executing anything.

    Nested keys appear in the line map as 'npg_hp.FIM_invert_args.iters'.
    """
    try:
        tree = ast.parse(text, filename=source, mode="eval")
    except SyntaxError as err:
        raise ConfigError(f"{source} line {err.lineno}: not a valid dict literal "
                          f"({err.msg})") from None
    except (ValueError, RecursionError, MemoryError) as err:
        raise ConfigError(f"{source}: cannot parse ({type(err).__name__})") from None
    lines: dict[str, int] = {}
    try:
        value = _literal(tree.body, source, lines)
    except RecursionError:
        raise ConfigError(f"{source}: nested too deeply") from None
    if not isinstance(value, dict):
        raise ConfigError(f"{source}: a config must be one dict literal {{'key': value, ...}}")
    return value, lines


# ----------------------------------------------------------------------------- validation


def type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " or ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(type_name(a) for a in typing.get_args(tp))
    if origin is tuple:
        return "tuple of int"
    if dataclasses.is_dataclass(tp):
        return "dict"
    return "None" if tp is type(None) else tp.__name__


def _coerce(value: Any, tp: Any) -> tuple[bool, Any]:
    """(ok, value converted to the field type) for the few types the schema uses."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            ok, out = _coerce(value, arg)
            if ok:
                return True, out
        return False, None
    if origin is Literal:
        return value in typing.get_args(tp) and isinstance(value, str), value
    if origin is tuple:
        seq = value if isinstance(value, (tuple, list)) else None
        if seq is None or not all(isinstance(v, int) and not isinstance(v, bool) for v in seq):
            return False, None
        return True, tuple(seq)
    if tp is type(None):
        return value is None, None
    if tp is bool:
        return isinstance(value, bool), value
    if tp is int:
        if isinstance(value, bool):
            return False, None
        if isinstance(value, float) and value.is_integer() and abs(value) < 2**63:
            return True, int(value)  # the original writes 1e8 for integer counts
        return isinstance(value, int), value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False, None
        return True, float(value)
    if tp is str:
        return isinstance(value, str), value
    raise TypeError(f"schema type {tp!r} not handled")


def _build(cls: type, data: dict, lines: dict[str, int], src: str, prefix: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name not in NOT_KEYS}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        line = lines.get(prefix + key)
        where = f"{src} line {line}" if line else src
        if key not in fields:
            hint = HINTS.get(key)
            close = difflib.get_close_matches(key, list(fields), n=1, cutoff=0.6)
            fix = hint or (f"did you mean '{prefix}{close[0]}'?" if close
                           else f"known keys: {', '.join(fields)}")
            raise ConfigError(f"{where}: unknown key '{prefix}{key}' ({fix})")
        tp = hints[key]
        if dataclasses.is_dataclass(tp):
            if not isinstance(value, dict):
                raise ConfigError(f"{where}: key '{prefix}{key}' expects a dict, got "
                                  f"{type(value).__name__} {value!r}")
            kwargs[key] = _build(tp, value, lines, src, f"{prefix}{key}.")
            continue
        ok, converted = _coerce(value, tp)
        if not ok:
            raise ConfigError(f"{where}: key '{prefix}{key}' expects {type_name(tp)}, got "
                              f"{type(value).__name__} {value!r}")
        if key != "seed" and not _plain_numbers(converted):
            raise ConfigError(f"{where}: key '{prefix}{key}' must be a finite number (ints "
                              f"within +-{MAX_INT:.0e}), got {str(converted)[:60]}")
        meta = fields[key].metadata
        if meta.get("check") is not None and not meta["check"](converted):
            raise ConfigError(f"{where}: key '{prefix}{key}' {meta['rule']}, got {converted!r}")
        kwargs[key] = converted
    missing = [n for n, f in fields.items() if n not in kwargs
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise ConfigError(f"{src}: missing required key(s) "
                          + ", ".join(f"'{prefix}{m}'" for m in missing))
    return cls(**kwargs)


def _plain_numbers(value: Any) -> bool:
    """Floats finite and ints within +-MAX_INT, in a value and the tuples inside it."""
    if isinstance(value, tuple):
        return all(_plain_numbers(v) for v in value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return True
    return abs(value) <= MAX_INT if isinstance(value, int) else math.isfinite(value)


def config_from_dict(data: dict, lines: dict[str, int] | None = None, source: str = "<config>",
                     schema: type[Schema] = MorelConfig) -> Schema:  # type: ignore[assignment]
    """Validate a parsed dict against `schema` (a config dataclass) and fill defaults."""
    cfg = _build(schema, data, lines or {}, source)
    return dataclasses.replace(cfg, source=source)


def load_config(path: str | Path,
                schema: type[Schema] = MorelConfig) -> Schema:  # type: ignore[assignment]
    """Read, parse and validate a config file (see module docstring)."""
    path = Path(path)
    try:
        if path.exists() and not path.is_file() and not path.is_dir():
            raise ConfigError(f"{path}: not a regular file (a device or pipe); not a config")
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise ConfigError(f"{path}: larger than {MAX_CONFIG_BYTES} bytes; not a config")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: cannot read config ({err})") from None
    data, lines = parse_config_text(text, str(path))
    return config_from_dict(data, lines, str(path), schema)


def override(cfg: Schema, **changes: Any) -> Schema:
    """Apply command-line overrides (None means 'not given'), validated like file values."""
    given = {k: v for k, v in changes.items() if v is not None}
    if not given:
        return cfg
    data = {**cfg.to_dict(), **given}
    fresh = config_from_dict(data, source=cfg.source or "<config>", schema=type(cfg))
    return dataclasses.replace(fresh, source=cfg.source)


def write_config_json(cfg: ConfigMethods, path: str | Path, **extra: Any) -> None:
    """Write the resolved config (plus computed values such as truncate_lim) as JSON."""
    payload = {**cfg.to_dict(), **extra}
    write_text_atomic(path, json.dumps(payload, indent=4) + "\n")


def apply_assignments(cfg: Schema, assignments: list[str]) -> Schema:
    """Apply `--set KEY=VALUE` overrides (VALUE a config literal, parsed like a config file:
    `pessimism_coef=None`, `data_file='d.npz'`, `hidden_size=(64, 64)`). A dict value replaces
    the whole key: its absent sub-keys take their defaults."""
    if not assignments:
        return cfg
    changes: dict[str, Any] = {}
    for item in assignments:
        key, sep, value = item.partition("=")
        if not sep or not key.strip().isidentifier():
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. --set pessimism_coef=2.0")
        text = value.strip()
        try:
            parsed, _ = parse_config_text(f"{{'v': {text}}}", source=f"--set {key}")
        except ConfigError:
            parsed = {"v": text}  # a bare word: a string (paths, names)
        changes[key.strip()] = parsed["v"]
    fresh = config_from_dict({**cfg.to_dict(), **changes}, source="--set", schema=type(cfg))
    return dataclasses.replace(fresh, source=cfg.source)

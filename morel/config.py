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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from morel.atomic import write_text_atomic
from morel.errors import MorelError
from morel.seeding import MAX_SEED

PROJECT_ROOT = Path(__file__).resolve().parents[1]
MAX_CONFIG_BYTES = 1_000_000
MAX_INT = 10**12  # every int key (seed aside) lies in [-MAX_INT, MAX_INT]; floats are finite
MAX_LAYERS, MAX_LAYER_SIZE = 16, 65_536


class ConfigError(MorelError):
    """A config file that cannot be parsed or does not fit the schema."""


def _doc(text: str, check: Callable[[Any], bool] | None = None, rule: str = "") -> dict:
    return {"doc": text, "check": check, "rule": rule}


def _positive(doc: str) -> Any:
    return _doc(doc, lambda v: v > 0, "must be > 0")


def _non_negative(doc: str) -> Any:
    return _doc(doc, lambda v: v >= 0, "must be >= 0")


def _unit(doc: str) -> Any:
    return _doc(doc, lambda v: 0 <= v <= 1, "must be in [0, 1]")


def _count(doc: str, high: int, low: int = 1) -> Any:
    """An int key that sizes work or memory: in [low, high]."""
    return _doc(doc, lambda v: low <= v <= high, f"must be in [{low}, {high}]")


def _sizes(doc: str) -> Any:
    """Hidden layer sizes: 1 to MAX_LAYERS layers of 1 to MAX_LAYER_SIZE units."""
    return _doc(doc, lambda v: 1 <= len(v) <= MAX_LAYERS and all(0 < h <= MAX_LAYER_SIZE
                                                                  for h in v),
                f"must be 1 to {MAX_LAYERS} sizes in [1, {MAX_LAYER_SIZE}]")


@dataclass(frozen=True)
class FIMInvertArgs:
    """Conjugate-gradient settings for solving F x = g (the original's `FIM_invert_args`)."""

    iters: int = field(default=10, metadata=_count("conjugate-gradient iterations", 10_000))
    damping: float = field(default=1e-4, metadata=_non_negative("Tikhonov damping added to F"))


@dataclass(frozen=True)
class NPGHyper:
    """Extra NPG arguments (the original's `npg_hp` dict)."""

    FIM_invert_args: FIMInvertArgs = field(
        default_factory=FIMInvertArgs, metadata=_doc("CG settings: dict(iters=..., damping=...)")
    )
    hvp_sample_frac: float = field(
        default=1.0,
        metadata=_doc("share of samples used in each Fisher-vector product",
                      lambda v: 0 < v <= 1, "must be in (0, 1]"),
    )


class ConfigMethods:
    """Methods shared by the config schemas (each a frozen dataclass with a `source` field)."""

    source: str | None

    def resolve_path(self, key: str) -> Path:
        """Resolve a path-valued key: as given, then against the config's folder, then the
        project root. Raises a ConfigError naming every place tried."""
        value = getattr(self, key)
        if value is None:
            raise ConfigError(f"{self.source or 'config'}: key '{key}' is not set")
        path = Path(value).expanduser()
        tried = [path]
        if not path.is_absolute():
            if self.source:
                tried.append(Path(self.source).resolve().parent / path)
            tried.append(PROJECT_ROOT / path)
        for candidate in tried:
            if candidate.exists():
                return candidate
        places = ", ".join(str(p) for p in tried)
        raise ConfigError(f"{self.source or 'config'}: '{key}' file not found (tried {places})")

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of every key (tuples as lists), as written to job_data.json."""
        out = dataclasses.asdict(self)  # type: ignore[call-overload]
        out.pop("source")
        return json.loads(json.dumps(out))


@dataclass(frozen=True, kw_only=True)
class CommonKeys(ConfigMethods):
    """Keys shared by MOReL configs and real-env NPG configs (train_policy.py)."""

    env_name: str = field(metadata=_doc("gymnasium env id, e.g. 'Hopper-v5'"))
    act_repeat: int = field(default=1, metadata=_count("env steps per agent step", 10_000))
    seed: int = field(
        default=123,
        metadata=_doc("seed of every random stream in the run (morel.seeding)",
                      lambda v: 0 <= v <= MAX_SEED, "must be in [0, 2**63 - 1]"),
    )
    num_iter: int = field(default=500, metadata=_count("NPG iterations", 10**7, 0))
    eval_rollouts: int = field(default=0,
                               metadata=_count("real-env episodes per iter", 10_000, 0))
    save_freq: int = field(default=10, metadata=_positive("iterations between checkpoints"))
    device: str = field(default="cpu", metadata=_doc("'cpu', 'cuda', 'cuda:N' or 'auto'"))
    init_policy: str | None = field(default=None, metadata=_doc("policy file to start from"))
    exp_notes: str = field(default="", metadata=_doc("free text kept in job_data.json"))
    policy_size: tuple[int, ...] = field(default=(64, 64),
                                         metadata=_sizes("policy MLP hidden sizes"))
    step_size: float = field(default=0.02, metadata=_positive("NPG normalised step size"))
    max_kl: float | None = field(
        default=None,
        metadata=_doc("an NPG step whose KL on the batch exceeds this is halved until it does "
                      "(ours); None: the original's unguarded step",
                      lambda v: v is None or v > 0, "must be > 0 or None"),
    )
    init_log_std: float = field(default=-0.25, metadata=_doc("initial policy log std"))
    min_log_std: float = field(
        default=-2.0, metadata=_doc("lower clamp of policy log std", lambda v: v <= 1.0,
                                    "must be <= 1.0 (max_log_std)")
    )
    gamma: float = field(default=0.995, metadata=_unit("discount"))
    gae_lambda: float = field(default=0.97, metadata=_unit("GAE lambda"))
    npg_hp: NPGHyper = field(default_factory=NPGHyper, metadata=_doc("NPG extra arguments"))
    source: str | None = field(default=None, compare=False,
                               metadata=_doc("config file this came from (not a key)"))


@dataclass(frozen=True, kw_only=True)
class MorelConfig(CommonKeys):
    """Every key a MOReL config file may hold, with the original's defaults.

    Where the original has no default (it raises KeyError), the default is the value of the
    original's shipped hopper configs. `seed` etc. are documented in README ("Config keys").
    """

    data_file: str = field(metadata=_doc("dataset file: .pickle (original format), .npz or .h5"))
    num_models: int = field(default=4, metadata=_count("dynamics ensemble members", 1024))
    learn_reward: bool = field(
        default=True,
        metadata=_doc("learn a reward model; a reward_function from reward_file wins over it"),
    )
    reward_file: str | None = field(
        default=None, metadata=_doc("python file with obs_mask, reward_function, termination")
    )
    reward_timing: Literal["next", "current"] = field(
        default="next",
        metadata=_doc("reward/termination of step t from s_t+1 ('next') or s_t ('current', "
                      "the original)"),
    )
    model_file: str | None = field(default=None, metadata=_doc("fitted ensemble to load"))
    bc_init: bool = field(default=False, metadata=_doc("behaviour-cloning init of the policy"))
    bc_init_std: bool = field(
        default=False,
        metadata=_doc("with bc_init: start the policy std at the dataset's per-dimension action "
                      "spread around the cloned mean (ours; False: init_log_std)"),
    )
    pessimism_coef: float | None = field(
        default=None,
        metadata=_doc("threshold = max dataset disagreement / this; None or 0: no halting",
                      lambda v: v is None or v >= 0, "must be >= 0 or None"),
    )
    truncate_reward: float = field(default=0.0, metadata=_doc("reward added at a halt"))
    halt_terminates: bool = field(
        default=False,
        metadata=_doc("halted paths are terminal (the paper's absorbing HALT); False: the "
                      "original code, where no model path is terminal once halting runs"),
    )
    halt_penalty: float = field(
        default=0.0,
        metadata=_doc("extra reward at a halt when halt_terminates is True (the paper's -kappa)"),
    )
    hidden_size: tuple[int, ...] = field(default=(64, 64),
                                         metadata=_sizes("dynamics MLP hidden sizes"))
    activation: Literal["relu", "tanh"] = field(default="relu",
                                                metadata=_doc("dynamics activation"))
    fit_lr: float = field(default=1e-3, metadata=_positive("dynamics Adam learning rate"))
    fit_wd: float = field(default=0.0, metadata=_non_negative("dynamics Adam weight decay"))
    fit_mb_size: int = field(default=256, metadata=_count("dynamics minibatch size", 10**7))
    fit_epochs: int = field(default=25, metadata=_count("dynamics training epochs", 10**6))
    refresh_fit: bool = field(default=False, metadata=_doc("unused, kept for compatibility"))
    max_steps: int = field(default=10_000, metadata=_positive("cap on dynamics gradient steps"))
    update_paths: int = field(default=50,
                              metadata=_count("start states per iteration", 10**6))
    start_state: Literal["init", "buffer"] = field(
        default="init", metadata=_doc("'init': dataset path starts; 'buffer': mix with any state")
    )
    buffer_frac: float | None = field(
        default=None,
        metadata=_doc("share of buffer states for start_state='buffer'",
                      lambda v: v is None or 0 <= v <= 1, "must be in [0, 1] or None"),
    )
    horizon: int = field(default=1_000_000,
                         metadata=_count("model rollout length (clipped to env horizon)",
                                         10**7))


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


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " or ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
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
            raise ConfigError(f"{where}: key '{prefix}{key}' expects {_type_name(tp)}, got "
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

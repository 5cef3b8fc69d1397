"""mjrl Gaussian MLP policy pickles (`mjrl.policies.gaussian_mlp.MLP`), read without mjrl.

The original's logging policies and `init_policy` files are pickled mjrl MLP objects: a torch
module (mjrl's v2 branch: `fc_layers`, `log_std`, transforms on the object) or an older plain
object holding an `mjrl.utils.fc_network.FCNetwork` as `model` (v1: `model.fc_layers`,
`log_std`, transforms on the network). Loading such a pickle normally imports mjrl and runs
whatever the file names. Here a restricted unpickler admits only the globals those files use:
the two mjrl classes, torch's `ModuleList` and `Linear`, `OrderedDict`, torch's tensor and
parameter rebuild functions, the storage loader (its bytes go to `torch.load(weights_only=True)`),
`torch.tanh`/`torch.relu` as names, and numpy's array rebuilds (via `morel.core.safe_pickle`).
None of them is the real class: each object is a record of the state the file gives it, and
only after the whole file is read are its weights, log_std and transforms copied into a
`GaussianMLP`, whose mean equals mjrl's: fc((obs - in_shift) / (in_scale + eps)) * out_scale +
out_shift with tanh hidden layers (eps 1e-6 in v2, 1e-8 in v1's FCNetwork; folded into
in_scale). Anything else is refused before anything runs.
"""

from __future__ import annotations

import io
import math
import pickle
import warnings
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from morel.core.errors import MorelError
from morel.core.safe_pickle import ALLOWED, RestrictedUnpickler, resolve_arrays
from morel.npg.policies import MAX_LAYER_SIZE, GaussianMLP, load_policy

MAX_FILE_BYTES = 1 << 28
MJRL_SUFFIXES = (".pickle", ".pkl")


class _Record:
    """A stand-in for a class the file names: keeps the state dict BUILD gives it."""

    kind = "object"

    def __new__(cls, *args: Any) -> _Record:
        if args:
            raise pickle.UnpicklingError(f"{cls.kind}: unexpected constructor arguments")
        obj = super().__new__(cls)
        obj.state = {}
        return obj

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 2 and state[1] is None:
            state = state[0]  # (dict, no slots)
        if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
            raise pickle.UnpicklingError(f"{self.kind}: its state is not an attribute dict")
        self.state.update(state)


class _MLP(_Record):
    kind = "mjrl.policies.gaussian_mlp.MLP"


class _FCNetwork(_Record):
    kind = "mjrl.utils.fc_network.FCNetwork"


class _ModuleList(_Record):
    kind = "torch.nn.ModuleList"


class _Linear(_Record):
    kind = "torch.nn.Linear"


class _TorchFunctions:
    """What `torch._C._VariableFunctionsClass` resolves to: only `getattr` of it is allowed."""


def _getattr(owner: Any, name: Any) -> str:
    """`torch.tanh` pickles as getattr(torch._C._VariableFunctionsClass, 'tanh'): a name only."""
    if owner is not _TorchFunctions or name not in ("tanh", "relu"):
        raise pickle.UnpicklingError(f"getattr({str(owner)[:40]}, {str(name)[:40]!r}) is not "
                                     "allowed")
    return f"torch.{name}"


def _load_storage(data: Any) -> Any:
    """A tensor storage from its bytes (a torch file of one storage), weights_only."""
    if not isinstance(data, (bytes, bytearray)):
        raise pickle.UnpicklingError("a storage without its bytes")
    with warnings.catch_warnings():  # "TypedStorage is deprecated": torch's own format
        warnings.simplefilter("ignore", UserWarning)
        storage = torch.load(io.BytesIO(bytes(data)), map_location="cpu", weights_only=True)
    if not isinstance(storage, (torch.TypedStorage, torch.UntypedStorage)):
        raise pickle.UnpicklingError("storage bytes that hold no storage")
    return storage


def _rebuild_tensor(storage: Any, offset: Any, size: Any, stride: Any, requires_grad: Any = False,
                    hooks: Any = None, metadata: Any = None) -> torch.Tensor:
    """A fresh tensor viewing `storage` (bounds checked), torch's `_rebuild_tensor_v2`."""
    if not isinstance(storage, torch.TypedStorage):
        raise pickle.UnpicklingError("a tensor without a storage")
    dims = (*size, *stride, offset) if isinstance(size, tuple) and isinstance(stride, tuple) \
        else None
    if dims is None or len(size) != len(stride) or not all(type(d) is int and d >= 0
                                                            for d in dims):
        raise pickle.UnpicklingError(f"tensor shape {str(size)[:60]} / stride "
                                     f"{str(stride)[:60]} is not a tuple of sizes")
    count = storage._size()  # the public size() warns that TypedStorage is deprecated
    if math.prod(size) and offset + sum((n - 1) * s for n, s in zip(size, stride)) >= count:
        raise pickle.UnpicklingError(f"tensor {size} reaches past its storage of {count} "
                                     "elements")
    if hooks not in (None, OrderedDict(), {}):
        raise pickle.UnpicklingError("a tensor with backward hooks")
    tensor = torch.empty((0,), dtype=storage.dtype).set_(storage._untyped_storage, offset, size,
                                                         stride)
    return tensor.clone()


def _rebuild_parameter(data: Any, requires_grad: Any = True, hooks: Any = None,
                       state: Any = None) -> torch.Tensor:
    if not isinstance(data, torch.Tensor):
        raise pickle.UnpicklingError("a parameter without a tensor")
    return data


class _MjrlUnpickler(RestrictedUnpickler):
    dispatch = RestrictedUnpickler.dispatch
    allowed = {**ALLOWED,
               ("mjrl.policies.gaussian_mlp", "MLP"): _MLP,
               ("mjrl.utils.fc_network", "FCNetwork"): _FCNetwork,
               ("torch.nn.modules.container", "ModuleList"): _ModuleList,
               ("torch.nn.modules.linear", "Linear"): _Linear,
               ("collections", "OrderedDict"): OrderedDict,
               ("torch._C", "_VariableFunctionsClass"): _TorchFunctions,
               ("builtins", "getattr"): _getattr,
               ("__builtin__", "getattr"): _getattr,
               ("builtins", "set"): set,
               ("__builtin__", "set"): set,
               ("torch.storage", "_load_from_bytes"): _load_storage,
               ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
               ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
               ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter}
    buildable = (*RestrictedUnpickler.buildable, _Record)
    admits = ("an mjrl policy pickle may hold only the mjrl MLP, torch layers, tensors, numpy "
              "arrays and builtin containers")


def _field(record: _Record, name: str) -> Any:
    """Attribute `name` of a pickled module or object: its parameters, buffers, then __dict__."""
    for table in ("_parameters", "_buffers", "_modules"):
        inner = record.state.get(table)
        if isinstance(inner, dict) and name in inner:
            return inner[name]
    return record.state.get(name)


def _tensor(value: Any, what: str, default: torch.Tensor | None = None) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        value = resolve_arrays(value)  # numpy stand-ins, numbers, lists
    if value is None and default is not None:
        return default
    try:
        tensor = torch.as_tensor(value, dtype=torch.float32)
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(f"{what} is {type(value).__name__}, not numbers") from None
    if not bool(torch.isfinite(tensor).all()):
        raise ValueError(f"{what} holds NaN/inf")
    return tensor


def _uniform(value: Any, what: str, default: float) -> float:
    if value is None:
        return default
    tensor = _tensor(value, what).reshape(-1)
    if tensor.numel() == 0 or not bool((tensor == tensor[0]).all()):
        raise ValueError(f"{what} differs between action dims (one value is supported)")
    return float(tensor[0])


def _layers(owner: _Record) -> list[tuple[torch.Tensor, torch.Tensor]]:
    modules = _field(owner, "fc_layers")
    if not isinstance(modules, _ModuleList):
        raise ValueError("no fc_layers ModuleList")
    linears = modules.state.get("_modules")
    if not isinstance(linears, dict) or not linears:
        raise ValueError("fc_layers holds no layers")
    layers = []
    for key in sorted(linears, key=lambda k: int(k) if str(k).isdigit() else -1):
        layer = linears[key]
        if not isinstance(layer, _Linear):
            raise ValueError(f"fc_layers[{key}] is not a Linear layer")
        layers.append((_tensor(_field(layer, "weight"), f"fc_layers[{key}].weight"),
                       _tensor(_field(layer, "bias"), f"fc_layers[{key}].bias")))
    return layers


def _policy_from_record(root: Any) -> GaussianMLP:
    if not isinstance(root, _MLP):
        raise ValueError(f"it holds a {type(root).__name__}, not an mjrl MLP policy")
    net = _field(root, "model")
    v1 = isinstance(net, _FCNetwork)  # the older layout: the mean network is `model`
    owner = net if v1 else root
    layers = _layers(owner)
    for i, (w, b) in enumerate(layers):
        if w.dim() != 2 or b.shape != (w.shape[0],) or (i and w.shape[1] != layers[i - 1][0]
                                                         .shape[0]):
            raise ValueError(f"layer {i}: weight {tuple(w.shape)} and bias {tuple(b.shape)} do "
                             "not chain")
    sizes = [layers[0][0].shape[1]] + [w.shape[0] for w, _ in layers]
    if not all(0 < n <= MAX_LAYER_SIZE for n in sizes):
        raise ValueError(f"layer sizes {sizes[:8]} must be in [1, {MAX_LAYER_SIZE}]")
    for holder in (owner, root):
        nonlinearity = _field(holder, "nonlinearity")
        if nonlinearity not in (None, "torch.tanh", "tanh"):
            raise ValueError(f"nonlinearity {str(nonlinearity)[:40]}: only tanh hidden layers "
                             "(mjrl's policy) are supported")
    obs_dim, act_dim = sizes[0], sizes[-1]
    log_std = _tensor(_field(root, "log_std"), "log_std")
    if log_std.shape != (act_dim,):
        raise ValueError(f"log_std has shape {tuple(log_std.shape)}, the net has {act_dim} "
                         "actions")
    low = _uniform(_field(root, "min_log_std"), "min_log_std", -3.0)
    high = max(_uniform(_field(root, "max_log_std"), "max_log_std", 1.0), float(log_std.max()))
    policy = GaussianMLP(obs_dim, act_dim, sizes[1:-1], min_log_std=min(low, high),
                         max_log_std=high)
    eps = 1e-8 if v1 else 1e-6
    transforms = {}
    for name, dim, fill in (("in_shift", obs_dim, 0.0), ("in_scale", obs_dim, 1.0),
                            ("out_shift", act_dim, 0.0), ("out_scale", act_dim, 1.0)):
        value = _tensor(_field(owner, name), name, torch.full((dim,), fill)).reshape(-1)
        if value.numel() == 1:
            value = value.expand(dim)
        if value.shape != (dim,):
            raise ValueError(f"{name} has {value.numel()} entries, expected {dim}")
        transforms[name] = value.clone()
    transforms["in_scale"] += eps - 1e-6  # ours divides by in_scale + 1e-6
    with torch.no_grad():
        policy.log_std.copy_(log_std)
        for layer, (w, b) in zip(policy.layers, layers):
            layer.weight.copy_(w)
            layer.bias.copy_(b)
        for name, value in transforms.items():
            getattr(policy, name).copy_(value)
    policy.clamp_log_std()
    return policy


def load_mjrl_policy(path: str | Path) -> GaussianMLP:
    """Read a pickled mjrl MLP policy -> GaussianMLP with the same mean and std. Never imports
    mjrl or runs code from the file; a refused or damaged file is a one-line MorelError."""
    path = Path(path)
    if not path.is_file():
        raise MorelError(f"{path}: policy file not found")
    if path.stat().st_size > MAX_FILE_BYTES:
        raise MorelError(f"{path}: {path.stat().st_size} bytes is far too large for an mjrl "
                         "policy pickle")
    try:
        root = _MjrlUnpickler(io.BytesIO(path.read_bytes())).load()
        return _policy_from_record(root)
    except (pickle.UnpicklingError, EOFError) as err:
        raise MorelError(f"{path}: refused as an mjrl policy pickle (nothing in it was run): "
                         f"{str(err)[:200] or 'truncated'}") from None
    except Exception as err:  # a damaged or foreign layout: one line, named
        raise MorelError(f"{path}: not a usable mjrl policy pickle ({type(err).__name__}: "
                         f"{str(err).splitlines()[0][:200] if str(err) else ''})") from None


def load_policy_source(path: str | Path, device: str | torch.device = "cpu",
                       mjrl_obs_mask: Sequence[float] | None = None
                       ) -> tuple[GaussianMLP, dict[str, Any]]:
    """Any policy file a script takes -> (policy, meta): our policy file (`load_policy`), or a
    pickled mjrl MLP when the name ends in .pickle or .pkl. An mjrl policy took what the
    original's env gave it, the observations masked by the include file's obs_mask: given
    `mjrl_obs_mask` [obs_dim], its meta says so ({'obs_mask': ...}), else meta is {}."""
    if Path(path).suffix in MJRL_SUFFIXES:
        meta = {} if mjrl_obs_mask is None else {"obs_mask": [float(m) for m in mjrl_obs_mask]}
        return load_mjrl_policy(path).to(device), meta
    return load_policy(path, device)

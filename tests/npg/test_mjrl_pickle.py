"""mjrl MLP policy pickles: stand-in classes at mjrl's class paths are pickled here, then read
with no mjrl module importable; the mapped policy's mean and std are checked against mjrl's
forward formula (float64), hostile variants are refused and run nothing, and the original's
collection command works with such a pickle."""

from __future__ import annotations

import os
import pickle
import sys
import types

import numpy as np
import pytest
import torch
from conftest import REWARDS, ROOT, run_script
from torch import nn

from morel.config.files import load_config, override
from morel.core.errors import MorelError
from morel.data.datasets import load_dataset
from morel.npg.agent import policy_from_config
from morel.npg.mjrl_pickle import load_mjrl_policy, load_policy_source

OBS, ACT, HIDDEN = 11, 3, (8, 6)


def _fc_layers(seed: int) -> nn.ModuleList:
    torch.manual_seed(seed)
    sizes = (OBS, *HIDDEN, ACT)
    return nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes, sizes[1:]))


def _transforms(owner, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    owner.in_shift = torch.randn(OBS, generator=g)
    owner.in_scale = torch.rand(OBS, generator=g) + 0.5
    owner.out_shift = 0.1 * torch.randn(ACT, generator=g)
    owner.out_scale = torch.rand(ACT, generator=g) + 0.5


class _V2MLP(nn.Module):
    """mjrl v2's MLP layout: a module with fc_layers, log_std and the transforms."""

    def __init__(self, nonlinearity=torch.tanh):
        super().__init__()
        self.fc_layers = _fc_layers(3)
        self.nonlinearity = nonlinearity
        self.log_std = nn.Parameter(torch.tensor([-1.04, -0.7, -0.76]))
        self.min_log_std = torch.ones(ACT) * -3.0
        self.max_log_std = torch.ones(ACT) * 1.0
        self.log_std_val = np.float64(self.log_std.data.numpy().ravel())
        self.param_shapes = [p.data.numpy().shape for p in self.parameters()]
        self.d = np.sum([p.numel() for p in self.parameters()])
        self.device = "cpu"
        _transforms(self, 4)


class _FCNetwork(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc_layers = _fc_layers(5)
        self.nonlinearity = torch.tanh
        _transforms(self, 6)


class _V1MLP:
    """mjrl's older MLP: a plain object whose mean network is `model` (an FCNetwork)."""

    def __init__(self):
        self.n, self.m, self.min_log_std = OBS, ACT, -3
        self.model, self.old_model = _FCNetwork(), _FCNetwork()
        self.log_std = torch.tensor([-0.5, -0.2, -0.9], requires_grad=True)
        self.old_log_std = self.log_std.detach().clone()
        self.trainable_params = list(self.model.parameters()) + [self.log_std]
        self.log_std_val = np.float64(self.log_std.data.numpy().ravel())
        self.obs_var = torch.randn(OBS)


def _pickle(obj, path, protocol: int = 4) -> None:
    """Pickle `obj` as if its class lived at mjrl's paths, then make mjrl unimportable again."""
    names = {"mjrl.policies.gaussian_mlp": "MLP", "mjrl.utils.fc_network": "FCNetwork"}
    stand_ins = {"MLP": type(obj), "FCNetwork": _FCNetwork}
    saved = {c: (c.__module__, c.__qualname__) for c in stand_ins.values()}
    packages = ("mjrl", "mjrl.policies", "mjrl.utils")
    try:
        sys.modules.update({p: types.ModuleType(p) for p in packages})
        for module, name in names.items():
            mod = types.ModuleType(module)
            setattr(mod, name, stand_ins[name])
            sys.modules[module] = mod
            stand_ins[name].__module__, stand_ins[name].__qualname__ = module, name
        path.write_bytes(pickle.dumps(obj, protocol=protocol))
    finally:
        for module in (*names, *packages):
            sys.modules.pop(module, None)
        for cls, (module, qualname) in saved.items():
            cls.__module__, cls.__qualname__ = module, qualname


def _reference_mean(layers, owner, obs: np.ndarray, eps: float) -> np.ndarray:
    """mjrl's forward in float64."""
    f = lambda t: t.detach().double().numpy()  # noqa: E731
    h = (obs - f(owner.in_shift)) / (f(owner.in_scale) + eps)
    for i, layer in enumerate(layers):
        h = h @ f(layer.weight).T + f(layer.bias)
        if i < len(layers) - 1:
            h = np.tanh(h)
    return h * f(owner.out_scale) + f(owner.out_shift)


@pytest.mark.parametrize("layout", ["v2", "v1"])
@pytest.mark.parametrize("protocol", [2, 4])
def test_mapped_policy_has_mjrls_mean_and_std(tmp_path, layout, protocol):
    obj = _V2MLP() if layout == "v2" else _V1MLP()
    _pickle(obj, tmp_path / "p.pickle", protocol)
    assert "mjrl" not in sys.modules
    policy, meta = load_policy_source(tmp_path / "p.pickle")
    assert meta == {} and "mjrl" not in sys.modules
    assert (policy.obs_dim, policy.act_dim, policy.hidden_sizes) == (OBS, ACT, HIDDEN)
    obs = np.random.default_rng(0).normal(size=(64, OBS)) * 3
    owner, eps = (obj, 1e-6) if layout == "v2" else (obj.model, 1e-8)
    want = _reference_mean(owner.fc_layers, owner, obs, eps)
    mean, std = policy.mean_std(obs.astype(np.float32))
    np.testing.assert_allclose(mean, want, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(std[0], np.exp(obj.log_std.detach().numpy()), rtol=1e-6)
    assert float(policy.min_log_std) == -3.0


def test_hostile_and_foreign_pickles_are_refused_and_run_nothing(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    obj = _V2MLP()
    obj.extra = Evil()
    _pickle(obj, tmp_path / "evil.pickle")
    with pytest.raises(MorelError, match=r"evil\.pickle: refused .*nothing in it was run.*"
                                         r"posix\.system"):
        load_mjrl_policy(tmp_path / "evil.pickle")
    assert not marker.exists()
    # getattr (admitted for torch.tanh) of anything else: getattr(os, 'system')
    (tmp_path / "g.pickle").write_bytes(b"\x80\x02cbuiltins\ngetattr\ncos\nsystem\n"
                                        b"X\x06\x00\x00\x00system\x86R.")
    with pytest.raises(MorelError, match="refused"):
        load_mjrl_policy(tmp_path / "g.pickle")
    _pickle(_V2MLP(nonlinearity=torch.relu), tmp_path / "relu.pickle")
    with pytest.raises(MorelError, match="relu.*only tanh"):
        load_mjrl_policy(tmp_path / "relu.pickle")
    (tmp_path / "list.pickle").write_bytes(pickle.dumps([1, 2]))
    with pytest.raises(MorelError, match="not an mjrl MLP policy"):
        load_mjrl_policy(tmp_path / "list.pickle")
    _pickle(_V2MLP(), tmp_path / "cut.pickle")
    (tmp_path / "cut.pickle").write_bytes((tmp_path / "cut.pickle").read_bytes()[:300])
    with pytest.raises(MorelError, match=r"cut\.pickle: refused"):
        load_mjrl_policy(tmp_path / "cut.pickle")


def test_original_collection_command_takes_an_mjrl_pickle(tmp_path):
    """`collect_dataset.py --policy X.pickle --include gym_hopper.py` (the original's command on
    our env id) collects with the pickle's policy on masked observations: the same dataset as the
    policy converted by utils/convert_policy.py with the same --include."""
    _pickle(_V1MLP(), tmp_path / "hopper.pickle")
    include = str(REWARDS / "gym_hopper.py")
    conv = run_script("utils/convert_policy.py", "--policy", tmp_path / "hopper.pickle",
                      "--output", tmp_path / "hopper.pt", "--env_name", "Hopper-v5",
                      "--include", include)
    assert conv.returncode == 0, conv.stderr
    _, meta = load_policy_source(tmp_path / "hopper.pt")
    assert meta["env_name"] == "Hopper-v5" and meta["obs_mask"][5:] == [0.02] * 6
    datasets = []
    for name in ("hopper.pickle", "hopper.pt"):
        out = tmp_path / f"{name}.npz"
        res = run_script("collect_dataset.py", "--env_name", "Hopper-v5", "--policy",
                         tmp_path / name, "--output", out, "--size", "300", "--include",
                         include, "--seed", "7")
        assert res.returncode == 0, res.stderr
        datasets.append(load_dataset(out))
    (a, b) = datasets
    assert len(a.paths) == len(b.paths)
    for pa, pb in zip(a.paths, b.paths):
        np.testing.assert_array_equal(pa["actions"], pb["actions"])
    again = run_script("utils/convert_policy.py", "--policy", tmp_path / "hopper.pickle",
                       "--output", tmp_path / "hopper.pt", "--env_name", "Hopper-v5")
    assert again.returncode == 2 and "exists" in again.stderr


def test_init_policy_takes_an_mjrl_pickle(tmp_path):
    """`init_policy` as in the original's configs: a pickled mjrl MLP starts the run."""
    _pickle(_V2MLP(), tmp_path / "init.pickle")
    cfg = override(load_config(ROOT / "configs" / "hopper_v5_quick.txt"),
                   init_policy=str(tmp_path / "init.pickle"))
    policy = policy_from_config(cfg, OBS, ACT)
    torch.testing.assert_close(policy.flat_params(),
                               load_mjrl_policy(tmp_path / "init.pickle").flat_params())
    with pytest.raises(MorelError, match="dims 11/3 do not match env 17/6"):
        policy_from_config(cfg, 17, 6)

"""The device key: 'auto' falls back to CPU; CUDA asked for without CUDA is a one-line error."""

from __future__ import annotations

import pytest
import torch

from morel.core.device import resolve_device
from morel.core.errors import MorelError


def test_cpu_and_auto():
    assert resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda_is_a_clear_error():
    with pytest.raises(MorelError, match="CUDA is not available"):
        resolve_device("cuda")


@pytest.mark.parametrize("name", ["gpu", "tpu", "cuda:x", "meta"])
def test_unknown_devices(name):
    with pytest.raises(MorelError, match="not one of"):
        resolve_device(name)

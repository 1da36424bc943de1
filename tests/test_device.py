import pytest
import torch

import lightgcn_pyg.device as device_module
from lightgcn_pyg.device import resolve_device


def fake_accelerators(monkeypatch, cuda: int = 0, mps: bool = False) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: cuda)
    monkeypatch.setattr(device_module, "mps_is_available", lambda: mps)


@pytest.mark.parametrize(
    "cuda, mps, expected",
    [(0, False, "cpu"), (0, True, "mps"), (1, True, "cuda"), (2, False, "cuda")],
)
def test_auto_prefers_cuda_then_mps_then_cpu(monkeypatch, cuda, mps, expected):
    fake_accelerators(monkeypatch, cuda, mps)
    assert resolve_device("auto") == torch.device(expected)
    assert resolve_device() == torch.device(expected)
    assert resolve_device(" AUTO ") == torch.device(expected)


def test_explicit_devices(monkeypatch):
    fake_accelerators(monkeypatch, cuda=2, mps=True)
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    assert resolve_device("cuda") == torch.device("cuda")
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    assert resolve_device(torch.device("cuda", 0)) == torch.device("cuda", 0)
    assert resolve_device("mps") == torch.device("mps")


def test_real_machine():
    # Whatever this machine has, "auto" resolves to a device tensors can live on.
    device = resolve_device("auto")
    assert torch.zeros(1, device=device).device.type == device.type


@pytest.mark.parametrize("bad", ["gpu", "", "cuda:x", "tpu", "cuda:-1", "cpu:1", "mps:1"])
def test_bad_strings_raise(monkeypatch, bad):
    fake_accelerators(monkeypatch, cuda=1, mps=True)
    with pytest.raises(ValueError, match="'device'"):
        resolve_device(bad)


def test_unavailable_devices_raise(monkeypatch):
    fake_accelerators(monkeypatch, cuda=0, mps=False)
    with pytest.raises(ValueError, match="CUDA is not available"):
        resolve_device("cuda")
    with pytest.raises(ValueError, match="MPS is not available"):
        resolve_device("mps")
    fake_accelerators(monkeypatch, cuda=1, mps=False)
    with pytest.raises(ValueError, match=r"'cuda:1'.*only 1 CUDA"):
        resolve_device("cuda:1")
    with pytest.raises(ValueError, match="string or a 'torch.device'"):
        resolve_device(0)  # type: ignore[arg-type]

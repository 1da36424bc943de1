"""Device selection helpers shared by the model, the trainer and the CLI."""

from typing import Union

import torch

__all__ = ["resolve_device", "mps_is_available"]

_DEVICE_TYPES = ("cpu", "cuda", "mps")


def mps_is_available() -> bool:
    r"""Returns :obj:`True` if PyTorch can use Apple's Metal (MPS) backend."""
    backend = getattr(torch.backends, "mps", None)
    return backend is not None and backend.is_available()


def resolve_device(device: Union[str, torch.device] = "auto") -> torch.device:
    r"""Turns a device specification into an available :class:`torch.device`.

    :obj:`"auto"` picks CUDA if available, then MPS, then the CPU. An explicit
    request for a device that is not available raises instead of silently
    falling back, so a run never lands on another device than asked for.

    Args:
        device (str or torch.device, optional): :obj:`"auto"`, :obj:`"cpu"`,
            :obj:`"cuda"`, :obj:`"cuda:<index>"`, :obj:`"mps"` or a
            :class:`torch.device`. (default: :obj:`"auto"`)

    Raises:
        ValueError: If :obj:`device` cannot be parsed, names an unsupported
            device type, or names a device that is not available.
    """
    if isinstance(device, torch.device):
        spec = str(device)
    elif isinstance(device, str):
        spec = device.strip().lower()
    else:
        raise ValueError(
            f"'device' must be a string or a 'torch.device' in 'resolve_device' "
            f"(got {type(device).__name__})"
        )

    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if mps_is_available():
            return torch.device("mps")
        return torch.device("cpu")

    try:
        out = torch.device(spec)
    except RuntimeError:
        out = None
    if out is None or out.type not in _DEVICE_TYPES:
        raise ValueError(
            f"'device' must be one of 'auto', 'cpu', 'cuda', 'cuda:<index>' or 'mps' "
            f"in 'resolve_device' (got '{device}')"
        )

    if out.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"'device' is '{device}' but CUDA is not available in 'resolve_device'"
            )
        if out.index is not None and out.index >= torch.cuda.device_count():
            raise ValueError(
                f"'device' is '{device}' but only {torch.cuda.device_count()} CUDA "
                f"device(s) are available in 'resolve_device'"
            )
    elif out.type == "mps" and not mps_is_available():
        raise ValueError(f"'device' is '{device}' but MPS is not available in 'resolve_device'")
    if out.type != "cuda" and out.index not in (None, 0):
        raise ValueError(
            f"'device' must not have a device index other than 0 for '{out.type}' in "
            f"'resolve_device' (got '{device}')"
        )
    return out

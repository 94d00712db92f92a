"""Which torch device a model runs on, from what a user typed (``auto``, ``cpu``, ``cuda:N``)."""

from __future__ import annotations

from neobabel.errors import InputError


def torch_device(device: str | None):
    """A ``torch.device``; ``None``/``"auto"`` picks CUDA when torch sees one. A device that is
    unknown or not available here is an InputError, before any model loads."""
    import torch  # heavy: callers that never pick a device (CLI parsing, listings) skip it

    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise InputError(f"unknown device {device!r}; use 'cpu', 'cuda', 'cuda:N' or 'auto'") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device {device!r} asked for but CUDA is not available; use device='cpu'")
    return dev


def resolve_device(device: str | None) -> str:
    """The device name a model loads on: ``auto`` (or None) becomes ``cuda`` or ``cpu``; any
    other name is checked as :func:`torch_device` does and returned as torch spells it."""
    return str(torch_device(device))

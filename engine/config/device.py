"""Which torch device a run may use: one validator, so a misspelt or absent device is a one-line
``UsageError`` before any work, never an assertion from deep inside torch."""
from __future__ import annotations

import torch

from engine.config.options import UsageError

#: Device types the engine supports (the kernel is plain torch; only these are tested).
DEVICE_TYPES = ("cpu", "cuda")


def check_device(text: str | torch.device, *, flag: str = "--device") -> str:
    """The canonical name of device ``text`` ('cpu', 'cuda', 'cuda:1'), or a ``UsageError`` that
    names the flag, the value and the fix."""
    try:
        device = torch.device(text)
    except (RuntimeError, ValueError, TypeError):
        raise UsageError(f"{flag}: unknown device {str(text)!r}; expected cpu, cuda or cuda:N") from None
    if device.type not in DEVICE_TYPES:
        raise UsageError(f"{flag}: device {str(text)!r} is not supported; expected cpu, cuda or cuda:N")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            build = "a CPU-only build" if torch.version.cuda is None else "a CUDA build, but no GPU is visible"
            raise UsageError(f"{flag} {text}: CUDA is not available (torch {torch.__version__} is {build}); "
                             "use --device cpu")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise UsageError(f"{flag} {text}: there {'is' if count == 1 else 'are'} only {count} CUDA "
                             f"device{'' if count == 1 else 's'} (cuda:0..cuda:{count - 1})")
    return str(device)

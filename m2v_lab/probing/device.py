"""Which torch device a probe runs on."""

from __future__ import annotations

import torch

from ..errors import AnalysisError


def resolve_device(device) -> torch.device:
    """``None`` → CPU; ``"auto"`` → CUDA when available, else CPU; anything else as torch reads it."""
    if device is None:
        return torch.device("cpu")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise AnalysisError(f"device={device!r} is not a torch device ({err}); use None, 'auto', 'cpu' or "
                            "'cuda'.") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise AnalysisError(f"device={device!r} but torch sees no CUDA GPU; use device=None or 'auto'.")
    return resolved

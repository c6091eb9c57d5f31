"""Where computation runs and in which precision: one meaning of ``device=`` everywhere.

``None`` and ``"auto"`` mean the best device here: CUDA, then Apple's MPS, then the CPU — for
models, probes and similarity alike.  Half precision is for GPUs only, and float32 stays float32
on CUDA while features are extracted (:func:`no_tf32`).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch

from .errors import OptionError

__all__ = ["resolve_device", "resolve_dtype", "no_tf32"]

_DTYPES = {"float32": torch.float32, "fp32": torch.float32, "float16": torch.float16, "fp16": torch.float16,
           "half": torch.float16, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return mps is not None and mps.is_available()


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """The torch device ``device=`` means.

    Parameters
    ----------
    device : None, "auto", "cpu", "cuda", "cuda:1", "mps" or torch.device
        None and ``"auto"`` take CUDA when torch sees a GPU, else MPS, else the CPU.

    Raises
    ------
    OptionError
        Not a device name, or a device this machine does not have.
    """
    if device is None or (isinstance(device, str) and device == "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if _mps_available() else torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise OptionError(f"device={device!r} is not a device ({exc}); use None or 'auto' (the best one here), "
                          "'cpu', 'cuda' or 'mps'.") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise OptionError(f"device={device!r} asked for CUDA, but torch sees no CUDA GPU here; "
                          "use device='auto' or 'cpu'.")
    if dev.type == "mps" and not _mps_available():
        raise OptionError(f"device={device!r} asked for Apple's MPS, which torch does not see here; "
                          "use device='auto' or 'cpu'.")
    return dev


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """None → float32; names or torch dtypes of float32 / float16 / bfloat16 (half precision on GPUs only)."""
    if dtype is None:
        return torch.float32
    if isinstance(dtype, str):
        try:
            dtype = _DTYPES[dtype]
        except KeyError:
            raise OptionError(f"dtype={dtype!r} is not one of float32, float16, bfloat16.") from None
    if dtype not in (torch.float32, torch.float16, torch.bfloat16):
        raise OptionError(f"dtype={dtype} is not supported; use float32, float16 or bfloat16.")
    if dtype != torch.float32 and device.type == "cpu":
        raise OptionError(
            f"dtype={dtype} on the CPU: half precision is for GPUs only (bfloat16 ran 25-30x slower "
            "than float32 on CPUs here, and float16 matmuls are slow or unsupported). "
            "Use dtype=None (float32) on the CPU.")
    return dtype


@contextmanager
def no_tf32(device: torch.device) -> Iterator[None]:
    """Within the block, CUDA float32 matmuls and cuDNN convolutions run in full float32 (no TF32).

    PyTorch lets cuDNN convolutions use TF32 by default (and users or other libraries may turn
    it on for matmuls with ``torch.set_float32_matmul_precision("high")``); TF32 keeps a 10-bit
    mantissa, far from the CPU's numbers.  Since torch 2.9 the per-backend ``fp32_precision``
    settings are the source of truth (``allow_tf32`` and ``get_float32_matmul_precision()`` are
    views of them, and reading those raises once the two APIs were mixed), so those settings are
    saved, set to ``"ieee"`` and restored on exit, whatever happens inside.  On other devices
    nothing is touched.
    """
    if device.type != "cuda":
        yield
        return
    knobs = (torch.backends.cuda.matmul, torch.backends.cudnn.conv, torch.backends.cudnn.rnn)
    saved = [knob.fp32_precision for knob in knobs]
    try:
        for knob in knobs:
            knob.fp32_precision = "ieee"
        yield
    finally:
        for knob, value in zip(knobs, saved):
            knob.fp32_precision = value

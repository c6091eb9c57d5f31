"""Where similarity runs: NumPy on the CPU by default, torch on a device on request.

The kernels are written once with operators both libraries share (``@``, ``.sum(axis)``,
slicing, ``.reshape``, ``abs``, ``.clip``); this module supplies the rest.  Sums are float64
everywhere; the one float32 step is the Gram product of Gram-space linear CKA with
``precision="mixed"`` (see :func:`~m2v_lab.similarity.hsic.gram_stats`), which on CUDA runs
without TF32 (:func:`m2v_lab.devices.no_tf32`) whatever the global setting.

``device=``, as :func:`~m2v_lab.similarity.layer_similarity` takes it (CKA and the SVD-based
measures: Procrustes, SVCCA, PWCCA):

- ``"numpy"`` (the default): NumPy on the CPU.
- None or ``"auto"``: :func:`m2v_lab.devices.resolve_device`'s choice, CUDA > MPS > CPU, except
  that MPS (no float64) and the CPU are served by NumPy: the CPU numbers stay the default's.
- ``"cpu"``, ``"cuda"``, ``"cuda:1"`` or a ``torch.device``: torch on that device.
- ``"mps"``: refused with an :class:`~m2v_lab.errors.OptionError`.  Apple's MPS has no float64,
  and in float32 the sums drift from the float64 values as n grows (measured on this code:
  up to 9e-4 in Gram space at n = 4,000, where the other paths agree to 1e-10).
"""

from __future__ import annotations

from contextlib import nullcontext

import numpy as np

from ..errors import OptionError

__all__ = ["get_backend"]


class _NumpyBackend:
    name = "numpy"
    _STRIP = 1024

    def asarray(self, x):
        return np.asarray(x, dtype=np.float64)

    def to_numpy(self, x) -> np.ndarray:
        return np.asarray(x)

    def zeros(self, shape, dtype: str = "float64"):
        return np.zeros(shape, dtype=dtype)

    def arange(self, n):
        return np.arange(n)

    def index(self, positions):
        """Integer positions, as this backend indexes with them."""
        return np.asarray(positions)

    def upper_mask(self, rows, cols):
        """``(rows, cols)`` bool, True strictly above the diagonal."""
        return np.triu(np.ones((rows, cols), dtype=bool), 1)

    def wide(self, x):
        """``x`` in float64 (itself when it already is)."""
        return x.astype(np.float64, copy=False)

    def exact(self):
        """Context in which float32 products stay float32 (always so in NumPy)."""
        return nullcontext()

    def accumulator(self, shape):
        """Zeros that :meth:`add_gram` / :meth:`add_cross` update in place (Fortran order for BLAS)."""
        return np.zeros(shape, order="F")

    def add_gram(self, C, Z):
        """``C += ZᵀZ`` in place, upper triangle only (BLAS syrk); :meth:`finish_gram` mirrors it.

        In place, because a temporary ``ZᵀZ`` would double the memory of large accumulators.
        """
        from scipy.linalg import blas

        out = blas.dsyrk(1.0, Z.T, beta=1.0, c=C, trans=0, lower=0, overwrite_c=1)
        if out is not C:
            C[...] = out

    def add_cross(self, C, X, Y):
        """``C += XᵀY`` in place (BLAS gemm)."""
        from scipy.linalg import blas

        out = blas.dgemm(1.0, X.T, Y.T, beta=1.0, c=C, trans_b=1, overwrite_c=1)
        if out is not C:
            C[...] = out

    def finish_gram(self, C):
        """Copy the upper triangle of ``C`` to the lower, a strip at a time."""
        n = C.shape[0]
        for r0 in range(0, n, self._STRIP):
            r1 = min(n, r0 + self._STRIP)
            D = C[r0:r1, r0:r1]
            D[...] = np.triu(D) + np.triu(D, 1).T
            C[r1:, r0:r1] = C[r0:r1, r1:].T

    def mT(self, x):
        return np.swapaxes(x, -1, -2)

    def rows(self, x):
        """``(layers, m, dim)`` → ``(m, layers·dim)``, layer-major columns."""
        return np.ascontiguousarray(x.transpose(1, 0, 2)).reshape(x.shape[1], -1)

    def exp(self, x):
        return np.exp(x)

    def smallest(self, x, ranks) -> list[float]:
        """The values of ``x`` (1-D) at these 0-based ranks of its sorted order; ``x`` is reordered."""
        x.partition(list(ranks))
        return [float(x[r]) for r in ranks]

    def svd(self, x):
        """Thin SVD ``(U, s, Vt)``."""
        return np.linalg.svd(x, full_matrices=False)

    def svdvals(self, x):
        return np.linalg.svd(x, compute_uv=False)


class _TorchBackend:
    def __init__(self, device):
        import torch

        self._torch = torch
        self.device = device
        self.name = f"torch:{device}"

    def asarray(self, x):
        # Move in the input precision, widen on the device: half the transfer for float32 features.
        return self._torch.as_tensor(np.asarray(x), device=self.device).to(self._torch.float64)

    def to_numpy(self, x) -> np.ndarray:
        return x.detach().cpu().numpy() if isinstance(x, self._torch.Tensor) else np.asarray(x)

    def zeros(self, shape, dtype: str = "float64"):
        return self._torch.zeros(shape, dtype=getattr(self._torch, dtype), device=self.device)

    def arange(self, n):
        return self._torch.arange(n, device=self.device)

    def index(self, positions):
        return self._torch.as_tensor(np.asarray(positions), dtype=self._torch.long, device=self.device)

    def upper_mask(self, rows, cols):
        return self._torch.ones((rows, cols), dtype=self._torch.bool, device=self.device).triu(1)

    def wide(self, x):
        return x.to(self._torch.float64)

    def exact(self):
        from ..devices import no_tf32

        return no_tf32(self.device)

    def accumulator(self, shape):
        return self.zeros(shape)

    def add_gram(self, C, Z):
        C.addmm_(Z.T, Z)

    def add_cross(self, C, X, Y):
        C.addmm_(X.T, Y)

    def finish_gram(self, C):
        """Nothing to do: :meth:`add_gram` fills all of ``C``."""

    def mT(self, x):
        return x.transpose(-1, -2)

    def rows(self, x):
        return x.permute(1, 0, 2).reshape(x.shape[1], -1)

    def exp(self, x):
        return self._torch.exp(x)

    def smallest(self, x, ranks) -> list[float]:
        return [float(self._torch.kthvalue(x, r + 1).values) for r in ranks]

    def svd(self, x):
        return self._torch.linalg.svd(x, full_matrices=False)

    def svdvals(self, x):
        return self._torch.linalg.svdvals(x)


def get_backend(device):
    """The backend ``device`` means (see the module docstring).

    Raises
    ------
    OptionError
        Not a device, a device this machine lacks, or ``"mps"``.
    """
    if isinstance(device, str) and device == "numpy":
        return _NumpyBackend()
    from ..devices import resolve_device  # imports torch: only for a device that may need it

    dev = resolve_device(device)
    if (device is None or (isinstance(device, str) and device == "auto")) and dev.type != "cuda":
        return _NumpyBackend()
    if dev.type == "mps":
        raise OptionError(f"device={device!r}: Apple's MPS has no float64, which these sums need; use "
                          "device='numpy' (the CPU) or 'auto' (CUDA when there is one, else NumPy).")
    return _TorchBackend(dev)

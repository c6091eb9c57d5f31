"""What a probe is: the contract :func:`~m2v_lab.probing.probe_layers` cross-validates, one code path for all.

A probe is fitted per outer fold on that fold's training rows only — its hyper-parameters
chosen there too (inner CV over the other outer folds, or a validation split carved from
them) — and predicts the fold's test rows, for every layer at once.  Labels, folds, seeds,
the control task, feature baselines, per-clip scoring and progress are ``probe_layers``' job,
done the same way whichever probe runs.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import ClassVar

import numpy as np
import torch

from ..devices import resolve_device
from ..errors import OptionError

#: ``tick(n)``: ``n`` more (layer, outer fold) fits are done, for progress bars.
Tick = Callable[[int], None]


def no_tick(n: int) -> None:
    """A :data:`Tick` for callers that show no progress."""


class Probe(ABC):
    """Base of every probe :func:`~m2v_lab.probing.probe_layers` runs: ridge, logistic, MLP, or your own.

    A subclass sets the class attributes below and implements :meth:`inner_description` and
    :meth:`cross_validate`; :meth:`check` may add checks of its options against the task and ``cv``,
    and :meth:`device_for` may refuse devices it cannot compute on.

    Attributes
    ----------
    name : str
        What results call the probe (:attr:`ProbeResult.probe`).
    tasks : frozenset of str
        The tasks it does, among ``"multiclass"``, ``"multilabel"`` and ``"regression"``.
    default_seeds : tuple of int
        Seeds of a run that names none: one CV repetition (folds and initialisation) per seed.
    """

    name: ClassVar[str]
    tasks: ClassVar[frozenset[str]]
    default_seeds: ClassVar[tuple[int, ...]] = (0,)

    def check(self, *, task: str, cv: int) -> None:
        """Refuse, before any fitting, a task or fold count this probe cannot run.

        Raises
        ------
        OptionError
            ``task`` is not among :attr:`tasks` (or a subclass's own check fails).
        """
        if task not in self.tasks:
            raise OptionError(f"probe={self.name!r} cannot do {task}: it does {', '.join(sorted(self.tasks))}. Use "
                              "a probe that does (probe='ridge' and 'mlp' do every task).")

    def device_for(self, device) -> torch.device:
        """The torch device the ``device=`` option means for this probe (see :func:`m2v_lab.devices.resolve_device`).

        Raises
        ------
        OptionError
            Not a device, one this machine lacks, or one this probe cannot compute on.
        """
        return resolve_device(device)

    @abstractmethod
    def inner_description(self) -> str:
        """One line saying how hyper-parameters are chosen inside the training folds (for ``ProbeResult.cv``)."""

    @abstractmethod
    def cross_validate(self, X: np.ndarray, targets: list[np.ndarray], folds: np.ndarray, *, task: str, seed: int,
                       groups: np.ndarray | None, device: torch.device,
                       tick: Tick) -> list[tuple[np.ndarray, dict[str, np.ndarray]]]:
        """Out-of-fold decisions of every layer for each target set.

        The decisions of outer fold ``k``'s rows must come from a fit on the rows of the other
        folds, with hyper-parameters chosen on those rows only: neither fold ``k``'s targets nor
        any other fold's test decisions may reach them.

        Parameters
        ----------
        X : ndarray, shape (layers, n, dim)
        targets : list of ndarray, each shape (n, k)
            Target sets fitted separately on the same folds: one-hot classes, 0/1 labels or
            values.  :func:`~m2v_lab.probing.probe_layers` passes one, the real labels (or the
            control task's, with the control task's rows, folds and members as ``groups``).
        folds : ndarray, shape (n,)
            Outer test fold of each sample, ``0 … cv-1``.
        task : {"multiclass", "multilabel", "regression"}
            One of :attr:`tasks`; :meth:`check` has passed.
        seed : int
            This CV repetition's seed (initialisations, validation splits).
        groups : ndarray, shape (n,), or None
            Group code per sample: inner splits must keep groups whole.
        device : torch.device
            Where torch computation runs, as :meth:`device_for` gave it.
        tick : callable
            ``tick(n)`` after each ``n`` (layer, outer fold) fits of a target set.

        Returns
        -------
        list of (decision, params), one per target set
            ``decision`` (layers, n, k): class scores or probabilities (argmax is the
            prediction), label scores, or predicted values.  ``params`` maps a hyper-parameter
            name to its value chosen per layer and fold, (layers, cv).
        """

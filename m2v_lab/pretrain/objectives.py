"""The m-a-p family's pre-training objectives on transformers' modules.

Every objective runs one student pass per batch — the conv front end once, masked frames replaced
by the model's ``masked_spec_embed``, the encoder — and adds loss terms on the masked frames:

:class:`Data2VecObjective` (music2vec-v1's paradigm; fairseq ``data2vec_audio``)
    An EMA teacher (a deep copy of the *encoder* only; the conv front end and feature projection are
    shared, as ``ema_transformer_only``) sees the unmasked features; its targets are the top-K
    blocks' feed-forward outputs, instance-normed over time and averaged
    (:func:`~m2v_lab.pretrain.targets.data2vec_targets`); a linear ``final_proj`` on the student's
    last state regresses them on masked frames (squared error summed over dimensions, scaled by
    1/√dim).  The teacher never receives gradients: its parameters do not require them, it runs
    under ``no_grad``, and it is updated only by :meth:`Data2VecObjective.after_step` with a decay
    annealed linearly from ``ema_start`` to ``ema_end`` (positional convolution copied, not averaged,
    as ``ema_layers_only``).
:class:`MLMObjective` (MERT's paradigm: HuBERT-style masked prediction of acoustic codewords)
    One linear head per :class:`~m2v_lab.pretrain.targets.Codebook` on the last state, cross-entropy
    on masked frames (optionally plus ``unmasked_weight`` × the unmasked frames'); optionally a
    linear head regressing standardised CQT frames (MERT's reconstruction loss).
:class:`CombinedObjective`
    Weighted sum of several objectives sharing one student pass and one mask.

Heads and the teacher live in the objective (an ``nn.Module``), not in the model: the saved model
is the bare encoder, as the published checkpoints are.
"""

from __future__ import annotations

import copy
import math
from typing import Mapping, Sequence

import torch

from ..errors import OptionError
from .forward import check_trainable, student_forward, unwrap
from .masking import DATA2VEC_MASK, HUBERT_MASK, MaskConfig
from .monitor import collapse_stats
from .targets import Codebook, data2vec_targets

__all__ = ["Objective", "Data2VecObjective", "MLMObjective", "CombinedObjective", "ema_decay"]


def _seeded_linear(seed: int, n_in: int, n_out: int) -> torch.nn.Linear:
    """A Linear layer initialised from ``seed`` (heads do not depend on the global RNG)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return torch.nn.Linear(n_in, n_out)


def ema_decay(step: int, start: float, end: float, anneal_steps: int) -> float:
    """Linear anneal of the EMA decay from ``start`` (step 0) to ``end`` (``anneal_steps`` and after)."""
    if anneal_steps <= 0 or step >= anneal_steps:
        return float(end)
    return float(end - (end - start) * (1.0 - step / anneal_steps))


class Objective(torch.nn.Module):
    """Base class: one student pass, then :meth:`terms`.  Call as ``objective(model, batch, step)``.

    Attributes
    ----------
    mask : MaskConfig
        How the training loop masks frames for this objective.
    target_names : tuple of str
        Per-frame targets the batches must carry (codebook names, ``"cqt"``).
    """

    mask: MaskConfig = DATA2VEC_MASK
    target_names: tuple[str, ...] = ()
    name = "objective"

    def forward(self, model, batch, step: int, *, monitor: bool = False):
        """``(loss, stats)``: the scalar loss to minimise and floats to log."""
        module = unwrap(model)
        hidden, last = student_forward(module, batch.input_values, batch.mask)
        terms, stats = self.terms(module, hidden, last, batch, step, monitor=monitor)
        loss = sum(terms.values())
        stats = {"loss": float(loss.detach()), **stats}
        if monitor:
            stats.update({f"rep_{k}": v for k, v in collapse_stats(last).items() if k != "collapsed"})
        return loss, stats

    def terms(self, module, hidden, last, batch, step, *, monitor=False):
        raise NotImplementedError

    def after_step(self, model, step: int) -> None:
        """Called after each optimiser step (EMA teachers update here)."""

    def describe(self) -> dict:
        return {"objective": self.name, "mask": _mask_dict(self.mask)}


def _mask_dict(mask: MaskConfig) -> dict:
    return {"prob": mask.prob, "span": mask.span, "mode": mask.mode, "min_spans": mask.min_spans}


class Data2VecObjective(Objective):
    """data2vec: regress the EMA teacher's averaged top-K feed-forward outputs on masked frames.

    Parameters
    ----------
    model : LoadedModel or transformers module
        The student; the teacher starts as a deep copy of its encoder.
    top_k : int
        Teacher blocks averaged (fairseq base: 8 of 12; music2vec-v1: 8).  Capped at the model's blocks.
    ema_start, ema_end, ema_anneal_steps : float, float, int
        EMA decay annealed linearly (fairseq base: 0.999 → 0.9999 over 30 000 updates).
    ema_layers_only : bool
        Copy the positional convolution into the teacher instead of averaging it (fairseq default).
    instance_norm, layer_norm_targets, instance_norm_targets : bool
        Target normalisation (fairseq audio: instance norm per block only).
    loss_scale : float, optional
        Multiplies the per-frame summed squared error; default 1/√dim (fairseq).
    mask : MaskConfig
        Default data2vec's (0.65, spans of 10).
    seed : int
        Initialises ``final_proj``.
    """

    name = "data2vec"

    def __init__(self, model, *, top_k: int = 8, ema_start: float = 0.999, ema_end: float = 0.9999,
                 ema_anneal_steps: int = 30000, ema_layers_only: bool = True, instance_norm: bool = True,
                 layer_norm_targets: bool = False, instance_norm_targets: bool = False,
                 loss_scale: float | None = None, mask: MaskConfig = DATA2VEC_MASK, seed: int = 0):
        super().__init__()
        module = unwrap(model)
        check_trainable(module)
        n_layers = len(module.encoder.layers)
        if not 0.0 <= ema_start <= 1.0 or not 0.0 <= ema_end <= 1.0:
            raise OptionError(f"EMA decays must be in [0, 1] (got {ema_start}, {ema_end}).")
        self.top_k = min(int(top_k), n_layers)
        if self.top_k < 1:
            raise OptionError(f"top_k={top_k} must be >= 1.")
        self.ema_start, self.ema_end, self.ema_anneal_steps = float(ema_start), float(ema_end), int(ema_anneal_steps)
        self.ema_layers_only = bool(ema_layers_only)
        self.instance_norm = bool(instance_norm)
        self.layer_norm_targets = bool(layer_norm_targets)
        self.instance_norm_targets = bool(instance_norm_targets)
        dim = int(module.config.hidden_size)
        self.loss_scale = float(loss_scale) if loss_scale is not None else 1.0 / math.sqrt(dim)
        self.mask = mask
        self.teacher = copy.deepcopy(module.encoder)
        self.teacher.requires_grad_(False)
        self.teacher.eval()
        self.final_proj = _seeded_linear(seed, dim, dim)
        self._copied = {n for n, _ in self.teacher.named_parameters() if n.startswith("pos_conv_embed.")} \
            if self.ema_layers_only else set()
        self.last_decay = float("nan")

    def train(self, mode: bool = True):
        super().train(mode)
        self.teacher.eval()  # the teacher never drops out
        return self

    def targets(self, hidden: torch.Tensor) -> torch.Tensor:
        """The teacher's targets ``(batch, frames, dim)`` for unmasked front-end features."""
        self.teacher.eval()
        return data2vec_targets(self.teacher, hidden.detach(), top_k=self.top_k, instance_norm=self.instance_norm,
                                layer_norm_targets=self.layer_norm_targets,
                                instance_norm_targets=self.instance_norm_targets)

    def terms(self, module, hidden, last, batch, step, *, monitor=False):
        y = self.targets(hidden)
        mask = batch.mask
        pred = self.final_proj(last[mask]).float()
        err = (pred - y[mask]).square().sum(-1) * self.loss_scale
        loss = err.mean()
        with torch.no_grad():
            stats = {"d2v": float(loss.detach()), "target_std": float(y[mask].std(0).mean()),
                     "pred_std": float(pred.std(0).mean()), "ema_decay": self.last_decay}
            if monitor:
                stats.update({f"target_{k}": v for k, v in collapse_stats(y).items()})
        return {"d2v": loss}, stats

    @torch.no_grad()
    def after_step(self, model, step: int) -> None:
        """EMA update of the teacher towards the student's encoder, decay for update ``step + 1``."""
        decay = ema_decay(step + 1, self.ema_start, self.ema_end, self.ema_anneal_steps)
        self.last_decay = decay
        student = dict(unwrap(model).encoder.named_parameters())
        for name, t in self.teacher.named_parameters():
            s = student[name].detach().to(t.dtype)
            if name in self._copied or decay == 0.0:
                t.copy_(s)
            else:
                t.mul_(decay).add_(s, alpha=1.0 - decay)
        student_buffers = dict(unwrap(model).encoder.named_buffers())
        for name, b in self.teacher.named_buffers():
            b.copy_(student_buffers[name])

    def describe(self) -> dict:
        return {"objective": self.name, "mask": _mask_dict(self.mask), "top_k": self.top_k,
                "ema": [self.ema_start, self.ema_end, self.ema_anneal_steps], "ema_layers_only": self.ema_layers_only,
                "instance_norm": self.instance_norm, "layer_norm_targets": self.layer_norm_targets,
                "instance_norm_targets": self.instance_norm_targets, "loss_scale": self.loss_scale}


class MLMObjective(Objective):
    """MERT-style masked prediction of acoustic codewords (plus an optional CQT reconstruction).

    Parameters
    ----------
    model : LoadedModel or transformers module
    codebooks : mapping of name to Codebook or int, or a sequence of Codebooks
        One linear head (``hidden → k``) per codebook; batches carry ``(batch, frames)`` int64 codes
        under the same names.
    cqt_dim : int, optional
        Add a linear head regressing ``cqt_dim``-dimensional standardised frames carried under
        ``cqt_name`` (squared error averaged over dimensions, masked frames), weighted ``cqt_weight``.
    unmasked_weight : float or mapping of name to float
        Weight of the unmasked frames' cross-entropy (HuBERT's 1 − α; 0 = masked frames only);
        a mapping sets it per codebook (missing names: 0), e.g. ``{"chroma": 1.0}`` predicts
        chroma codes at every frame and the others at masked frames only.
    codebook_weights : mapping of name to float, optional
        Factor on each codebook's loss (missing names: 1), to mix objectives that pull apart
        (codewords of MFCC frames teach timbre and erase pitch; chroma ones the reverse).
    mask : MaskConfig
        Default HuBERT's / MERT's (0.8, spans of 10).
    seed : int
        Initialises the heads (head ``i`` from ``seed + i``).
    """

    name = "mlm"

    def __init__(self, model, codebooks, *, cqt_dim: int | None = None, cqt_name: str = "cqt",
                 cqt_weight: float = 1.0, unmasked_weight: float | Mapping[str, float] = 0.0,
                 codebook_weights: Mapping[str, float] | None = None, mask: MaskConfig = HUBERT_MASK,
                 seed: int = 0):
        super().__init__()
        module = unwrap(model)
        check_trainable(module)
        if isinstance(codebooks, Mapping):
            sizes = {str(n): (c.k if isinstance(c, Codebook) else int(c)) for n, c in codebooks.items()}
        else:
            sizes = {c.name: c.k for c in codebooks}
        if not sizes and not cqt_dim:
            raise OptionError("MLMObjective needs at least one codebook or a cqt_dim.")
        dim = int(module.config.hidden_size)
        self.sizes = sizes
        self.heads = torch.nn.ModuleDict({n: _seeded_linear(seed + i, dim, k)
                                          for i, (n, k) in enumerate(sizes.items())})
        self.cqt_name = cqt_name
        self.cqt_weight = float(cqt_weight)
        self.recon = _seeded_linear(seed + len(sizes), dim, int(cqt_dim)) if cqt_dim else None
        self.unmasked_weight = _per_codebook("unmasked_weight", unmasked_weight, sizes, default=0.0)
        self.codebook_weights = _per_codebook("codebook_weights", codebook_weights or {}, sizes, default=1.0)
        self.mask = mask
        self.target_names = tuple(sizes) + ((cqt_name,) if cqt_dim else ())

    def terms(self, module, hidden, last, batch, step, *, monitor=False):
        mask = batch.mask
        terms, stats = {}, {}
        for name, head in self.heads.items():
            codes = batch.targets[name]
            logits = head(last).float()
            ce = torch.nn.functional.cross_entropy(logits.transpose(1, 2), codes, reduction="none")
            loss = ce[mask].mean()
            if self.unmasked_weight[name] and (~mask).any():
                loss = loss + self.unmasked_weight[name] * ce[~mask].mean()
            terms[f"mlm_{name}"] = self.codebook_weights[name] * loss
            with torch.no_grad():
                stats[f"mlm_{name}"] = float(ce[mask].mean())
                stats[f"mlm_{name}_acc"] = float((logits.argmax(-1) == codes)[mask].float().mean())
        if self.recon is not None:
            y = batch.targets[self.cqt_name].float()
            err = (self.recon(last).float() - y).square().mean(-1)
            loss = err[mask].mean()
            terms["cqt"] = self.cqt_weight * loss
            with torch.no_grad():
                stats["cqt"] = float(loss.detach())
                stats["cqt_r2"] = float(1.0 - loss.detach() / y[mask].var(0).mean().clamp_min(1e-12))
        return terms, stats

    def describe(self) -> dict:
        return {"objective": self.name, "mask": _mask_dict(self.mask), "codebooks": dict(self.sizes),
                "cqt_dim": None if self.recon is None else self.recon.out_features, "cqt_weight": self.cqt_weight,
                "unmasked_weight": _compact(self.unmasked_weight), "codebook_weights": _compact(self.codebook_weights)}


def _per_codebook(option: str, value, sizes: Mapping[str, int], *, default: float) -> dict[str, float]:
    """``{codebook: float}`` from one number or a mapping (names not given take ``default``)."""
    if not isinstance(value, Mapping):
        return {name: float(value) for name in sizes}
    unknown = sorted(set(map(str, value)) - set(sizes))
    if unknown:
        raise OptionError(f"{option} names {unknown}, which are not codebooks here; the codebooks are {list(sizes)}.")
    return {name: float(value.get(name, default)) for name in sizes}


def _compact(per_codebook: dict[str, float]):
    """One number when every codebook has the same (how the card and run.json have always said it)."""
    values = set(per_codebook.values())
    return values.pop() if len(values) == 1 else dict(per_codebook)


class CombinedObjective(Objective):
    """A weighted sum of objectives sharing one student pass and one mask.

    Parameters
    ----------
    members : sequence of Objective
    weights : sequence of float, optional
        Default 1 each.
    mask : MaskConfig, optional
        Default the first member's.
    """

    name = "combined"

    def __init__(self, members: Sequence[Objective], weights: Sequence[float] | None = None,
                 mask: MaskConfig | None = None):
        super().__init__()
        if not members:
            raise OptionError("CombinedObjective needs at least one objective.")
        weights = [1.0] * len(members) if weights is None else [float(w) for w in weights]
        if len(weights) != len(members):
            raise OptionError(f"{len(weights)} weights for {len(members)} objectives.")
        self.members = torch.nn.ModuleList(members)
        self.weights = weights
        self.mask = mask or members[0].mask
        self.target_names = tuple(dict.fromkeys(n for m in members for n in m.target_names))
        self.name = "+".join(m.name for m in members)

    def terms(self, module, hidden, last, batch, step, *, monitor=False):
        terms, stats = {}, {}
        for member, w in zip(self.members, self.weights):
            t, s = member.terms(module, hidden, last, batch, step, monitor=monitor)
            terms.update({k: w * v for k, v in t.items()})
            stats.update(s)
        return terms, stats

    def after_step(self, model, step: int) -> None:
        for member in self.members:
            member.after_step(model, step)

    def describe(self) -> dict:
        return {"objective": self.name, "mask": _mask_dict(self.mask), "weights": self.weights,
                "members": [m.describe() for m in self.members]}

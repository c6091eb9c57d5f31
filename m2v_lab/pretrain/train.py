"""The pre-training loop: Adam, warm-up and decay, gradient clipping, resumable checkpoints, logs.

>>> from m2v_lab import pretrain as pt
>>> model = pt.build_model(pt.mini_config(), seed=0)
>>> corpus = pt.AudioCorpus.from_folders("~/music")
>>> book = corpus.fit_codebook("logmel", "logmel", k=100, seed=0); corpus.add_codes(book)
>>> result = pt.pretrain(model, corpus, pt.MLMObjective(model, [book]), steps=2000, batch_size=6,
...                      crop_seconds=3.0, lr=5e-4, seed=0, checkpoint_dir="runs/mlm")

Everything random in a run comes from ``seed`` — crops, masks (NumPy generators spawned from it) and
torch's generator (dropout) — and a checkpoint stores all of it with the model, the objective (heads,
EMA teacher) and the optimiser, so ``resume=True`` continues a stopped run bit for bit (same device and
thread count).  Each log row has the losses averaged over the last ``log_every`` steps, the learning
rate, audio seconds per second and the collapse monitor (:mod:`.monitor`); rows are written to
``history.csv`` in the checkpoint folder as they come, with ``run.json`` describing the run.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import torch

from ..devices import resolve_device
from ..errors import M2VLabError, OptionError
from .data import AudioCorpus, Batch, CropSampler
from .forward import check_trainable, unwrap
from .masking import span_mask
from .objectives import Objective

__all__ = ["pretrain", "PretrainResult", "lr_at", "build_model", "CHECKPOINT_NAME", "load_snapshot"]

CHECKPOINT_NAME = "latest.pt"
_FORMAT = 1
_SCHEDULES = ("cosine", "linear", "constant", "tri_stage")


def build_model(config, *, seed: int):
    """A randomly initialised ``Data2VecAudioModel`` (or HuBERT, from a ``HubertConfig``), seeded."""
    from transformers import Data2VecAudioModel, HubertModel

    cls = HubertModel if config.model_type == "hubert" else Data2VecAudioModel
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return cls(config)


def lr_at(step: int, *, steps: int, lr: float, warmup: float = 0.08, schedule: str = "cosine",
          final_lr_scale: float = 0.05) -> float:
    """Learning rate of update ``step`` (0-based).

    ``warmup`` is a fraction of ``steps`` (< 1) or a number of steps; the rate rises linearly to
    ``lr``, then: ``"cosine"`` to ``final_lr_scale · lr``; ``"linear"`` likewise; ``"constant"`` stays;
    ``"tri_stage"`` (fairseq data2vec) holds, then decays exponentially over the last 7 % of steps.
    """
    if schedule not in _SCHEDULES:
        raise OptionError(f"schedule={schedule!r} must be one of {_SCHEDULES}.")
    n_warm = int(round(warmup * steps)) if warmup < 1 else int(warmup)
    if step < n_warm:
        return lr * (step + 1) / n_warm
    if schedule == "constant":
        return lr
    rest = max(1, steps - n_warm)
    progress = min(1.0, (step - n_warm) / rest)
    if schedule == "cosine":
        return lr * (final_lr_scale + (1 - final_lr_scale) * 0.5 * (1 + math.cos(math.pi * progress)))
    if schedule == "linear":
        return lr * (1 - (1 - final_lr_scale) * progress)
    decay_start = int(0.93 * steps)
    if step < decay_start:
        return lr
    frac = (step - decay_start) / max(1, steps - decay_start)
    return lr * final_lr_scale ** frac


@dataclass
class PretrainResult:
    """What :func:`pretrain` did.

    Attributes
    ----------
    history : DataFrame
        One row per log step: ``step``, ``lr``, ``loss``, each term, ``grad_norm``, ``seconds`` (training
        time so far), ``audio_per_second`` (over the rows' window, validation included), monitor columns
        (``target_position_share`` …).
    validation : DataFrame
        One row per validation: ``step`` and ``val_*`` columns.
    steps_done : int
    seconds : float
        Wall time of training, all sessions of a resumed run together.
    stopped_early : bool
        Stopped by ``max_seconds`` or ``stop_at`` before ``steps`` (resume to continue).
    checkpoint_dir : Path or None
    snapshots : list of (int, Path)
        Weight snapshots written (``snapshot_every``).
    """

    history: pd.DataFrame
    validation: pd.DataFrame
    steps_done: int
    seconds: float
    stopped_early: bool
    checkpoint_dir: Path | None = None
    snapshots: list = field(default_factory=list)


def _param_groups(module, objective, weight_decay: float, conv_lr_scale: float):
    conv = {id(p) for p in module.feature_extractor.parameters()}
    params = [p for p in list(module.parameters()) + list(objective.parameters()) if p.requires_grad]
    groups = []
    for in_conv, scale in ((False, 1.0), (True, conv_lr_scale)):
        chosen = [p for p in params if (id(p) in conv) == in_conv]
        if scale == 0.0:
            for p in chosen:
                p.requires_grad_(False)
            continue
        groups += [{"params": [p for p in chosen if p.ndim >= 2], "weight_decay": weight_decay, "lr_scale": scale},
                   {"params": [p for p in chosen if p.ndim < 2], "weight_decay": 0.0, "lr_scale": scale}]
    return [g for g in groups if g["params"]]


def _atomic_save(obj, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _write_table(rows: list[dict], path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    pd.DataFrame(rows).to_csv(tmp, index=False)
    os.replace(tmp, path)


def _save_snapshot(module, path: Path) -> None:
    from safetensors.torch import save_file

    tmp = path.with_name(path.name + ".tmp")
    save_file({k: v.detach().to("cpu").contiguous() for k, v in module.state_dict().items()}, str(tmp),
              metadata={"format": "pt"})
    os.replace(tmp, path)


def load_snapshot(module, path) -> torch.nn.Module:
    """Load a weight snapshot written by :func:`pretrain` (``snapshot_every``) into ``module``."""
    from safetensors.torch import load_file

    unwrap(module).load_state_dict(load_file(str(path)))
    return module


def _sampler(corpus, crop_seconds: float, weights, normalize: str) -> CropSampler:
    if isinstance(corpus, CropSampler):
        return corpus
    if isinstance(corpus, AudioCorpus) or (isinstance(corpus, Sequence) and corpus
                                           and all(isinstance(c, AudioCorpus) for c in corpus)):
        return CropSampler(corpus, crop_seconds=crop_seconds, weights=weights, normalize=normalize)
    raise OptionError(f"corpus must be an AudioCorpus, a list of them or a CropSampler, not {type(corpus).__name__}.")


def _batch(sampler: CropSampler, objective: Objective, batch_size: int, data_rng, mask_rng, device) -> Batch:
    waves, targets, refs = sampler.sample(data_rng, batch_size, objective.target_names)
    mask = span_mask(batch_size, sampler.crop_frames, objective.mask, rng=mask_rng)
    return Batch(torch.from_numpy(waves), torch.from_numpy(mask),
                 {k: torch.from_numpy(v) for k, v in targets.items()}, refs).to(device)


def _mean_rows(window: list[dict]) -> dict:
    keys = dict.fromkeys(k for row in window for k in row)
    out = {}
    for k in keys:
        vals = [row[k] for row in window if k in row and row[k] is not None and not
                (isinstance(row[k], float) and math.isnan(row[k]))]
        if vals:
            out[k] = float(np.mean(vals))
    return out


def pretrain(model, corpus, objective: Objective, *, steps: int, batch_size: int = 6, crop_seconds: float = 3.0,
             lr: float = 5e-4, seed: int = 0, checkpoint_dir=None, resume: bool = True, device="auto",
             progress: bool = True, weights: Sequence[float] | None = None, normalize: str = "crop",
             warmup: float = 0.08, schedule: str = "cosine", final_lr_scale: float = 0.05,
             betas: tuple[float, float] = (0.9, 0.98), eps: float = 1e-6, weight_decay: float = 0.01,
             grad_clip: float = 1.0, conv_lr_scale: float = 1.0, checkpoint_every: int = 100,
             snapshot_every: int | None = None, log_every: int = 10, monitor_every: int | None = None,
             validation=None, validation_batches: int = 8, validate_every: int | None = None,
             max_seconds: float | None = None, stop_at: int | None = None,
             log: Callable[[str], None] | None = None) -> PretrainResult:
    """Pre-train ``model`` on ``corpus`` with ``objective``.

    Parameters
    ----------
    model : LoadedModel or transformers module
        Trained in place (a ``Data2VecAudioModel`` or ``HubertModel`` with ``masked_spec_embed``).
    corpus : AudioCorpus, list of AudioCorpus, or CropSampler
        Training audio with the targets ``objective.target_names`` attached.
    objective : Objective
        :class:`~m2v_lab.pretrain.Data2VecObjective`, :class:`~m2v_lab.pretrain.MLMObjective` or a
        :class:`~m2v_lab.pretrain.CombinedObjective`; its mask configuration is used.
    steps : int
        Optimiser updates in the whole run (the schedule's length).
    batch_size, crop_seconds : int, float
        Crops per update and their length.
    lr : float
        Peak learning rate (Adam with decoupled weight decay ``weight_decay`` on matrices).
    seed : int
        The run's only seed: crops, masks, dropout.
    checkpoint_dir : path, optional
        Where ``latest.pt`` (full state), ``history.csv``, ``validation.csv``, ``run.json`` and
        ``snapshots/step_NNNNNN.safetensors`` go.  None: no files.
    resume : bool
        Continue from ``checkpoint_dir/latest.pt`` when it exists (the settings must match).
    device : {"auto", "cpu", "cuda", "mps"}
    progress : bool
        A tqdm bar with the loss, audio seconds per second and the position share.
    weights, normalize
        Passed to :class:`~m2v_lab.pretrain.CropSampler`.
    warmup, schedule, final_lr_scale
        See :func:`lr_at`.
    betas, eps, grad_clip
        Adam's and the gradient-norm clip.
    conv_lr_scale : float
        Learning-rate factor of the conv front end (0 freezes it).
    checkpoint_every, snapshot_every, log_every, monitor_every, validate_every : int
        How often (in steps) to save the full state, save a weight snapshot (None: never), log, run
        the collapse monitor (default: at log steps) and validate (None: at checkpoints).
    validation : AudioCorpus or list, optional
        Held-out audio (with the same targets): ``validation_batches`` fixed batches, evaluated in
        eval mode, logged as ``val_*``.
    max_seconds : float, optional
        Stop (with a checkpoint) once this much training time has passed in this call.
    stop_at : int, optional
        Stop (with a checkpoint) after this step; resume later to finish.
    log : callable, optional
        Receives one text line per log row (e.g. ``print``).

    Returns
    -------
    PretrainResult

    Raises
    ------
    OptionError
        Bad options; resuming a checkpoint written with other settings.
    M2VLabError
        The loss became NaN or infinite (with what to change).
    """
    for name, value in (("steps", steps), ("batch_size", batch_size), ("checkpoint_every", checkpoint_every),
                        ("log_every", log_every), ("validation_batches", validation_batches)):
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise OptionError(f"{name}={value!r} must be an integer >= 1.")
    module = unwrap(model)
    check_trainable(module)
    dev = resolve_device(device)
    module.to(dev)
    objective.to(dev)
    sampler = _sampler(corpus, crop_seconds, weights, normalize)
    missing = [n for n in objective.target_names for c in sampler.sources if n not in c.targets]
    if missing:
        raise OptionError(f"the corpus lacks targets {sorted(set(missing))} that the objective needs; attach them "
                          "with corpus.add_codes(codebook) / corpus.add_frames(name, standardizer).")
    val_sampler = None
    if validation is not None:
        val_sampler = _sampler(validation, crop_seconds, None, normalize)
    monitor_every = monitor_every or log_every
    validate_every = validate_every or checkpoint_every

    groups = _param_groups(module, objective, weight_decay, conv_lr_scale)
    params = [p for g in groups for p in g["params"]]
    optimizer = torch.optim.AdamW(groups, lr=lr, betas=tuple(betas), eps=eps)
    data_seq, mask_seq, val_seq = np.random.SeedSequence(seed).spawn(3)
    data_rng, mask_rng = np.random.default_rng(data_seq), np.random.default_rng(mask_seq)

    settings = {"steps": int(steps), "batch_size": int(batch_size), "crop_frames": sampler.crop_frames,
                "lr": float(lr), "seed": int(seed), "warmup": float(warmup), "schedule": schedule,
                "final_lr_scale": float(final_lr_scale), "betas": [float(b) for b in betas], "eps": float(eps),
                "weight_decay": float(weight_decay), "grad_clip": float(grad_clip),
                "conv_lr_scale": float(conv_lr_scale), "normalize": sampler.normalize,
                "source_weights": [float(w) for w in sampler.weights],
                "objective": json.loads(json.dumps(objective.describe()))}
    lr_at(0, steps=steps, lr=lr, warmup=warmup, schedule=schedule, final_lr_scale=final_lr_scale)  # validates

    folder = Path(checkpoint_dir).expanduser() if checkpoint_dir is not None else None
    history, val_history, window, snapshots = [], [], [], []
    start, elapsed_before = 0, 0.0
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        ckpt_path = folder / CHECKPOINT_NAME
        if resume and ckpt_path.is_file():
            state = torch.load(ckpt_path, map_location="cpu", weights_only=True)
            if state.get("format") != _FORMAT:
                raise OptionError(f"{ckpt_path} has checkpoint format {state.get('format')}, not {_FORMAT}.")
            if state["settings"] != settings:
                diff = sorted(k for k in settings if state["settings"].get(k) != settings[k])
                raise OptionError(f"{ckpt_path} was written with other settings ({', '.join(diff)} differ); pass "
                                  "the same options to resume, resume=False to start over, or another folder.")
            module.load_state_dict(state["model"])
            objective.load_state_dict(state["objective"])
            optimizer.load_state_dict(state["optimizer"])
            data_rng.bit_generator.state = state["rng"]["data"]
            mask_rng.bit_generator.state = state["rng"]["mask"]
            torch.set_rng_state(state["rng"]["torch"])
            if dev.type == "cuda" and state["rng"].get("cuda") is not None:
                torch.cuda.set_rng_state(state["rng"]["cuda"])
            start, elapsed_before = int(state["step"]), float(state["seconds"])
            history, val_history, window = list(state["history"]), list(state["validation"]), list(state["window"])
            if log:
                log(f"resumed {ckpt_path} at step {start}")
        (folder / "run.json").write_text(json.dumps({"settings": settings, "model_config": module.config.to_dict()},
                                                    indent=1, default=str))
    if start == 0:
        torch.manual_seed(seed)

    val_batches = []
    if val_sampler is not None:
        vd, vm = (np.random.default_rng(s) for s in val_seq.spawn(2))
        val_batches = [_batch(val_sampler, objective, batch_size, vd, vm, "cpu") for _ in range(validation_batches)]

    def save(step_done: int, seconds: float):
        if folder is None:
            return
        rng = {"data": data_rng.bit_generator.state, "mask": mask_rng.bit_generator.state,
               "torch": torch.get_rng_state(),
               "cuda": torch.cuda.get_rng_state() if dev.type == "cuda" else None}
        _atomic_save({"format": _FORMAT, "step": step_done, "seconds": seconds, "settings": settings,
                      "model": module.state_dict(), "objective": objective.state_dict(),
                      "optimizer": optimizer.state_dict(), "rng": rng, "history": history,
                      "validation": val_history, "window": window}, folder / CHECKPOINT_NAME)

    def validate(step_done: int):
        module.eval()
        objective.eval()
        rows = []
        with torch.no_grad():
            for b in val_batches:
                _, stats = objective(module, b.to(dev), step_done, monitor=True)
                rows.append(stats)
        row = {"step": step_done, **{f"val_{k}": v for k, v in _mean_rows(rows).items()}}
        val_history.append(row)
        if folder is not None:
            _write_table(val_history, folder / "validation.csv")
        if log:
            log(f"  validation at step {step_done}: loss {row.get('val_loss', float('nan')):.4f}")

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=steps, initial=start, unit="step", desc=f"pretrain {objective.name}")
    started = time.perf_counter()
    audio_seconds, window_started = 0.0, started
    step = start
    stopped = False
    crop_seconds_real = sampler.crop_samples / sampler.sources[0].sample_rate
    try:
        for step in range(start, steps):
            rate = lr_at(step, steps=steps, lr=lr, warmup=warmup, schedule=schedule, final_lr_scale=final_lr_scale)
            for g in optimizer.param_groups:
                g["lr"] = rate * g["lr_scale"]
            batch = _batch(sampler, objective, batch_size, data_rng, mask_rng, dev)
            module.train()
            objective.train()
            monitor = (step + 1) % monitor_every == 0
            loss, stats = objective(module, batch, step, monitor=monitor)
            if not torch.isfinite(loss):
                raise M2VLabError(f"the loss became {float(loss)} at step {step + 1}; lower lr (now {rate:.2e}), "
                                  "raise warmup, or lower grad_clip.")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            norm = torch.nn.utils.clip_grad_norm_(params, grad_clip)
            optimizer.step()
            objective.after_step(module, step)
            audio_seconds += batch_size * crop_seconds_real
            window.append({**stats, "grad_norm": float(norm)})
            done = step + 1
            now = time.perf_counter() - started
            if done % log_every == 0 or done == steps:
                row = {"step": done, "lr": rate, **_mean_rows(window), "seconds": elapsed_before + now,
                       "audio_per_second": audio_seconds / max(time.perf_counter() - window_started, 1e-9)}
                history.append(row)
                window, audio_seconds, window_started = [], 0.0, time.perf_counter()
                if folder is not None:
                    _write_table(history, folder / "history.csv")
                if log:
                    extra = "".join(f"  {k} {row[k]:.3f}" for k in row if k.startswith(("mlm_", "d2v", "cqt"))
                                    and not k.endswith("_acc"))
                    pos = row.get("target_position_share", row.get("rep_position_share"))
                    log(f"step {done:6d}/{steps}  loss {row['loss']:.4f}{extra}  |g| {row['grad_norm']:.2f}  "
                        f"lr {rate:.2e}  {row['audio_per_second']:.1f} audio-s/s"
                        + (f"  position share {pos:.2f}" if pos is not None else ""))
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{stats['loss']:.3f}")
            if val_batches and (done % validate_every == 0 or done == steps):
                validate(done)
            if folder is not None and snapshot_every and (done % snapshot_every == 0 or done == steps):
                path = folder / "snapshots" / f"step_{done:06d}.safetensors"
                path.parent.mkdir(exist_ok=True)
                _save_snapshot(module, path)
                snapshots.append((done, path))
            early = (max_seconds is not None and now > max_seconds) or (stop_at is not None and done >= stop_at)
            if done % checkpoint_every == 0 or done == steps or (early and done < steps):
                save(done, elapsed_before + now)
            if early and done < steps:
                stopped = True
                if log:
                    log(f"stopped after step {done} of {steps} ({'time cap' if stop_at is None else 'stop_at'}); "
                        "call again with resume=True to continue")
                break
    finally:
        if bar is not None:
            bar.close()
    module.eval()
    objective.eval()
    seconds = elapsed_before + time.perf_counter() - started
    if folder is not None:
        snapshots = [(int(p.stem.split("_")[1]), p) for p in sorted((folder / "snapshots").glob("step_*.safetensors"))]
    return PretrainResult(pd.DataFrame(history), pd.DataFrame(val_history), step + 1 if steps > start else start,
                          seconds, stopped, folder, snapshots)

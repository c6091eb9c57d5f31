"""Pre-train music encoders with the m-a-p family's own objectives, on a CPU or a GPU.

- :mod:`.config` — :func:`mini_config`: music2vec-mini, a narrow ``Data2VecAudioModel`` with the family's
  16 kHz / 50 Hz front end (stride 320, receptive field 400), ≤ 25 MB of weights.
- :mod:`.masking` — span masks (:class:`MaskConfig`; data2vec 0.65 × 10, HuBERT/MERT 0.8 × 10; or an
  exact masked fraction), bit-identical to transformers' ``_compute_mask_indices`` given its RNG.
- :mod:`.targets` — data2vec teacher targets (top-K feed-forward outputs, instance-normed, averaged);
  acoustic frame features at the model's frames and seeded k-means :class:`Codebook`s.
- :mod:`.objectives` — :class:`Data2VecObjective` (EMA teacher), :class:`MLMObjective` (codeword heads,
  optional CQT reconstruction), :class:`CombinedObjective`.
- :mod:`.monitor` — :func:`collapse_stats`: target variance across clips vs frames, position share.
- :mod:`.data` — :class:`AudioCorpus` (a folder decoded once, per-frame targets), :class:`CropSampler`.
- :mod:`.train` — :func:`pretrain`: the loop, resumable bit for bit.
- :mod:`.synth` / :mod:`.evaluate` — synthetic notes and the generalising probes a checkpoint is judged by.
"""

from .config import MAX_MINI_BYTES, mini_config, weights_bytes
from .data import AudioCorpus, Batch, CropSampler
from .masking import DATA2VEC_MASK, HUBERT_MASK, MaskConfig, span_mask
from .monitor import collapse_stats
from .objectives import CombinedObjective, Data2VecObjective, MLMObjective, Objective, ema_decay
from .targets import FEATURE_KINDS, Codebook, FrameStandardizer, data2vec_targets, frame_count, frame_features
from .train import PretrainResult, build_model, load_snapshot, lr_at, pretrain

__all__ = ["mini_config", "weights_bytes", "MAX_MINI_BYTES", "MaskConfig", "span_mask", "DATA2VEC_MASK",
           "HUBERT_MASK", "data2vec_targets", "frame_features", "frame_count", "FEATURE_KINDS", "Codebook",
           "FrameStandardizer", "Objective", "Data2VecObjective", "MLMObjective", "CombinedObjective", "ema_decay",
           "collapse_stats", "AudioCorpus", "CropSampler", "Batch", "pretrain", "PretrainResult", "lr_at",
           "build_model", "load_snapshot"]

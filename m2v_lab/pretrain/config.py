"""The mini configuration: a small music2vec (Data2VecAudioModel) with the family's 50 Hz front end.

music2vec-v1 is 12 post-LN blocks × 768 behind a conv front end of kernels (10,3,3,3,3,2,2) and strides
(5,2,2,2,2,2,2) (stride 320, receptive field 400 samples: 50 frames/s at 16 kHz).  :func:`mini_config`
keeps the front end's geometry and the positional convolution's design (5 layers, kernel 19, 16 groups)
and narrows everything else so that a CPU can pre-train it in minutes and the weights fit 25 MB.
"""

from __future__ import annotations

from ..errors import OptionError

__all__ = ["mini_config", "weights_bytes", "MAX_MINI_BYTES", "CONV_KERNELS", "CONV_STRIDES",
           "FRAME_HOP", "FRAME_WINDOW", "SAMPLE_RATE"]

#: The front end every model of the family shares (see shared/reference/model-family.md).
CONV_KERNELS = (10, 3, 3, 3, 3, 2, 2)
CONV_STRIDES = (5, 2, 2, 2, 2, 2, 2)
FRAME_HOP = 320     # samples between frames: 50 Hz at 16 kHz
FRAME_WINDOW = 400  # samples in a frame's receptive field
SAMPLE_RATE = 16000
MAX_MINI_BYTES = 25 * 10**6


def weights_bytes(config) -> int:
    """float32 bytes of a ``Data2VecAudioModel`` built from ``config`` (counted without building it)."""
    h, f = config.hidden_size, config.intermediate_size
    conv = list(config.conv_dim)
    n = 0
    prev = 1
    for dim, k in zip(conv, config.conv_kernel):
        n += prev * dim * k + (dim if config.conv_bias else 0) + 2 * dim  # conv + its LayerNorm
        prev = dim
    n += 2 * conv[-1] + conv[-1] * h + h  # feature projection: LayerNorm + Linear
    n += h  # masked_spec_embed
    groups = config.num_conv_pos_embedding_groups
    n += config.num_conv_pos_embeddings * (h * (h // groups) * config.conv_pos_kernel_size + h)
    n += 2 * h  # encoder LayerNorm
    per_layer = 4 * (h * h + h) + 2 * 2 * h + (h * f + f) + (f * h + h)
    n += config.num_hidden_layers * per_layer
    return 4 * n


def mini_config(*, hidden_size: int = 256, num_layers: int = 4, num_heads: int = 4, ffn_multiple: int = 4,
                conv_dim: int = 128, dropout: float = 0.0, layerdrop: float = 0.0, mask_prob: float = 0.65,
                mask_length: int = 10, max_bytes: int = MAX_MINI_BYTES):
    """A ``Data2VecAudioConfig`` for music2vec-mini.

    Parameters
    ----------
    hidden_size : int
        Width of the transformer (256–384 for the mini model).
    num_layers : int
        Transformer blocks (4–6).
    num_heads : int
        Attention heads; must divide ``hidden_size``.
    ffn_multiple : int
        Feed-forward width as a multiple of ``hidden_size`` (4, as music2vec-v1's 3072 / 768).
    conv_dim : int
        Channels of each of the 7 conv layers (music2vec-v1 has 512).
    dropout, layerdrop : float
        Hidden, attention, activation and feature-projection dropout, and LayerDrop. 0 by default: a
        few thousand steps on a small corpus are far from over-fitting.
    mask_prob, mask_length : float, int
        Stored in the config as data2vec's values (0.65, 10); they also make transformers create
        ``masked_spec_embed``, which masked pre-training needs.  Pre-training draws its own masks
        (:mod:`m2v_lab.pretrain.masking`), so these never act at inference.
    max_bytes : int
        Refuse configurations whose float32 weights exceed this (25 MB).

    Returns
    -------
    transformers.Data2VecAudioConfig
        16 kHz, stride 320 (50 Hz), receptive field 400 samples, post-LN as music2vec-v1.

    Raises
    ------
    OptionError
        Heads that do not divide the width, a positional-conv group count that does not divide it,
        or weights over ``max_bytes``.
    """
    from transformers import Data2VecAudioConfig

    if hidden_size % num_heads:
        raise OptionError(f"num_heads={num_heads} must divide hidden_size={hidden_size}.")
    groups = 16
    if hidden_size % groups:
        raise OptionError(f"hidden_size={hidden_size} must be a multiple of 16 (the positional convolution's "
                          "groups, as music2vec-v1).")
    config = Data2VecAudioConfig(
        hidden_size=hidden_size, num_hidden_layers=num_layers, num_attention_heads=num_heads,
        intermediate_size=ffn_multiple * hidden_size, conv_dim=(conv_dim,) * 7, conv_kernel=CONV_KERNELS,
        conv_stride=CONV_STRIDES, num_conv_pos_embeddings=5, conv_pos_kernel_size=19,
        num_conv_pos_embedding_groups=groups, hidden_dropout=dropout, attention_dropout=dropout,
        activation_dropout=dropout, feat_proj_dropout=dropout, final_dropout=dropout, layerdrop=layerdrop,
        mask_time_prob=mask_prob, mask_time_length=mask_length)
    size = weights_bytes(config)
    if size > max_bytes:
        raise OptionError(f"this mini configuration has {size / 1e6:.1f} MB of float32 weights, over the "
                          f"{max_bytes / 1e6:.0f} MB budget; narrow hidden_size, num_layers or conv_dim.")
    return config

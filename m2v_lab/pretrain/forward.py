"""The model's forward pass in the pieces pre-training needs.

A wav2vec2-family model (``Data2VecAudioModel``, ``HubertModel``) runs
``feature_extractor`` (conv front end) → ``feature_projection`` → ``_mask_hidden_states`` (masked frames
replaced by ``masked_spec_embed``) → ``encoder``.  Pre-training runs the front end once per batch and
uses it twice: masked for the student, unmasked for data2vec's teacher (which shares the front end).
:func:`student_forward` equals ``model(x, mask_time_indices=mask).last_hidden_state`` (tested).
"""

from __future__ import annotations

from contextlib import contextmanager

import torch

from ..errors import ModelError

__all__ = ["unwrap", "check_trainable", "front_end", "apply_mask", "run_encoder", "student_forward",
           "capture_ffn"]


def unwrap(model) -> torch.nn.Module:
    """The transformers module of a :class:`~m2v_lab.models.LoadedModel`, or ``model`` itself."""
    return getattr(model, "module", model)


def check_trainable(module: torch.nn.Module) -> None:
    """Raise unless ``module`` is a wav2vec2-family encoder that masked pre-training can drive."""
    missing = [name for name in ("feature_extractor", "feature_projection", "encoder")
               if not hasattr(module, name)]
    layers = getattr(getattr(module, "encoder", None), "layers", None)
    if missing or not isinstance(layers, torch.nn.ModuleList):
        raise ModelError(f"{type(module).__name__} is not a wav2vec2-family encoder (missing "
                         f"{missing or ['encoder.layers']}); pre-train a Data2VecAudioModel or HubertModel.")
    if getattr(module, "masked_spec_embed", None) is None:
        raise ModelError(f"{type(module).__name__} has no masked_spec_embed (its config has mask_time_prob 0); "
                         "build it with mask_time_prob > 0, e.g. m2v_lab.pretrain.mini_config().")
    if any(not hasattr(layer, "feed_forward") for layer in layers):
        raise ModelError(f"{type(module).__name__}'s blocks have no feed_forward module; data2vec targets "
                         "are read from it.")


def front_end(module: torch.nn.Module, input_values: torch.Tensor) -> torch.Tensor:
    """Projected conv features ``(batch, frames, hidden)``: the encoder's input before masking."""
    features = module.feature_extractor(input_values).transpose(1, 2)
    projected = module.feature_projection(features)
    return projected[0] if isinstance(projected, tuple) else projected


def apply_mask(module: torch.nn.Module, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """A copy of ``hidden`` with masked frames replaced by ``masked_spec_embed`` (as the model does)."""
    out = hidden.clone()
    out[mask] = module.masked_spec_embed.to(out.dtype)
    return out


def run_encoder(encoder: torch.nn.Module, hidden: torch.Tensor) -> torch.Tensor:
    """The encoder's last hidden state of ``hidden`` ``(batch, frames, hidden)`` (no padding)."""
    out = encoder(hidden)
    return out[0] if isinstance(out, tuple) else out.last_hidden_state


def student_forward(module: torch.nn.Module, input_values: torch.Tensor, mask: torch.Tensor):
    """``(unmasked front-end features, last hidden state of the masked input)``."""
    hidden = front_end(module, input_values)
    return hidden, run_encoder(module.encoder, apply_mask(module, hidden, mask))


@contextmanager
def capture_ffn(encoder: torch.nn.Module, layers):
    """Collect the feed-forward output (before the residual) of the given block indices.

    Yields a dict ``{index: tensor (batch, frames, hidden)}`` filled by forward hooks while the
    context is open.  In post-LN blocks (data2vec, music2vec) that is ``fc2``'s output, fairseq's
    ``layer_result`` which data2vec's teacher targets are built from; in pre-LN blocks (HuBERT
    stable-layer-norm) likewise the FFN's output before it is added to the residual.
    """
    blocks = encoder.layers
    captured: dict[int, torch.Tensor] = {}
    handles = []
    for i in layers:
        def hook(_module, _inputs, output, i=i):
            captured[i] = output
        handles.append(blocks[i].feed_forward.register_forward_hook(hook))
    try:
        yield captured
    finally:
        for h in handles:
            h.remove()

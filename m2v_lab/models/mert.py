"""MERT as stock HuBERT: its config mapped onto ``HubertConfig``, its weights loaded with strict keys.

MERT's published model code (``modeling_MERT.py`` in the hub repositories, ``scripts/mert_hf`` in
github.com/yizhilll/MERT) subclasses transformers' HuBERT.  With ``feature_extractor_cqt: false``
and ``deepnorm: false`` (every published v0/v1 config) it builds only stock modules: HuBERT's conv
front end, a feature projection with HuBERT's layout, and ``HubertEncoder`` or, when
``do_stable_layer_norm``, ``HubertEncoderStableLayerNorm`` (which never reads
``attention_relax``).  Its state dict uses HuBERT's names, so transformers' ``HubertModel`` built
from the same fields computes the same numbers, with no code from the hub: nothing to trust, and
none of the breakage of that code under newer transformers (4.48-4.57: ``'MERTConfig' object has
no attribute 'conv_pos_batch_norm'``; 5.x: ``hidden_states=None``).

A config that needs MERT's own code (CQT features, DeepNorm, attention relaxation where the
encoder uses it, or any field this module does not know) is reported by
:func:`remote_code_reasons`, and :mod:`.loading` then asks for ``trust_remote_code=True``.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import ModelError

__all__ = ["MODEL_TYPE", "is_mert_config", "remote_code_reasons", "hubert_config_kwargs",
           "read_state_dict", "load_strict"]

#: ``model_type`` that MERT's configuration class writes into config.json.
MODEL_TYPE = "mert_model"

# Every MERTConfig field that HubertConfig shares, with MERTConfig's default: a config.json that
# omits a field gets this value in MERT's code, so the mapped HubertConfig must get it too.
_SHARED_FIELDS = {
    "vocab_size": 32, "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
    "intermediate_size": 3072, "hidden_act": "gelu", "hidden_dropout": 0.1, "activation_dropout": 0.1,
    "attention_dropout": 0.1, "feat_proj_layer_norm": True, "feat_proj_dropout": 0.0,
    "final_dropout": 0.1, "layerdrop": 0.1, "initializer_range": 0.02, "layer_norm_eps": 1e-5,
    "feat_extract_norm": "group", "feat_extract_activation": "gelu", "conv_dim": [512] * 7,
    "conv_stride": [5, 2, 2, 2, 2, 2, 2], "conv_kernel": [10, 3, 3, 3, 3, 2, 2], "conv_bias": False,
    "num_conv_pos_embeddings": 128, "num_conv_pos_embedding_groups": 16, "do_stable_layer_norm": False,
    "apply_spec_augment": True, "mask_time_prob": 0.05, "mask_time_length": 10, "mask_time_min_masks": 2,
    "mask_feature_prob": 0.0, "mask_feature_length": 10, "mask_feature_min_masks": 0,
    "ctc_loss_reduction": "sum", "ctc_zero_infinity": False, "use_weighted_layer_sum": False,
    "classifier_proj_size": 256, "pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2,
}

# MERT's own fields; each is checked by remote_code_reasons (``sample_rate`` only feeds the CQT).
_MERT_FIELDS = {"feature_extractor_cqt", "feature_extractor_cqt_bins", "deepnorm", "attention_relax",
                "sample_rate"}

# Fields that change no number of an eval-mode forward: how the config was saved (transformers'
# base-class bookkeeping and generation defaults of 4.x and 5.x), fairseq/wav2vec2-era training
# options (dropout, masking) and one derived count.
_INERT_FIELDS = {
    "_name_or_path", "architectures", "auto_map", "model_type", "transformers_version", "torch_dtype",
    "dtype", "_commit_hash", "_attn_implementation_autoset", "return_dict", "use_return_dict",
    "output_hidden_states", "output_attentions", "torchscript", "use_bfloat16", "tf_legacy_loss",
    "pruned_heads", "tie_word_embeddings", "chunk_size_feed_forward", "is_encoder_decoder",
    "is_decoder", "add_cross_attention", "tie_encoder_decoder", "cross_attention_hidden_size",
    "id2label", "label2id", "problem_type", "finetuning_task", "prefix", "task_specific_params",
    "tokenizer_class", "sep_token_id", "decoder_start_token_id", "max_length", "min_length",
    "do_sample", "early_stopping", "num_beams", "num_beam_groups", "diversity_penalty", "temperature",
    "top_k", "top_p", "typical_p", "repetition_penalty", "length_penalty", "no_repeat_ngram_size",
    "encoder_no_repeat_ngram_size", "bad_words_ids", "num_return_sequences", "output_scores",
    "return_dict_in_generate", "forced_bos_token_id", "forced_eos_token_id", "remove_invalid_values",
    "exponential_decay_length_penalty", "suppress_tokens", "begin_suppress_tokens",
    "gradient_checkpointing", "hidden_dropout_prob", "feat_extract_dropout", "mask_channel_length",
    "mask_channel_min_space", "mask_channel_other", "mask_channel_prob", "mask_channel_selection",
    "mask_time_min_space", "mask_time_other", "mask_time_selection", "num_feat_extract_layers",
}

# pre-parametrization weight-norm names (torch.nn.utils.weight_norm), as MERT's pytorch_model.bin
# has them for the positional convolution
_LEGACY_WEIGHT_NORM = {"weight_g": "parametrizations.weight.original0",
                       "weight_v": "parametrizations.weight.original1"}


def is_mert_config(config: dict) -> bool:
    """Whether a config.json was written by MERT's configuration class."""
    return config.get("model_type") == MODEL_TYPE


def remote_code_reasons(config: dict) -> list[str]:
    """Why this MERT config cannot be computed by stock HuBERT (empty when it can).

    Parameters
    ----------
    config : dict
        The parsed config.json of a MERT model.

    Returns
    -------
    list of str
        One phrase per reason, for the error message.
    """
    reasons = []
    if config.get("feature_extractor_cqt"):
        reasons.append("feature_extractor_cqt: true (CQT input features computed by MERT's code with nnAudio)")
    if config.get("deepnorm"):
        reasons.append("deepnorm: true (MERT's DeepNorm encoder layers)")
    relax = config.get("attention_relax", -1.0)
    if not config.get("do_stable_layer_norm", False) and relax is not None and (
            not isinstance(relax, (int, float)) or relax > 0):
        # the pre-LN encoder never reads it; for post-LN, MERT's code owns that attention variant
        reasons.append(f"attention_relax: {relax!r} on a post-LN encoder (MERT's relaxed attention)")
    unknown = sorted(set(config) - set(_SHARED_FIELDS) - _MERT_FIELDS - _INERT_FIELDS - {"conv_pos_batch_norm"})
    if unknown:
        reasons.append(f"fields stock HuBERT does not have: {', '.join(unknown)}")
    return reasons


def hubert_config_kwargs(config: dict) -> dict:
    """``HubertConfig`` keyword arguments that build the same encoder as MERT's code from ``config``.

    Only call it when :func:`remote_code_reasons` is empty.
    """
    kwargs = {field: config.get(field, default) for field, default in _SHARED_FIELDS.items()}
    # MERTConfig never stores conv_pos_batch_norm: MERT's positional convolution is weight-normed
    kwargs["conv_pos_batch_norm"] = bool(config.get("conv_pos_batch_norm", False))
    return kwargs


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a ``model.safetensors`` or ``pytorch_model.bin`` file (on the CPU)."""
    try:
        if Path(path).suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - truncated download, not a checkpoint: one clear error
        raise ModelError(f"cannot read the weights in {path}: {type(exc).__name__}: {exc}. Delete the file "
                         "and download it again.") from exc


def load_strict(module_cls, config, state_dict: dict[str, torch.Tensor], *, where: str) -> torch.nn.Module:
    """``module_cls(config)`` holding exactly ``state_dict``: every key used, none missing.

    Legacy weight-norm names (``….weight_g`` / ``….weight_v``) are read into the parametrized
    weight they stand for.  A missing key would leave random weights behind (a re-initialised
    positional convolution changes every layer), so any mismatch raises.

    Raises
    ------
    ModelError
        Missing, unexpected or mis-shaped weights, naming them.
    """
    with torch.device("meta"):  # no random init: every tensor is replaced by a checkpoint tensor below
        module = module_cls(config)
    expected = set(module.state_dict())
    renamed = {}
    for key, tensor in state_dict.items():
        stem, _, leaf = key.rpartition(".")
        modern = f"{stem}.{_LEGACY_WEIGHT_NORM[leaf]}" if leaf in _LEGACY_WEIGHT_NORM else None
        renamed[modern if modern in expected else key] = tensor
    missing, unexpected = sorted(expected - set(renamed)), sorted(set(renamed) - expected)
    if missing or unexpected:
        raise ModelError(
            f"{where}: the weights do not fit {module_cls.__name__} built from its config.json "
            f"(missing: {missing or 'none'}; unexpected: {unexpected or 'none'}). The checkpoint and "
            "config.json disagree: re-download both, or load it with trust_remote_code=True.")
    try:
        module.load_state_dict(renamed, strict=True, assign=True)
    except RuntimeError as exc:
        raise ModelError(f"{where}: the weights do not fit {module_cls.__name__} built from its config.json: "
                         f"{exc}. Re-download the checkpoint and config.json.") from exc
    left = [n for n, t in [*module.named_parameters(), *module.named_buffers()] if t.is_meta]
    if left:
        raise ModelError(f"{where}: {left} got no values from the checkpoint. Re-download it, or load it "
                         "with trust_remote_code=True.")
    return module.eval()

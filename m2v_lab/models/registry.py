"""What the model cards say: the registry of the m-a-p family, its aliases and the tiny models.

Nothing here touches the network or builds a model; :mod:`.loading` reads these facts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["ModelSpec", "REGISTRY", "DEFAULT_MODEL", "OFFLINE_MODEL", "lookup", "tiny_config", "bundled_path",
           "BUNDLED_DIR", "CONV_KERNELS", "CONV_STRIDES", "TINY_SEED"]

DEFAULT_MODEL = "m-a-p/music2vec-v1"
#: The model notebooks fall back to when the chosen one cannot be loaded.
OFFLINE_MODEL = "music2vec-mini"

#: The conv front end every model of the family shares: stride 320, receptive field 400 samples.
CONV_KERNELS = (10, 3, 3, 3, 3, 2, 2)
CONV_STRIDES = (5, 2, 2, 2, 2, 2, 2)

#: Where ``"bundled"`` models live: data/models/ of the source checkout (the teaching set's neighbour).
BUNDLED_DIR = Path(__file__).resolve().parents[2] / "data" / "models"

TINY_SEED = 20221030  # fixed: a tiny model's weights (and so its fingerprint) never change


@dataclass(frozen=True)
class ModelSpec:
    """What the model card says about one model (see ``shared/reference``).

    ``loader`` names the loading route the registry plans for it:

    - ``"data2vec-audio"``: transformers' ``Data2VecAudioModel``;
    - ``"hubert-native"``: MERT's ``config.json`` mapped field by field onto transformers'
      ``HubertModel`` and its weights loaded with strict keys, no code from the hub.  A config
      that needs MERT's own code (CQT features, DeepNorm, attention relaxation on a post-LN
      encoder, fields HuBERT lacks) falls back to ``"remote-code"``;
    - ``"remote-code"``: the repository's own model code, only with ``trust_remote_code=True``;
    - ``"tiny"``: built from a config with random weights, no download;
    - ``"bundled"``: trained weights shipped in the repository (``data/models/<name>``), no download;
    - ``"local"``: a wav2vec2-family checkpoint outside the registry, loaded with
      transformers' class for its ``model_type``.
    """

    name: str
    hub_id: str | None
    loader: str
    paradigm: str
    sample_rate: int
    feature_rate: float
    num_layers: int
    hidden_size: int
    context_seconds: float
    do_normalize: bool
    trained: bool = True
    notes: str = ""


_UNTRAINED = "none (random init, UNTRAINED)"

REGISTRY: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in [
        ModelSpec("music2vec-v1", "m-a-p/music2vec-v1", "data2vec-audio", "BYOL (data2vec)",
                  16000, 50, 12, 768, 30.0, True),
        ModelSpec("MERT-v0", "m-a-p/MERT-v0", "hubert-native", "MLM (HuBERT-style)",
                  16000, 50, 12, 768, 5.0, True),
        ModelSpec("MERT-v0-public", "m-a-p/MERT-v0-public", "hubert-native", "MLM (HuBERT-style)",
                  16000, 50, 12, 768, 5.0, True, notes="open-source training data only"),
        ModelSpec("MERT-v1-95M", "m-a-p/MERT-v1-95M", "hubert-native", "MLM (multi-codebook)",
                  24000, 75, 12, 768, 5.0, False,
                  notes="do_normalize: the hub processor says false, MARBLE used true"),
        ModelSpec("MERT-v1-330M", "m-a-p/MERT-v1-330M", "hubert-native", "MLM (multi-codebook)",
                  24000, 75, 24, 1024, 5.0, False,
                  notes="pre-LN: block_24 is after the encoder's final LayerNorm, as the model card's "
                        "hidden_states[24]; a scale jump from block_23 is expected"),
        ModelSpec("music2vec-mini", None, "bundled", "MLM on acoustic codewords (MERT-style), pre-trained by m2v_lab",
                  16000, 50, 4, 256, 4.0, True,
                  notes="a teaching model: music2vec's front end, 4 blocks x 256, pre-trained on a CPU on 2 h of "
                        "Wesnoth's soundtrack and MIDI renders (data/models/music2vec-mini/README.md)"),
        ModelSpec("tiny-music2vec", None, "tiny", _UNTRAINED,
                  16000, 50, 12, 96, 30.0, True, trained=False,
                  notes="music2vec-v1's conv front end and layer count, narrow, random weights"),
        ModelSpec("tiny-mert", None, "tiny", _UNTRAINED,
                  24000, 75, 6, 64, 5.0, False, trained=False,
                  notes="HuBERT/MERT-style pre-LN encoder, narrow, random weights"),
    ]
}

_ALIASES = {"music2vec": "music2vec-v1"}
for _spec in REGISTRY.values():
    _ALIASES[_spec.name.lower()] = _spec.name
    if _spec.hub_id:
        _ALIASES[_spec.hub_id.lower()] = _spec.name


def lookup(name: str) -> ModelSpec | None:
    """The registry entry a name, alias or hub id (any case) refers to, or None."""
    return REGISTRY.get(_ALIASES.get(str(name).lower(), ""))


def bundled_path(name: str) -> Path:
    """The folder of a ``"bundled"`` registry model."""
    return BUNDLED_DIR / name


def tiny_config(name: str):
    """The transformers config of a ``"tiny"`` registry model (``tiny-music2vec`` or ``tiny-mert``)."""
    from transformers import Data2VecAudioConfig, HubertConfig

    conv = dict(conv_kernel=CONV_KERNELS, conv_stride=CONV_STRIDES)
    if name == "tiny-music2vec":
        return Data2VecAudioConfig(
            hidden_size=96, num_hidden_layers=12, num_attention_heads=4, intermediate_size=192,
            conv_dim=(64,) * 7, num_conv_pos_embeddings=5, conv_pos_kernel_size=19,
            num_conv_pos_embedding_groups=4, **conv)
    return HubertConfig(
        hidden_size=64, num_hidden_layers=6, num_attention_heads=4, intermediate_size=128,
        conv_dim=(32,) * 7, num_conv_pos_embeddings=32, num_conv_pos_embedding_groups=4,
        do_stable_layer_norm=True, feat_extract_norm="layer", conv_bias=True, **conv)

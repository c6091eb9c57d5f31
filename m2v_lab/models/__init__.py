"""Load the m-a-p music models (and local or tiny twins) and read every layer.

:func:`load_model` turns a registry alias, a hub id or a local directory into a
:class:`LoadedModel`, whose :meth:`LoadedModel.layer_states` returns all ``layers + 1``
hidden states of a batch of waveforms, captured with forward hooks on the encoder's blocks so
that it works whether or not the model code returns ``hidden_states``.

Layer names are a contract (tested): index 0 is ``"pre_transformer"``, the state entering the
first transformer block; index ``i >= 1`` is ``"block_i"``, the output of block ``i``; in pre-LN
encoders (MERT-v1-330M) index ``L`` is after the encoder's final LayerNorm, as the model cards'
``hidden_states[L]`` (transformers 4.x).  MERT models load as transformers' ``HubertModel`` from
their config and weights, without code from the hub.

One job per module: :mod:`.registry` (model-card facts, tiny configs), :mod:`.hub` (files from
a folder or the hub, fast offline errors), :mod:`.encoder` (layer capture, fingerprint),
:mod:`.mert` (MERT as HuBERT), :mod:`.devices` (device, dtype, no TF32), :mod:`.loading`
(the routes from a name to a model).
"""

from ..devices import resolve_device
from .encoder import LoadedModel, layer_names, num_frames
from .loading import load_model, load_model_with_fallback, random_twin
from .registry import DEFAULT_MODEL, OFFLINE_MODEL, REGISTRY, ModelSpec

__all__ = [
    "ModelSpec",
    "REGISTRY",
    "LoadedModel",
    "load_model",
    "load_model_with_fallback",
    "random_twin",
    "layer_names",
    "num_frames",
    "resolve_device",
    "DEFAULT_MODEL",
    "OFFLINE_MODEL",
]

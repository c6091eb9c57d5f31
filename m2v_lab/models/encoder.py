"""The loaded encoder: every layer's state of a batch, captured with hooks, and the model's fingerprint.

Layer names are a contract (tested): index 0 is ``"pre_transformer"``, the state entering the first
transformer block (after feature projection, positional convolution and, in post-LN models, the
encoder LayerNorm); index ``i >= 1`` is ``"block_i"``, the output of transformer block ``i``, except
that in pre-LN encoders (``do_stable_layer_norm``, e.g. MERT-v1-330M) index ``L`` is the encoder's
final LayerNorm applied to block ``L``'s output.  That is what the model cards' ``hidden_states[L]``
holds under transformers 4.x (the version MARBLE and every published layer curve used), and what
``last_hidden_state`` is; transformers 5's ``hidden_states[L]`` is the state before that LayerNorm,
which :meth:`LoadedModel.layer_states` still gives with ``final_layer_norm=False``.
"""

from __future__ import annotations

import hashlib
import json
import operator
import weakref
from dataclasses import replace
from typing import Any, Sequence

import numpy as np
import torch

from ..errors import ModelError
from ..layers import layer_names
from ..devices import no_tf32, resolve_device, resolve_dtype
from .registry import CONV_KERNELS, CONV_STRIDES, ModelSpec

__all__ = ["LoadedModel", "layer_names", "num_frames", "TRAINED_KEY"]

#: Config attribute that tiny models and random twins carry (``False``), so that a copy saved with
#: ``save_pretrained`` loads back labelled untrained.  Not part of the fingerprint: it does not
#: change a single number, so identical weights keep one fingerprint (and one cache) whatever the label.
TRAINED_KEY = "m2v_lab_trained"

# config entries that describe how a config was saved or called, not the numbers it gives
_VOLATILE_CONFIG_KEYS = {"_name_or_path", "transformers_version", "_commit_hash", "torch_dtype",
                         "dtype", "_attn_implementation_autoset", "output_hidden_states",
                         "output_attentions", "return_dict", "use_return_dict", "architectures",
                         TRAINED_KEY}


def num_frames(num_samples: int, *, kernels: Sequence[int] = CONV_KERNELS,
               strides: Sequence[int] = CONV_STRIDES) -> int:
    """Frames the conv front end makes of ``num_samples`` samples (0 when too short).

    With the m-a-p front end (stride 320, receptive field 400) this is
    ``floor((N - 400) / 320) + 1``.
    """
    n = int(num_samples)
    for k, s in zip(kernels, strides):
        if n < k:
            return 0
        n = (n - k) // s + 1
    return n


def _find_encoder_layers(module: torch.nn.Module) -> torch.nn.ModuleList:
    encoder = getattr(module, "encoder", None)
    layers = getattr(encoder, "layers", None)
    if not isinstance(layers, torch.nn.ModuleList) or len(layers) == 0:
        raise ModelError(
            f"{type(module).__name__} has no `encoder.layers`: m2v_lab reads layers of wav2vec2-family "
            "encoders (Data2VecAudio, HuBERT, MERT, wav2vec2). Pass one of those.")
    return layers


def _find_final_norm(module: torch.nn.Module) -> torch.nn.Module | None:
    """The LayerNorm a pre-LN encoder applies after its last block (None for post-LN encoders)."""
    if not getattr(module.config, "do_stable_layer_norm", False):
        return None
    norm = getattr(module.encoder, "layer_norm", None)
    if not isinstance(norm, torch.nn.Module):
        raise ModelError(f"{type(module).__name__} is a pre-LN encoder (do_stable_layer_norm) without "
                         "`encoder.layer_norm`; m2v_lab cannot tell what its last state is. Pass a "
                         "wav2vec2-family encoder.")
    return norm


def _weights_digest(module: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().to("cpu").contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def _config_digest(config) -> str:
    d = {k: v for k, v in config.to_dict().items() if k not in _VOLATILE_CONFIG_KEYS}
    return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()


def _empty_slot():
    return None


class _WeightsStamp:
    """Tells, in ~0.1 ms for a 12-block model, whether any submodule, parameter or buffer was
    replaced, added, removed, edited in place or cast since the stamp was taken.

    It remembers every slot (an entry of a module's ``_modules``, ``_parameters`` or ``_buffers``)
    with a weak reference to what it held, each slot dict's size, and each tensor's version counter
    (bumped by every in-place operation) and dtype; reading those is ~5x cheaper than
    ``state_dict()``.  Weak references rather than ``id``s, since a freed tensor's id can be reused
    by its replacement; and not strong ones, which would keep replaced weights alive.
    """

    def __init__(self, module: torch.nn.Module):
        self._dicts, self._sizes, slots, keys, held, tensors = [], [], [], [], [], []
        for m in module.modules():
            for d in (m._modules, m._parameters, m._buffers):
                self._dicts.append(d)
                self._sizes.append(len(d))
                for key, value in d.items():
                    slots.append(d)
                    keys.append(key)
                    held.append(_empty_slot if value is None else weakref.ref(value))
                    if isinstance(value, torch.Tensor):
                        tensors.append(value)
        self._slots, self._keys, self._held = slots, keys, held
        self._tensors = [weakref.ref(t) for t in tensors]
        self._versions = [(t._version, t.dtype) for t in tensors]

    def still_valid(self) -> bool:
        # map/compare run in C: this is most of the cost of every fingerprint read
        if list(map(len, self._dicts)) != self._sizes:
            return False
        if not all(map(operator.is_, [ref() for ref in self._held], map(dict.get, self._slots, self._keys))):
            return False
        # every slot holds what it held, so every tensor is alive
        return [(t._version, t.dtype) for t in [ref() for ref in self._tensors]] == self._versions


class LoadedModel:
    """A loaded encoder plus everything m2v_lab needs to use it honestly.

    Attributes
    ----------
    module : torch.nn.Module
        The transformers model, in eval mode, on :attr:`device`.
    spec : ModelSpec
        Registry facts (sample rate, context, normalisation); for local
        directories they are read from the files where present.
    name : str
        Display name; ends with ``(random init)`` for untrained twins.
    source : str
        Hub id, local directory or tiny-model name it came from.
    revision : str or None
        The commit the weights came from, when known.
    loader : str
        How it was loaded: ``"data2vec-audio"``, ``"hubert-native (MERT config mapped)"``,
        ``"remote-code"``, ``"tiny"`` or ``"local"`` (see :class:`ModelSpec`).
    do_normalize : bool
        Whether the model's processor z-normalises waveforms (followed by extraction).
    trained : bool
        False for tiny and random-init models: their features show architecture, not learning.
    facts : dict of str to str
        Where each fact came from (``"sample_rate": "preprocessor_config.json"``), and one-line notes
        on what loading had to repair.
    """

    def __init__(self, module: torch.nn.Module, spec: ModelSpec, *, source: str,
                 revision: str | None = None, do_normalize: bool | None = None,
                 device: torch.device = torch.device("cpu"), dtype: torch.dtype = torch.float32,
                 facts: dict[str, str] | None = None, code_digest: str | None = None,
                 loader: str | None = None):
        self.module = module.eval()
        self.spec = spec
        self.source = source
        self.revision = revision
        self.loader = spec.loader if loader is None else loader
        self.do_normalize = spec.do_normalize if do_normalize is None else bool(do_normalize)
        self.device = device
        self.dtype = dtype
        self.facts = dict(facts or {})
        self._layers = _find_encoder_layers(module)
        self._final_norm = _find_final_norm(module)
        if len(self._layers) != spec.num_layers:
            self.spec = replace(spec, num_layers=len(self._layers))
        self.code_digest = code_digest
        self._fingerprint: tuple[_WeightsStamp, str] | None = None

    # -- facts -----------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def trained(self) -> bool:
        return self.spec.trained

    @property
    def sample_rate(self) -> int:
        return self.spec.sample_rate

    @property
    def num_layers(self) -> int:
        """Transformer blocks; :meth:`layer_states` returns ``num_layers + 1`` states."""
        return self.spec.num_layers

    @property
    def hidden_size(self) -> int:
        return int(self.module.config.hidden_size)

    @property
    def context_seconds(self) -> float:
        return self.spec.context_seconds

    @property
    def layer_names(self) -> tuple[str, ...]:
        return layer_names(self.num_layers)

    @property
    def conv_kernels(self) -> tuple[int, ...]:
        return tuple(self.module.config.conv_kernel)

    @property
    def conv_strides(self) -> tuple[int, ...]:
        return tuple(self.module.config.conv_stride)

    @property
    def min_samples(self) -> int:
        """Shortest input (samples) that yields one frame: the receptive field (400 here)."""
        n = 1
        for k, s in zip(reversed(self.conv_kernels), reversed(self.conv_strides)):
            n = (n - 1) * s + k
        return n

    def num_frames(self, num_samples: int) -> int:
        """Frames this model makes of ``num_samples`` samples at :attr:`sample_rate`."""
        return num_frames(num_samples, kernels=self.conv_kernels, strides=self.conv_strides)

    @property
    def fingerprint(self) -> str:
        """sha256 over config, weights, revision, model code and the layer contract: the model part of
        every cache key.

        Recomputed when the weights change (in-place edits included), so a cache never serves
        numbers of weights the model no longer has; otherwise a repeated read costs tens of
        microseconds.  Pre-LN encoders add that ``block_L`` is after the final LayerNorm, so that
        caches written when it was not are not reused.
        """
        if self._fingerprint is None or not self._fingerprint[0].still_valid():
            stamp = _WeightsStamp(self.module)
            h = hashlib.sha256()
            h.update(_config_digest(self.module.config).encode())
            h.update(_weights_digest(self.module).encode())
            h.update(f"{self.revision}|{self.code_digest}".encode())
            if self._final_norm is not None:
                h.update(b"|block_L=after the encoder's final LayerNorm")
            self._fingerprint = (stamp, h.hexdigest())
        return self._fingerprint[1]

    def describe(self) -> dict[str, Any]:
        """The facts a result should carry about the model that made it."""
        return {"model": self.name, "source": self.source, "revision": self.revision,
                "loader": self.loader, "fingerprint": self.fingerprint, "trained": self.trained,
                "sample_rate": self.sample_rate, "num_layers": self.num_layers,
                "hidden_size": self.hidden_size, "do_normalize": self.do_normalize,
                "context_seconds": self.context_seconds, "device": str(self.device),
                "dtype": str(self.dtype).replace("torch.", ""), "facts": dict(self.facts)}

    def __repr__(self) -> str:
        label = "" if self.trained else ", UNTRAINED"
        return (f"LoadedModel({self.name!r}{label}, {self.num_layers} blocks x {self.hidden_size}, "
                f"{self.sample_rate} Hz, device={self.device}, dtype={str(self.dtype)[6:]})")

    # -- running ---------------------------------------------------------------
    def to(self, device=None, dtype=None) -> "LoadedModel":
        """Move to another device/dtype in place (half precision only on GPUs); returns self."""
        dev = resolve_device(device if device is not None else self.device)
        dt = resolve_dtype(dtype if dtype is not None else self.dtype, dev)
        self.module.to(device=dev, dtype=dt)
        self.device, self.dtype = dev, dt
        return self

    @torch.inference_mode()
    def layer_states(self, input_values: torch.Tensor | np.ndarray, *,
                     final_layer_norm: bool = True) -> torch.Tensor:
        """All hidden states of a batch of equal-length, already-normalised waveforms.

        Runs in eval mode (a module switched to ``train()`` is switched back: LayerDrop would
        skip blocks and dropout would add noise) and, on CUDA, without TF32.

        Parameters
        ----------
        input_values : array, shape (batch, samples) or (samples,)
            Waveforms at :attr:`sample_rate`, without padding (padding changes
            the outputs of these models even with an attention mask).
        final_layer_norm : bool
            For pre-LN encoders, whether ``block_L`` is after the encoder's final LayerNorm (True,
            the layer contract and the model card's ``hidden_states[L]``) or the last block's own
            output (False, transformers 5's ``hidden_states[L]``).  No effect on post-LN encoders.

        Returns
        -------
        torch.Tensor, shape (layers + 1, batch, frames, dim), float32 on :attr:`device`
        """
        x = torch.as_tensor(input_values)
        if x.ndim == 1:
            x = x[None]
        if x.ndim != 2:
            raise ModelError(f"input_values must be (batch, samples); got shape {tuple(x.shape)}.")
        if x.shape[1] < self.min_samples:
            raise ModelError(f"input is {x.shape[1]} samples; the model needs at least "
                             f"{self.min_samples} ({1000 * self.min_samples / self.sample_rate:.0f} ms).")
        x = x.to(device=self.device, dtype=self.dtype)
        self.module.eval()
        captured: list[torch.Tensor | None] = [None] * (self.num_layers + 1)
        normed: list[torch.Tensor] = []

        def keep_input(_mod, args, kwargs):
            captured[0] = args[0] if args else kwargs["hidden_states"]

        def keep_output(i):
            def hook(_mod, _args, output):
                captured[i] = output[0] if isinstance(output, (tuple, list)) else output
            return hook

        handles = [self._layers[0].register_forward_pre_hook(keep_input, with_kwargs=True)]
        handles += [layer.register_forward_hook(keep_output(i + 1)) for i, layer in enumerate(self._layers)]
        if self._final_norm is not None and final_layer_norm:
            handles.append(self._final_norm.register_forward_hook(lambda _m, _a, out: normed.append(out)))
        try:
            with no_tf32(self.device):
                self.module(x)
        finally:
            for h in handles:
                h.remove()
        missing = [i for i, t in enumerate(captured) if t is None]
        if missing:
            raise ModelError(f"{self.name}: layers {missing} did not run; its forward skips blocks even "
                             "in eval mode. Pass a wav2vec2-family encoder.")
        if len(normed) != (self._final_norm is not None and final_layer_norm):
            raise ModelError(f"{self.name}: the encoder's final LayerNorm ran {len(normed)} times, not once "
                             "after the last block; m2v_lab cannot tell what block_L is. Pass a "
                             "wav2vec2-family encoder.")
        if normed:
            captured[-1] = normed[0]
        return torch.stack(captured).float()

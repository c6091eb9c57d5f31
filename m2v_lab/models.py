"""Load the m-a-p music models (and local or tiny twins) and read every layer.

The registry below holds what the model cards say; :func:`load_model` turns a
registry alias, a hub id or a local directory into a :class:`LoadedModel`, whose
:meth:`LoadedModel.layer_states` returns all ``layers + 1`` hidden states of a
batch of waveforms, captured with forward hooks on the encoder's blocks so that
it works whether or not the model code returns ``hidden_states``.

Layer names are a contract (tested): index 0 is ``"pre_transformer"``, the state
entering the first transformer block (after feature projection, positional
convolution and, in post-LN models, the encoder LayerNorm); index ``i >= 1`` is
``"block_i"``, the output of transformer block ``i``.  For pre-LN models
(``do_stable_layer_norm``, e.g. MERT-v1-330M) the encoder's final LayerNorm is
not applied to ``block_L``; transformers < 5 applied it to the last entry of
``hidden_states``, transformers 5 does not.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import socket
import threading
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Sequence
from urllib.parse import urlparse

import numpy as np
import torch

from .errors import ModelError

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

DEFAULT_MODEL = "m-a-p/music2vec-v1"
#: The model notebooks fall back to when the chosen one cannot be loaded.
OFFLINE_MODEL = "tiny-music2vec"


@dataclass(frozen=True)
class ModelSpec:
    """What the model card says about one model (see ``shared/reference``).

    ``loader`` names the loading route: ``"data2vec-audio"`` (transformers'
    ``Data2VecAudioModel``), ``"remote-code"`` (the hub's custom ``MERTModel``,
    needs ``trust_remote_code=True``), ``"tiny"`` (built from a config with
    random weights, no download) or ``"local"`` (a directory of unknown family).
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


REGISTRY: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in [
        ModelSpec("music2vec-v1", "m-a-p/music2vec-v1", "data2vec-audio", "BYOL (data2vec)",
                  16000, 50, 12, 768, 30.0, True),
        ModelSpec("MERT-v0", "m-a-p/MERT-v0", "remote-code", "MLM (HuBERT-style)",
                  16000, 50, 12, 768, 5.0, True),
        ModelSpec("MERT-v0-public", "m-a-p/MERT-v0-public", "remote-code", "MLM (HuBERT-style)",
                  16000, 50, 12, 768, 5.0, True, notes="open-source training data only"),
        ModelSpec("MERT-v1-95M", "m-a-p/MERT-v1-95M", "remote-code", "MLM (multi-codebook)",
                  24000, 75, 12, 768, 5.0, False,
                  notes="do_normalize: the hub processor says false, MARBLE used true"),
        ModelSpec("MERT-v1-330M", "m-a-p/MERT-v1-330M", "remote-code", "MLM (multi-codebook)",
                  24000, 75, 24, 1024, 5.0, False,
                  notes="pre-LN: block_24 is before the encoder's final LayerNorm"),
        ModelSpec("tiny-music2vec", None, "tiny", "none (random init, UNTRAINED)",
                  16000, 50, 12, 96, 30.0, True, trained=False,
                  notes="music2vec-v1's conv front end and layer count, narrow, random weights"),
        ModelSpec("tiny-mert", None, "tiny", "none (random init, UNTRAINED)",
                  24000, 75, 6, 64, 5.0, False, trained=False,
                  notes="HuBERT/MERT-style pre-LN encoder, narrow, random weights"),
    ]
}

_ALIASES = {}
for _spec in REGISTRY.values():
    _ALIASES[_spec.name.lower()] = _spec.name
    if _spec.hub_id:
        _ALIASES[_spec.hub_id.lower()] = _spec.name
_ALIASES["music2vec"] = "music2vec-v1"

_TINY_SEED = 20221030  # fixed: a tiny model's weights (and so its fingerprint) never change
_CONV = dict(conv_kernel=(10, 3, 3, 3, 3, 2, 2), conv_stride=(5, 2, 2, 2, 2, 2, 2))


def _tiny_config(name: str):
    from transformers import Data2VecAudioConfig, HubertConfig

    if name == "tiny-music2vec":
        return Data2VecAudioConfig(
            hidden_size=96, num_hidden_layers=12, num_attention_heads=4, intermediate_size=192,
            conv_dim=(64,) * 7, num_conv_pos_embeddings=5, conv_pos_kernel_size=19,
            num_conv_pos_embedding_groups=4, **_CONV)
    return HubertConfig(
        hidden_size=64, num_hidden_layers=6, num_attention_heads=4, intermediate_size=128,
        conv_dim=(32,) * 7, num_conv_pos_embeddings=32, num_conv_pos_embedding_groups=4,
        do_stable_layer_norm=True, feat_extract_norm="layer", conv_bias=True, **_CONV)


def layer_names(num_layers: int) -> tuple[str, ...]:
    """Names of the ``num_layers + 1`` hidden states: ``pre_transformer, block_1 … block_L``."""
    return ("pre_transformer",) + tuple(f"block_{i}" for i in range(1, num_layers + 1))


def num_frames(num_samples: int, *, kernels: Sequence[int] = _CONV["conv_kernel"],
               strides: Sequence[int] = _CONV["conv_stride"]) -> int:
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


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``"auto"``/None → cuda if available, else mps, else cpu; otherwise ``torch.device(device)``."""
    if device is None or str(device) == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ModelError(f"device={device!r} asked for CUDA, but torch sees no CUDA GPU here; "
                         "use device='auto' or 'cpu'.")
    return dev


def _resolve_dtype(dtype, device: torch.device) -> torch.dtype:
    if dtype is None:
        return torch.float32
    if isinstance(dtype, str):
        try:
            dtype = {"float32": torch.float32, "fp32": torch.float32, "float16": torch.float16,
                     "fp16": torch.float16, "half": torch.float16, "bfloat16": torch.bfloat16,
                     "bf16": torch.bfloat16}[dtype]
        except KeyError:
            raise ModelError(f"dtype={dtype!r} is not one of float32, float16, bfloat16.") from None
    if dtype not in (torch.float32, torch.float16, torch.bfloat16):
        raise ModelError(f"dtype={dtype} is not supported; use float32, float16 or bfloat16.")
    if dtype != torch.float32 and device.type == "cpu":
        raise ModelError(
            f"dtype={dtype} on the CPU: half precision is for GPUs only (bfloat16 ran 25-30x slower "
            "than float32 on CPUs here, and float16 matmuls are slow or unsupported). "
            "Use dtype=None (float32) on the CPU.")
    return dtype


def _find_encoder_layers(module: torch.nn.Module) -> torch.nn.ModuleList:
    encoder = getattr(module, "encoder", None)
    layers = getattr(encoder, "layers", None)
    if not isinstance(layers, torch.nn.ModuleList) or len(layers) == 0:
        raise ModelError(
            f"{type(module).__name__} has no `encoder.layers`: m2v_lab reads layers of wav2vec2-family "
            "encoders (Data2VecAudio, HuBERT, MERT, wav2vec2). Pass one of those.")
    return layers


def _weights_digest(module: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().to("cpu").contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


_VOLATILE_CONFIG_KEYS = {"_name_or_path", "transformers_version", "_commit_hash", "torch_dtype",
                         "dtype", "_attn_implementation_autoset", "output_hidden_states",
                         "output_attentions", "return_dict", "use_return_dict", "architectures"}


def _config_digest(config) -> str:
    d = {k: v for k, v in config.to_dict().items() if k not in _VOLATILE_CONFIG_KEYS}
    return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()


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
    do_normalize : bool
        Whether the model's processor z-normalises waveforms (followed by extraction).
    trained : bool
        False for tiny and random-init models: their features show architecture, not learning.
    """

    def __init__(self, module: torch.nn.Module, spec: ModelSpec, *, source: str,
                 revision: str | None = None, do_normalize: bool | None = None,
                 device: torch.device = torch.device("cpu"), dtype: torch.dtype = torch.float32,
                 facts: dict[str, str] | None = None, code_digest: str | None = None):
        self.module = module.eval()
        self.spec = spec
        self.source = source
        self.revision = revision
        self.do_normalize = spec.do_normalize if do_normalize is None else bool(do_normalize)
        self.device = device
        self.dtype = dtype
        self.facts = dict(facts or {})
        self._layers = _find_encoder_layers(module)
        if len(self._layers) != spec.num_layers:
            self.spec = replace(spec, num_layers=len(self._layers))
        self.code_digest = code_digest
        self._fingerprint: tuple[tuple, str] | None = None

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

    def _weights_version(self) -> tuple:
        """Cheap stamp that changes when any weight is replaced, edited in place or cast."""
        return tuple((id(t), t._version, t.dtype) for t in self.module.state_dict(keep_vars=True).values())

    @property
    def fingerprint(self) -> str:
        """sha256 over config, weights, revision and remote code: the model part of every cache key.

        Recomputed when the weights change (in-place edits included), so a cache never serves
        numbers of weights the model no longer has.
        """
        stamp = self._weights_version()
        if self._fingerprint is None or self._fingerprint[0] != stamp:
            h = hashlib.sha256()
            h.update(_config_digest(self.module.config).encode())
            h.update(_weights_digest(self.module).encode())
            h.update(f"{self.revision}|{self.code_digest}".encode())
            self._fingerprint = (stamp, h.hexdigest())
        return self._fingerprint[1]

    def describe(self) -> dict[str, Any]:
        """The facts a result should carry about the model that made it."""
        return {"model": self.name, "source": self.source, "revision": self.revision,
                "fingerprint": self.fingerprint, "trained": self.trained,
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
        dt = _resolve_dtype(dtype if dtype is not None else self.dtype, dev)
        self.module.to(device=dev, dtype=dt)
        self.device, self.dtype = dev, dt
        return self

    @torch.inference_mode()
    def layer_states(self, input_values: torch.Tensor | np.ndarray) -> torch.Tensor:
        """All hidden states of a batch of equal-length, already-normalised waveforms.

        Parameters
        ----------
        input_values : array, shape (batch, samples) or (samples,)
            Waveforms at :attr:`sample_rate`, without padding (padding changes
            the outputs of these models even with an attention mask).

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
        captured: list[torch.Tensor | None] = [None] * (self.num_layers + 1)

        def keep_input(_mod, args, kwargs):
            captured[0] = args[0] if args else kwargs["hidden_states"]

        def keep_output(i):
            def hook(_mod, _args, output):
                captured[i] = output[0] if isinstance(output, (tuple, list)) else output
            return hook

        handles = [self._layers[0].register_forward_pre_hook(keep_input, with_kwargs=True)]
        handles += [layer.register_forward_hook(keep_output(i + 1)) for i, layer in enumerate(self._layers)]
        try:
            self.module(x)
        finally:
            for h in handles:
                h.remove()
        missing = [i for i, t in enumerate(captured) if t is None]
        if missing:
            raise ModelError(f"{self.name}: layers {missing} did not run (layerdrop in train mode?).")
        return torch.stack(captured).float()


# -- loading ------------------------------------------------------------------------------------

def _coerce_config_dict(d: dict, config_cls, where: str) -> dict:
    """Make a config.json acceptable to strict (transformers 5) validation.

    Integral floats in integer fields (music2vec-v1's published ``vocab_size``)
    become ints; a non-integral ``vocab_size`` (it only sizes a CTC head the
    bare encoder does not have) is dropped with a warning.
    """
    defaults = config_cls().to_dict()
    out = dict(d)
    for key, value in d.items():
        default = defaults.get(key)
        if isinstance(default, bool) or not isinstance(default, int) or not isinstance(value, float):
            continue
        if math.isfinite(value) and value.is_integer():
            out[key] = int(value)
        elif key == "vocab_size":
            warnings.warn(f"{where}: vocab_size={value!r} is not an integer; ignored (the encoder does "
                          "not use it).", stacklevel=3)
            out.pop(key)
        else:
            raise ModelError(f"{where}: config field {key}={value!r} must be an integer. "
                             "Fix config.json or pass a corrected directory.")
    return out


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read {path}: {exc}. Fix or delete the file.") from exc


def _hub_address() -> tuple[str, int]:
    from huggingface_hub import constants
    url = urlparse(constants.ENDPOINT)
    return url.hostname or "huggingface.co", url.port or (80 if url.scheme == "http" else 443)


def _hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the hub answers within ``timeout`` s (DNS lookups cannot be timed out directly).

    Behind a proxy the direct connection says nothing, so the hub is assumed reachable and
    huggingface_hub decides.
    """
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True
    result = {"ok": False}

    def probe():
        try:
            with socket.create_connection(_hub_address(), timeout=timeout):
                result["ok"] = True
        except OSError:
            pass

    t = threading.Thread(target=probe, daemon=True)
    t.start()
    t.join(timeout + 0.5)
    return result["ok"]


def _offline() -> bool:
    flags = (os.environ.get(v, "").strip().lower() for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))
    return any(f in {"1", "true", "yes", "on"} for f in flags)


def _cached_snapshot(hub_id: str, revision: str | None) -> Path | None:
    from huggingface_hub import snapshot_download
    try:
        return Path(snapshot_download(hub_id, revision=revision, local_files_only=True))
    except Exception:  # noqa: BLE001 - any failure here just means "not cached"
        return None


def _unreachable_error(hub_id: str, why: str) -> ModelError:
    from huggingface_hub import constants
    return ModelError(
        f"cannot load {hub_id!r}: {why}. Looked for it as a local directory ({Path(hub_id).resolve()}) "
        f"and in the Hugging Face cache ({constants.HF_HUB_CACHE}). Fixes: connect to the internet "
        f"(unset HF_HUB_OFFLINE), download it once with `hf download {hub_id}`, pass a "
        f"local directory, or use the bundled offline model: load_model({OFFLINE_MODEL!r}) "
        f"(or set M2V_LAB_MODEL={OFFLINE_MODEL} for the notebooks; its weights are random).")


def _locate(hub_id: str, revision: str | None) -> tuple[str | Path, bool]:
    """Where to load a hub id from: (path or id, local_files_only). Fails fast when unreachable."""
    snapshot = _cached_snapshot(hub_id, revision)
    if snapshot is not None and (snapshot / "config.json").exists():
        return snapshot, True
    if _offline():
        raise _unreachable_error(hub_id, "it is not in the local cache and HF_HUB_OFFLINE is set")
    if not _hub_reachable():
        raise _unreachable_error(hub_id, f"the hub ({_hub_address()[0]}) cannot be reached and it is not cached")
    return hub_id, False


def _spec_for_local(name: str, config: dict, preprocessor: dict | None, base: ModelSpec | None) -> tuple[ModelSpec, dict]:
    """Facts for a model loaded from files: the files win, then the registry, then family defaults."""
    model_type = config.get("model_type", "")
    facts = {}
    family_rate, family_context = (16000, 30.0) if model_type == "data2vec-audio" else (16000, 5.0)
    if base is not None:
        family_rate, family_context = base.sample_rate, base.context_seconds
    rate = family_rate
    if preprocessor and preprocessor.get("sampling_rate"):
        rate = int(preprocessor["sampling_rate"])
        facts["sample_rate"] = "preprocessor_config.json"
    elif "sample_rate" in config:
        rate = int(config["sample_rate"])
        facts["sample_rate"] = "config.json"
    else:
        facts["sample_rate"] = "registry" if base else f"default for {model_type or 'unknown'} models"
    normalize = base.do_normalize if base else True
    if preprocessor and "do_normalize" in preprocessor:
        normalize = bool(preprocessor["do_normalize"])
        facts["do_normalize"] = "preprocessor_config.json"
    else:
        facts["do_normalize"] = "registry" if base else "default (true, as the model card's processor)"
    facts["context_seconds"] = "registry" if base else f"default for {model_type or 'unknown'} models"
    stride = 1
    for s in config.get("conv_stride", _CONV["conv_stride"]):
        stride *= int(s)
    spec = ModelSpec(
        name=base.name if base else name, hub_id=base.hub_id if base else None,
        loader=base.loader if base else "local", paradigm=base.paradigm if base else "unknown",
        sample_rate=rate, feature_rate=rate / stride,
        num_layers=int(config.get("num_hidden_layers", 12)), hidden_size=int(config.get("hidden_size", 768)),
        context_seconds=family_context, do_normalize=normalize, trained=True)
    return spec, facts


_MODEL_CLASSES = {"data2vec-audio": "Data2VecAudioModel", "hubert": "HubertModel", "wav2vec2": "Wav2Vec2Model"}
_CONFIG_CLASSES = {"data2vec-audio": "Data2VecAudioConfig", "hubert": "HubertConfig", "wav2vec2": "Wav2Vec2Config"}


def _load_error(display: str, where, exc: Exception) -> ModelError:
    return ModelError(
        f"{display}: loading the model from {where} failed: {type(exc).__name__}: {exc}. Fixes: re-download it "
        f"(`hf download {display} --force-download` for a hub id), check that the folder holds config.json and "
        f"model.safetensors (or pytorch_model.bin) as save_pretrained writes them, or use the offline model "
        f"{OFFLINE_MODEL!r}.")


def _from_pretrained(cls, display: str, where, **kwargs):
    try:
        return cls.from_pretrained(where, **kwargs)
    except Exception as exc:  # noqa: BLE001 - missing/corrupt weights, bad code: one clear error
        raise _load_error(display, where, exc) from exc


def _code_digest(where) -> str | None:
    """Hash of a local folder's remote-code files (they change the numbers as much as the weights)."""
    if not Path(where).is_dir():
        return None
    files = sorted(Path(where).glob("*.py"))
    if not files:
        return None
    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode() + b"|" + f.read_bytes())
    return h.hexdigest()


def _load_files(where: str | Path, *, display: str, base: ModelSpec | None, revision: str | None,
                local_only: bool, trust_remote_code: bool) -> tuple[torch.nn.Module, ModelSpec, dict, str | None]:
    import transformers
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

    def fetch(filename: str) -> dict | None:
        if Path(where).is_dir():
            return _read_json(Path(where) / filename)
        try:
            return _read_json(Path(hf_hub_download(str(where), filename, revision=revision,
                                                   local_files_only=local_only)))
        except (EntryNotFoundError, LocalEntryNotFoundError):
            return None
        except Exception as exc:  # noqa: BLE001 - unknown repo, gated, HTTP: say what happened
            raise ModelError(f"{display}: fetching {filename} failed: {exc}. Check the id (and access rights "
                             f"for gated models: `hf auth login`).") from exc

    config = fetch("config.json")
    if config is None:
        raise ModelError(f"{display}: no config.json found in {where}. A model directory needs config.json "
                         "and weights (model.safetensors or pytorch_model.bin), as save_pretrained writes.")
    preprocessor = fetch("preprocessor_config.json")
    model_type = config.get("model_type", "")
    remote = "auto_map" in config or (base is not None and base.loader == "remote-code")
    if remote:
        if not trust_remote_code:
            raise ModelError(
                f"{display} runs custom model code from its repository (MERTModel). Read it, then pass "
                f"trust_remote_code=True (and ideally revision='<commit>' to pin the code you read): "
                f"load_model({display!r}, trust_remote_code=True).")
        try:
            config_obj = transformers.AutoConfig.from_pretrained(
                where, trust_remote_code=True, revision=revision, local_files_only=local_only)
        except Exception as exc:  # noqa: BLE001 - remote code can fail in any way
            raise _load_error(display, where, exc) from exc
        if not hasattr(config_obj, "conv_pos_batch_norm"):
            # MERT's remote code predates this HuBERT option (transformers >= 4.48 reads it)
            config_obj.conv_pos_batch_norm = False
        module = _from_pretrained(transformers.AutoModel, display, where, config=config_obj,
                                  trust_remote_code=True, revision=revision, code_revision=revision,
                                  local_files_only=local_only)
    else:
        if model_type not in _MODEL_CLASSES:
            raise ModelError(f"{display}: model_type {model_type!r} is not a wav2vec2-family encoder m2v_lab "
                             f"knows ({', '.join(_MODEL_CLASSES)}); for MERT pass trust_remote_code=True.")
        config_cls = getattr(transformers, _CONFIG_CLASSES[model_type])
        clean = _coerce_config_dict({k: v for k, v in config.items() if k != "model_type"},
                                    config_cls, f"{display} config.json")
        config_obj = config_cls(**clean)
        model_cls = getattr(transformers, _MODEL_CLASSES[model_type])
        module = _from_pretrained(model_cls, display, where, config=config_obj, revision=revision,
                                  local_files_only=local_only)
    resolved = getattr(module.config, "_commit_hash", None) or revision
    spec, facts = _spec_for_local(display, config, preprocessor, base)
    return module, spec, facts, resolved


def _build_tiny(spec: ModelSpec) -> torch.nn.Module:
    from transformers import Data2VecAudioModel, HubertModel

    config = _tiny_config(spec.name)
    cls = Data2VecAudioModel if spec.name == "tiny-music2vec" else HubertModel
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(_TINY_SEED)
        return cls(config)


def load_model(name_or_path: str | os.PathLike, *, revision: str | None = None, device="auto",
               dtype=None, trust_remote_code: bool = False, sample_rate: int | None = None,
               context_seconds: float | None = None) -> LoadedModel:
    """Load a model of the m-a-p family (or a compatible encoder) for layer analysis.

    Parameters
    ----------
    name_or_path : str or path
        A registry alias (``"music2vec-v1"``, ``"MERT-v1-95M"``, ``"tiny-music2vec"`` …, see
        :data:`REGISTRY`), a hub id (``"m-a-p/music2vec-v1"``) or a local directory as written
        by ``save_pretrained``.
    revision : str, optional
        Hub commit, branch or tag; pins the weights and, for MERT, the remote code.
    device : {"auto", "cpu", "cuda", "mps"} or torch.device
        ``"auto"`` takes cuda, then mps, then cpu.
    dtype : {None, "float32", "float16", "bfloat16"}
        None is float32.  Half precision is refused on the CPU.
    trust_remote_code : bool
        Required for MERT models, whose code comes from their hub repository.
    sample_rate, context_seconds : optional
        Override what the registry or the model files say (e.g. for an unknown local model).

    Returns
    -------
    LoadedModel

    Raises
    ------
    ModelError
        Unknown or unreachable model (raised within seconds, naming where weights were looked
        for and how to use the offline model), remote code not trusted, unsupported dtype.
    """
    dev = resolve_device(device)
    dt = _resolve_dtype(dtype, dev)
    key = str(name_or_path)
    base = REGISTRY.get(_ALIASES.get(key.lower(), ""))
    facts: dict[str, str] = {}
    code = None
    if base is not None and base.loader == "tiny":
        module, spec, source, resolved = _build_tiny(base), base, base.name, None
        facts = {k: "registry (tiny model)" for k in ("sample_rate", "do_normalize", "context_seconds")}
    else:
        path = Path(os.path.expanduser(key))
        if path.is_dir():
            where, local_only, display = path, True, str(path)
        elif base is not None or ("/" in key and not path.exists() and key.count("/") == 1
                                  and not key.startswith((".", "/", "~"))):
            hub_id = base.hub_id if base else key
            if base is not None and base.loader == "remote-code" and not trust_remote_code:
                raise ModelError(
                    f"{base.name} runs custom model code from its repository (MERTModel). Read it, then "
                    f"pass trust_remote_code=True (and ideally revision='<commit>' to pin the code you "
                    f"read): load_model({key!r}, trust_remote_code=True).")
            where, local_only = _locate(hub_id, revision)
            display = hub_id
        else:
            known = ", ".join(REGISTRY)
            raise ModelError(f"{key!r} is neither a local directory nor a hub id (owner/name) nor a known "
                             f"model ({known}). Check the spelling or the path.")
        module, spec, facts, resolved = _load_files(where, display=display, base=base, revision=revision,
                                                    local_only=local_only,
                                                    trust_remote_code=trust_remote_code)
        code = _code_digest(where)
        source = display
    if sample_rate is not None:
        spec = replace(spec, sample_rate=int(sample_rate))
        facts["sample_rate"] = "argument"
    if context_seconds is not None:
        spec = replace(spec, context_seconds=float(context_seconds))
        facts["context_seconds"] = "argument"
    model = LoadedModel(module, spec, source=source, revision=resolved, device=dev, dtype=dt, facts=facts,
                        code_digest=code)
    return model.to(dev, dt)


def random_twin(model: LoadedModel, *, seed: int = 0) -> LoadedModel:
    """The same architecture with fresh random weights: the baseline every layer analysis needs.

    Whatever a probe or similarity map shows on the twin comes from the
    architecture and the input, not from pretraining.
    """
    config = model.module.config
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        module = type(model.module)(config)
    spec = replace(model.spec, name=f"{model.name} (random init)", trained=False,
                   paradigm="none (random init, UNTRAINED)")
    twin = LoadedModel(module, spec, source=f"random_twin({model.source!r}, seed={seed})",
                       revision=None, do_normalize=model.do_normalize, device=model.device,
                       dtype=model.dtype, facts=model.facts, code_digest=model.code_digest)
    return twin.to(model.device, model.dtype)


def load_model_with_fallback(name: str | None = None, *, fallback: str = OFFLINE_MODEL,
                             **kwargs) -> LoadedModel:
    """Load ``name`` (default: ``$M2V_LAB_MODEL``, else music2vec-v1); on failure, say so loudly
    and load ``fallback`` (the bundled offline model) instead.

    Meant for notebooks, which must run top to bottom on any machine.
    """
    name = name or os.environ.get("M2V_LAB_MODEL") or DEFAULT_MODEL
    try:
        return load_model(name, **kwargs)
    except ModelError as exc:
        banner = "!" * 78
        message = (f"{banner}\nCould not load {name!r}:\n  {exc}\nFALLING BACK to {fallback!r}: RANDOM "
                   f"WEIGHTS, UNTRAINED. Results below show the architecture, not what {name} learned.\n"
                   f"{banner}")
        print(message)
        warnings.warn(f"using {fallback!r} instead of {name!r}: {exc}", stacklevel=2)
        kwargs.pop("trust_remote_code", None)
        kwargs.pop("revision", None)
        return load_model(fallback, **kwargs)

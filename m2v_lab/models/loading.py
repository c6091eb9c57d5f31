"""Turn a registry alias, a hub id or a local directory into a :class:`LoadedModel`.

Routes (recorded as ``LoadedModel.loader``):

- ``"tiny"``: a registry config with fixed random weights, no files;
- ``"bundled"``: trained weights shipped in the repository (``data/models/music2vec-mini``), read as a
  local ``save_pretrained`` folder;
- ``"data2vec-audio"`` / ``"local"``: transformers' own class for the config's ``model_type``
  (Data2VecAudio, HuBERT, wav2vec2), for the registry's music2vec-v1 and for other checkpoints;
- ``"hubert-native (MERT config mapped)"``: a MERT config mapped onto ``HubertModel``
  (:mod:`.mert`), weights loaded with strict keys, no code from the hub;
- ``"remote-code"``: the repository's own code, for configs that need it, only with
  ``trust_remote_code=True``, and refused before any weights are downloaded.
"""

from __future__ import annotations

import copy
import hashlib
import os
from dataclasses import replace
from pathlib import Path

import torch

from ..errors import ModelError
from . import mert
from ..devices import resolve_device, resolve_dtype
from .encoder import TRAINED_KEY, LoadedModel
from .hub import ModelFiles, looks_like_hub_id
from .registry import (CONV_STRIDES, DEFAULT_MODEL, OFFLINE_MODEL, REGISTRY, TINY_SEED, ModelSpec, bundled_path,
                       lookup, tiny_config)

__all__ = ["load_model", "load_model_with_fallback", "random_twin", "coerce_config"]

_STOCK = {"data2vec-audio": ("Data2VecAudioConfig", "Data2VecAudioModel"),
          "hubert": ("HubertConfig", "HubertModel"),
          "wav2vec2": ("Wav2Vec2Config", "Wav2Vec2Model")}
_WEIGHTS = ("model.safetensors", "pytorch_model.bin")
_MERT_ROUTE = "hubert-native (MERT config mapped)"
_UNTRAINED = "none (random init, UNTRAINED)"


def coerce_config(d: dict, config_cls, *, where: str) -> tuple[dict, dict[str, str]]:
    """Make a config.json acceptable to transformers 5's strict validation.

    ``vocab_size`` only sizes a CTC head that the bare encoder does not have, and the published
    music2vec-v1 config has been reported with a float and with a file path there: any value that
    is not an integer (string, float, null, absent) is replaced by the class default, or by the
    integer a whole float stands for, with a one-line note.  Whole floats in other integer fields
    become ints.

    Parameters
    ----------
    d : dict
        config.json without ``model_type``.
    config_cls : type
        The transformers config class it is for.
    where : str
        How messages name the file.

    Returns
    -------
    (dict, dict of str to str)
        Keyword arguments for ``config_cls``, and ``{"vocab_size": note}`` when it was repaired.
    """
    defaults = config_cls().to_dict()
    out = {k: v for k, v in d.items() if k != "vocab_size"}
    notes = {}
    vocab = d.get("vocab_size")
    if isinstance(vocab, int) and not isinstance(vocab, bool):
        out["vocab_size"] = vocab
    else:
        unused = "unused by the bare encoder (it sizes a CTC head)"
        if isinstance(vocab, float) and vocab.is_integer():
            out["vocab_size"] = int(vocab)
            notes["vocab_size"] = f"{where} has vocab_size {vocab!r}, a float; read as {int(vocab)}, {unused}"
        elif "vocab_size" in d:
            notes["vocab_size"] = (f"{where} has vocab_size {vocab!r}, not an integer; "
                                   f"default {defaults['vocab_size']} used, {unused}")
        else:
            notes["vocab_size"] = f"{where} has no vocab_size; default {defaults['vocab_size']} used, {unused}"
    for key, value in d.items():
        default = defaults.get(key)
        if (key != "vocab_size" and isinstance(default, int) and not isinstance(default, bool)
                and isinstance(value, float) and value.is_integer()):
            out[key] = int(value)
    return out, notes


def _build_config(config_cls, kwargs: dict, *, where: str):
    try:
        return config_cls(**kwargs)
    except Exception as exc:  # noqa: BLE001 - strict validation names the field
        raise ModelError(f"{where} is not a valid {config_cls.__name__}: {exc}. Fix that field in "
                         "config.json or pass a corrected directory.") from exc


def _load_error(display: str, where, exc: Exception | str) -> ModelError:
    why = exc if isinstance(exc, str) else f"{type(exc).__name__}: {exc}"
    return ModelError(
        f"{display}: loading the model from {where} failed: {why}. Fixes: re-download it "
        f"(`hf download {display} --force-download` for a hub id), check that the folder holds config.json and "
        f"model.safetensors (or pytorch_model.bin) as save_pretrained writes them, or use the offline model "
        f"{OFFLINE_MODEL!r}.")


def _trust_error(display: str, why: str) -> ModelError:
    return ModelError(
        f"{display} needs model code from its repository: {why}. Read that code, then pass "
        f"trust_remote_code=True (and ideally revision='<commit>' to pin the code you read): "
        f"load_model({display!r}, trust_remote_code=True).")


def _spec_for_files(display: str, config: dict, preprocessor: dict | None, base: ModelSpec | None,
                    loader: str) -> tuple[ModelSpec, dict[str, str]]:
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
    trained = config.get(TRAINED_KEY, True) is not False
    if not trained:
        facts["trained"] = f"config.json ({TRAINED_KEY}: false: random weights saved by m2v_lab)"
    stride = 1
    for s in config.get("conv_stride", CONV_STRIDES):
        stride *= int(s)
    spec = ModelSpec(
        name=base.name if base else display, hub_id=base.hub_id if base else None, loader=loader,
        paradigm=_UNTRAINED if not trained else base.paradigm if base else "unknown",
        sample_rate=rate, feature_rate=rate / stride,
        num_layers=int(config.get("num_hidden_layers", 12)), hidden_size=int(config.get("hidden_size", 768)),
        context_seconds=family_context, do_normalize=normalize, trained=trained)
    return spec, facts


def _weights(files: ModelFiles) -> Path:
    for name in _WEIGHTS:
        path = files.get(name)
        if path is not None:
            return path
    files.raise_if_unverified(*_WEIGHTS)
    raise _load_error(files.display, files.folder or files.display,
                      f"it holds no weights ({' or '.join(_WEIGHTS)})")


def _code_files(files: ModelFiles, config: dict) -> list[Path]:
    """The repository's model code that ``auto_map`` names, with the modules it imports relatively."""
    from transformers.dynamic_module_utils import get_relative_imports

    refs = []
    for value in config.get("auto_map", {}).values():
        refs += value if isinstance(value, (list, tuple)) else [value]
    pending = sorted({ref.rsplit(".", 1)[0] for ref in refs if ref})
    outside = [ref for ref in pending if "--" in ref]
    if outside:
        raise ModelError(f"{files.display}: auto_map points at code in another repository ({outside}); m2v_lab "
                         "only runs code from the model's own repository. Copy that code into the model folder.")
    found: dict[str, Path] = {}
    while pending:
        name = pending.pop()
        if name in found:
            continue
        path = files.get(f"{name}.py")
        if path is None:
            files.raise_if_unverified(f"{name}.py")
            raise _load_error(files.display, files.folder, f"auto_map names {name}.py, which it does not hold")
        found[name] = path
        pending += get_relative_imports(path)
    return [found[name] for name in sorted(found)]


def _digest(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for path in paths:
        h.update(path.name.encode() + b"|" + path.read_bytes())
    return h.hexdigest()


def _from_pretrained(cls, display: str, folder: Path, **kwargs):
    from transformers.utils import logging as hf_logging

    # transformers 5 draws a per-tensor "Loading weights" bar: noise in notebooks and logs for a
    # load that takes a second, and a widget that saved notebooks cannot show
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        return cls.from_pretrained(folder, local_files_only=True, **kwargs)
    except Exception as exc:  # noqa: BLE001 - missing/corrupt weights, bad code: one clear error
        raise _load_error(display, folder, exc) from exc
    finally:
        if bars:
            hf_logging.enable_progress_bar()


def _load_files(files: ModelFiles, *, base: ModelSpec | None, trust_remote_code: bool):
    """(module, spec, facts, loader, code digest) of the model in ``files``."""
    import transformers

    display = files.display
    config = files.json("config.json")
    if config is None:
        files.raise_if_unverified("config.json")
        raise ModelError(f"{display}: no config.json found. A model directory needs config.json and weights "
                         "(model.safetensors or pytorch_model.bin), as save_pretrained writes them.")
    model_type = config.get("model_type", "")
    if mert.is_mert_config(config):
        reasons = mert.remote_code_reasons(config)
        loader = "remote-code" if reasons else _MERT_ROUTE
        why = f"its config needs MERT's own code ({'; '.join(reasons)})"
    elif "auto_map" in config:
        loader = "remote-code"
        why = f"custom model code ({', '.join(config.get('architectures') or ['auto_map'])})"
    elif model_type in _STOCK:
        loader = base.loader if base else "local"
    else:
        raise ModelError(f"{display}: model_type {model_type!r} is not a wav2vec2-family encoder m2v_lab "
                         f"knows ({', '.join([*_STOCK, mert.MODEL_TYPE])}). Pass one of those.")
    if loader == "remote-code" and not trust_remote_code:
        raise _trust_error(display, why)  # before any weights are downloaded
    preprocessor = files.json("preprocessor_config.json")
    weights = _weights(files)
    where = f"{display} config.json"
    notes, code = {}, None
    if loader == "remote-code":
        code_files = _code_files(files, config)
        code = _digest(code_files)
        try:
            config_obj = transformers.AutoConfig.from_pretrained(files.folder, trust_remote_code=True,
                                                                 local_files_only=True)
        except Exception as exc:  # noqa: BLE001 - remote code can fail in any way
            raise _load_error(display, files.folder, exc) from exc
        if not hasattr(config_obj, "conv_pos_batch_norm"):
            # MERT's remote code predates this HuBERT option (transformers >= 4.48 reads it)
            config_obj.conv_pos_batch_norm = False
        module = _from_pretrained(transformers.AutoModel, display, files.folder, config=config_obj,
                                  trust_remote_code=True)
    elif loader == _MERT_ROUTE:
        kwargs, notes = coerce_config(mert.hubert_config_kwargs(config), transformers.HubertConfig, where=where)
        config_obj = _build_config(transformers.HubertConfig, kwargs, where=where)
        module = mert.load_strict(transformers.HubertModel, config_obj, mert.read_state_dict(weights),
                                  where=display)
    else:
        config_name, model_name = _STOCK[model_type]
        config_cls = getattr(transformers, config_name)
        kwargs, notes = coerce_config({k: v for k, v in config.items() if k != "model_type"}, config_cls,
                                      where=where)
        config_obj = _build_config(config_cls, kwargs, where=where)
        module = _from_pretrained(getattr(transformers, model_name), display, files.folder, config=config_obj)
    spec, facts = _spec_for_files(display, config, preprocessor, base, loader)
    return module, spec, {**facts, **notes}, loader, code


def _build_tiny(spec: ModelSpec) -> torch.nn.Module:
    from transformers import Data2VecAudioModel, HubertModel

    config = tiny_config(spec.name)
    setattr(config, TRAINED_KEY, False)
    cls = Data2VecAudioModel if spec.name == "tiny-music2vec" else HubertModel
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(TINY_SEED)
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
        Hub commit, branch or tag; pins the weights (and the code, for remote-code models).
    device : {"auto", "cpu", "cuda", "mps"} or torch.device
        ``"auto"`` takes cuda, then mps, then cpu.
    dtype : {None, "float32", "float16", "bfloat16"}
        None is float32.  Half precision is refused on the CPU.
    trust_remote_code : bool
        Needed only for models whose config needs their repository's code (MERT configs with CQT
        features, DeepNorm or fields HuBERT lacks; other custom models).  Published MERT models
        load without it, as HuBERT.
    sample_rate, context_seconds : optional
        Override what the registry or the model files say (e.g. for an unknown local model).

    Returns
    -------
    LoadedModel

    Raises
    ------
    ModelError
        Unknown or unreachable model (raised within seconds, naming where weights were looked
        for and how to use the offline model), remote code not trusted (after reading only
        config.json), weights that do not fit the config, unsupported dtype.
    """
    dev = resolve_device(device)
    dt = resolve_dtype(dtype, dev)
    key = str(name_or_path)
    base = lookup(key)
    code = None
    if base is not None and base.loader == "tiny":
        module, spec, source, resolved, loader = _build_tiny(base), base, base.name, None, "tiny"
        facts = {k: "registry (tiny model)" for k in ("sample_rate", "do_normalize", "context_seconds")}
    else:
        if base is not None and base.loader == "bundled":
            folder = bundled_path(base.name)
            if not (folder / "config.json").is_file():
                raise ModelError(
                    f"the bundled model {base.name!r} is missing from data/models/{base.name} (it ships with the "
                    "source checkout: `git clone` the repository, or `git checkout -- data/models`); to re-create "
                    f"it, see data/models/{base.name}/README.md or run `python data/train_music2vec_mini.py --help`.")
            files = ModelFiles(folder)
        elif Path(os.path.expanduser(key)).is_dir():
            files = ModelFiles(key, revision=revision)
        elif base is not None or looks_like_hub_id(key):
            files = ModelFiles(base.hub_id if base else key, revision=revision)
        else:
            raise ModelError(f"{key!r} is neither a local directory nor a hub id (owner/name) nor a known "
                             f"model ({', '.join(REGISTRY)}). Check the spelling or the path.")
        module, spec, facts, loader, code = _load_files(files, base=base, trust_remote_code=trust_remote_code)
        source, resolved = files.display, files.commit or revision
        if loader == "bundled":  # no local path in notebook outputs
            source = f"data/models/{base.name}"
    if sample_rate is not None:
        spec = replace(spec, sample_rate=int(sample_rate))
        facts["sample_rate"] = "argument"
    if context_seconds is not None:
        spec = replace(spec, context_seconds=float(context_seconds))
        facts["context_seconds"] = "argument"
    model = LoadedModel(module, spec, source=source, revision=resolved, device=dev, dtype=dt, facts=facts,
                        code_digest=code, loader=loader)
    return model.to(dev, dt)


def random_twin(model: LoadedModel, *, seed: int = 0) -> LoadedModel:
    """The same architecture with fresh random weights: the baseline every layer analysis needs.

    Whatever a probe or similarity map shows on the twin comes from the
    architecture and the input, not from pretraining.  Its config carries
    ``m2v_lab_trained: false``, so a copy saved with ``save_pretrained`` loads back untrained.
    """
    config = copy.deepcopy(model.module.config)
    setattr(config, TRAINED_KEY, False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        module = type(model.module)(config)
    spec = replace(model.spec, name=f"{model.name} (random init)", trained=False, paradigm=_UNTRAINED)
    twin = LoadedModel(module, spec, source=f"random_twin({model.source!r}, seed={seed})",
                       revision=None, do_normalize=model.do_normalize, device=model.device,
                       dtype=model.dtype, facts=model.facts, code_digest=model.code_digest,
                       loader=model.loader)
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
        kwargs.pop("trust_remote_code", None)
        kwargs.pop("revision", None)
        model = load_model(fallback, **kwargs)
        # one short banner without local paths (notebook outputs are shared); the full reason is kept
        model.facts["fallback"] = f"{name} could not be loaded: {exc}"
        why = str(exc).split(". ")[0]
        learned = ("a small model pre-trained on a CPU by m2v_lab: real layer structure, not music2vec-v1's"
                   if model.trained else "RANDOM WEIGHTS, UNTRAINED: the figures show the architecture, not learning")
        print(f"m2v_lab: {why}.\n  Using {fallback!r} instead ({learned}). Full reason: model.facts['fallback'].")
        return model

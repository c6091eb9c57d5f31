"""Shared fixtures: tiny models, audio files written on the fly, an offline hub."""

import os

import tempfile  # noqa: E402

os.environ["HF_HUB_OFFLINE"] = "1"
# an empty Hugging Face cache: the offline-error tests must not find a model the developer downloaded
os.environ["HF_HOME"] = tempfile.mkdtemp(prefix="m2v_lab_hf_home_")
os.environ.pop("HF_HUB_CACHE", None)
os.environ.pop("M2V_LAB_CACHE", None)
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import soundfile as sf  # noqa: E402


@pytest.fixture(scope="session")
def tiny():
    import m2v_lab as m2v
    return m2v.load_model("tiny-music2vec")


@pytest.fixture(scope="session")
def tiny_mert():
    import m2v_lab as m2v
    return m2v.load_model("tiny-mert")


def tone(seconds, rate, *, freq=440.0, channels=1, seed=0):
    """A tone plus a little noise, (samples,) or (samples, channels) float32."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * rate))) / rate
    x = 0.3 * np.sin(2 * np.pi * freq * t) + 0.05 * rng.standard_normal(t.size)
    x = x.astype(np.float32)
    if channels > 1:
        x = np.stack([x * (1 - 0.1 * c) for c in range(channels)], axis=1)
    return x


@pytest.fixture
def write_audio(tmp_path):
    """write_audio(name, seconds, rate=16000, **tone options) -> Path of a new audio file."""
    def write(name, seconds, rate=16000, **kw):
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, tone(seconds, rate, **kw), rate)
        return path
    return write


@pytest.fixture(scope="session")
def music2vec_dir(tmp_path_factory):
    """A checkpoint with music2vec-v1's exact architecture (random init), saved as the hub has it:
    config.json with a float vocab_size, which transformers 5 rejects when read naively."""
    import json
    import torch
    from transformers import Data2VecAudioConfig, Data2VecAudioModel

    path = tmp_path_factory.mktemp("music2vec-v1-arch")
    torch.manual_seed(0)
    Data2VecAudioModel(Data2VecAudioConfig()).save_pretrained(path)
    config = json.loads((path / "config.json").read_text())
    config["vocab_size"] = 32.0
    (path / "config.json").write_text(json.dumps(config))
    return Path(path)


@pytest.fixture
def one_torch_thread():
    """Tiny batched torch ops are dominated by thread wake-ups on a busy 2-core machine."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# -- MERT checkpoints and a hub served from local folders (tests/test_models_*.py) ---------------

_MERT_CODE_STUB = 'raise RuntimeError("MERT\'s repository code was imported; m2v_lab must load MERT natively")\n'


def _mert_config_json(config, *, relax, **edits):
    """config.json as MERT's hub repositories have it (MERTConfig's fields, MERT's extras, auto_map)."""
    fields = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
              "hidden_act", "hidden_dropout", "activation_dropout", "attention_dropout", "feat_proj_layer_norm",
              "feat_proj_dropout", "final_dropout", "layerdrop", "initializer_range", "layer_norm_eps",
              "feat_extract_norm", "feat_extract_activation", "conv_dim", "conv_stride", "conv_kernel",
              "conv_bias", "num_conv_pos_embeddings", "num_conv_pos_embedding_groups", "do_stable_layer_norm",
              "apply_spec_augment", "mask_time_prob", "mask_time_length", "mask_time_min_masks",
              "mask_feature_prob", "mask_feature_length", "mask_feature_min_masks", "ctc_loss_reduction",
              "ctc_zero_infinity", "use_weighted_layer_sum", "classifier_proj_size", "pad_token_id",
              "bos_token_id", "eos_token_id", "num_feat_extract_layers")
    d = {k: getattr(config, k) for k in fields}
    d.update({"_name_or_path": "m-a-p/MERT-fixture", "architectures": ["MERTModel"],
              "auto_map": {"AutoConfig": "configuration_MERT.MERTConfig", "AutoModel": "modeling_MERT.MERTModel"},
              "model_type": "mert_model", "torch_dtype": "float32", "transformers_version": "4.25.1",
              "feature_extractor_cqt": False, "feature_extractor_cqt_bins": 336, "deepnorm": False,
              "attention_relax": relax, "sample_rate": 24000})
    d.update(edits)
    return d


@pytest.fixture(scope="session")
def mert_checkpoint(tmp_path_factory):
    """mert_checkpoint(style, weights="bin", **config_edits) -> (folder, reference HubertModel).

    A small MERT checkpoint laid out as MERT's hub repositories have it: config.json written by
    MERTConfig (model_type "mert_model", auto_map to its code, MERT's extra fields), a
    preprocessor_config.json at 24 kHz, the code files (stubs that raise if imported), and the
    weights of a random-init transformers HubertModel under MERT's names (HuBERT's, with
    ``masked_spec_embed`` and the positional convolution's legacy ``weight_g`` / ``weight_v``), as
    ``pytorch_model.bin`` (weights="bin", the published form) or ``model.safetensors``.

    style "95M": post-LN (group-norm front end, no conv bias, attention_relax -1).
    style "330M": pre-LN (do_stable_layer_norm, layer-norm front end, conv bias, attention_relax 32).
    """
    import json

    import torch
    from safetensors.torch import save_file
    from transformers import HubertConfig, HubertModel

    built = {}

    def make(style="95M", weights="bin", **edits):
        key = (style, weights, json.dumps(edits, sort_keys=True))
        if key in built:
            return built[key]
        pre_ln = style == "330M"
        config = HubertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                              conv_dim=(16,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2,
                              do_stable_layer_norm=pre_ln, feat_extract_norm="layer" if pre_ln else "group",
                              conv_bias=pre_ln)
        torch.manual_seed(7 if pre_ln else 5)
        reference = HubertModel(config).eval()
        path = tmp_path_factory.mktemp(f"mert-{style}-{weights}")
        legacy = {}
        for name, tensor in reference.state_dict().items():
            name = name.replace("parametrizations.weight.original0", "weight_g")
            legacy[name.replace("parametrizations.weight.original1", "weight_v")] = tensor.detach().clone()
        if weights == "bin":
            torch.save(legacy, path / "pytorch_model.bin")
        else:
            save_file(legacy, str(path / "model.safetensors"), metadata={"format": "pt"})
        cfg = _mert_config_json(config, relax=32.0 if pre_ln else -1.0, **edits)
        (path / "config.json").write_text(json.dumps(cfg, indent=2))
        (path / "preprocessor_config.json").write_text(json.dumps(
            {"do_normalize": False, "feature_extractor_type": "Wav2Vec2FeatureExtractor", "feature_size": 1,
             "padding_side": "right", "padding_value": 0.0, "return_attention_mask": True,
             "sampling_rate": 24000}))
        for code in ("configuration_MERT.py", "modeling_MERT.py"):
            (path / code).write_text(_MERT_CODE_STUB)
        built[key] = (Path(path), reference)
        return built[key]

    return make


@pytest.fixture
def fake_hub(monkeypatch):
    """A hub served from local folders, for m2v_lab.models.hub.

    ``fake_hub.publish(repo_id, folder)`` puts a folder's files on it; ``fake_hub.requests`` lists
    the (repo_id, filename) downloads asked for.  Downloads land in the session's (empty) Hugging
    Face cache laid out as huggingface_hub lays it out (refs/main, snapshots/<commit>, .no_exist),
    so later loads find them cached; the repositories' cache folders are removed afterwards.
    """
    import hashlib
    import shutil

    from huggingface_hub import constants
    from huggingface_hub.errors import EntryNotFoundError

    import m2v_lab.models.hub as hub

    class FakeHub:
        def __init__(self):
            self.repos, self.requests = {}, []

        def storage(self, repo_id):
            return Path(constants.HF_HUB_CACHE) / ("models--" + repo_id.replace("/", "--"))

        def publish(self, repo_id, folder):
            self.repos[repo_id] = (Path(folder), hashlib.sha1(repo_id.encode()).hexdigest())
            return self.repos[repo_id][1]

        def download(self, repo_id, filename, *, revision=None, **kwargs):
            self.requests.append((repo_id, filename))
            folder, commit = self.repos[repo_id]
            assert revision in (None, "main", commit), revision
            storage = self.storage(repo_id)
            (storage / "refs").mkdir(parents=True, exist_ok=True)
            (storage / "refs" / "main").write_text(commit)
            if not (folder / filename).is_file():
                marker = storage / ".no_exist" / commit / filename
                marker.parent.mkdir(parents=True, exist_ok=True)
                marker.touch()
                raise EntryNotFoundError(f"{filename} is not in {repo_id} (fake hub)")
            target = storage / "snapshots" / commit / filename
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(folder / filename, target)
            return str(target)

    fake = FakeHub()
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(hub, "hf_hub_download", fake.download)
    monkeypatch.setattr(hub, "hub_reachable", lambda timeout=3.0: True)
    yield fake
    for repo_id in fake.repos:
        shutil.rmtree(fake.storage(repo_id), ignore_errors=True)


_FIXTURE_CONFIG_PY = '''
from transformers import HubertConfig

class FixtureMERTConfig(HubertConfig):
    model_type = "mert_fixture"
'''

_FIXTURE_MODELING_PY = '''
from transformers import HubertModel
from transformers.modeling_outputs import BaseModelOutput
from .configuration_fixture import FixtureMERTConfig

class FixtureMERTModel(HubertModel):
    """Like MERT's remote code: calls the encoder directly, so transformers 5 returns no hidden_states."""
    config_class = FixtureMERTConfig

    def forward(self, input_values, attention_mask=None, output_hidden_states=None, **kwargs):
        features = self.feature_extractor(input_values).transpose(1, 2)
        hidden = self.feature_projection(features)
        out = self.encoder(hidden)
        return BaseModelOutput(last_hidden_state=out[0], hidden_states=getattr(out, "hidden_states", None))
'''


@pytest.fixture(scope="session")
def mert_like_dir(tmp_path_factory):
    """A HuBERT checkpoint with its own model code (auto_map), which like MERT's remote code under
    transformers 5 returns no hidden_states: (folder, reference HubertModel)."""
    import json

    import torch
    from transformers import HubertConfig, HubertModel

    path = tmp_path_factory.mktemp("mert-like")
    torch.manual_seed(1)
    config = HubertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                          conv_dim=(16,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2)
    reference = HubertModel(config).eval()
    reference.save_pretrained(path)
    cfg = json.loads((path / "config.json").read_text())
    cfg.update(model_type="mert_fixture", architectures=["FixtureMERTModel"],
               auto_map={"AutoConfig": "configuration_fixture.FixtureMERTConfig",
                         "AutoModel": "modeling_fixture.FixtureMERTModel"})
    (path / "config.json").write_text(json.dumps(cfg))
    (path / "configuration_fixture.py").write_text(_FIXTURE_CONFIG_PY)
    (path / "modeling_fixture.py").write_text(_FIXTURE_MODELING_PY)
    (path / "preprocessor_config.json").write_text(json.dumps({"sampling_rate": 24000, "do_normalize": False}))
    return path, reference

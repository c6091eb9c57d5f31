"""m2v_lab.models: registry facts, loading routes, layer capture, fingerprints, fast offline errors."""

import json
import time

import numpy as np
import pytest
import torch

import m2v_lab as m2v
from m2v_lab.models import REGISTRY, layer_names, num_frames


def test_registry_holds_the_five_m_a_p_models_with_model_card_facts():
    facts = {name: (s.hub_id, s.sample_rate, s.feature_rate, s.num_layers, s.hidden_size, s.context_seconds)
             for name, s in REGISTRY.items() if s.hub_id}
    assert facts == {
        "music2vec-v1": ("m-a-p/music2vec-v1", 16000, 50, 12, 768, 30.0),
        "MERT-v0": ("m-a-p/MERT-v0", 16000, 50, 12, 768, 5.0),
        "MERT-v0-public": ("m-a-p/MERT-v0-public", 16000, 50, 12, 768, 5.0),
        "MERT-v1-95M": ("m-a-p/MERT-v1-95M", 24000, 75, 12, 768, 5.0),
        "MERT-v1-330M": ("m-a-p/MERT-v1-330M", 24000, 75, 24, 1024, 5.0),
    }
    assert REGISTRY["music2vec-v1"].loader == "data2vec-audio"
    assert all(REGISTRY[n].loader == "remote-code" for n in facts if n.startswith("MERT"))


def test_layer_names_contract_pre_transformer_then_blocks(tiny):
    assert layer_names(12) == ("pre_transformer",) + tuple(f"block_{i}" for i in range(1, 13))
    assert tiny.layer_names == layer_names(12)
    assert len(tiny.layer_names) == tiny.num_layers + 1


@pytest.mark.parametrize("n", [399, 400, 719, 720, 16000, 80000, 480000])
def test_num_frames_formula_matches_the_conv_front_end(tiny, n):
    expected = 0 if n < 400 else (n - 400) // 320 + 1
    assert num_frames(n) == expected
    if n >= 400 and n <= 80000:
        assert tiny.layer_states(torch.zeros(1, n)).shape[2] == expected


def _reference_states(module, x):
    with torch.no_grad():
        return torch.stack(module(x, output_hidden_states=True).hidden_states)


@pytest.mark.parametrize("family,stable", [("data2vec", False), ("hubert", False), ("hubert", True)])
def test_hook_capture_equals_output_hidden_states(family, stable):
    from transformers import Data2VecAudioConfig, Data2VecAudioModel, HubertConfig, HubertModel

    torch.manual_seed(0)
    small = dict(hidden_size=32, num_hidden_layers=3, num_attention_heads=2, intermediate_size=64,
                 conv_dim=(16,) * 7, num_conv_pos_embedding_groups=2)
    if family == "data2vec":
        module = Data2VecAudioModel(Data2VecAudioConfig(**small))
    else:
        module = HubertModel(HubertConfig(**small, num_conv_pos_embeddings=16, do_stable_layer_norm=stable,
                                          feat_extract_norm="layer" if stable else "group"))
    spec = REGISTRY["tiny-music2vec"]
    model = m2v.LoadedModel(module, spec, source="test")
    x = torch.randn(2, 8000)
    ours = model.layer_states(x)
    assert ours.shape == (4, 2, num_frames(8000), 32)
    torch.testing.assert_close(ours, _reference_states(module.eval(), x), rtol=0, atol=0)


CONFIG_PY = '''
from transformers import HubertConfig

class FixtureMERTConfig(HubertConfig):
    model_type = "mert_fixture"
'''

MODELING_PY = '''
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


@pytest.fixture(scope="module")
def mert_like_dir(tmp_path_factory):
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
    (path / "configuration_fixture.py").write_text(CONFIG_PY)
    (path / "modeling_fixture.py").write_text(MODELING_PY)
    (path / "preprocessor_config.json").write_text(json.dumps({"sampling_rate": 24000, "do_normalize": False}))
    return path, reference


def test_remote_code_model_is_refused_without_trust_remote_code(mert_like_dir):
    with pytest.raises(m2v.ModelError, match="trust_remote_code=True"):
        m2v.load_model(mert_like_dir[0])
    with pytest.raises(m2v.ModelError, match="trust_remote_code=True"):
        m2v.load_model("m-a-p/MERT-v1-95M")


def test_remote_code_model_that_drops_hidden_states_still_gives_every_layer(mert_like_dir):
    path, reference = mert_like_dir
    model = m2v.load_model(path, trust_remote_code=True)
    x = torch.randn(1, 12000)
    with torch.no_grad():
        assert model.module(x, output_hidden_states=True).hidden_states is None  # the failure hooks fix
    torch.testing.assert_close(model.layer_states(x), _reference_states(reference, x), rtol=0, atol=1e-6)
    assert model.sample_rate == 24000 and model.do_normalize is False
    assert model.facts["sample_rate"] == "preprocessor_config.json"


def test_music2vec_config_with_float_vocab_size_loads(music2vec_dir):
    raw = json.loads((music2vec_dir / "config.json").read_text())
    assert isinstance(raw["vocab_size"], float)
    model = m2v.load_model(music2vec_dir)
    assert type(model.module).__name__ == "Data2VecAudioModel"
    assert (model.num_layers, model.hidden_size, model.sample_rate) == (12, 768, 16000)
    assert model.context_seconds == 30.0


def test_unknown_hub_id_fails_fast_naming_the_cache_and_the_offline_model():
    start = time.perf_counter()
    with pytest.raises(m2v.ModelError) as err:
        m2v.load_model("m-a-p/music2vec-v1")
    assert time.perf_counter() - start < 5
    from huggingface_hub import constants

    message = str(err.value)
    assert constants.HF_HUB_CACHE in message and "tiny-music2vec" in message and "HF_HUB_OFFLINE" in message


def test_unreachable_hub_without_offline_flag_fails_in_seconds(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    for proxy in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(proxy, raising=False)
    monkeypatch.setattr("m2v_lab.models._hub_address", lambda: ("127.0.0.1.invalid", 443))
    start = time.perf_counter()
    with pytest.raises(m2v.ModelError, match="cannot be reached"):
        m2v.load_model("someone/some-model")
    assert time.perf_counter() - start < 8


def test_typo_that_is_neither_path_nor_hub_id_lists_known_models():
    with pytest.raises(m2v.ModelError, match="music2vec-v1"):
        m2v.load_model("musik2vec")


def test_fingerprint_is_stable_across_loads_and_changes_with_weights(tiny, tmp_path):
    again = m2v.load_model("tiny-music2vec")
    assert again.fingerprint == tiny.fingerprint
    tiny.module.save_pretrained(tmp_path)
    assert m2v.load_model(tmp_path).fingerprint == tiny.fingerprint
    with torch.no_grad():
        next(again.module.parameters()).add_(1e-3)  # in place: no reload, no reset
    assert again.fingerprint != tiny.fingerprint


def test_folder_without_weights_raises_model_error_and_the_fallback_still_works(tiny, tmp_path, capsys):
    tiny.module.config.save_pretrained(tmp_path)
    with pytest.raises(m2v.ModelError, match=r"loading the model .* failed.*model.safetensors"):
        m2v.load_model(tmp_path)
    with pytest.warns(UserWarning):
        assert m2v.load_model_with_fallback(str(tmp_path)).name == "tiny-music2vec"


def test_half_precision_is_refused_on_cpu():
    with pytest.raises(m2v.ModelError, match="GPUs only"):
        m2v.load_model("tiny-music2vec", device="cpu", dtype="bfloat16")


def test_random_twin_has_same_architecture_new_weights_and_says_untrained(tiny):
    twin = m2v.random_twin(tiny, seed=3)
    assert twin.layer_names == tiny.layer_names and not twin.trained
    assert "random init" in twin.name and twin.fingerprint != tiny.fingerprint
    x = torch.randn(1, 4000)
    assert not torch.allclose(twin.layer_states(x), tiny.layer_states(x))


def test_tiny_models_are_deterministic_and_labelled_untrained(tiny):
    assert not tiny.trained and "UNTRAINED" in repr(tiny)
    assert np.isclose(tiny.spec.feature_rate, 50)


def test_fallback_loads_the_offline_model_loudly(capsys, monkeypatch):
    monkeypatch.setenv("M2V_LAB_MODEL", "m-a-p/music2vec-v1")
    with pytest.warns(UserWarning, match="tiny-music2vec"):
        model = m2v.load_model_with_fallback()
    assert model.name == "tiny-music2vec"
    assert "FALLING BACK" in capsys.readouterr().out


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_states_match_cpu_within_fp_tolerance(tiny):
    x = torch.randn(2, 16000)
    cpu = tiny.layer_states(x)
    gpu = m2v.load_model("tiny-music2vec", device="cuda").layer_states(x).cpu()
    torch.testing.assert_close(gpu, cpu, rtol=1e-3, atol=1e-3)

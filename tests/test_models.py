"""m2v_lab.models: registry facts, loading routes, layer capture, fingerprints, fast offline errors."""

import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import m2v_lab as m2v
from m2v_lab.models import REGISTRY, layer_names, num_frames

# tiny forwards on a busy 2-core machine: thread wake-ups cost 100x the work
pytestmark = pytest.mark.usefixtures("one_torch_thread")


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
    assert all(REGISTRY[n].loader == "hubert-native" for n in facts if n.startswith("MERT"))


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
    """``hidden_states`` as the model cards' transformers 4.x returned them: in pre-LN encoders the last
    entry is after the encoder's final LayerNorm (transformers 5 returns it before)."""
    with torch.no_grad():
        out = module(x, output_hidden_states=True)
        states = list(out.hidden_states)
        if getattr(module.config, "do_stable_layer_norm", False):
            states[-1] = module.encoder.layer_norm(states[-1])
        torch.testing.assert_close(states[-1], out.last_hidden_state, rtol=0, atol=0)
        return torch.stack(states)


@pytest.mark.parametrize("family,stable", [("data2vec", False), ("hubert", False), ("hubert", True)])
def test_hook_capture_equals_the_model_cards_hidden_states_post_and_pre_ln(family, stable):
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


def test_remote_code_model_is_refused_without_trust_remote_code(mert_like_dir):
    with pytest.raises(m2v.ModelError, match="trust_remote_code=True"):
        m2v.load_model(mert_like_dir[0])


def test_remote_code_model_that_drops_hidden_states_still_gives_every_layer(mert_like_dir):
    path, reference = mert_like_dir
    model = m2v.load_model(path, trust_remote_code=True)
    assert model.loader == "remote-code"
    x = torch.randn(1, 12000)
    with torch.no_grad():
        assert model.module(x, output_hidden_states=True).hidden_states is None  # the failure hooks fix
    torch.testing.assert_close(model.layer_states(x), _reference_states(reference, x), rtol=0, atol=1e-6)
    assert model.sample_rate == 24000 and model.do_normalize is False
    assert model.facts["sample_rate"] == "preprocessor_config.json"


def test_music2vec_config_with_float_vocab_size_loads_with_a_note(music2vec_dir):
    raw = json.loads((music2vec_dir / "config.json").read_text())
    assert isinstance(raw["vocab_size"], float)
    model = m2v.load_model(music2vec_dir)
    assert type(model.module).__name__ == "Data2VecAudioModel"
    assert (model.num_layers, model.hidden_size, model.sample_rate) == (12, 768, 16000)
    assert model.context_seconds == 30.0
    assert "32.0" in model.facts["vocab_size"] and "\n" not in model.facts["vocab_size"]


@pytest.fixture(scope="module")
def small_data2vec_dir(tmp_path_factory):
    from transformers import Data2VecAudioConfig, Data2VecAudioModel

    path = tmp_path_factory.mktemp("small-data2vec")
    torch.manual_seed(2)
    Data2VecAudioModel(Data2VecAudioConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, conv_dim=(16,) * 7,
        num_conv_pos_embedding_groups=2)).save_pretrained(path)
    return path


@pytest.mark.parametrize("vocab_size", ["/data/music2vec/dict.km.txt", 32.5, 32.0, None, "missing"])
def test_any_non_integer_vocab_size_loads_with_a_one_line_note(small_data2vec_dir, tmp_path, vocab_size):
    import shutil

    folder = tmp_path / "edited"
    shutil.copytree(small_data2vec_dir, folder)
    config = json.loads((folder / "config.json").read_text())
    if vocab_size == "missing":
        del config["vocab_size"]
    else:
        config["vocab_size"] = vocab_size
    (folder / "config.json").write_text(json.dumps(config))
    model = m2v.load_model(folder)
    note = model.facts["vocab_size"]
    assert "\n" not in note and "vocab_size" in note
    assert (repr(vocab_size) if vocab_size != "missing" else "no vocab_size") in note
    assert model.module.config.vocab_size == 32  # the class default, or the whole float's integer
    assert model.fingerprint and model.layer_states(torch.zeros(1, 800)).shape == (3, 1, 2, 32)


def test_unknown_hub_id_fails_fast_naming_the_cache_and_the_offline_model():
    start = time.perf_counter()
    with pytest.raises(m2v.ModelError) as err:
        m2v.load_model("m-a-p/music2vec-v1")
    assert time.perf_counter() - start < 5
    from huggingface_hub import constants

    message = str(err.value)
    assert constants.HF_HUB_CACHE in message and "music2vec-mini" in message and "HF_HUB_OFFLINE" in message


def test_unreachable_hub_without_offline_flag_fails_in_seconds(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    for proxy in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(proxy, raising=False)
    monkeypatch.setattr("m2v_lab.models.hub.hub_address", lambda: ("127.0.0.1.invalid", 443))
    start = time.perf_counter()
    with pytest.raises(m2v.ModelError, match="cannot be reached"):
        m2v.load_model("someone/some-model")
    assert time.perf_counter() - start < 8


def test_typo_that_is_neither_path_nor_hub_id_lists_known_models():
    with pytest.raises(m2v.ModelError, match="music2vec-v1"):
        m2v.load_model("musik2vec")


def test_malformed_hub_id_raises_model_error_naming_it():
    with pytest.raises(m2v.ModelError, match="'m-a-p/music 2vec' is neither a local directory nor a valid hub id"):
        m2v.load_model("m-a-p/music 2vec")


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
    assert m2v.load_model_with_fallback(str(tmp_path)).name == "music2vec-mini"
    assert "Using 'music2vec-mini' instead" in capsys.readouterr().out


def test_half_precision_is_refused_on_cpu():
    with pytest.raises(m2v.OptionError, match="GPUs only"):
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
    model = m2v.load_model_with_fallback()
    assert model.name == "music2vec-mini" and model.trained
    banner = capsys.readouterr().out
    assert "cannot load 'm-a-p/music2vec-v1'" in banner and "music2vec-mini" in banner and "pre-trained" in banner
    untrained = m2v.load_model_with_fallback(fallback="tiny-music2vec")
    assert not untrained.trained and "UNTRAINED" in capsys.readouterr().out
    assert len(banner.splitlines()) == 2 and "/" + "tmp" not in banner and str(Path.home()) not in banner
    assert "hf download" in model.facts["fallback"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_states_match_cpu_within_fp_tolerance(tiny):
    x = torch.randn(2, 16000)
    cpu = tiny.layer_states(x)
    gpu = m2v.load_model("tiny-music2vec", device="cuda").layer_states(x).cpu()
    torch.testing.assert_close(gpu, cpu, rtol=1e-3, atol=1e-3)


def test_tiny_mert_block_L_is_the_final_layer_norm_of_the_last_block_as_last_hidden_state(tiny_mert):
    module = tiny_mert.module
    x = torch.randn(1, 12000)
    states = tiny_mert.layer_states(x)
    raw = tiny_mert.layer_states(x, final_layer_norm=False)
    with torch.no_grad():
        out = module(x, output_hidden_states=True)
        normed = module.encoder.layer_norm(raw[-1].clone())
    torch.testing.assert_close(states[-1], normed, rtol=0, atol=0)
    torch.testing.assert_close(states[-1], out.last_hidden_state, rtol=0, atol=0)
    torch.testing.assert_close(raw, torch.stack(out.hidden_states), rtol=0, atol=0)  # transformers 5's view


def test_post_ln_block_L_is_the_last_blocks_output_whatever_final_layer_norm_says(tiny):
    x = torch.randn(1, 8000)
    with torch.no_grad():
        out = tiny.module(x, output_hidden_states=True)
    torch.testing.assert_close(tiny.layer_states(x), torch.stack(out.hidden_states), rtol=0, atol=0)
    torch.testing.assert_close(tiny.layer_states(x, final_layer_norm=False), tiny.layer_states(x), rtol=0, atol=0)


def test_layer_states_run_in_eval_mode_even_after_the_module_was_put_in_train_mode():
    from transformers import HubertConfig, HubertModel

    torch.manual_seed(3)
    config = HubertConfig(hidden_size=32, num_hidden_layers=3, num_attention_heads=2, intermediate_size=64,
                          conv_dim=(16,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2,
                          layerdrop=1.0, hidden_dropout=0.5)  # train mode would skip every block
    model = m2v.LoadedModel(HubertModel(config), REGISTRY["tiny-mert"], source="test")
    x = torch.randn(1, 8000)
    expected = model.layer_states(x)
    model.module.train()
    torch.testing.assert_close(model.layer_states(x), expected, rtol=0, atol=0)
    assert not model.module.training


@pytest.fixture
def restore_fp32_precision():
    knobs = (torch.backends.cuda.matmul, torch.backends.cudnn.conv, torch.backends.cudnn.rnn,
             torch.backends.mkldnn.matmul, torch.backends.mkldnn.conv, torch.backends.mkldnn.rnn)
    saved = [k.fp32_precision for k in knobs]
    yield
    for knob, value in zip(knobs, saved):
        knob.fp32_precision = value


def _precision_settings():
    def read(get):
        try:
            return get()
        except RuntimeError:  # torch raises when the legacy view is ambiguous (APIs mixed)
            return "unreadable"
    b = torch.backends
    return {"matmul allow_tf32": read(lambda: b.cuda.matmul.allow_tf32),
            "cudnn allow_tf32": read(lambda: b.cudnn.allow_tf32),
            "float32_matmul_precision": read(torch.get_float32_matmul_precision),
            "cuda matmul": b.cuda.matmul.fp32_precision, "cudnn conv": b.cudnn.conv.fp32_precision,
            "cudnn rnn": b.cudnn.rnn.fp32_precision, "mkldnn matmul": b.mkldnn.matmul.fp32_precision}


@pytest.mark.parametrize("user_setting", ["defaults", "legacy high", "new api tf32"])
def test_no_tf32_turns_tf32_off_on_cuda_and_restores_every_setting(restore_fp32_precision, user_setting):
    from m2v_lab.devices import no_tf32

    if user_setting == "legacy high":
        torch.set_float32_matmul_precision("high")
        torch.backends.cudnn.allow_tf32 = True
    elif user_setting == "new api tf32":
        torch.backends.cuda.matmul.fp32_precision = "tf32"
        torch.backends.cudnn.conv.fp32_precision = "tf32"
    before = _precision_settings()
    with no_tf32(torch.device("cuda")):
        inside = _precision_settings()
        assert (inside["cuda matmul"], inside["cudnn conv"], inside["cudnn rnn"]) == ("ieee",) * 3
        assert inside["matmul allow_tf32"] in (False, "unreadable")
        assert inside["cudnn allow_tf32"] in (False, "unreadable")
    assert _precision_settings() == before
    with pytest.raises(ZeroDivisionError), no_tf32(torch.device("cuda")):
        1 / 0
    assert _precision_settings() == before
    with no_tf32(torch.device("cpu")):
        assert _precision_settings() == before


def test_layer_states_run_the_forward_inside_no_tf32(tiny, monkeypatch):
    from contextlib import contextmanager

    import m2v_lab.models.encoder as encoder

    entered, forward_inside = [], []

    @contextmanager
    def spy(device):
        entered.append(device)
        yield
        entered.append("exited")

    monkeypatch.setattr(encoder, "no_tf32", spy)
    handle = tiny.module.register_forward_pre_hook(lambda *_: forward_inside.append(entered == [tiny.device]))
    try:
        tiny.layer_states(torch.zeros(1, 4000))
    finally:
        handle.remove()
    assert forward_inside == [True] and entered == [tiny.device, "exited"]


def test_tiny_model_and_random_twin_saved_with_save_pretrained_load_back_untrained(tiny, tmp_path):
    tiny.module.save_pretrained(tmp_path / "tiny")
    again = m2v.load_model(tmp_path / "tiny")
    assert not again.trained and "UNTRAINED" in repr(again) and "m2v_lab_trained" in again.facts["trained"]
    assert again.fingerprint == tiny.fingerprint
    twin = m2v.random_twin(tiny, seed=1)
    twin.module.save_pretrained(tmp_path / "twin")
    assert not m2v.load_model(tmp_path / "twin").trained
    assert getattr(tiny.module.config, "m2v_lab_trained") is False  # the twin's label is its own copy


def test_trained_marker_is_a_label_not_part_of_the_fingerprint(tiny, tmp_path):
    tiny.module.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config.pop("m2v_lab_trained") is False
    (tmp_path / "config.json").write_text(json.dumps(config))
    unlabelled = m2v.load_model(tmp_path)
    assert unlabelled.trained and unlabelled.fingerprint == tiny.fingerprint


def test_repeated_fingerprint_reads_do_not_walk_the_state_dict(monkeypatch):
    model = m2v.load_model("tiny-music2vec")
    first = model.fingerprint
    calls = []
    original = type(model.module).state_dict
    monkeypatch.setattr(type(model.module), "state_dict",
                        lambda self, *a, **k: calls.append(1) or original(self, *a, **k))
    assert all(model.fingerprint == first for _ in range(20)) and calls == []


def test_fingerprint_follows_replaced_parameters_submodules_and_casts():
    import copy

    model = m2v.load_model("tiny-music2vec")
    seen = {model.fingerprint}
    proj = model.module.feature_projection.projection
    proj.weight = torch.nn.Parameter(proj.weight.detach() + 1e-3)  # a new tensor in the same slot
    seen.add(model.fingerprint)
    layer = copy.deepcopy(model.module.encoder.layers[0])
    with torch.no_grad():
        layer.final_layer_norm.bias.add_(1e-3)
    model.module.encoder.layers[0] = layer  # a new submodule
    seen.add(model.fingerprint)
    model.module.encoder.layer_norm.register_buffer("extra", torch.zeros(1))  # a new slot
    seen.add(model.fingerprint)
    model.module.double()  # a cast, same objects
    seen.add(model.fingerprint)
    assert len(seen) == 5


def test_describe_says_how_the_model_was_loaded(tiny, tmp_path):
    assert tiny.describe()["loader"] == "tiny"
    assert m2v.random_twin(tiny).describe()["loader"] == "tiny"
    tiny.module.save_pretrained(tmp_path)
    assert m2v.load_model(tmp_path).describe()["loader"] == "local"

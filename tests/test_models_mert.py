"""MERT checkpoints load as transformers' HubertModel, with no code from the hub, and give MERT's numbers."""

import json
import shutil

import pytest
import torch

import m2v_lab as m2v

# tiny forwards on a busy 2-core machine: thread wake-ups cost 100x the work
pytestmark = pytest.mark.usefixtures("one_torch_thread")

NATIVE = "hubert-native (MERT config mapped)"


def card_states(module, x):
    """The model card's ``hidden_states`` as transformers 4.x returned them, computed explicitly: in a
    pre-LN encoder the last entry is after the encoder's final LayerNorm (= last_hidden_state)."""
    with torch.no_grad():
        out = module.eval()(x, output_hidden_states=True)
        states = list(out.hidden_states)
        if module.config.do_stable_layer_norm:
            states[-1] = module.encoder.layer_norm(states[-1])
        torch.testing.assert_close(states[-1], out.last_hidden_state, rtol=0, atol=0)
        return torch.stack(states)


@pytest.mark.parametrize("style", ["95M", "330M"])
@pytest.mark.parametrize("weights", ["bin", "safetensors"])
def test_mert_checkpoint_loads_as_hubert_without_remote_code_and_gives_identical_states(mert_checkpoint, style,
                                                                                     weights):
    folder, reference = mert_checkpoint(style, weights)
    model = m2v.load_model(folder)  # no trust_remote_code; the folder's MERT code stubs raise if imported
    assert type(model.module).__name__ == "HubertModel" and model.code_digest is None
    assert model.loader == NATIVE and model.describe()["loader"] == NATIVE
    assert (model.sample_rate, model.do_normalize, model.num_layers) == (24000, False, 2)
    x = torch.randn(2, 9600)
    states = model.layer_states(x)
    assert (states - card_states(reference, x)).abs().max().item() == 0.0


@pytest.mark.parametrize("weights", ["bin", "safetensors"])
def test_legacy_weight_norm_names_load_into_the_positional_convolution(mert_checkpoint, weights):
    folder, _ = mert_checkpoint("95M", weights)
    if weights == "bin":
        saved = torch.load(folder / "pytorch_model.bin", weights_only=True)
    else:
        from safetensors.torch import load_file
        saved = load_file(str(folder / "model.safetensors"))
    assert "encoder.pos_conv_embed.conv.weight_g" in saved  # the published naming
    conv = m2v.load_model(folder).module.encoder.pos_conv_embed.conv.parametrizations.weight
    assert torch.equal(conv.original0, saved["encoder.pos_conv_embed.conv.weight_g"])
    assert torch.equal(conv.original1, saved["encoder.pos_conv_embed.conv.weight_v"])


def test_pre_ln_mert_block_L_is_after_the_final_layer_norm_and_the_raw_state_stays_reachable(mert_checkpoint):
    folder, reference = mert_checkpoint("330M")
    model = m2v.load_model(folder)
    assert json.loads((folder / "config.json").read_text())["attention_relax"] == 32.0  # unused by pre-LN
    x = torch.randn(1, 12000)
    states = model.layer_states(x)
    raw = model.layer_states(x, final_layer_norm=False)
    with torch.no_grad():
        out = reference(x, output_hidden_states=True)
        normed = reference.encoder.layer_norm(raw[-1].clone())
    torch.testing.assert_close(states[-1], out.last_hidden_state, rtol=0, atol=0)
    torch.testing.assert_close(states[-1], normed, rtol=0, atol=0)
    torch.testing.assert_close(raw[-1], out.hidden_states[-1], rtol=0, atol=0)  # transformers 5's entry
    torch.testing.assert_close(raw[:-1], states[:-1], rtol=0, atol=0)


@pytest.mark.parametrize("edit,reason", [
    ({"feature_extractor_cqt": True}, "feature_extractor_cqt"),
    ({"deepnorm": True}, "deepnorm"),
    ({"attention_relax": 32.0}, "attention_relax"),
    ({"some_new_switch": 1}, "some_new_switch"),
])
def test_mert_configs_that_need_merts_code_are_refused_without_trust_remote_code(mert_checkpoint, edit, reason):
    folder, _ = mert_checkpoint("95M", **edit)
    with pytest.raises(m2v.ModelError, match=rf"(?s){reason}.*trust_remote_code=True"):
        m2v.load_model(folder)


def test_mert_config_that_needs_merts_code_runs_that_code_when_trusted(mert_checkpoint, tmp_path):
    source, reference = mert_checkpoint("95M", deepnorm=True)
    folder = tmp_path / "mert-deepnorm"
    shutil.copytree(source, folder)
    # stand-in for MERT's code (which cannot run here): HuBERT under MERT's class names
    (folder / "configuration_MERT.py").write_text(
        "from transformers import HubertConfig\n\nclass MERTConfig(HubertConfig):\n    model_type = 'mert_model'\n")
    (folder / "modeling_MERT.py").write_text(
        "from transformers import HubertModel\nfrom .configuration_MERT import MERTConfig\n\n"
        "class MERTModel(HubertModel):\n    config_class = MERTConfig\n")
    model = m2v.load_model(folder, trust_remote_code=True)
    assert model.loader == "remote-code" and type(model.module).__name__ == "MERTModel"
    assert model.code_digest is not None
    x = torch.randn(1, 8000)
    torch.testing.assert_close(model.layer_states(x), card_states(reference, x), rtol=0, atol=1e-6)


@pytest.mark.parametrize("change", ["missing", "unexpected"])
def test_mert_weights_that_do_not_fit_the_config_raise_naming_the_keys(mert_checkpoint, tmp_path, change):
    source, _ = mert_checkpoint("95M")
    folder = tmp_path / "broken"
    shutil.copytree(source, folder)
    state = torch.load(folder / "pytorch_model.bin", weights_only=True)
    if change == "missing":
        del state["encoder.pos_conv_embed.conv.weight_g"]
        key = "encoder.pos_conv_embed.conv.parametrizations.weight.original0"
    else:
        key = "encoder.extra_head.weight"
        state[key] = torch.zeros(3)
    torch.save(state, folder / "pytorch_model.bin")
    with pytest.raises(m2v.ModelError, match=rf"{change}: \['{key}'\]"):
        m2v.load_model(folder)

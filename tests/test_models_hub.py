"""Models from the hub: one fingerprint however the files were obtained, refusals before downloads."""

import pytest
import torch

import m2v_lab as m2v

# tiny forwards on a busy 2-core machine: thread wake-ups cost 100x the work
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _downloaded(fake_hub, repo):
    return [name for r, name in fake_hub.requests if r == repo]


def test_refusal_to_run_merts_code_happens_after_config_json_before_any_weights(fake_hub, mert_checkpoint):
    folder, _ = mert_checkpoint("95M", feature_extractor_cqt=True)
    fake_hub.publish("m-a-p/mert-cqt", folder)
    with pytest.raises(m2v.ModelError, match="feature_extractor_cqt.*trust_remote_code=True"):
        m2v.load_model("m-a-p/mert-cqt")
    assert _downloaded(fake_hub, "m-a-p/mert-cqt") == ["config.json"]


def test_published_mert_from_the_hub_loads_natively_without_fetching_code(fake_hub, mert_checkpoint):
    folder, reference = mert_checkpoint("330M")
    commit = fake_hub.publish("m-a-p/MERT-v1-330M", folder)
    model = m2v.load_model("MERT-v1-330M")  # the registry alias, no trust_remote_code
    assert model.loader == "hubert-native (MERT config mapped)" and model.revision == commit
    files = _downloaded(fake_hub, "m-a-p/MERT-v1-330M")
    assert not [f for f in files if f.endswith(".py")] and "pytorch_model.bin" in files
    x = torch.randn(1, 9600)
    with torch.no_grad():
        expected = reference(x).last_hidden_state
    assert (model.layer_states(x)[-1] - expected).abs().max().item() == 0.0


@pytest.mark.parametrize("kind", ["remote-code", "hubert-native"])
def test_fingerprint_is_the_same_on_first_download_cached_load_and_from_the_snapshot(fake_hub, kind, request,
                                                                                     mert_checkpoint):
    folder = request.getfixturevalue("mert_like_dir")[0] if kind == "remote-code" else mert_checkpoint("95M")[0]
    repo = f"someone/{kind}"
    commit = fake_hub.publish(repo, folder)
    trust = dict(trust_remote_code=True) if kind == "remote-code" else {}
    first = m2v.load_model(repo, **trust)
    downloads = len(fake_hub.requests)
    second = m2v.load_model(repo, **trust)
    assert len(fake_hub.requests) == downloads  # the second load reads the cache only
    snapshot = fake_hub.storage(repo) / "snapshots" / commit
    third = m2v.load_model(snapshot, **trust)
    assert first.fingerprint == second.fingerprint == third.fingerprint
    assert first.revision == second.revision == third.revision == commit
    assert (first.code_digest is None) == (kind == "hubert-native")
    if kind == "remote-code":
        assert {"configuration_fixture.py", "modeling_fixture.py"} <= set(_downloaded(fake_hub, repo))


def test_a_model_refused_once_downloads_the_rest_when_trusted(fake_hub, request):
    folder, _ = request.getfixturevalue("mert_like_dir")
    fake_hub.publish("someone/custom", folder)
    with pytest.raises(m2v.ModelError, match="trust_remote_code=True"):
        m2v.load_model("someone/custom")
    model = m2v.load_model("someone/custom", trust_remote_code=True)  # config.json cached, the rest is not
    assert model.loader == "remote-code" and "model.safetensors" in _downloaded(fake_hub, "someone/custom")


def test_offline_with_only_the_config_cached_names_the_missing_weights(fake_hub, mert_checkpoint, monkeypatch):
    folder, _ = mert_checkpoint("95M", deepnorm=True)
    fake_hub.publish("someone/partial", folder)
    with pytest.raises(m2v.ModelError, match="trust_remote_code"):
        m2v.load_model("someone/partial")  # leaves config.json in the cache
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(m2v.ModelError, match=r"model.safetensors or pytorch_model.bin is not in the local cache.*"
                                             r"HF_HUB_OFFLINE"):
        m2v.load_model("someone/partial", trust_remote_code=True)


def test_music2vec_from_the_hub_loads_as_data2vec_audio(fake_hub, tiny, tmp_path):
    tiny.module.save_pretrained(tmp_path)
    fake_hub.publish("m-a-p/music2vec-v1", tmp_path)
    model = m2v.load_model("music2vec")
    assert model.loader == "data2vec-audio" and model.describe()["loader"] == "data2vec-audio"
    assert model.name == "music2vec-v1" and model.fingerprint != tiny.fingerprint  # revision is part of it

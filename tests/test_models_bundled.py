"""The bundled, trained offline model (data/models/music2vec-mini): registry contract and loading."""

import shutil

import pytest

import m2v_lab as m2v
from m2v_lab.models import registry


def test_missing_bundled_model_says_where_it_belongs_and_how_to_get_it(monkeypatch, tmp_path):
    monkeypatch.setattr(registry, "BUNDLED_DIR", tmp_path)
    with pytest.raises(m2v.ModelError, match=r"data/models/music2vec-mini.*git"):
        m2v.load_model("music2vec-mini")


def test_a_bundled_folder_loads_offline_as_the_registry_model_without_local_paths(monkeypatch, tmp_path):
    tiny = m2v.load_model("tiny-music2vec")
    folder = tmp_path / "music2vec-mini"
    tiny.module.save_pretrained(folder)
    config = (folder / "config.json").read_text().replace('"m2v_lab_trained": false', '"m2v_lab_trained": true')
    (folder / "config.json").write_text(config)
    monkeypatch.setattr(registry, "BUNDLED_DIR", tmp_path)
    model = m2v.load_model("music2vec-mini")
    assert model.name == "music2vec-mini" and model.trained and model.loader == "bundled"
    assert model.source == "data/models/music2vec-mini" and str(tmp_path) not in repr(model)
    # same weights in another place: same fingerprint (nothing about the folder's location enters it)
    shutil.copytree(folder, tmp_path / "copy" / "music2vec-mini")
    monkeypatch.setattr(registry, "BUNDLED_DIR", tmp_path / "copy")
    assert m2v.load_model("music2vec-mini").fingerprint == model.fingerprint

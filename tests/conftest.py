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

"""The GPU check: same numbers on CUDA as on the CPU, and what half precision buys.

Run it on a machine with a CUDA GPU (one prepared script, a few minutes):

    python benchmarks/gpu_check.py

Prints, for a music2vec-v1-architecture model (random init): max |CUDA fp32 − CPU fp32| over all 13
layers' frames, the same for fp16 and bf16 relative to the CPU, and CUDA time per clip for fp32 / fp16 / bf16
side by side; then debiased CKA and the ridge path on CUDA against the CPU.  Exits with status 2 when no
CUDA GPU is present, 1 when a tolerance is exceeded.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

TOLERANCE = {"float32": 1e-3, "float16": 0.2, "bfloat16": 0.5}  # max abs difference of raw states


def main() -> int:
    if not torch.cuda.is_available():
        print("no CUDA GPU: nothing to check")
        return 2
    import m2v_lab as m2v
    from transformers import Data2VecAudioConfig, Data2VecAudioModel

    print("GPU:", torch.cuda.get_device_name(0), "· torch", torch.__version__)
    rng = np.random.default_rng(0)
    clips = [(0.1 * rng.standard_normal(16000 * 10).astype(np.float32), 16000) for _ in range(8)]
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(0)
        Data2VecAudioModel(Data2VecAudioConfig()).save_pretrained(tmp)
        cpu = m2v.load_model(tmp, device="cpu")
        reference = m2v.extract(cpu, clips, pool=None, progress=False)
        times = {}
        for dtype in ("float32", "float16", "bfloat16"):
            gpu = m2v.load_model(tmp, device="cuda", dtype=dtype)
            m2v.extract(gpu, clips[:2], progress=False)  # warm-up
            torch.cuda.synchronize()
            start = time.perf_counter()
            feats = m2v.extract(gpu, clips, pool=None, batch_size=8, progress=False)
            torch.cuda.synchronize()
            times[dtype] = (time.perf_counter() - start) / len(clips)
            diff = max(float(np.abs(feats.frames(i) - reference.frames(i)).max()) for i in range(len(clips)))
            ok = diff <= TOLERANCE[dtype]
            failures += not ok
            print(f"{dtype:>9}: max |cuda - cpu fp32| = {diff:.2e} (tolerance {TOLERANCE[dtype]:g}) "
                  f"{'ok' if ok else 'FAIL'} · {1000 * times[dtype]:.1f} ms per 10 s clip")
        print(f"speed-up over CUDA fp32: fp16 {times['float32'] / times['float16']:.2f}x, "
              f"bf16 {times['float32'] / times['bfloat16']:.2f}x")

        from m2v_lab.similarity import layer_similarity
        frames = np.concatenate([reference.frames(i) for i in range(len(clips))], axis=1)  # (13, ~4000, 768)
        cka_cpu = layer_similarity(frames).values
        cka_gpu = layer_similarity(frames, device="cuda").values
        d = float(np.nanmax(np.abs(cka_cpu - cka_gpu)))
        failures += d > 1e-6
        print(f"debiased CKA cuda vs cpu: max |diff| = {d:.2e} {'ok' if d <= 1e-6 else 'FAIL'}")

        from m2v_lab.probing import ridge_path
        X = rng.standard_normal((300, 64))
        y = rng.standard_normal((300, 3))
        a = ridge_path(X[:200], y[:200], X[200:], alphas=[0.1, 1, 10], device="cpu").predictions
        b = ridge_path(X[:200], y[:200], X[200:], alphas=[0.1, 1, 10], device="cuda").predictions
        d = float(np.abs(np.asarray(a) - np.asarray(b)).max())
        failures += d > 1e-6
        print(f"ridge path cuda vs cpu: max |diff| = {d:.2e} {'ok' if d <= 1e-6 else 'FAIL'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

"""Extraction overhead, cache speed-up and long-track memory, measured side by side in one run.

Model: music2vec-v1's exact architecture (Data2VecAudioConfig defaults: 12 x 768, conv 7 x 512),
random init, on the CPU.  Prints three figures:

(a) m2v_lab.extract wall time / a bare batched forward (output_hidden_states=True) on the same
    windows, already decoded and normalised — the goal is <= 1.10;
(b) a warm cache hit against the unavoidable work — hashing each audio file and loading its entry
    with safetensors — the goal is <= 8x (and recompute / hit, >= 50x);
(c) peak resident memory of extracting (pooled) a 1-minute and a 10-minute track in fresh
    processes, above the memory after loading the model — it must not grow with track length.

    python benchmarks/extract.py [--clips 8] [--seconds 10] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402
import torch  # noqa: E402


def music2vec_sized(dirpath: Path):
    from transformers import Data2VecAudioConfig, Data2VecAudioModel

    torch.manual_seed(0)
    Data2VecAudioModel(Data2VecAudioConfig()).save_pretrained(dirpath)
    return dirpath


def write_clips(folder: Path, n: int, seconds: float, rate: int = 44100) -> list[Path]:
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        t = np.arange(int(seconds * rate)) / rate
        x = 0.3 * np.sin(2 * np.pi * (110 * (i + 1)) * t) + 0.05 * rng.standard_normal(t.size)
        path = folder / f"clip{i}.flac"
        sf.write(path, x.astype(np.float32), rate)
        paths.append(path)
    return paths


def bare_forward(model, paths, batch_size):
    """What a careful user writes by hand: decode, normalise, one batched call with output_hidden_states."""
    import m2v_lab as m2v

    waves = [m2v.audio.normalize(m2v.audio.load(p, sample_rate=16000)) for p in paths]
    start = time.perf_counter()
    with torch.inference_mode():
        for i in range(0, len(waves), batch_size):
            x = torch.from_numpy(np.stack(waves[i:i + batch_size]))
            states = torch.stack(model.module(x, output_hidden_states=True).hidden_states)
            states.mean(dim=2)
    return time.perf_counter() - start


def bare_hash_and_load(paths, entries):
    """The unavoidable work of a cache hit: hash each audio file's bytes, load each entry."""
    import hashlib

    from safetensors.numpy import load_file

    start = time.perf_counter()
    for path, entry in zip(paths, entries):
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        h.hexdigest()
        load_file(str(entry))
    return time.perf_counter() - start


MEMORY_CHILD = r"""
import os, resource, sys, time
os.environ["HF_HUB_OFFLINE"] = "1"
sys.path.insert(0, sys.argv[1])
import numpy as np, torch, m2v_lab as m2v
torch.set_num_threads(int(sys.argv[4]))
model = m2v.load_model(sys.argv[2])
m2v.extract(model, [(np.random.default_rng(0).standard_normal(16000 * 30).astype(np.float32) * 0.1, 16000)] * 2,
            batch_size=2, progress=False)  # warm-up: one batch of two 30 s windows
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter()
feats = m2v.extract(model, [sys.argv[3]], batch_size=2, progress=False)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(base, peak, time.perf_counter() - t, feats.pooled.nbytes, len(feats.windows[0]))
"""


def write_track(path: Path, minutes: int, rate: int = 44100):
    rng = np.random.default_rng(1)
    with sf.SoundFile(path, "w", rate, 2, subtype="PCM_16") as f:
        for m in range(minutes):
            t = np.arange(60 * rate) / rate
            x = 0.3 * np.sin(2 * np.pi * (200 + 10 * m) * t) + 0.05 * rng.standard_normal(t.size)
            f.write(np.stack([x, x], axis=1).astype(np.float32))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-memory", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    import m2v_lab as m2v

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model_dir = music2vec_sized(tmp / "model")
        model = m2v.load_model(model_dir)
        paths = write_clips(tmp, args.clips, args.seconds)
        print(f"model: music2vec-v1 architecture, random init ({sum(p.numel() for p in model.module.parameters()) / 1e6:.0f}M "
              f"params), CPU, torch threads={args.threads}; {args.clips} clips x {args.seconds:g} s (44.1 kHz FLAC)")

        kw = dict(batch_size=args.batch_size, progress=False)
        m2v.extract(model, paths[:1], **kw)  # warm-up (first-call allocations)
        bare_times, ours_times = [], []
        for _ in range(args.repeats):  # interleaved, so drifts in machine load hit both
            bare_times.append(bare_forward(model, paths, args.batch_size))
            t = time.perf_counter()
            m2v.extract(model, paths, **kw)
            ours_times.append(time.perf_counter() - t)
        bare, ours = min(bare_times), min(ours_times)
        paired = sorted(o / b for o, b in zip(ours_times, bare_times))  # neighbours in time share the load
        print(f"(a) extract (decode+resample+normalise+hooks+pool) {ours:.2f} s vs bare batched forward "
              f"{bare:.2f} s (min of {args.repeats}): ratio of mins {ours / bare:.3f}, median of paired ratios "
              f"{paired[len(paired) // 2]:.3f}  [goal <= 1.10]")

        cache = tmp / "cache"
        t = time.perf_counter()
        m2v.extract(model, paths, cache_dir=cache, **kw)
        miss = time.perf_counter() - t
        entries = m2v.cache.FeatureCache(cache).entries()
        hits, bares = [], []
        for _ in range(max(args.repeats, 5)):
            m2v.audio._DIGESTS.clear()  # a fresh kernel's hit: the audio is hashed again
            t = time.perf_counter()
            feats = m2v.extract(model, paths, cache_dir=cache, **kw)
            hits.append(time.perf_counter() - t)
            assert feats.meta["cache_hits"] == len(paths)
            bares.append(bare_hash_and_load(paths, entries))
        hit, bare_hit = min(hits), min(bares)
        paired = sorted(h / b for h, b in zip(hits, bares))
        print(f"(b) cache hit {1000 * hit / len(paths):.2f} ms per clip vs bare sha256(file) + safetensors load "
              f"{1000 * bare_hit / len(paths):.2f} ms: ratio of mins {hit / bare_hit:.2f}, median of paired ratios "
              f"{paired[len(paired) // 2]:.2f}  [goal <= 8]; recompute / hit {miss / hit:.0f}x  [goal >= 50x]")

        serial = []
        threaded = []
        for _ in range(args.repeats):
            for workers, times in ((0, serial), (1, threaded)):
                t = time.perf_counter()
                m2v.extract(model, paths, decode_workers=workers, **kw)
                times.append(time.perf_counter() - t)
        paired = sorted(th / se for th, se in zip(threaded, serial))
        print(f"(d) decoding in a background thread {min(threaded):.2f} s vs in series {min(serial):.2f} s: "
              f"median of paired ratios {paired[len(paired) // 2]:.3f} (on a GPU the forward no longer waits for "
              "decoding; on a 2-core CPU both compete for the cores)")

        if args.skip_memory:
            return
        rows = []
        for minutes in (1, 10):
            track = tmp / f"track_{minutes}min.flac"
            write_track(track, minutes)
            out = subprocess.run([sys.executable, "-c", MEMORY_CHILD, str(ROOT), str(model_dir), str(track),
                                  str(args.threads)], capture_output=True, text=True, check=True).stdout.split()
            base, peak, seconds, nbytes, windows = int(out[0]), int(out[1]), float(out[2]), int(out[3]), int(out[4])
            rows.append((minutes, (peak - base) / 1024, seconds, nbytes, windows))
        for minutes, grow_mb, seconds, nbytes, windows in rows:
            print(f"(c) {minutes:>2}-minute stereo 44.1 kHz track, pooled mean, batch 2: {windows} windows in "
                  f"{seconds:.0f} s, peak RSS above the loaded+warmed model {grow_mb:.0f} MB "
                  f"(pooled output {nbytes / 1024:.0f} KB)")
        print(f"(c) 10-minute / 1-minute peak growth: {rows[1][1] - rows[0][1]:+.0f} MB "
              f"(a held 10-minute 16 kHz waveform alone would be {600 * 16000 * 4 / 2**20:.0f} MB, its frames "
              f"{13 * 29999 * 768 * 4 / 2**20:.0f} MB)")


if __name__ == "__main__":
    main()

"""Local vs Ray engine throughput of ``m2v-lab extract``, measured side by side in one run.

Writes ``--clips`` FLAC clips (44.1 kHz stereo, ``--seconds`` each), then alternates runs of the local
engine and the Ray engine (a local Ray instance over this machine's cores; ``--ray-address`` joins a
cluster), each into a fresh cache, end to end from FLAC: hashing, cache lookup, decoding, resampling to
16 kHz, windowing, the model, pooling and writing the entries.  Prints, per engine:

(a) end to end: wall time of the whole run (model loading and, for Ray, starting the pipeline and its
    actors included), clips/s and audio-seconds per second;
(b) fixed cost: the same run on a cache that already holds every clip (all hits: what remains is
    startup), and the marginal throughput, clips / (end-to-end − fixed);
(c) the model part: a bare batched forward on the same windows (decoded beforehand, batched as the
    engines batch them), and its share of the local engine's marginal time;
and Ray / local ratios of (a) and (b), and whether the two engines wrote the same bytes.

Model: ``--model-size full`` is music2vec-v1's architecture (Data2VecAudio defaults: 12 x 768, 95M
parameters, random init, no download); ``tiny`` is tiny-music2vec.  On the CPU the local engine's model
uses every core (torch's default threads) while the Ray engine splits them between decoding tasks and
the model actor (``--actor-cpus``), as it would on one machine.

    python benchmarks/extract_scale.py                                   # this machine's CPU
    python benchmarks/extract_scale.py --device cuda --dtype bfloat16 --model-size full \\
        --clips 64 --seconds 120 --batch-size 8 --actor-cpus 2          # a GPU machine (2-minute tracks)

Only a GPU run gives absolute figures worth quoting; CPU figures on a shared machine are ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402
import torch  # noqa: E402


def music2vec_sized(dirpath: Path) -> Path:
    from transformers import Data2VecAudioConfig, Data2VecAudioModel

    torch.manual_seed(0)
    Data2VecAudioModel(Data2VecAudioConfig()).save_pretrained(dirpath)
    return dirpath


def write_clips(folder: Path, n: int, seconds: float, rate: int = 44100) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        t = np.arange(int(seconds * rate)) / rate
        x = 0.3 * np.sin(2 * np.pi * (110 + 7 * i) * t) + 0.05 * rng.standard_normal(t.size)
        path = folder / f"clip{i:04d}.flac"
        sf.write(path, np.stack([x, 0.9 * x], axis=1).astype(np.float32), rate, subtype="PCM_16")
        paths.append(path)
    return paths


def entry_files(cache: Path) -> dict:
    return {p.relative_to(cache).as_posix(): p.read_bytes() for p in sorted(cache.rglob("*.safetensors"))}


def bare_model_seconds(job, sources, device: str) -> float:
    """The model alone on every clip's windows, batched as the engines batch them (one clip at a time, or
    equal-length windows of all clips together with --mix-clips)."""
    from m2v_lab.engines.common import load_job_model
    from m2v_lab.extract import decode_clip

    model, _, settings = load_job_model(job, device=device)
    batches = []
    groups = [[w for _, w in decode_clip(source, settings, model.min_samples)[:-1]] for source in sources]
    if job.mix_clips:
        groups = [[w for group in groups for w in group]]
    for waves in groups:
        by_length: dict[int, list] = {}
        for w in waves:
            by_length.setdefault(w.size, []).append(w)
        for same in by_length.values():
            for i in range(0, len(same), job.batch_size):
                batches.append(np.stack(same[i:i + job.batch_size]))
    sync = torch.cuda.synchronize if model.device.type == "cuda" else (lambda: None)
    model.layer_states(batches[0][:1])  # warm-up
    sync()
    start = time.perf_counter()
    for x in batches:
        states = model.layer_states(x)
        states.double().sum(dim=2) if model.device.type != "mps" else states.sum(dim=2)  # the pooling the engines do
    sync()
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--model-size", choices=("full", "tiny"), default="full")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", choices=("float32", "float16", "bfloat16"), default="float32")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="torch threads of both engines' models "
                        "(default: torch's own locally, --actor-cpus in the Ray actor)")
    parser.add_argument("--actors", type=int, default=None)
    parser.add_argument("--actor-cpus", type=float, default=1.0)
    parser.add_argument("--clips-per-call", type=int, default=2)
    parser.add_argument("--mix-clips", action="store_true", help="windows of different clips share batches "
                        "(m2v-lab extract --mix-clips)")
    parser.add_argument("--ray-address", default=None)
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = parser.parse_args()

    import ray

    from m2v_lab.engines import ExtractJob, read_sources, run_local, run_ray

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model_name = str(music2vec_sized(tmp / "model")) if args.model_size == "full" else "tiny-music2vec"
        write_clips(tmp / "audio", args.clips, args.seconds)
        sources = read_sources(tmp / "audio")
        audio_s = args.clips * args.seconds
        cpus = os.cpu_count()
        if args.ray_address:
            ray.init(address=args.ray_address, log_to_driver=False)
        else:
            ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
        gpu = args.device.startswith("cuda")
        name = torch.cuda.get_device_name(0) if gpu and torch.cuda.is_available() else f"CPU ({cpus} cores)"
        print(f"model: {'music2vec-v1 architecture, 95M params, random init' if args.model_size == 'full' else 'tiny-music2vec'}"
              f", {args.device} {args.dtype}, batch {args.batch_size}; {args.clips} clips x {args.seconds:g} s "
              f"(44.1 kHz stereo FLAC); device: {name}; Ray {ray.__version__}, actors {args.actors or 'auto'} x "
              f"{args.actor_cpus:g} CPU{' + 1 GPU' if gpu else ''}; threads local "
              f"{args.threads or torch.get_num_threads()}, ray actor {args.threads or max(1, int(args.actor_cpus))}")

        def job(cache):
            return ExtractJob(model=model_name, device=args.device, dtype=None if args.dtype == "float32" else args.dtype,
                              batch_size=args.batch_size, cache_dir=str(cache), threads=args.threads,
                              mix_clips=args.mix_clips, progress=False)

        def run(engine, cache):
            if engine == "local":
                return run_local(sources, job(cache))
            return run_ray(sources, job(cache), actors=args.actors, actor_cpus=args.actor_cpus,
                           clips_per_call=args.clips_per_call)

        run_local(sources[:1], job(tmp / "warm_local"))  # imports and first-call allocations, not timed
        run_ray(sources[:1], job(tmp / "warm_ray"), actors=args.actors, actor_cpus=args.actor_cpus)
        walls = {"local": [], "ray": []}
        fixed = {"local": [], "ray": []}
        for r in range(args.repeats):
            order = ("local", "ray") if r % 2 == 0 else ("ray", "local")  # interleaved: drifts hit both
            for engine in order:
                cache = tmp / f"cache_{engine}_{r}"
                summary = run(engine, cache)
                assert summary.computed == args.clips and not summary.failed, summary.failed
                walls[engine].append(summary.wall_seconds)
                hit = run(engine, cache)
                assert hit.cached == args.clips
                fixed[engine].append(hit.wall_seconds)
        same = entry_files(tmp / "cache_local_0") == entry_files(tmp / "cache_ray_0")  # (--mix-clips: rounding)
        bare = bare_model_seconds(job(tmp / "unused"), sources, args.device)

        figures = {}
        for engine in ("local", "ray"):
            wall, base = min(walls[engine]), min(fixed[engine])
            marginal = max(wall - base, 1e-9)
            figures[engine] = {"wall_s": wall, "fixed_s": base, "clips_per_s": args.clips / wall,
                               "audio_s_per_s": audio_s / wall, "marginal_clips_per_s": args.clips / marginal,
                               "marginal_audio_s_per_s": audio_s / marginal}
            f = figures[engine]
            print(f"(a) {engine:>5}: end to end {wall:6.1f} s -> {f['clips_per_s']:6.2f} clips/s, "
                  f"{f['audio_s_per_s']:7.1f} audio-s/s (min of {args.repeats})")
            print(f"(b) {engine:>5}: fixed cost (all cache hits) {base:5.1f} s; marginal {f['marginal_clips_per_s']:6.2f} "
                  f"clips/s, {f['marginal_audio_s_per_s']:7.1f} audio-s/s")
        local_marginal = figures["local"]["wall_s"] - figures["local"]["fixed_s"]
        figures["model_only_s"] = bare
        figures["model_share_local"] = bare / local_marginal if local_marginal > 0 else float("nan")
        print(f"(c) model alone on the same windows: {bare:.1f} s ({audio_s / bare:.1f} audio-s/s); its share of "
              f"the local engine's marginal time: {100 * figures['model_share_local']:.0f} %")
        ratio = figures["ray"]["audio_s_per_s"] / figures["local"]["audio_s_per_s"]
        ratio_m = figures["ray"]["marginal_audio_s_per_s"] / figures["local"]["marginal_audio_s_per_s"]
        figures.update(ray_over_local_end_to_end=ratio, ray_over_local_marginal=ratio_m, identical_entries=same,
                       device=name, config=vars(args))
        local_threads, actor_threads = args.threads or torch.get_num_threads(), args.threads or max(1, int(args.actor_cpus))
        why = "" if same or gpu or local_threads == actor_threads else (
            f" (expected on the CPU here: {local_threads} vs {actor_threads} torch threads round differently; "
            "equal --threads give equal bytes, tests/test_ray_engine.py)")
        print(f"ray / local throughput: end to end {ratio:.2f}, marginal {ratio_m:.2f}; entries byte-identical "
              f"across engines: {same}{why}")
        if args.json:
            Path(args.json).write_text(json.dumps(figures, indent=2, default=str))
        ray.shutdown()


if __name__ == "__main__":
    main()

"""All-pairs CKA against per-pair and cached-Gram peers, and streaming frame-level CKA.

Run ``python benchmarks/similarity.py`` (``--quick`` for a small smoke run).

1. 13 layers × 2000 clips × 768 dims, float32 with a common offset (as transformer states
   have), linear CKA of all 13 × 13 pairs by:

   - the plain per-pair loop in float32 (the style of Kornblith et al.'s demo, torch-cka,
     anatome): for each of the 91 pairs i ≤ j build both Grams of the features as given,
     centre them, take the HSIC;
   - the cached-Gram peer: one centred Gram per layer, built once, then the 91 pair HSICs from
     the cached Grams — in float64 (the reference for every error figure), and in float32 from
     features centred in float64 (the same float32 trick ``precision="mixed"`` uses);
   - ``layer_similarity`` with ``precision="float64"`` and with its default ``"mixed"``.

   Goals for the default: ≥ 8× the plain loop, ≥ 1.5× the cached-Gram peer, max|Δ| ≤ 1e-5.
2. Frame-level CKA streamed in feature space over clips of 1,499 frames (30 s at 50 frames/s):
   time and peak memory (tracemalloc) as the number of frames grows to 100,000.

BLAS threads are fixed with threadpoolctl; every ratio is measured in the same run, each time
the best of ``--repeats`` runs (the plain loop runs once: it is the slow one).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import tracemalloc

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from m2v_lab.similarity import layer_similarity  # noqa: E402

THREADS = 2


# --- the peers (Kornblith et al.'s demo code: Gram centring, HSIC from centred Grams) -----------


def peer_center_gram(gram, unbiased):
    gram = gram.copy()
    n = gram.shape[0]
    if unbiased:
        np.fill_diagonal(gram, 0)
        means = np.sum(gram, 0, dtype=np.float64) / (n - 2)
        means -= np.sum(means) / (2 * (n - 1))
        gram -= means[:, None]
        gram -= means[None, :]
        np.fill_diagonal(gram, 0)
    else:
        means = np.mean(gram, 0, dtype=np.float64)
        means -= np.mean(means) / 2
        gram -= means[:, None]
        gram -= means[None, :]
    return gram


def peer_cka(gram_x, gram_y, debiased):
    gram_x = peer_center_gram(gram_x, debiased)
    gram_y = peer_center_gram(gram_y, debiased)
    scaled_hsic = gram_x.ravel().dot(gram_y.ravel())
    return scaled_hsic / (np.linalg.norm(gram_x) * np.linalg.norm(gram_y))


def plain_loop(A, debiased):
    """Per pair (i ≤ j, mirrored): both Grams of the float32 features, centred, HSIC."""
    out = np.empty((len(A), len(A)))
    for i in range(len(A)):
        for j in range(i, len(A)):
            x, y = A[i], A[j]
            out[i, j] = out[j, i] = peer_cka(x @ x.T, y @ y.T, debiased)
    return out


def cached_grams(A, debiased, dtype):
    """One centred Gram per layer, built once; float32 ones from features centred in float64."""
    grams = []
    for layer in A:
        x = layer.astype(np.float64)
        if dtype == np.float32:
            x = (x - x.mean(0)).astype(np.float32)
        gram = peer_center_gram(x @ x.T, debiased)
        grams.append((gram.ravel(), np.linalg.norm(gram)))
    out = np.empty((len(A), len(A)))
    for i, (gi, ni) in enumerate(grams):
        for j in range(i, len(A)):
            gj, nj = grams[j]
            out[i, j] = out[j, i] = gi.dot(gj) / (ni * nj)
    return out


# --- data ---------------------------------------------------------------------------------------


def residual_stream(rng, layers, n, dim, offset):
    """Layers that drift like a residual stream, each with a large common offset; float32."""
    x = rng.standard_normal((n, dim), dtype=np.float32)
    out = np.empty((layers, n, dim), dtype=np.float32)
    for i in range(layers):
        x += 0.5 * rng.standard_normal((n, dim), dtype=np.float32)
        out[i] = x + offset * rng.standard_normal(dim, dtype=np.float32) ** 2
    return out


def clip_stream(rng, layers, dim, n_frames, clip_len, offset):
    """Yield ``(layers, frames, dim)`` clips until ``n_frames``; cheap to make (a pool, shifted)."""
    pool = [residual_stream(rng, layers, clip_len, dim, offset) for _ in range(4)]
    shifts = rng.standard_normal((64, layers, 1, dim)).astype(np.float32)
    made = 0
    for i in range(-(-n_frames // clip_len)):
        take = min(clip_len, n_frames - made)
        made += take
        yield pool[i % 4][:, :take] + shifts[i % 64]


def timed(fn, *args, repeats: int = 1, **kw):
    """``(result, seconds)``: the best of ``repeats`` runs."""
    best = np.inf
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn(*args, **kw)
        best = min(best, time.perf_counter() - t)
    return out, best


# --- the two parts --------------------------------------------------------------------------------


def all_pairs(layers, n, dim, repeats):
    A = residual_stream(np.random.default_rng(0), layers, n, dim, offset=50.0)
    plain = f"plain per-pair loop, float32 ({layers * (layers + 1) // 2} pairs)"
    f64, f32, default = "cached-Gram peer, float64", "cached-Gram peer, float32 (f64 centring)", \
        'm2v_lab default (precision="mixed")'
    paths = {
        plain: lambda d: plain_loop(A, d),
        f64: lambda d: cached_grams(A, d, np.float64),
        f32: lambda d: cached_grams(A, d, np.float32),
        'm2v_lab precision="float64"': lambda d: layer_similarity(A, debiased=d, precision="float64").values,
        default: lambda d: layer_similarity(A, debiased=d).values,
    }
    print(f"[1] all pairs, linear CKA: {layers} layers × {n} clips × {dim} dims, float32, common offset ~50")
    print("    max|Δ|: against the float64 cached-Gram peer; ×: that column's time / this path's time")
    for debiased in (False, True):
        print(f"    {'debiased' if debiased else 'biased'} CKA")
        header = f"{'time':>7} {'× plain':>8} {'× cached f64':>13} {'× cached f32':>13} {'max|Δ|':>8}"
        print(f"      {'path':<44} {header}")
        results = {name: timed(run, debiased, repeats=1 if name == plain else repeats) for name, run in paths.items()}
        ref = results[f64][0]
        t_plain, t_f64, t_f32 = (results[name][1] for name in (plain, f64, f32))
        for name, (values, t) in results.items():
            err = np.abs(values - ref).max()
            print(f"      {name:<44} {t:6.2f}s {t_plain / t:7.1f}× {t_f64 / t:12.2f}× {t_f32 / t:12.2f}× {err:8.1e}")


def streaming(layers, dim, sizes, clip_len):
    print(f"[2] streaming frame-level CKA, feature space, {layers} layers × {dim} dims, clips of {clip_len} frames")
    print(f"    {'frames':>8} {'time':>8} {'frames/s':>9} {'peak mem':>9} {'Gram space would hold':>22}")
    for n in sizes:
        rng = np.random.default_rng(1)
        # the cost of making the clips, to leave out of the figure
        _, t_gen = timed(lambda: sum(c.shape[1] for c in clip_stream(rng, layers, dim, n, clip_len, 50.0)))
        rng = np.random.default_rng(1)
        tracemalloc.start()
        res, t = timed(layer_similarity, clip_stream(rng, layers, dim, n, clip_len, 50.0), debiased=True)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert res.n == n and res.method == "feature" and np.isfinite(res.values).all()
        t -= t_gen
        print(
            f"    {n:>8,} {t:7.1f}s {n / t:9,.0f} {peak / 2**20:7.0f}MB "
            f"{layers * n * n * 8 / 2**30:15,.0f} GiB (one n×n float64 Gram per layer)"
        )
    print(f"    feature-space sums: {(layers * dim) ** 2 * 8 / 2**20:.1f} MB whatever the number of frames")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, to check the script runs")
    parser.add_argument("--repeats", type=int, default=3, help="runs per timed path but the plain loop (best kept)")
    args = parser.parse_args()
    blas = [f"{i['internal_api']} ({i.get('architecture', '?')})" for i in threadpool_info() if i["user_api"] == "blas"]
    with threadpool_limits(THREADS):
        load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
        print(f"m2v_lab similarity benchmark: {THREADS} BLAS threads, {', '.join(blas)}, numpy {np.__version__}; "
              f"{os.cpu_count()} CPUs, load average {load} (timings of a shared machine are noisy)")
        if args.quick:
            all_pairs(4, 300, 64, args.repeats)
            streaming(4, 64, [5_000, 20_000], 1499)
        else:
            all_pairs(13, 2000, 768, args.repeats)
            streaming(13, 768, [25_000, 100_000], 1499)
    print("goals: default ≥ 8× the plain loop and ≥ 1.5× the cached-Gram peer, max|Δ| ≤ 1e-5; "
          "streaming ≥ 100k frames in bounded memory")


if __name__ == "__main__":
    main()

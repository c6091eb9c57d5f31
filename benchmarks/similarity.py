"""All-pairs CKA against a straightforward per-pair implementation, and streaming frame-level CKA.

Run ``python benchmarks/similarity.py`` (``--quick`` for a small smoke run).

1. 13 layers × 2000 clips × 768 dims, float32 with a common offset (as transformer states
   have): ``layer_similarity`` (one Gram per layer, one product for all pairs) against the
   per-pair style of the public code (Kornblith et al.'s demo, torch-cka, anatome: for each
   of the 13 × 13 pairs build both Grams, centre them, take the HSIC).  The per-pair code in
   float64 is the reference for the accuracy figure; the same code in float32 on the
   uncentred features (the usual default of the torch ports) is shown for its error.
2. Frame-level CKA streamed in feature space over clips of 1,499 frames (30 s at 50 frames/s):
   time and peak memory (tracemalloc) as the number of frames grows to 100,000.

BLAS threads are fixed with threadpoolctl; every ratio is measured in the same run.
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


# --- the straightforward per-pair peer (Kornblith et al.'s demo code, pair by pair) -----------


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


def peer_all_pairs(A, debiased, dtype):
    out = np.empty((len(A), len(A)))
    for i in range(len(A)):
        for j in range(len(A)):
            x, y = A[i].astype(dtype), A[j].astype(dtype)
            out[i, j] = peer_cka(x @ x.T, y @ y.T, debiased)
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


def timed(fn, *args, **kw):
    t = time.perf_counter()
    out = fn(*args, **kw)
    return out, time.perf_counter() - t


# --- the two parts --------------------------------------------------------------------------------


def all_pairs(layers, n, dim):
    A = residual_stream(np.random.default_rng(0), layers, n, dim, offset=50.0)
    print(f"[1] all pairs: {layers} layers × {n} clips × {dim} dims, float32, common offset ~50")
    print("    peer: per-pair Grams + centring + HSIC (Kornblith demo style), all {0}×{0} pairs".format(layers))
    print(f"    {'estimator':<10} {'peer f64':>9} {'m2v_lab':>9} {'speed-up':>9} {'max|Δ| vs f64 ref':>18}")
    for debiased in (False, True):
        ref, t_peer = timed(peer_all_pairs, A, debiased, np.float64)
        res, t_ours = timed(layer_similarity, A, debiased=debiased)
        err = np.abs(res.values - ref).max()
        name = "debiased" if debiased else "biased"
        print(f"    {name:<10} {t_peer:8.2f}s {t_ours:8.2f}s {t_peer / t_ours:8.1f}× {err:18.1e}   (method={res.method})")
    naive, t_naive = timed(peer_all_pairs, A, True, np.float32)
    print(
        f"    peer in float32 on uncentred features (torch-port default), debiased: {t_naive:.2f}s, "
        f"max|Δ| vs f64 ref = {np.abs(naive - ref).max():.2g}"
    )


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
    args = parser.parse_args()
    blas = [f"{i['internal_api']} ({i.get('architecture', '?')})" for i in threadpool_info() if i["user_api"] == "blas"]
    with threadpool_limits(THREADS):
        print(f"m2v_lab similarity benchmark: {THREADS} BLAS threads, {', '.join(blas)}, numpy {np.__version__}")
        if args.quick:
            all_pairs(4, 300, 64)
            streaming(4, 64, [5_000, 20_000], 1499)
        else:
            all_pairs(13, 2000, 768)
            streaming(13, 768, [25_000, 100_000], 1499)
    print("goals: speed-up ≥ 8×, max|Δ| ≤ 1e-5; streaming ≥ 100k frames in bounded memory")


if __name__ == "__main__":
    main()

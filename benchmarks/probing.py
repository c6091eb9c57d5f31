"""Ridge path vs a plain scikit-learn loop, and how much ungrouped CV inflates accuracy.

    python benchmarks/probing.py [--threads 1] [--alphas 10]

Synthetic music2vec-shaped features: 13 layers × 2000 segments (400 tracks × 5
segments, 10 classes, labels per track) × 768 dims; class signal peaks in
the middle layers, every layer carries track identity, layer 0 carries no
label at all.  Both sides run the same protocol on the same 5 grouped folds:
standardise on the training folds, choose alpha per layer and fold by inner CV
over the other 4 folds (squared error of the ±1 one-hot decision, like
RidgeClassifierCV), refit, score accuracy.  The scikit-learn side fits
``make_pipeline(StandardScaler(), RidgeClassifier(alpha))`` per alpha, layer,
inner and outer fold; the path side is ``probe_layers(probe="ridge")``.
BLAS (threadpoolctl) and torch are held to the same thread count.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from sklearn.linear_model import RidgeClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from m2v_lab.probing import RidgeProbe, make_folds, probe_layers

LAYERS, TRACKS, SEGMENTS, DIM, CLASSES, CV = 13, 400, 5, 768, 10, 5


def make_data(seed: int = 0):
    """(layers, n, dim) float32 features, labels and track ids."""
    rng = np.random.default_rng(seed)
    label = np.arange(TRACKS) % CLASSES
    rng.shuffle(label)
    groups = np.repeat(np.arange(TRACKS), SEGMENTS)
    y = label[groups]
    strength = np.r_[0.0, 0.12 * np.exp(-((np.arange(1, LAYERS) - 7) ** 2) / 10)]
    X = np.empty((LAYERS, len(y), DIM), np.float32)
    for layer in range(LAYERS):
        centroids = rng.standard_normal((CLASSES, DIM))
        track = rng.standard_normal((TRACKS, DIM))
        scale = np.exp(rng.standard_normal(DIM))  # uneven dims and offsets: standardisation matters
        X[layer] = ((strength[layer] * centroids[y] + track[groups] + rng.standard_normal((len(y), DIM)))
                    * scale + 3 * rng.standard_normal(DIM))
    return X, y, groups


def sklearn_loop(X, y, folds, alphas):
    """Per layer: outer folds × (inner folds × alphas + refit) pipelines; returns accuracy (layers, cv), alphas."""
    targets = 2 * np.eye(CLASSES)[y] - 1
    acc = np.empty((X.shape[0], CV))
    chosen = np.empty((X.shape[0], CV))
    for layer in range(X.shape[0]):
        for k in range(CV):
            sse = np.zeros(len(alphas))
            for j in set(range(CV)) - {k}:
                fit, val = ~np.isin(folds, (j, k)), folds == j
                for a, alpha in enumerate(alphas):
                    model = make_pipeline(StandardScaler(), RidgeClassifier(alpha=alpha)).fit(X[layer][fit], y[fit])
                    sse[a] += ((model.decision_function(X[layer][val]) - targets[val]) ** 2).sum()
            best = alphas[len(alphas) - 1 - int(np.argmin(sse[::-1]))]  # ties → stronger alpha, as the path
            train, test = folds != k, folds == k
            model = make_pipeline(StandardScaler(), RidgeClassifier(alpha=best)).fit(X[layer][train], y[train])
            acc[layer, k] = model.score(X[layer][test], y[test])
            chosen[layer, k] = best
    return acc, chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--alphas", type=int, default=10)
    args = parser.parse_args()
    alphas = np.logspace(0, 6, args.alphas)
    torch.set_num_threads(args.threads)
    X, y, groups = make_data()
    folds = make_folds(y, groups=groups, cv=CV, seed=0)
    print(f"data: {LAYERS} layers × {len(y)} segments ({TRACKS} tracks × {SEGMENTS}) × {DIM} dims, {CLASSES} "
          f"classes; {CV} grouped folds; {len(alphas)} alphas {alphas[0]:g}…{alphas[-1]:g}; "
          f"{args.threads} thread(s) for BLAS and torch")
    with threadpool_limits(limits=args.threads):
        start = time.perf_counter()
        res = probe_layers(X, y, groups=groups, probe=RidgeProbe(tuple(alphas)), cv=CV, seeds=0)
        t_path = time.perf_counter() - start
        start = time.perf_counter()
        acc_sk, alpha_sk = sklearn_loop(X, y, folds, alphas)
        t_sk = time.perf_counter() - start

    scores = res.scores[(res.scores["source"] == "model") & (res.scores["metric"] == "accuracy")]
    acc_path = scores.pivot(index="layer", columns="fold", values="value").to_numpy()
    alpha_path = res.params.pivot(index="layer", columns="fold", values="value").to_numpy()
    n_fits = LAYERS * CV * ((CV - 1) * len(alphas) + 1)
    n_eigh, n_chol = LAYERS * CV * (CV - 1) // 2, LAYERS * CV
    print(f"\nridge path (probe_layers, incl. metrics): {t_path:7.2f} s  ({n_eigh} eigh + {n_chol} Cholesky "
          "solves in all)")
    print(f"scikit-learn loop (RidgeClassifier):      {t_sk:7.2f} s  ({n_fits} pipeline fits)")
    print(f"speed-up: {t_sk / t_path:.1f}x")
    print(f"mean accuracy over layers × folds: path {acc_path.mean():.4f}, scikit-learn {acc_sk.mean():.4f}; "
          f"max |difference| per layer (mean over folds) {np.abs(acc_path.mean(1) - acc_sk.mean(1)).max():.4f}; "
          f"same alpha chosen in {np.mean(alpha_path == alpha_sk):.0%} of layer × fold")
    print("per-layer accuracy (path / scikit-learn):")
    print("  " + "  ".join(f"{i}:{a:.3f}/{b:.3f}" for i, (a, b) in enumerate(zip(acc_path.mean(1), acc_sk.mean(1)))))

    with threadpool_limits(limits=args.threads):
        ungrouped = probe_layers(X, y, probe=RidgeProbe(tuple(alphas)), cv=CV, seeds=0)
    table = res.summary().query("metric == 'accuracy'").set_index("layer")["mean"]
    leaky = ungrouped.summary().query("metric == 'accuracy'").set_index("layer")["mean"]
    print(f"\ngrouped vs ungrouped CV ({SEGMENTS} segments per track; chance {1 / CLASSES:.2f}), accuracy per layer:")
    for layer in range(LAYERS):
        print(f"  layer {layer:2d}: grouped {table[layer]:.3f}   ungrouped {leaky[layer]:.3f}   "
              f"inflation {leaky[layer] - table[layer]:+.3f}")
    print(f"mean inflation {np.mean(leaky - table):+.3f}; label-free layer 0: {table[0]:.3f} → {leaky[0]:.3f}")


if __name__ == "__main__":
    main()

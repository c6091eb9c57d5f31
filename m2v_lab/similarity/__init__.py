"""Which layers are alike, within one model and across two: layer-wise representational similarity.

One call gives a layers × layers map for features from :mod:`m2v_lab.extract`::

    from m2v_lab.similarity import layer_similarity
    res = layer_similarity(feats)                          # debiased linear CKA, all pairs
    res = layer_similarity(feats_m2v, feats_mert)          # across models: clips paired by id
    res.to_frame()                                         # labelled DataFrame
    similarity_ci(feats, groups="group")                   # groups: a column of feats.clip_table

Frame-level CKA streams over clips in feature space (memory independent of the number of
frames); Features extracted frame by frame are streamed that way by themselves::

    layer_similarity(frame_feats)
    layer_similarity((feats.frames(i) for i in range(len(feats))), rows=feats.layer_names)

Two inputs are compared clip by clip: Features (anything with ``.clips``) are paired by clip
id, B taken in A's clip order, and different clip sets are refused naming the ids; bare
arrays and chunk streams are paired by position.

Where CKA and the SVD-based measures run (``device=``): ``"numpy"``, the default, is NumPy on
the CPU; None and ``"auto"`` take CUDA when torch sees a GPU and otherwise stay with NumPy, so
CPU numbers never change; ``"cuda"``, ``"cpu"`` run the same computation in torch (float64 sums,
``torch.linalg`` for SVDs); ``"mps"`` is refused (no float64 on Apple's MPS).  RSA and mutual kNN
run in NumPy.  Gram-space linear CKA builds its Grams in float32 from float64-centred features
(``precision="mixed"``, within 1e-8 of ``precision="float64"``, about twice as fast).

Other measures: ``measure="rsa" | "procrustes" | "svcca" | "pwcca" | "mutual_knn"``.
``standardize=True`` z-scores every dimension first (a few loud dimensions otherwise decide
linear CKA); ``clip=0.95`` winsorises outliers as Huh et al.'s platonic-rep does.

Uncertainty: :func:`similarity_ci` (resampling whole groups, never with replacement; intervals
pivot on the draws, and say when a measure's value depends on n) and :func:`permutation_test`
(per-layer statistics computed once; p-values adjusted across the map, max-statistic FWER or
Benjamini–Hochberg FDR)::

    res = permutation_test(feats, correction="fwer")
    res.to_frame("long")                                   # layer pair, value, ci, p, p_adjusted
    m2v.plot.similarity_heatmap(res, mask_nonsignificant=0.05)

Figures: :func:`m2v_lab.plot.similarity.similarity_heatmap`.
"""

from .api import MEASURES, layer_similarity
from .cka import choose_method, cka
from .resampling import permutation_test, similarity_ci
from .result import SimilarityResult

__all__ = [
    "layer_similarity",
    "cka",
    "similarity_ci",
    "permutation_test",
    "choose_method",
    "SimilarityResult",
    "MEASURES",
]

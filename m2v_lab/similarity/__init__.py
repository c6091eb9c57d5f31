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

Where CKA runs (``device=``): ``"numpy"``, the default, is NumPy on the CPU; None and
``"auto"`` take CUDA when torch sees a GPU and otherwise stay with NumPy, so CPU numbers never
change; ``"cuda"``, ``"cpu"`` run the same float64 computation in torch; ``"mps"`` is refused
(no float64 on Apple's MPS).  The other measures run in NumPy.

Other measures: ``measure="rsa" | "procrustes" | "svcca" | "pwcca" | "mutual_knn"``.
Uncertainty: :func:`similarity_ci` (resampling whole groups, never with replacement) and
:func:`permutation_test`.  Figures: :func:`m2v_lab.plot.similarity.similarity_heatmap`.
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

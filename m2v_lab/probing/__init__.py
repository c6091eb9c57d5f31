"""Layer-wise probing: which layer knows what, honestly measured.

>>> res = probe_layers(feats, df.genre, groups=df.track, control_task=True)   # doctest: +SKIP
>>> res.summary(); res.best_layer(); res.selectivity()                       # doctest: +SKIP
>>> m2v_lab.plot.layer_curve(res)                                            # doctest: +SKIP
>>> LayerSumProbe().fit(feats, df.genre, groups=df.track).comparison_        # doctest: +SKIP

Modules: ``inputs`` (checks), ``splits`` (grouped folds, control labels),
``ridge`` (closed-form alpha path), ``logistic``, ``mlp`` (batched torch
heads), ``metrics``, ``result`` (:class:`ProbeResult`), ``core``
(:func:`probe_layers`), ``layer_sum`` (:class:`WeightedLayerSum`).
Pure computation: nothing here imports matplotlib.
"""

from .core import probe_layers
from .layer_sum import LayerSumProbe, WeightedLayerSum
from .logistic import LogisticProbe
from .metrics import METRICS, PRIMARY
from .mlp import MLPProbe
from .result import ProbeResult
from .ridge import RidgePath, RidgeProbe, ridge_path
from .splits import make_folds

__all__ = ["probe_layers", "ProbeResult", "RidgeProbe", "LogisticProbe", "MLPProbe", "ridge_path", "RidgePath",
           "make_folds", "WeightedLayerSum", "LayerSumProbe", "METRICS", "PRIMARY"]

"""Layer-wise probing: which layer knows what, honestly measured.

>>> res = probe_layers(feats, "genre", groups="track", control_task=True)    # doctest: +SKIP
>>> res.summary(); res.best_layer(); res.selectivity(); res.to_frame()      # doctest: +SKIP
>>> m2v_lab.plot.layer_curve(res)                                           # doctest: +SKIP
>>> LayerSumProbe().fit(feats, "genre", groups="track").comparison_         # doctest: +SKIP

Labels, groups and clip ids are arrays, or names of columns of ``feats.clip_table``.

Modules: ``inputs`` (labels, groups, clip ids; column names), ``options`` (option checks),
``splits`` (grouped folds; the control task's labels and split), ``protocol`` (:class:`Probe`,
what every probe implements), ``ridge`` (closed-form alpha path), ``logistic``, ``mlp`` (batched
torch heads, the early-stopping fold loop, MARBLE's protocol), ``metrics``, ``intervals``
(bootstrap over groups, scale-respecting t intervals), ``result`` (:class:`ProbeResult`),
``core`` (:func:`probe_layers`), ``layer_sum`` (:class:`LayerSumProbe`, :class:`WeightedLayerSum`).
Pure computation: nothing here imports matplotlib.
"""

from .core import probe_layers
from .layer_sum import LayerSumProbe, WeightedLayerSum
from .logistic import LogisticProbe
from .metrics import METRICS, PRIMARY
from .mlp import MLPProbe
from .protocol import Probe
from .result import ProbeResult
from .ridge import RidgePath, RidgeProbe, ridge_path
from .splits import make_folds

__all__ = ["probe_layers", "ProbeResult", "Probe", "RidgeProbe", "LogisticProbe", "MLPProbe", "ridge_path",
           "RidgePath", "make_folds", "WeightedLayerSum", "LayerSumProbe", "METRICS", "PRIMARY"]

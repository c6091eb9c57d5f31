"""Interactive views for JupyterLab: thin ipywidgets over the computation modules.

>>> import m2v_lab as m2v
>>> m2v.widgets.explore(feats, model=model)          # doctest: +SKIP

Views read the clips' labels from ``feats.clip_table`` and how features were made from
``feats.settings``; they offer only label columns with two or more values (the probing view only
labels a grouped cross-validation can probe, each over the clips that carry it), say in a short
note why others are left out, and label layers as the figures do
(:func:`m2v_lab.layers.layer_label`).  Each view keeps its state in plain attributes
(``.selected_clip``, ``.result``, ``.table`` …) and draws matplotlib figures (static PNGs, any
backend) into ``ipywidgets.Output`` areas; while a figure is being recomputed its area says so
instead of showing the old one.  An exception in a callback is shown in the view's red error box
and kept in ``.last_error``.  Computation stays in :mod:`m2v_lab.probing` and
:mod:`m2v_lab.similarity`, drawing in :mod:`m2v_lab.plot`.

- :class:`LayerPicker` — one layer, a range, or a set (0 = the pre-transformer state).
- :class:`ClipBrowser` — a few label filters (more on demand), play a clip, see it and one layer's
  frames over time, the layer's slider beside its panel.
- :class:`SimilarityExplorer` — layers × layers map whose cells are clicked to pick two layers (an
  ipympl figure under ``%matplotlib widget``); their clips projected side by side.
- :class:`ProbeExplorer` — probe chosen layers for a label, with a progress bar and the layer curve.
"""

from .clips import ClipBrowser
from .explore import Explorer, explore
from .layers import LayerPicker
from .probing import ProbeExplorer
from .similarity import SimilarityExplorer

__all__ = ["LayerPicker", "ClipBrowser", "SimilarityExplorer", "ProbeExplorer", "Explorer", "explore"]

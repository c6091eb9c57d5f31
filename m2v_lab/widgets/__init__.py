"""Interactive views for JupyterLab: thin ipywidgets over the computation modules.

>>> import m2v_lab as m2v
>>> m2v.widgets.explore(feats, model=model)          # doctest: +SKIP

Views read the clips' labels from ``feats.clip_table`` and how features were made from
``feats.settings``; they offer only label columns with two or more values, and label layers as
the figures do (:func:`m2v_lab.layers.layer_label`).  Each view keeps its state in plain
attributes (``.selected_clip``, ``.result``, ``.table`` …) and draws matplotlib figures (static
PNGs, any backend) into ``ipywidgets.Output`` areas.  An exception in a callback is shown in the view's red error box and kept in ``.last_error``.

- :class:`LayerPicker` — one layer, a range, or a set (0 = the pre-transformer state).
- :class:`ClipBrowser` — filter clips by label, play one, see it and one layer's frames over time.
- :class:`SimilarityExplorer` — layers × layers map; two layers' clips projected side by side.
- :class:`ProbeExplorer` — probe chosen layers for a label, with a progress bar and the layer curve.
"""

from .clips import ClipBrowser
from .explore import Explorer, explore
from .layers import LayerPicker
from .probing import ProbeExplorer
from .similarity import SimilarityExplorer

__all__ = ["LayerPicker", "ClipBrowser", "SimilarityExplorer", "ProbeExplorer", "Explorer", "explore"]

"""LayerPicker: one layer, a range of layers or any set of them, labelled as every figure labels them."""

from __future__ import annotations

from collections.abc import Sequence

import ipywidgets as widgets
import traitlets

from ..errors import OptionError
from ..layers import layer_label, resolve_layers

__all__ = ["LayerPicker", "layer_names_of"]

MODES = ("single", "range", "multiple")


def layer_names_of(layers) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """Names of the layers held and their indices among the model's states.

    ``layers`` is :class:`~m2v_lab.Features` (which may hold a subset of layers), a
    :class:`~m2v_lab.LoadedModel`, a :class:`~m2v_lab.similarity.SimilarityResult` (its rows) or a
    sequence of names (indices 0, 1, ...).
    """
    if hasattr(layers, "layer_names"):
        names = tuple(layers.layer_names)
        indices = getattr(layers, "layer_indices", None)
        return names, tuple(int(i) for i in indices) if indices is not None else tuple(range(len(names)))
    if hasattr(layers, "rows") and hasattr(layers, "values"):
        return tuple(layers.rows), tuple(range(len(layers.rows)))
    if isinstance(layers, Sequence) and not isinstance(layers, str) and all(isinstance(n, str) for n in layers):
        return tuple(layers), tuple(range(len(layers)))
    raise OptionError(f"cannot read layer names from a {type(layers).__name__}: pass Features, a loaded "
                      "model, a SimilarityResult or a list of layer names.")


class LayerPicker(widgets.HBox):
    """Pick one layer (a slider), a contiguous range (a range slider) or any set (a list).

    Parameters
    ----------
    layers : Features, LoadedModel, SimilarityResult or sequence of str
        Where the layer names come from; index 0 is the pre-transformer state.
    mode : {"single", "range", "multiple"}
    value : int, str, or a sequence of them, optional
        Initial choice, as positions among the held layers (negative counts from the end) or
        names, resolved by :func:`m2v_lab.layers.resolve_layers`.  Default: the last layer
        (single), all layers (range, multiple).
    description : str
    orientation : {"horizontal", "vertical"}
        Of the slider (single and range modes); a vertical one reads bottom (layer 0) to top,
        with the layer's name under it.

    Raises
    ------
    OptionError
        An unknown mode or orientation, a layer name or position, or ``layers`` that hold no layer names.

    Attributes
    ----------
    control : ipywidgets.IntSlider, IntRangeSlider or SelectMultiple
        Set ``control.value`` (positions) to change the choice programmatically.
    positions : tuple of int
        Traitlet: the chosen positions; ``picker.observe(fn, "positions")`` to follow changes.
    """

    positions = traitlets.Tuple()

    def __init__(self, layers, *, mode: str = "single", value=None, description: str = "layer",
                 orientation: str = "horizontal"):
        if mode not in MODES:
            raise OptionError(f"mode={mode!r}: use one of {MODES}.")
        if orientation not in ("horizontal", "vertical") or (orientation == "vertical" and mode == "multiple"):
            raise OptionError(f"orientation={orientation!r}: use 'horizontal' or 'vertical' (sliders only: "
                              f"mode='single' or 'range').")
        self.names, self.indices = layer_names_of(layers)
        if not self.names:
            raise OptionError("no layers to pick from.")
        self.mode = mode
        last = len(self.names) - 1
        if value is not None:
            chosen = self._positions(value)
        else:
            chosen = (last,) if mode == "single" else tuple(range(last + 1))
        style = {"description_width": "initial"}
        upright = orientation == "vertical"
        slider = dict(min=0, max=last, description=description, continuous_update=False, readout=False, style=style,
                      orientation=orientation)
        if upright:
            slider["layout"] = widgets.Layout(height=f"{min(220, max(120, 14 * (last + 1)))}px", width="auto")
        if mode == "single":
            self.control = widgets.IntSlider(value=chosen[0], **slider)
        elif mode == "range":
            self.control = widgets.IntRangeSlider(value=(min(chosen), max(chosen)), **slider)
        else:
            self.control = widgets.SelectMultiple(
                options=[(layer_label(name), p) for p, name in enumerate(self.names)],
                value=tuple(sorted(set(chosen))), rows=min(len(self.names), 7), description=description,
                style=style)
        self.control.add_class("m2v-layer-control")
        if upright:
            self.readout = widgets.Label(layout=widgets.Layout(width="108px", margin="0"))
        else:
            self.readout = widgets.Label(layout=widgets.Layout(min_width="150px", margin="0 16px 0 4px"))
        self.readout.add_class("m2v-layer-readout")
        layout = (widgets.Layout(flex_flow="column", align_items="center", width="112px", flex="0 0 auto")
                  if upright else None)
        super().__init__(children=[self.control, self.readout], **({"layout": layout} if layout else {}))
        self.orientation = orientation
        self.add_class("m2v-layer-picker")
        self.control.observe(self._sync, names="value")
        self._sync()

    def __repr__(self) -> str:
        return f"LayerPicker({self.mode}: {', '.join(self.selected_layers) or 'none'})"

    def _positions(self, value) -> tuple[int, ...]:
        if value is None:  # resolve_layers reads None as every layer; a picker's value is always a choice
            raise OptionError("value=None: pick a layer (a position or a name).")
        return tuple(resolve_layers(self.names, value, option="value"))

    def _sync(self, _change=None):
        value = self.control.value
        if self.mode == "single":
            chosen = (value,)
        elif self.mode == "range":
            chosen = tuple(range(value[0], value[1] + 1))
        else:
            chosen = tuple(value)
        texts = [layer_label(self.names[p]) for p in chosen]
        if len(texts) == 1:
            self.readout.value = texts[0]
        elif self.mode == "range":
            self.readout.value = f"{texts[0]} … {texts[-1]} ({len(texts)} layers)"
        else:
            self.readout.value = f"{len(texts)} layers" if texts else "no layer"
        self.positions = chosen

    @property
    def value(self):
        """The control's value: a position, a (low, high) pair of positions, or a tuple of positions."""
        return self.control.value

    @value.setter
    def value(self, value):
        chosen = self._positions(value)
        if self.mode == "single":
            self.control.value = chosen[0]
        elif self.mode == "range":
            self.control.value = (min(chosen), max(chosen))
        else:
            self.control.value = tuple(sorted(set(chosen)))

    @property
    def selected_positions(self) -> tuple[int, ...]:
        """Positions of the chosen layers among the held ones (axis 0 of the feature arrays)."""
        return self.positions

    @property
    def selected_layers(self) -> tuple[str, ...]:
        """Names of the chosen layers."""
        return tuple(self.names[p] for p in self.positions)

    @property
    def selected_indices(self) -> tuple[int, ...]:
        """Indices of the chosen layers among the model's states (0 = pre-transformer)."""
        return tuple(self.indices[p] for p in self.positions)

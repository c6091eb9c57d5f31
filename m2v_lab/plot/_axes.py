"""What every figure function shares: the axes it draws on, and layer ticks."""

from __future__ import annotations

import numpy as np

from ..errors import OptionError
from ..layers import layer_label

__all__ = ["axes_for", "layer_ticks", "place_legend"]

#: More layers than this on an x axis and their tick labels turn upright, so they do not collide.
_UPRIGHT_FROM = 9


def axes_for(ax, *, size: tuple[float, float]):
    """``ax`` when it is one matplotlib Axes, else the axes of a new pyplot figure of ``size`` inches.

    Raises
    ------
    OptionError
        ``ax`` is neither None nor an Axes (e.g. the array ``plt.subplots(2)`` returns).
    """
    if ax is None:
        # imported here: importing m2v_lab.plot must not load pyplot (it picks a GUI backend)
        import matplotlib.pyplot as plt

        return plt.subplots(figsize=size)[1]
    from matplotlib.axes import Axes

    if not isinstance(ax, Axes):
        hint = " (plt.subplots(n) gives an array: pass one of its axes, e.g. axes[0])" if isinstance(
            ax, np.ndarray) else ""
        raise OptionError(f"ax= takes one matplotlib Axes or None; got a {type(ax).__name__}{hint}.")
    return ax


def layer_ticks(ax, names, *, axis: str = "x") -> None:
    """Put the layers' tick labels (:func:`m2v_lab.layers.layer_label`, style "tick") at 0, 1, … of ``axis``."""
    labels = [layer_label(name, style="tick") for name in names]
    if axis == "y":
        ax.set_yticks(range(len(labels)), labels)
    else:
        ax.set_xticks(range(len(labels)), labels, rotation=90 if len(labels) >= _UPRIGHT_FROM else 0)


def place_legend(ax, where: str = "outside") -> None:
    """The legend right of the axes ("outside", off the data), in the best corner ("inside"), or none."""
    from ..options import one_of

    one_of("legend", where, ("outside", "inside", "none"))
    if where == "none" or not ax.get_legend_handles_labels()[0]:
        return
    if where == "outside":
        ax.legend(fontsize="small", frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    else:
        ax.legend(fontsize="small", frameon=False)

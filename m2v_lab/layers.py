"""Layer names and layer selection: the contract every result is indexed by.

A model with ``L`` transformer blocks has ``L + 1`` states: index 0, ``"pre_transformer"``,
is the state entering the first block; index ``i``, ``"block_i"``, is block ``i``'s output
(for pre-LN encoders index ``L`` is after the encoder's final LayerNorm, as the model cards'
``output_hidden_states=True`` under transformers 4.x).

Plots and widgets write a layer one way, :func:`layer_label`: ``"pre-transformer"`` and
``"block 6"`` in titles, legends and readouts; ``"0 (pre)"`` and ``"6"`` as ticks of an axis
labelled "layer".  Code keeps using the names (``"block_6"``), which every option accepts.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Sequence

import numpy as np

from .errors import OptionError

__all__ = ["layer_names", "resolve_layers", "layer_label", "LABEL_STYLES"]

#: The styles of :func:`layer_label`.
LABEL_STYLES = ("text", "tick")
_PRE = "pre_transformer"
_BLOCK = re.compile(r"block_([1-9]\d*)")


def layer_names(num_blocks: int) -> tuple[str, ...]:
    """Names of the ``num_blocks + 1`` states: ``pre_transformer, block_1 … block_L``."""
    return (_PRE,) + tuple(f"block_{i}" for i in range(1, int(num_blocks) + 1))


def layer_label(layer: str | int, *, style: str = "text") -> str:
    """How a figure or a view writes a layer: the one spelling of layer labels in m2v_lab.

    Parameters
    ----------
    layer : str or int
        A layer name (``"pre_transformer"``, ``"block_6"``) or an index among the model's states
        (0 = pre_transformer; not negative, since counting from the end needs the model).
    style : {"text", "tick"}
        ``"text"`` for titles, legends and readouts: ``"pre-transformer"``, ``"block 6"``.
        ``"tick"`` for the ticks of an axis labelled "layer": ``"0 (pre)"``, ``"6"``.

    Returns
    -------
    str
        Names that are not a model state's (a baseline's ``"MFCC"``, a hand-made name) come back
        unchanged in either style.

    Raises
    ------
    OptionError
        An unknown style, a negative index, or a value that is neither a name nor an index.

    Examples
    --------
    >>> layer_label("block_6"), layer_label(0), layer_label("pre_transformer", style="tick")
    ('block 6', 'pre-transformer', '0 (pre)')
    """
    if style not in LABEL_STYLES:
        raise OptionError(f"style={style!r}: use one of {LABEL_STYLES}.")
    if isinstance(layer, str):
        match = _BLOCK.fullmatch(layer)
        if layer != _PRE and match is None:
            return layer
        index = int(match.group(1)) if match else 0
    elif isinstance(layer, (int, np.integer)) and not isinstance(layer, (bool, np.bool_)):
        if layer < 0:
            raise OptionError(f"layer {layer}: a label needs an index from 0 (pre_transformer); negative "
                              "indices count from the end of a model, so resolve them first (resolve_layers).")
        index = int(layer)
    else:
        raise OptionError(f"layer {layer!r} is neither a layer name nor a layer index.")
    if style == "tick":
        return "0 (pre)" if index == 0 else str(index)
    return "pre-transformer" if index == 0 else f"block {index}"


def resolve_layers(names: Sequence[str], layers, *, option: str = "layers") -> list[int]:
    """Positions in ``names`` of a layer selection.

    Parameters
    ----------
    names : sequence of str
        The states available, in order (e.g. ``model.layer_names``).
    layers : None, int, str, or a sequence of them
        None is every layer; integers index ``names`` (negative from the end: ``-1`` is the
        last block); strings are names.
    option : str
        How error messages name the option.

    Returns
    -------
    list of int
        Positions, in the order asked.

    Raises
    ------
    OptionError
        An unknown name, an index out of range, or a value that is neither.
    """
    names = tuple(names)
    if layers is None:
        return list(range(len(names)))
    if isinstance(layers, str) or not isinstance(layers, Iterable):  # one layer (or a stray float: reported below)
        layers = [layers]
    out = []
    for layer in layers:
        if isinstance(layer, str):
            if layer not in names:
                raise OptionError(f"{option}: no layer {layer!r}; the layers are {list(names)}.")
            out.append(names.index(layer))
        elif isinstance(layer, (int, np.integer)) and not isinstance(layer, (bool, np.bool_)):
            i = int(layer)
            if not -len(names) <= i < len(names):
                raise OptionError(f"{option}: index {i} is out of range; there are {len(names)} states, "
                                  f"0..{len(names) - 1} (0 = {names[0]}; negative counts from the end).")
            out.append(i % len(names))
        else:
            raise OptionError(f"{option}: {layer!r} is neither a layer index nor a layer name.")
    if not out:
        raise OptionError(f"{option}: the selection is empty; pass None for every layer.")
    return out

"""Layer names and layer selection: the contract every result is indexed by.

A model with ``L`` transformer blocks has ``L + 1`` states: index 0, ``"pre_transformer"``,
is the state entering the first block; index ``i``, ``"block_i"``, is block ``i``'s output
(for pre-LN encoders index ``L`` is after the encoder's final LayerNorm, as the model cards'
``output_hidden_states=True`` under transformers 4.x).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .errors import OptionError

__all__ = ["layer_names", "resolve_layers"]


def layer_names(num_blocks: int) -> tuple[str, ...]:
    """Names of the ``num_blocks + 1`` states: ``pre_transformer, block_1 … block_L``."""
    return ("pre_transformer",) + tuple(f"block_{i}" for i in range(1, int(num_blocks) + 1))


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
    if isinstance(layers, (int, np.integer, str)):
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

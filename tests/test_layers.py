"""m2v_lab.layers: the layer names, the one resolver of layer selections, and the one spelling of layer labels."""

import numpy as np
import pytest

from m2v_lab.errors import OptionError
from m2v_lab.layers import LABEL_STYLES, layer_label, layer_names, resolve_layers

NAMES = layer_names(12)


def test_a_model_with_l_blocks_has_l_plus_one_named_states():
    assert NAMES == ("pre_transformer",) + tuple(f"block_{i}" for i in range(1, 13))
    assert layer_names(0) == ("pre_transformer",)


@pytest.mark.parametrize("selection, positions", [
    (None, list(range(13))),
    (6, [6]),
    (-1, [12]),
    (-13, [0]),
    (np.int64(3), [3]),
    ("block_4", [4]),
    (["block_12", 0, -2], [12, 0, 11]),  # the order asked, names and indices mixed
])
def test_selections_resolve_to_positions_in_the_order_asked(selection, positions):
    assert resolve_layers(NAMES, selection) == positions


@pytest.mark.parametrize("selection, match", [
    (13, r"picked: index 13 is out of range; there are 13 states, 0\.\.12"),
    (-14, "index -14 is out of range"),
    ("block_13", r"picked: no layer 'block_13'"),
    (True, "neither a layer index nor a layer name"),  # a bool is not the index 1
    (2.0, "neither a layer index nor a layer name"),
    ([], "the selection is empty"),
])
def test_bad_selections_raise_option_errors_naming_the_option(selection, match):
    with pytest.raises(OptionError, match=match):
        resolve_layers(NAMES, selection, option="picked")


@pytest.mark.parametrize("layer, text, tick", [
    ("pre_transformer", "pre-transformer", "0 (pre)"),
    (0, "pre-transformer", "0 (pre)"),
    ("block_6", "block 6", "6"),
    (np.int64(12), "block 12", "12"),
])
def test_a_layer_has_one_text_label_and_one_tick_label(layer, text, tick):
    assert layer_label(layer) == layer_label(layer, style="text") == text
    assert layer_label(layer, style="tick") == tick


@pytest.mark.parametrize("name", ["MFCC", "encoder.layer.3", "block_0", "block_06", "weighted sum"])
def test_names_that_are_not_model_states_are_labelled_as_they_are(name):
    assert {layer_label(name, style=style) for style in LABEL_STYLES} == {name}


@pytest.mark.parametrize("layer, style, match", [
    ("block_1", "short", r"style='short': use one of \('text', 'tick'\)"),
    (-1, "text", "negative indices count from the end"),
    (True, "text", "neither a layer name nor a layer index"),
    (None, "tick", "neither a layer name nor a layer index"),
])
def test_bad_label_requests_raise_option_errors(layer, style, match):
    with pytest.raises(OptionError, match=match):
        layer_label(layer, style=style)

"""m2v_lab.datasets.frame: the clip-frame contract and its validator."""

import numpy as np
import pandas as pd
import pytest

from m2v_lab import datasets
from m2v_lab.errors import DatasetError

from test_datasets import CORE


def frame(**overrides):
    base = {"path": ["/a/x.wav", "/a/y.wav"], "clip_id": ["x", "y"], "group": ["g", "g"],
            "subset": ["s", "s"], "label": [1, 2]}
    base.update(overrides)
    return pd.DataFrame(base)


def test_validate_puts_core_then_optional_columns_first_and_keeps_attrs():
    df = frame(split=["train", "test"])[["label", "split", "subset", "group", "clip_id", "path"]]
    df.index = [7, 3]
    df.attrs["unreadable"] = [{"path": "z", "reason": "r"}]
    out = datasets.validate_frame(df)
    assert list(out.columns) == CORE + ["split", "label"]
    assert list(out.index) == [0, 1]
    assert out.attrs["unreadable"] == [{"path": "z", "reason": "r"}]
    assert datasets.label_columns(out) == ["label"]


@pytest.mark.parametrize("change, message", [
    (lambda d: d.drop(columns="group"), "missing column"),
    (lambda d: d.assign(clip_id=["x", "x"]), "repeated: 'x'"),
    (lambda d: d.assign(path=["rel/x.wav", "/a/y.wav"]), "must be absolute; rows 0"),
    (lambda d: d.assign(group=["g", None]), "'group' must hold non-empty strings; rows 1"),
    (lambda d: d.assign(subset=["s", ""]), "'subset' must hold non-empty strings; rows 1"),
    (lambda d: d.assign(split=["train", 3]), "'split' must be strings or missing; rows 1"),
    (lambda d: d.assign(start=[0.0, -1.0]), "'start' must be seconds >= 0"),
    (lambda d: d.assign(start=["soon", 1.0]), "'start' must be seconds >= 0 or missing; rows 0"),
    (lambda d: d.assign(duration=[0.0, np.nan]), "'duration' must be seconds > 0"),
    (lambda d: d.iloc[:0], "no clips"),
])
def test_validate_rejects_frames_that_break_the_contract(change, message):
    with pytest.raises(DatasetError, match=message):
        datasets.validate_frame(change(frame()), source="my frame")


def test_validate_lists_every_violation_at_once_and_names_the_source():
    bad = frame(path=["x.wav", "/a/y.wav"], clip_id=["x", "x"])
    with pytest.raises(DatasetError, match=r"(?s)my frame breaks the clip-frame contract:.*absolute.*repeated"):
        datasets.validate_frame(bad, source="my frame")
    with pytest.raises(DatasetError, match="my list: expected a pandas DataFrame, got list"):
        datasets.validate_frame([1, 2], source="my list")


def test_validate_shortens_long_lists_of_offending_rows():
    n = 25
    df = pd.DataFrame({"path": [f"rel/{i}.wav" for i in range(n)], "clip_id": [str(i) for i in range(n)],
                       "group": "g", "subset": "s"})
    with pytest.raises(DatasetError, match=r"rows 0, 1, .*, 19 … \(\+5 more\) are not"):
        datasets.validate_frame(df)


def test_validate_accepts_missing_segment_bounds():
    out = datasets.validate_frame(frame(start=[np.nan, 1.5], duration=[None, 2.0]))
    assert list(out.columns[:6]) == CORE + ["start", "duration"]
    assert datasets.label_columns(out) == ["label"]

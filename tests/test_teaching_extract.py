"""The whole teaching set goes through extraction and the cache with the offline model."""

import numpy as np

import m2v_lab as m2v


def test_whole_teaching_set_extracts_through_the_cache(tiny, tmp_path):
    clips = m2v.datasets.teaching_set()
    first = m2v.extract(tiny, clips, cache_dir=tmp_path, batch_size=16, progress=False)
    assert not first.failed
    assert first.pooled.shape == (13, len(clips), 96) and np.isfinite(first.pooled).all()
    assert first.align(clips)["clip_id"].tolist() == clips["clip_id"].tolist()
    again = m2v.extract(tiny, clips, cache_dir=tmp_path, batch_size=16, progress=False)
    assert again.meta["cache_hits"] == len(clips)
    np.testing.assert_array_equal(first.pooled, again.pooled)

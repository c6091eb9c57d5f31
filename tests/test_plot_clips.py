"""plot/clips.py: a clip's waveform and spectrogram against time in seconds."""

import numpy as np
import pytest
from matplotlib.figure import Figure

from m2v_lab.errors import AnalysisError
from m2v_lab.plot import spectrogram, waveform

RATE = 16000


def test_waveform_and_spectrogram_span_the_clip_in_seconds():
    wave = np.sin(np.linspace(0, 2000, 3 * RATE))
    wave_ax, spec_ax = Figure().subplots(2, 1)
    waveform(wave, RATE, ax=wave_ax, title="clip")
    spectrogram(wave, RATE, ax=spec_ax)
    assert wave_ax.get_xlim() == pytest.approx((0, 3.0)) and wave_ax.get_title() == "clip"
    assert spec_ax.get_xlim() == pytest.approx((0, 3.0))
    assert spec_ax.get_yscale() == "log" and spec_ax.get_ylim() == pytest.approx((30, RATE / 2))


@pytest.mark.parametrize("draw", [waveform, spectrogram])
def test_clip_plots_take_a_mono_signal_only(draw):
    with pytest.raises(AnalysisError, match="mono"):
        draw(np.zeros((10, 2)), RATE, ax=Figure().subplots())


def test_clip_grid_draws_each_clip_as_a_waveform_above_its_spectrogram():
    from m2v_lab.plot.clips import clip_grid

    waves = {"one": np.sin(np.linspace(0, 2000, 2 * RATE)), "two": np.zeros(RATE // 2) + 0.1}
    fig = Figure()
    axes = clip_grid(waves, RATE, fig=fig, title="two clips")
    assert axes.shape == (2, 2)
    assert [ax.get_title() for ax in axes[0]] == ["one", "two"]
    assert axes[1, 0].get_xlim() == pytest.approx((0, 2.0)) and axes[1, 1].get_xlim() == pytest.approx((0, 0.5))
    assert axes[1, 0].get_yscale() == "log" and fig.get_suptitle() == "two clips"
    with pytest.raises(AnalysisError, match="no clips"):
        clip_grid({}, RATE, fig=Figure())


def test_players_make_one_audio_element_per_clip_beside_its_name():
    from m2v_lab.plot.clips import players

    table = players({"a <b>": np.sin(np.arange(1600.0)), "c": np.ones(800) * 0.1}, RATE).data
    assert table.count("<audio") == 2 and table.count("<tr>") == 2
    assert "a &lt;b&gt;" in table  # names are escaped
    with pytest.raises(AnalysisError, match="mono"):
        players({"stereo": np.zeros((10, 2))}, RATE)

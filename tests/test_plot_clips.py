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

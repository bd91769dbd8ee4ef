"""The Qt-free side of the player: whole-track decoding, waveform, mel image, best excerpt."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tagger_gui.core.errors import AudioError
from tagger_gui.core.playback import (
    best_excerpt_start,
    load_for_playback,
    mel_image,
    waveform_envelope,
)

from .conftest import write_audio


def test_envelope_of_a_known_signal():
    # 4 buckets of 4 samples each, with a known min and max in each.
    y = np.array(
        [[0, 1, -1, 0.5], [0.2, 0.3, 0.1, 0.25], [-0.9, -0.5, -0.7, -0.6], [0, 0, 0.8, -0.2]],
        dtype=np.float32,
    ).reshape(-1)
    mins, maxs = waveform_envelope(y, 4)
    np.testing.assert_allclose(mins, [-1, 0.1, -0.9, -0.2])
    np.testing.assert_allclose(maxs, [1, 0.3, -0.5, 0.8])
    assert mins.dtype == maxs.dtype == np.float32


def test_envelope_of_a_sine_and_of_stereo():
    sr = 1000
    t = np.arange(sr) / sr
    y = 0.5 * np.sin(2 * np.pi * 10 * t)  # 10 periods: every 100-sample bucket holds one
    mins, maxs = waveform_envelope(y, 10)
    np.testing.assert_allclose(mins, -0.5, atol=1e-3)
    np.testing.assert_allclose(maxs, 0.5, atol=1e-3)
    stereo = np.stack([y, 2 * y], axis=1)  # the envelope covers both channels
    mins, maxs = waveform_envelope(stereo, 10)
    np.testing.assert_allclose(maxs, 1.0, atol=1e-3)
    np.testing.assert_allclose(mins, -1.0, atol=1e-3)


def test_envelope_with_more_buckets_than_samples():
    mins, maxs = waveform_envelope(np.array([0.1, -0.3, 0.7], dtype=np.float32), 6)
    np.testing.assert_allclose(mins, [0.1, 0.1, -0.3, -0.3, 0.7, 0.7])
    np.testing.assert_allclose(maxs, mins)
    zeros = waveform_envelope(np.zeros(0), 5)
    assert all(np.array_equal(z, np.zeros(5)) for z in zeros)
    with pytest.raises(ValueError):
        waveform_envelope(np.zeros(10), 0)


def test_mel_image_shape_and_range():
    sr = 22050
    t = np.arange(2 * sr) / sr
    y = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    img = mel_image(y, sr, n_mels=48, hop_seconds=0.02)
    hop = round(0.02 * sr)
    assert img.shape == (48, 1 + len(y) // hop)
    assert img.dtype == np.float32
    assert img.max() == pytest.approx(0.0) and img.min() >= -80.0
    # The loudest row is the one whose band holds 440 Hz.
    import librosa

    centres = librosa.mel_frequencies(n_mels=48 + 2, fmax=sr / 2)[1:-1]
    loudest = int(np.argmax(img.mean(axis=1)))
    assert 300 < centres[loudest] < 600
    silent = mel_image(np.zeros(sr, dtype=np.float32), sr, n_mels=32)
    assert silent.shape[0] == 32 and np.all(silent == -80.0)


def test_best_excerpt_start_picks_the_highest_score():
    starts = np.array([0.0, 3.0, 6.0, 9.0], dtype=np.float32)
    assert best_excerpt_start(starts, np.array([0.1, 0.7, 0.9, 0.2])) == 6.0
    assert best_excerpt_start(starts, np.array([np.nan, 0.2, np.nan, 0.1])) == 3.0
    assert best_excerpt_start(starts, np.array([0.5, 0.5, 0.1, 0.1])) == 0.0  # ties: earliest
    assert best_excerpt_start(np.zeros(0), np.zeros(0)) == 0.0
    assert best_excerpt_start(starts, np.full(4, np.nan)) == 0.0
    with pytest.raises(ValueError):
        best_excerpt_start(starts, np.zeros(3))


@pytest.mark.parametrize("suffix", [".wav", ".flac", ".ogg", ".mp3"])
def test_load_for_playback_decodes_a_real_file(tmp_path: Path, suffix: str):
    path = write_audio(tmp_path / f"clip{suffix}", 2.0, seed=3, channels=2)
    audio = load_for_playback(path)
    assert audio.sr == 44100 and audio.channels == 2
    assert audio.samples.dtype == np.float32 and audio.samples.flags.c_contiguous
    assert audio.duration == pytest.approx(2.0, abs=0.06)
    assert 0.5 < np.abs(audio.samples).max() <= 1.0
    # The second channel is written at 0.8 x the first (conftest.music_like).
    rms = np.sqrt(np.mean(audio.samples.astype(np.float64) ** 2, axis=0))
    assert rms[1] == pytest.approx(0.8 * rms[0], rel=0.05)


def test_load_for_playback_resamples_and_downmixes(tmp_path: Path):
    path = write_audio(tmp_path / "clip.wav", 1.5, seed=1, channels=2)
    audio = load_for_playback(path, sr=48000, max_channels=1)
    assert audio.sr == 48000 and audio.channels == 1
    assert len(audio.samples) == pytest.approx(1.5 * 48000, abs=2)
    assert audio.info is not None and audio.info.samplerate == 44100


def test_load_for_playback_reports_a_bad_file(tmp_path: Path):
    bad = tmp_path / "bad.mp3"
    bad.write_text("not audio")
    with pytest.raises(AudioError, match=r"bad\.mp3"):
        load_for_playback(bad)

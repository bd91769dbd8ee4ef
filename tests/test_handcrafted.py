"""Tests of the librosa baseline backend."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import soundfile as sf
import soxr

from tagger_gui.core.audio import load_excerpts
from tagger_gui.core.embeddings import load_backend
from tagger_gui.core.embeddings.base import Backend
from tagger_gui.core.embeddings.handcrafted import HandcraftedBackend

SR = 22050


@pytest.fixture(scope="module")
def backend() -> HandcraftedBackend:
    return HandcraftedBackend()


def tone(freq: float, seconds: float, sr: int = SR) -> np.ndarray:
    t = np.arange(round(seconds * sr)) / sr
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def clicks(bpm: float, seconds: float, sr: int = SR) -> np.ndarray:
    """Short noise bursts on every beat."""
    y = np.zeros(round(seconds * sr), np.float32)
    burst = np.random.default_rng(0).standard_normal(256).astype(np.float32)
    burst *= np.exp(-np.arange(256) / 40)
    for start in np.arange(0, seconds, 60 / bpm):
        i = round(start * sr)
        y[i : i + 256] += burst[: len(y) - i]
    return y


def column(backend: HandcraftedBackend, name: str) -> int:
    return backend.feature_names.index(name)


def test_attributes(backend):
    assert isinstance(backend, Backend)
    assert (backend.name, backend.version) == ("handcrafted", "1")
    assert backend.sample_rate == 22050 and backend.patch_seconds == 3.0
    assert backend.patch_samples == 66150
    dim = backend.outputs["features"]
    assert list(backend.outputs) == ["features"]
    assert dim == len(backend.feature_names) == len(set(backend.feature_names))
    # 20 MFCC + 20 deltas + 7 contrast + 12 chroma, mean and std; onset x2; tempo
    assert dim == 2 * (20 + 20 + 7 + 12) + 3
    assert backend.params["sample_rate"] == 22050
    assert backend.tag_names == {}


def test_registry_and_device_ignored():
    b = load_backend("handcrafted", device="cuda")
    assert isinstance(b, HandcraftedBackend)
    assert b.outputs == HandcraftedBackend(device="auto").outputs


def test_shapes_and_finiteness(backend):
    y = tone(220, 7.0) + 0.05 * np.random.default_rng(0).standard_normal(7 * SR).astype(np.float32)
    x = backend.features(y, SR)
    assert x.shape == (2, backend.outputs["features"])  # 7 s: two patches, 1 s dropped
    assert x.dtype == np.float32 and np.isfinite(x).all()
    out = backend.infer(x)
    assert list(out) == ["features"]
    assert out["features"].dtype == np.float32
    np.testing.assert_array_equal(out["features"], x)
    np.testing.assert_array_equal(backend.embed_audio(y, SR)["features"], x)


@pytest.mark.parametrize(("seconds", "patches"), [(0.2, 1), (1.0, 1), (3.0, 1), (5.9, 1), (6.0, 2)])
def test_number_of_patches(backend, seconds, patches):
    assert backend.features(tone(440, seconds), SR).shape[0] == patches


def test_short_clip_is_repeat_padded(backend):
    y = tone(330, 1.0)
    np.testing.assert_array_equal(
        backend.features(y, SR), backend.features(np.tile(y, 3)[: backend.patch_samples], SR)
    )


def test_resamples_other_rates(backend):
    y = tone(440, 3.0, sr=44100)
    np.testing.assert_array_equal(
        backend.features(y, 44100),
        backend.features(soxr.resample(y, 44100, SR, quality="HQ"), SR),
    )


def test_different_signals_give_different_vectors(backend):
    rng = np.random.default_rng(1)
    signals = {
        "low": tone(110, 3.0),
        "high": tone(1760, 3.0),
        "noise": 0.1 * rng.standard_normal(3 * SR).astype(np.float32),
        "clicks": clicks(120, 3.0),
    }
    vectors = {k: backend.features(y, SR)[0] for k, y in signals.items()}
    names = list(vectors)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            dist = np.linalg.norm(vectors[a] - vectors[b])
            assert dist > 0.05 * np.linalg.norm(vectors[a]), (a, b)
    np.testing.assert_array_equal(vectors["low"], backend.features(signals["low"], SR)[0])


def test_features_mean_what_their_names_say(backend):
    a440 = backend.features(tone(440, 3.0), SR)[0]
    chroma = a440[column(backend, "chroma_mean_0") : column(backend, "chroma_mean_11") + 1]
    assert int(np.argmax(chroma)) == 9  # C, C#, ..., A
    beat = backend.features(clicks(120, 3.0), SR)[0]
    assert beat[column(backend, "tempo")] == pytest.approx(120, rel=0.05)
    assert (
        beat[column(backend, "onset_strength_mean")] > a440[column(backend, "onset_strength_mean")]
    )


@pytest.mark.parametrize("level", [0.0, 1e-7, 1e-4])
def test_silence_like_input_is_finite_and_quiet(backend, level):
    y = level * np.random.default_rng(2).standard_normal(4 * SR).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no librosa warning may leak
        x = backend.features(y, SR)
        short = backend.features(y[:100], SR)
    assert np.isfinite(x).all() and np.isfinite(short).all()
    assert x.shape == (1, backend.outputs["features"])


def test_rejects_bad_input(backend):
    with pytest.raises(ValueError):
        backend.features(np.zeros((2, SR), np.float32), SR)
    with pytest.raises(ValueError):
        backend.features(np.zeros(0, np.float32), SR)
    with pytest.raises(ValueError):
        backend.infer(np.zeros((2, 5), np.float32))


def test_with_decoded_file(backend, tmp_path):
    """The embedding job's path: excerpts from a file, then features per excerpt."""
    y = np.stack([tone(220, 40.0, 44100), tone(330, 40.0, 44100)], axis=1)
    path = tmp_path / "track.flac"
    sf.write(path, y, 44100)
    decoded = load_excerpts(path, backend.sample_rate)
    assert len(decoded.segments) == 10
    x = np.concatenate([backend.features(seg, decoded.sr) for seg in decoded.segments])
    assert x.shape == (10, backend.outputs["features"])
    assert np.isfinite(x).all()

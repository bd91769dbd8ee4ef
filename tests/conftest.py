"""Shared fixtures: real audio files written on the fly, and the reference clips."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

REPO = Path(__file__).resolve().parents[1]
SHARED_REFERENCE = REPO.parent / "shared" / "reference" / "musicnn"


def music_like(seconds: float, sr: int = 44100, channels: int = 2, seed: int = 0) -> np.ndarray:
    """A few seconds of something music-like: chords with envelopes, a beat, noise.

    Different seeds give audibly (and embedding-wise) different signals.
    """
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    t = np.arange(n) / sr
    y = np.zeros(n)
    beat = 60.0 / rng.uniform(80, 160)
    root = rng.uniform(110, 440)
    for k, ratio in enumerate((1.0, 1.25, 1.5, 2.0)):
        freq = root * ratio * (1 + 0.002 * k)
        y += np.sin(2 * np.pi * freq * t + rng.uniform(0, 2 * np.pi)) * rng.uniform(0.1, 0.3)
    y *= 0.6 + 0.4 * np.sin(2 * np.pi * t / (4 * beat)) ** 2
    # percussive clicks on the beat
    clicks = (np.mod(t, beat) < 0.03) * rng.normal(0, 0.4, n)
    y += clicks + rng.normal(0, 0.02, n)
    y = y / np.max(np.abs(y)) * 0.8
    if channels == 1:
        return y.astype(np.float32)
    spread = [y * (1 - 0.2 * c) for c in range(channels)]
    return np.stack(spread, axis=1).astype(np.float32)


# (model, variables, values) of the four checkpoints in the musicnn 0.1.0 wheel
CHECKPOINT_SIZES = [
    ("MSD_musicnn", 64, 792_079),
    ("MTT_musicnn", 64, 792_079),
    ("MSD_vgg", 36, 607_030),
    ("MTT_vgg", 36, 607_030),
]

FORMATS = {
    ".wav": ("WAV", "PCM_16", 44100),
    ".flac": ("FLAC", "PCM_16", 44100),
    ".ogg": ("OGG", "VORBIS", 44100),
    ".opus": ("OGG", "OPUS", 48000),
    ".mp3": ("MP3", "MPEG_LAYER_III", 44100),
}


def write_audio(path: Path, seconds: float, *, seed: int = 0, channels: int = 2) -> Path:
    """Write a music-like file whose format follows the suffix of ``path``."""
    fmt, subtype, sr = FORMATS[path.suffix.lower()]
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, music_like(seconds, sr, channels, seed), sr, format=fmt, subtype=subtype)
    return path


@pytest.fixture
def small_library(tmp_path: Path) -> Path:
    """A music folder with good files of each kind and a few bad ones."""
    root = tmp_path / "Music Library"
    write_audio(root / "long track.wav", 40, seed=1)
    write_audio(root / "Album" / "b.flac", 8, seed=2)
    write_audio(root / "Album" / "short.ogg", 1.5, seed=3)
    write_audio(root / "Björk – Jóga 日本語.mp3", 6, seed=4)
    (root / "not really.mp3").write_text("this is a text file, not audio\n")
    (root / "empty.wav").write_bytes(b"")
    (root / "notes.txt").write_text("ignored: not an audio extension\n")
    return root


@pytest.fixture
def shared_reference() -> Path:
    if not SHARED_REFERENCE.is_dir():
        pytest.skip(f"reference clips not found at {SHARED_REFERENCE} (needs ../shared)")
    return SHARED_REFERENCE

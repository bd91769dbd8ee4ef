"""Tests of tagger_gui.core.audio on real files written with soundfile."""

from __future__ import annotations

import dataclasses
import math
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr

from tagger_gui.core import audio
from tagger_gui.core.audio import (
    AUDIO_EXTENSIONS,
    AnalysisPolicy,
    AudioInfo,
    DecodedAudio,
    file_identity,
    is_audio_path,
    load_excerpts,
    probe,
)
from tagger_gui.core.errors import AudioError

SR = 44100
SECONDS = 16.0
WHOLE = AnalysisPolicy(whole=True)
# Small policies, so that short files (quick to encode) are cut into excerpts:
# gaps of over 4 s between excerpts are seeked over, shorter ones decoded
# through (see audio._move); both ways must give the same samples.
FAR = AnalysisPolicy(max_patches=3, patch_seconds=1.0)  # gaps of 4.3 s
NEAR = AnalysisPolicy(max_patches=8, patch_seconds=1.0)  # gaps of 1 s
POLICIES = pytest.mark.parametrize("policy", [FAR, NEAR], ids=["far", "near"])

# extension -> (soundfile format, subtype, sample rate)
FORMATS = {
    "wav": ("WAV", "PCM_16", SR),
    "flac": ("FLAC", "PCM_16", SR),
    "ogg": ("OGG", "VORBIS", SR),
    "opus": ("OGG", "OPUS", 48000),  # Opus only runs at 48 kHz (and 8/12/16/24)
    "mp3": ("MP3", "MPEG_LAYER_III", SR),
}
LOSSLESS = {"wav", "flac"}


def music(seconds: float, sr: int, seed: int = 0) -> np.ndarray:
    """Stereo float32 'music': random notes with harmonics and decay, some noise."""
    rng = np.random.default_rng(seed)
    n = round(seconds * sr)
    note = int(0.25 * sr)
    pitches = 110.0 * 2.0 ** (rng.integers(0, 36, n // note + 1) / 12)
    freq = np.repeat(pitches, note)[:n]
    phase = 2 * np.pi * np.cumsum(freq) / sr
    env = np.exp(-6.0 * (np.arange(n) % note) / sr)
    x = 0.3 * env * (np.sin(phase) + 0.5 * np.sin(2 * phase) + 0.25 * np.sin(3 * phase))
    left = x + 0.01 * rng.standard_normal(n)
    right = 0.8 * x + 0.01 * rng.standard_normal(n)
    return np.stack([left, right], axis=1).astype(np.float32)


def write(path, data: np.ndarray, sr: int, fmt: str, subtype: str) -> Path:
    """Write in blocks: libvorbis overflows its stack on one long write."""
    with sf.SoundFile(path, "w", sr, data.shape[1], format=fmt, subtype=subtype) as f:
        for i in range(0, len(data), 32768):
            f.write(data[i : i + 32768])
    return Path(path)


def mono(x: np.ndarray) -> np.ndarray:
    return x.mean(axis=1, dtype=np.float32)


def full_decode(path) -> tuple[np.ndarray, int]:
    """The whole file decoded in one go by soundfile, averaged to mono."""
    with open(path, "rb") as fh:
        x, sr = sf.read(fh, dtype="float32", always_2d=True)
    return mono(x), sr


def corr(a: np.ndarray, b: np.ndarray) -> float:
    n = min(len(a), len(b))
    return float(np.corrcoef(a[:n], b[:n])[0, 1])


def assert_audio_error(excinfo, path, *reasons: str) -> None:
    err = excinfo.value
    assert isinstance(err, AudioError)
    assert os.path.basename(os.fspath(path)) in str(err)
    assert err.path == os.fspath(path)
    assert any(r in err.reason for r in reasons), f"{err.reason!r} lacks one of {reasons}"


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, tuple[Path, np.ndarray, int]]:
    """16-s stereo tracks in every format: ext -> (path, source, sample rate)."""
    d = tmp_path_factory.mktemp("formats")
    out = {}
    for ext, (fmt, subtype, sr) in FORMATS.items():
        src = music(SECONDS, sr)
        out[ext] = (write(d / f"track.{ext}", src, sr, fmt, subtype), src, sr)
    return out


@pytest.fixture(scope="module")
def ten_minutes(tmp_path_factory) -> tuple[dict[str, Path], np.ndarray]:
    """A 10-minute stereo 44.1-kHz track as WAV and FLAC, and its samples, mono.

    16-bit noise: fast to make, and lossless files decode to exactly
    ``int16 / 32768``, so the source is the full decode.
    """
    d = tmp_path_factory.mktemp("long")
    x = np.random.default_rng(1).integers(-2000, 2000, (600 * SR, 2), dtype=np.int16)
    paths = {}
    for ext in ("wav", "flac"):
        paths[ext] = d / f"ten.{ext}"
        sf.write(paths[ext], x, SR, format=FORMATS[ext][0], subtype="PCM_16")
    return paths, mono(x.astype(np.float32) / 32768)


# --------------------------------------------------------------------------
# Paths and policy


def test_is_audio_path():
    for name in ["a.wav", "B.FLAC", "c.Mp3", "d.ogg", "e.oga", "f.opus", "g.aiff", "h.aif"]:
        assert is_audio_path(name), name
    assert is_audio_path(Path("/music/x y/Björk – Jóga.flac"))
    for name in ["a.txt", "cover.jpg", "song.m4a", "noext", ".flac.part", "._song.mp3"]:
        assert not is_audio_path(name), name
    assert all(ext.startswith(".") and ext == ext.lower() for ext in AUDIO_EXTENSIONS)


def test_policy_excerpts_are_centred_in_equal_sections():
    policy = AnalysisPolicy()
    excerpts = policy.excerpts(600.0)
    assert len(excerpts) == 10
    assert excerpts == [((i + 0.5) * 60 - 1.5, 3.0) for i in range(10)]
    assert policy.excerpts(30.0) == [(0.0, 30.0)]  # up to 30 s: whole
    assert policy.excerpts(2.0) == [(0.0, 2.0)]
    assert len(policy.excerpts(30.5)) == 10
    assert WHOLE.excerpts(600.0) == [(0.0, 600.0)]
    small = AnalysisPolicy(max_patches=4, patch_seconds=1.0)
    assert small.excerpts(8.0) == [(0.5, 1.0), (2.5, 1.0), (4.5, 1.0), (6.5, 1.0)]
    bad_values = [dict(max_patches=0), dict(max_patches=2.0), dict(patch_seconds=0.0)]
    for bad in bad_values:
        with pytest.raises(ValueError):
            AnalysisPolicy(**bad)
    with pytest.raises(ValueError):
        policy.excerpts(-1.0)


# --------------------------------------------------------------------------
# Formats


@pytest.mark.parametrize("ext", list(FORMATS))
def test_probe(files, ext):
    path, src, sr = files[ext]
    info = probe(path)
    assert isinstance(info, AudioInfo)
    assert info.path == os.fspath(path)
    assert (info.samplerate, info.channels) == (sr, 2)
    assert info.format == FORMATS[ext][0]
    assert info.subtype == FORMATS[ext][1]
    # LAME writes a Xing/Info header, so even MP3 knows its exact length.
    assert info.frames == len(src)
    assert info.duration == pytest.approx(SECONDS)
    assert info.frames_exact
    assert info.identity == file_identity(path) == (path.stat().st_size, path.stat().st_mtime_ns)


@pytest.mark.parametrize("ext", list(FORMATS))
def test_whole_decode_matches_source(files, ext):
    path, src, sr = files[ext]
    d = load_excerpts(path, sr, policy=WHOLE)
    assert isinstance(d, DecodedAudio)
    assert d.whole and not d.short and d.sr == sr
    assert len(d.segments) == 1 and d.starts.tolist() == [0.0]
    (y,) = d.segments
    assert y.dtype == np.float32 and y.ndim == 1
    assert abs(len(y) - len(src)) <= (0.05 * sr if ext == "mp3" else 0)
    assert d.duration == pytest.approx(SECONDS, abs=0.05)
    assert d.peak == pytest.approx(float(np.abs(y).max()))
    assert corr(y, mono(src)) > (0.999 if ext in LOSSLESS else 0.95)


def test_resampled_whole_decode(files):
    path, src, sr = files["opus"]  # 48 kHz -> 22050 Hz
    y = load_excerpts(path, 22050, policy=WHOLE).segments[0]
    ref = soxr.resample(mono(src), sr, 22050, quality="HQ")
    assert abs(len(y) - round(SECONDS * 22050)) <= 1
    assert corr(y, ref) > 0.95


@POLICIES
@pytest.mark.parametrize("ext", list(FORMATS))
def test_excerpts_equal_same_region_of_full_decode(files, ext, policy):
    path, _, sr = files[ext]
    d = load_excerpts(path, sr, policy=policy)
    assert not d.whole and not d.short
    expected_starts = [s for s, _ in policy.excerpts(SECONDS)]
    np.testing.assert_allclose(d.starts, expected_starts, atol=1 / sr)
    full, _ = full_decode(path)
    for start, seg in zip(d.starts, d.segments, strict=True):
        assert len(seg) == sr and seg.dtype == np.float32
        i = round(start * sr)
        if ext in LOSSLESS:
            np.testing.assert_array_equal(seg, full[i : i + len(seg)])
        else:
            # Exact in practice, except that mpg123 may differ by < 1e-3 in the
            # first few samples after seeking backwards (bit reservoir).
            np.testing.assert_allclose(seg, full[i : i + len(seg)], atol=1e-3)


@POLICIES
@pytest.mark.parametrize(("ext", "sr"), [("flac", 22050), ("mp3", 16000), ("ogg", 22050)])
def test_resampled_excerpts_equal_resampled_track(files, ext, sr, policy):
    """An excerpt is the same samples as that region of the whole track resampled."""
    path, _, _ = files[ext]
    d = load_excerpts(path, sr, policy=policy)
    full, file_sr = full_decode(path)
    ref = soxr.resample(full, file_sr, sr, quality="HQ")
    for start, seg in zip(d.starts, d.segments, strict=True):
        assert len(seg) == sr
        j = start * sr
        assert j == pytest.approx(round(j), abs=1e-6)  # starts fall on the output grid
        np.testing.assert_allclose(seg, ref[round(j) : round(j) + len(seg)], atol=1e-5)


@pytest.mark.parametrize("ext", ["wav", "flac"])
def test_ten_minute_track_costs_ten_excerpts(ten_minutes, ext):
    paths, full = ten_minutes
    d = load_excerpts(paths[ext], SR)  # the default policy
    assert d.duration == 600.0
    assert len(d.segments) == 10
    np.testing.assert_array_equal(d.starts, [(i + 0.5) * 60 - 1.5 for i in range(10)])
    for start, seg in zip(d.starts, d.segments, strict=True):
        assert len(seg) == 3 * SR
        i = round(start * SR)
        np.testing.assert_array_equal(seg, full[i : i + 3 * SR])


def test_short_clip_is_returned_as_is(tmp_path):
    path = write(tmp_path / "clip.flac", music(1.0, SR), SR, "FLAC", "PCM_16")
    d = load_excerpts(path, 22050)
    assert d.short and d.whole
    assert len(d.segments) == 1 and len(d.segments[0]) == 22050
    assert d.duration == 1.0


def test_mono_file(tmp_path):
    src = music(5.0, 22050)[:, :1]
    path = write(tmp_path / "mono.wav", src, 22050, "WAV", "FLOAT")
    d = load_excerpts(path, 22050)
    np.testing.assert_array_equal(d.segments[0], src[:, 0])


def test_mp3_without_length_header_is_measured(files, tmp_path):
    """Without a Xing/Info header mpg123 guesses the length; we measure it."""
    data = bytearray(files["mp3"][0].read_bytes())
    for tag in (b"Xing", b"Info"):
        i = data.find(tag, 0, 200)
        if i >= 0:
            data[i : i + 4] = b"ZZZZ"
    path = tmp_path / "noheader.mp3"
    path.write_bytes(bytes(data))
    info = probe(path)
    assert not info.frames_exact
    d = load_excerpts(path, SR, info=info, policy=FAR)
    full, _ = full_decode(path)
    assert d.duration == len(full) / SR
    for start, seg in zip(d.starts, d.segments, strict=True):
        i = round(start * SR)
        np.testing.assert_allclose(seg, full[i : i + len(seg)], atol=1e-3)


@pytest.mark.parametrize("ext", ["flac", "mp3", "ogg"])
def test_sequential_fallback_matches_seeking(files, ext, monkeypatch):
    path = files[ext][0]
    seeking = load_excerpts(path, 22050, policy=FAR)
    monkeypatch.setattr(sf.SoundFile, "seekable", lambda self: False)
    sequential = load_excerpts(path, 22050, policy=FAR)
    np.testing.assert_array_equal(seeking.starts, sequential.starts)
    for a, b in zip(seeking.segments, sequential.segments, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)


@pytest.mark.parametrize("ext", ["flac", "mp3", "opus"])
def test_file_object_opener_matches_descriptor(files, ext, monkeypatch):
    """The Windows code path (a Python file object) gives the same audio."""
    path, _, sr = files[ext]
    by_fd = load_excerpts(path, sr, policy=FAR)
    monkeypatch.setattr(audio, "_USE_FILE_OBJECT", True)
    by_object = load_excerpts(path, sr, policy=FAR)
    for a, b in zip(by_fd.segments, by_object.segments, strict=True):
        np.testing.assert_array_equal(a, b)


# --------------------------------------------------------------------------
# Paths that must work


def test_unicode_path(tmp_path):
    d = tmp_path / "Sigur Rós ♫ 音楽"
    d.mkdir()
    path = write(d / "Björk – Jóga 日本語 🎵.flac", music(35.0, SR), SR, "FLAC", "PCM_16")
    assert is_audio_path(path)
    assert probe(path).duration == 35.0
    assert len(load_excerpts(path, 22050).segments) == 10
    silent = write(d / "Stille – 静か 🎵.wav", np.zeros((SR, 2), np.float32), SR, "WAV", "PCM_16")
    with pytest.raises(AudioError) as excinfo:
        load_excerpts(silent, 22050)
    assert_audio_error(excinfo, silent, "audio is silent")


@pytest.mark.parametrize("ext", ["flac", "mp3"])
def test_very_long_path(tmp_path, ext):
    """libsndfile refuses names over ~1 KiB, so files are opened by descriptor."""
    d = tmp_path
    while len(os.fspath(d)) < 1000:
        d = d / ("nested_directory_" + "x" * 40)
    d.mkdir(parents=True)
    fmt, subtype, sr = FORMATS[ext]
    short = write(tmp_path / f"short.{ext}", music(4.0, sr), sr, fmt, subtype)
    path = d / ("n" * (200 - len(ext) - 1) + f".{ext}")
    os.replace(short, path)
    assert len(path.name) == 200 and len(os.fspath(path)) > 1000
    assert probe(path).channels == 2
    assert load_excerpts(path, 22050).duration == pytest.approx(4.0, abs=0.05)
    text = path.with_name("t" * 195 + ".mp3")
    text.write_text("not audio")
    with pytest.raises(AudioError) as excinfo:
        probe(text)
    assert_audio_error(excinfo, text, "not a readable audio file")


# --------------------------------------------------------------------------
# Bad input


@pytest.mark.parametrize("ext", ["flac", "mp3", "ogg", "opus", "wav"])
@pytest.mark.parametrize("keep", ["half", "100 bytes"])
@pytest.mark.parametrize("policy", [FAR, WHOLE], ids=["excerpts", "whole"])
def test_truncated_file(files, tmp_path, ext, keep, policy):
    data = files[ext][0].read_bytes()
    path = tmp_path / f"cut.{ext}"
    path.write_bytes(data[: len(data) // 2] if keep == "half" else data[:100])
    with pytest.raises(AudioError) as excinfo:
        load_excerpts(path, 22050, policy=policy)
    assert_audio_error(excinfo, path, "truncated", "not a readable audio file")


def test_text_file_named_mp3(tmp_path):
    path = tmp_path / "song.mp3"
    path.write_text("This is not an MP3 file.\n" * 100)
    for func in (probe, lambda p: load_excerpts(p, 22050)):
        with pytest.raises(AudioError) as excinfo:
            func(path)
        assert_audio_error(excinfo, path, "not a readable audio file (libsndfile: ")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.flac"
    path.touch()
    with pytest.raises(AudioError) as excinfo:
        load_excerpts(path, 22050)
    assert_audio_error(excinfo, path, "file is empty")


def test_wav_with_header_but_no_frames(tmp_path):
    path = tmp_path / "noframes.wav"
    sf.SoundFile(path, "w", SR, 2, format="WAV", subtype="PCM_16").close()
    assert path.stat().st_size > 0
    with pytest.raises(AudioError) as excinfo:
        probe(path)
    assert_audio_error(excinfo, path, "no samples")


@pytest.mark.parametrize("level_db", [None, -90.0])
def test_silent_audio(tmp_path, level_db):
    x = np.zeros((3 * SR, 2), np.float32)
    if level_db is not None:
        x += 10 ** (level_db / 20) * np.sign(np.random.default_rng(0).standard_normal(x.shape))
    path = write(tmp_path / "silence.wav", x, SR, "WAV", "FLOAT")
    with pytest.raises(AudioError) as excinfo:
        load_excerpts(path, 22050)
    assert_audio_error(excinfo, path, "audio is silent")


def test_quiet_audio_is_not_silent(tmp_path):
    x = 10 ** (-70 / 20) * music(3.0, SR) / 0.6  # peak around -70 dBFS
    path = write(tmp_path / "quiet.wav", x, SR, "WAV", "FLOAT")
    assert load_excerpts(path, SR).peak > audio.SILENCE_PEAK


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_samples(tmp_path, bad):
    x = music(3.0, SR)
    x[SR, 0] = bad
    path = write(tmp_path / "nan.wav", x, SR, "WAV", "FLOAT")
    with pytest.raises(AudioError) as excinfo:
        load_excerpts(path, 22050)
    assert_audio_error(excinfo, path, "NaN or infinite")


def test_missing_file(tmp_path):
    path = tmp_path / "gone.flac"
    for func in (probe, file_identity, lambda p: load_excerpts(p, 22050)):
        with pytest.raises(AudioError) as excinfo:
            func(path)
        assert_audio_error(excinfo, path, "file not found")


@pytest.mark.skipif(sys.platform == "win32", reason="symbolic links need privileges on Windows")
def test_broken_symlink(tmp_path):
    path = tmp_path / "link.flac"
    path.symlink_to(tmp_path / "moved-away.flac")
    with pytest.raises(AudioError) as excinfo:
        load_excerpts(path, 22050)
    assert_audio_error(excinfo, path, "broken symbolic link")
    assert "moved-away.flac" in str(excinfo.value)


def test_directory_named_like_audio(tmp_path):
    path = tmp_path / "Album.flac"
    path.mkdir()
    assert is_audio_path(path)  # the scanner must check, not trust the name
    with pytest.raises(AudioError) as excinfo:
        probe(path)
    assert_audio_error(excinfo, path, "is a directory")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes")
def test_named_pipe_is_not_opened(tmp_path):
    path = tmp_path / "pipe.wav"
    os.mkfifo(path)  # opening it would block until a writer appears
    with pytest.raises(AudioError) as excinfo:
        probe(path)
    assert_audio_error(excinfo, path, "not a regular file")


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
def test_permission_denied(tmp_path):
    src = music(1.0, SR)
    if os.geteuid() != 0:
        path = write(tmp_path / "locked.flac", src, SR, "FLAC", "PCM_16")
        path.chmod(0)
        try:
            if os.access(path, os.R_OK):
                pytest.skip("this file system does not enforce permissions")
            with pytest.raises(AudioError) as excinfo:
                load_excerpts(path, 22050)
        finally:
            path.chmod(0o600)
        assert_audio_error(excinfo, path, "permission denied")
        return
    # Root reads any file whatever its mode (CAP_DAC_OVERRIDE), so read it as
    # the unprivileged user "nobody" instead, from a directory it may enter.
    d = Path(tempfile.mkdtemp(prefix="tagger-perm-"))
    try:
        d.chmod(0o755)
        path = write(d / "locked.flac", src, SR, "FLAC", "PCM_16")
        path.chmod(0o600)
        try:
            os.seteuid(65534)
        except PermissionError:
            pytest.skip("running as root without the right to switch to an unprivileged user")
        try:
            with pytest.raises(AudioError) as excinfo:
                load_excerpts(path, 22050)
        finally:
            os.seteuid(0)
        assert_audio_error(excinfo, path, "permission denied")
    finally:
        shutil.rmtree(d)


def test_file_changed_while_being_read(files, tmp_path, monkeypatch):
    path = tmp_path / "changing.flac"
    shutil.copy(files["flac"][0], path)
    decode = audio._decode

    def decode_then_rewrite(p, *args, **kwargs):
        result = decode(p, *args, **kwargs)
        with open(p, "ab") as fh:  # e.g. a tagger saving new tags meanwhile
            fh.write(b"\0" * 128)
        return result

    monkeypatch.setattr(audio, "_decode", decode_then_rewrite)
    with pytest.raises(AudioError) as excinfo:
        load_excerpts(path, 22050)
    assert_audio_error(excinfo, path, "file changed while it was being read")


def test_file_changed_since_probe(files, tmp_path):
    path = tmp_path / "retagged.flac"
    shutil.copy(files["flac"][0], path)
    info = probe(path)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    with pytest.raises(AudioError) as excinfo:
        load_excerpts(path, 22050, info=info)
    assert_audio_error(excinfo, path, "file changed since it was probed")
    assert load_excerpts(path, 22050, info=probe(path)).duration == SECONDS


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
def test_no_file_descriptor_leak(files, tmp_path):
    bad = tmp_path / "bad.mp3"
    bad.write_text("text")
    half = tmp_path / "half.flac"
    data = files["flac"][0].read_bytes()
    half.write_bytes(data[: len(data) // 2])
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(5):
        for p in (bad, half):
            with pytest.raises(AudioError):
                load_excerpts(p, 22050)
        load_excerpts(files["mp3"][0], 22050)
    assert len(os.listdir("/proc/self/fd")) == before


def test_silence_threshold_is_minus_80_dbfs():
    assert 20 * math.log10(audio.SILENCE_PEAK) == pytest.approx(-80.0)


def test_a_few_frames_short_at_the_very_end_is_not_truncation(tmp_path, monkeypatch):
    """Opus files in the wild announce ~10 frames more than the decoder returns."""
    path = tmp_path / "end.wav"
    sf.write(path, (0.3 * np.sin(np.arange(48000 * 40) / 9)).astype(np.float32), 48000)
    real_probe = audio.probe

    def probe_overcounting(p, *args, **kwargs):
        info = real_probe(p, *args, **kwargs)
        return dataclasses.replace(info, frames=info.frames + 10)

    monkeypatch.setattr(audio, "probe", probe_overcounting)
    whole = audio.load_excerpts(path, 16000, policy=audio.AnalysisPolicy(whole=True))
    assert whole.duration == pytest.approx(40, abs=0.01)
    excerpts = audio.load_excerpts(path, 16000)
    assert len(excerpts.segments) == 10
    # a real cut stays an error
    monkeypatch.setattr(
        audio, "probe", lambda p, *a, **k: dataclasses.replace(real_probe(p), frames=48000 * 41)
    )
    with pytest.raises(audio.AudioError, match="truncated"):
        audio.load_excerpts(path, 16000)

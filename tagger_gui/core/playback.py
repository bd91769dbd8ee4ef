"""Audio for listening and for display: whole-track decoding, waveform, mel image.

The player (``tagger_gui/qt/player.py``) plays what :func:`load_for_playback`
returns and the waveform widget draws :func:`waveform_envelope` and
:func:`mel_image`. Nothing here touches Qt or an audio device, so all of it is
tested without either.

Unlike :func:`tagger_gui.core.audio.load_excerpts` (mono excerpts at a
model's rate), listening needs the whole track, in stereo, at the output
device's rate; it is resampled here with soxr so that PortAudio never has to
convert rates.
"""

from __future__ import annotations

import os
from collections.abc import Generator
from dataclasses import dataclass

import numpy as np
import soundfile as sf
import soxr

from tagger_gui.core.audio import AudioInfo, _open, probe
from tagger_gui.core.errors import AudioError

__all__ = [
    "PlaybackAudio",
    "PreparedTrack",
    "best_excerpt_start",
    "load_for_playback",
    "mel_image",
    "prepare_track_task",
    "waveform_envelope",
]


@dataclass
class PlaybackAudio:
    """A decoded track ready to play.

    Attributes
    ----------
    samples : np.ndarray
        float32, C-contiguous, shape ``(frames, channels)`` with one or two
        channels.
    sr : int
        Sample rate of ``samples``, Hz.
    info : AudioInfo or None
        The file as probed (None for audio that did not come from a file).
    """

    samples: np.ndarray
    sr: int
    info: AudioInfo | None = None

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return len(self.samples) / self.sr

    @property
    def channels(self) -> int:
        """1 or 2."""
        return self.samples.shape[1]


def _to_stereo_at_most(block: np.ndarray, max_channels: int) -> np.ndarray:
    if block.shape[1] <= max_channels:
        return block
    # More channels than the output takes: average them all into each output
    # channel rather than dropping the surround ones.
    mono = block.mean(axis=1, keepdims=True, dtype=np.float32)
    return np.repeat(mono, max_channels, axis=1)


def load_for_playback(
    path: str | os.PathLike,
    *,
    sr: int | None = None,
    max_channels: int = 2,
) -> PlaybackAudio:
    """Decode a whole track for listening.

    Parameters
    ----------
    path : str or path-like
    sr : int, keyword-only
        Output rate (the device's); None keeps the file's rate.
    max_channels : int, keyword-only
        1 (mono) or 2. Files with more channels are mixed down.

    Returns
    -------
    PlaybackAudio

    Raises
    ------
    AudioError
        The file cannot be read or decoded (see :func:`~tagger_gui.core.audio.probe`),
        or contains NaN/inf samples.
    """
    if max_channels not in (1, 2):
        raise ValueError(f"max_channels must be 1 or 2, not {max_channels!r}")
    info = probe(path)
    with _open(path) as snd:
        try:
            data = snd.read(dtype="float32", always_2d=True)
        except (sf.SoundFileError, RuntimeError) as exc:
            raise AudioError(path, f"corrupt or truncated audio data ({exc})") from None
    if len(data) == 0:
        raise AudioError(path, "audio has no samples (0 frames)")
    data = _to_stereo_at_most(data, max_channels)
    if not np.isfinite(data).all():
        raise AudioError(path, "audio contains NaN or infinite sample values")
    out_sr = info.samplerate if sr is None else int(sr)
    if out_sr <= 0:
        raise ValueError(f"sr must be positive, not {sr!r}")
    if out_sr != info.samplerate:
        data = soxr.resample(data, info.samplerate, out_sr, quality="HQ")
    samples = np.ascontiguousarray(data, dtype=np.float32)
    return PlaybackAudio(samples=samples, sr=out_sr, info=info)


def waveform_envelope(y: np.ndarray, n_buckets: int) -> tuple[np.ndarray, np.ndarray]:
    """Minimum and maximum of the signal in each of ``n_buckets`` equal spans.

    Parameters
    ----------
    y : np.ndarray
        ``(frames,)`` or ``(frames, channels)``; for several channels the
        envelope covers all of them.
    n_buckets : int
        Number of spans (typically the width of the drawing in pixels).

    Returns
    -------
    mins, maxs : np.ndarray
        float32, shape ``(n_buckets,)``. When there are fewer samples than
        buckets, a bucket holds the sample it falls on. Empty input gives
        zeros.
    """
    if n_buckets < 1:
        raise ValueError(f"n_buckets must be >= 1, not {n_buckets!r}")
    y = np.asarray(y, dtype=np.float32)
    if y.ndim == 2:
        lo, hi = y.min(axis=1), y.max(axis=1)
    elif y.ndim == 1:
        lo = hi = y
    else:
        raise ValueError(f"y must be 1-D or 2-D, not {y.ndim}-D")
    n = len(lo)
    if n == 0:
        zeros = np.zeros(n_buckets, dtype=np.float32)
        return zeros, zeros.copy()
    starts = np.minimum((np.arange(n_buckets) * n) // n_buckets, n - 1)
    mins = np.minimum.reduceat(lo, starts)
    maxs = np.maximum.reduceat(hi, starts)
    # reduceat gives y[start] for an empty span (start == next start); that is
    # the sample the bucket falls on, as documented.
    return mins.astype(np.float32), maxs.astype(np.float32)


def mel_image(
    y: np.ndarray,
    sr: int,
    *,
    n_mels: int = 64,
    hop_seconds: float = 0.02,
    n_fft: int = 2048,
    top_db: float = 80.0,
) -> np.ndarray:
    """A log-mel spectrogram for display.

    Parameters
    ----------
    y : np.ndarray
        ``(frames,)`` or ``(frames, channels)`` (channels are averaged).
    sr : int
    n_mels : int, keyword-only
        Rows of the image (low frequencies first).
    hop_seconds : float, keyword-only
        Time step between columns.
    n_fft : int, keyword-only
        FFT size (shrunk for very short signals).
    top_db : float, keyword-only
        Dynamic range kept below the loudest cell.

    Returns
    -------
    np.ndarray
        float32 ``(n_mels, columns)`` in dB relative to the loudest cell,
        within ``[-top_db, 0]``; about ``duration / hop_seconds + 1`` columns.
    """
    import librosa  # heavy import, only when an image is asked for

    y = np.asarray(y, dtype=np.float32)
    if y.ndim == 2:
        y = y.mean(axis=1)
    hop = max(1, round(hop_seconds * sr))
    n_fft = int(min(n_fft, max(16, 2 ** int(np.floor(np.log2(max(len(y), 16)))))))
    mel = librosa.feature.melspectrogram(
        y=y, sr=sr, n_fft=n_fft, hop_length=hop, n_mels=n_mels, power=2.0
    )
    if not np.any(mel > 0):
        return np.full(mel.shape, -top_db, dtype=np.float32)
    db = librosa.power_to_db(mel, ref=np.max, top_db=top_db)
    return np.clip(db, -top_db, 0.0).astype(np.float32)


def best_excerpt_start(patch_starts: np.ndarray, patch_scores: np.ndarray) -> float:
    """Start (seconds) of the patch that scores highest for a tag.

    Parameters
    ----------
    patch_starts : np.ndarray
        ``(P,)`` start times, as returned by ``EmbeddingCache.load_patches``.
    patch_scores : np.ndarray
        ``(P,)`` score of each patch for the current tag (NaN is ignored).

    Returns
    -------
    float
        The start of the best patch; 0.0 when there are no patches or no
        finite score. Ties go to the earliest patch.
    """
    starts = np.asarray(patch_starts, dtype=np.float64).reshape(-1)
    scores = np.asarray(patch_scores, dtype=np.float64).reshape(-1)
    if len(starts) != len(scores):
        raise ValueError(f"{len(starts)} patch starts but {len(scores)} patch scores")
    finite = np.isfinite(scores)
    if not finite.any():
        return 0.0
    best = int(np.argmax(np.where(finite, scores, -np.inf)))
    return float(starts[best])


@dataclass
class PreparedTrack:
    """A track decoded for listening, with what its view draws.

    Attributes
    ----------
    audio : PlaybackAudio
    mins, maxs : np.ndarray
        The waveform envelope (:func:`waveform_envelope`).
    mel_db : np.ndarray
        The log-mel image (:func:`mel_image`).
    """

    audio: PlaybackAudio
    mins: np.ndarray
    maxs: np.ndarray
    mel_db: np.ndarray


def prepare_track_task(
    path: str | os.PathLike, *, sr: int | None = None, n_buckets: int = 2000
) -> Generator[str, None, PreparedTrack]:
    """Decode ``path`` and compute its waveform and mel image (a pool task).

    Yields ``"decoding"`` then ``"drawing"``; closing the generator between
    them skips the drawing of a track nobody waits for any more.

    Raises
    ------
    AudioError
        As :func:`load_for_playback`.
    """
    yield "decoding"
    audio = load_for_playback(path, sr=sr)
    yield "drawing"
    mins, maxs = waveform_envelope(audio.samples, n_buckets)
    return PreparedTrack(audio, mins, maxs, mel_image(audio.samples, audio.sr))

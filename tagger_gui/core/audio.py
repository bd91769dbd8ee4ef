"""Decoding audio files for the embedding job.

Runs in worker processes, so it uses numpy, soundfile (libsndfile) and soxr
only. Every problem with a file is raised as :class:`AudioError` whose
message names the file and says what is wrong with it.

What is decoded is set by an :class:`AnalysisPolicy`: tracks up to
``max_patches * patch_seconds`` (30 s by default) are analysed whole; longer
tracks are represented by ``max_patches`` excerpts of ``patch_seconds`` each,
one centred in each of ``max_patches`` equal sections of the track, so a
10-minute track costs the same as a 30-second one.

Decoding strategy
-----------------
Excerpts are read by seeking (``SoundFile.seek`` then ``read``) rather than by
decoding the whole file. With the libsndfile bundled in soundfile 0.14
(libsndfile 1.2.2 with mpg123, libvorbis, libopus, libFLAC) seeking lands on
the exact sample for WAV, FLAC, Ogg Vorbis, Ogg Opus and MP3: an excerpt is
the same samples as that region of a full decode (``tests/test_audio.py``
checks this for every format). For MP3 this holds because mpg123 seeks
accurately (by frame index, not by byte-ratio guessing) and trims the encoder
delay when the file has a LAME/Xing header; the first ~200 samples after a
*backward* seek can differ by < 1e-3 (mpg123 re-primes its bit reservoir).

Two exceptions, both worked around:

- libsndfile's Ogg Vorbis decoder lands up to a few thousand samples early
  when asked to seek less than 2 s *forward* of its current position (it
  skips without bisecting and miscounts when Vorbis block sizes vary). Short
  gaps between excerpts are therefore decoded through rather than seeked
  over, for every format (:func:`_move`).
- The length of an MP3 without a Xing/Info/VBRI header is an estimate
  (mpg123 extrapolates from the file size and the first frame's bitrate; for
  VBR files it can be off by a fifth), and libsndfile never returns samples
  past the announced length. For such files (``AudioInfo.frames_exact`` is
  False) the track is first decoded sequentially, discarding the audio, to
  measure what can actually be decoded, and the excerpts are planned on that.
  (If the estimate is too short, the tail is out of reach of libsndfile.)

A file that libsndfile reports as non-seekable is decoded sequentially,
keeping only the excerpts. Truncation shows as a decoding error (FLAC), as a
read that ends before the announced length (MP3: the end of the file is
always read, even when the excerpts skip it), or only in libsndfile's header
log (WAV/AIFF/AU/W64 data chunk, Ogg without end-of-stream page).

Files are opened by file descriptor (POSIX) or as a Python file object
(Windows), never by name: libsndfile refuses paths longer than about 1 KiB
("Supplied filename too long"), and this also sidesteps any encoding issue
with non-ASCII names.
"""

from __future__ import annotations

import math
import numbers
import os
import re
import stat
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import soundfile as sf
import soxr

from tagger_gui.core.errors import AudioError

__all__ = [
    "AUDIO_EXTENSIONS",
    "SILENCE_PEAK",
    "AnalysisPolicy",
    "AudioInfo",
    "DecodedAudio",
    "file_identity",
    "is_audio_path",
    "load_excerpts",
    "probe",
]

#: Extensions (lower case, with the dot) of the files scanned for audio: the
#: container formats libsndfile reads that music actually comes in. Raw and
#: lab formats libsndfile also reads (.raw, .mat, .htk, ...) are left out:
#: their extensions are shared with non-audio files.
AUDIO_EXTENSIONS: frozenset[str] = frozenset(
    {
        ".wav",
        ".wave",
        ".bwf",
        ".rf64",
        ".w64",
        ".flac",
        ".ogg",
        ".oga",
        ".opus",
        ".mp3",
        ".mp2",
        ".aiff",
        ".aif",
        ".aifc",
        ".au",
        ".snd",
        ".caf",
    }
)

#: Audio whose peak is below this (-80 dBFS) is rejected as silent.
SILENCE_PEAK = 1e-4

# Read this many frames at a time, so that a long track is never held in
# memory as multichannel audio.
_CHUNK_FRAMES = 1 << 18
# Extra audio decoded on each side of an excerpt before resampling and cut off
# afterwards, so the resampler's edge transients fall outside the excerpt.
_MARGIN_SECONDS = 0.05
# Excerpt starts are moved (by at most this much) to where a sample at the
# file rate and a sample at the target rate coincide, so that an excerpt is
# the same samples as the same region of the whole track resampled.
_MAX_SNAP_SECONDS = 0.01
# Gaps up to this long between excerpts are decoded through, not seeked over
# (see _move).
_READ_THROUGH_SECONDS = 4.0
# libsndfile's "length unknown" value (SF_COUNT_MAX).
_UNKNOWN_FRAMES = 2**62

# Windows: the libsndfile DLL may use another C runtime than Python, so a
# Python file descriptor means nothing to it; use a file object instead.
_USE_FILE_OBJECT = sys.platform == "win32"


def is_audio_path(path: str | os.PathLike) -> bool:
    """Whether ``path`` has one of the :data:`AUDIO_EXTENSIONS`.

    macOS "AppleDouble" companions (``._song.mp3``, metadata left on
    non-Apple disks) are not audio and are excluded.
    """
    name = os.path.basename(os.fspath(path))
    if name.startswith("._"):
        return False
    return os.path.splitext(name)[1].lower() in AUDIO_EXTENSIONS


def _stat(path: str | os.PathLike) -> os.stat_result:
    """``os.stat`` of a regular file, or an :class:`AudioError` saying why not."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            try:
                target = os.readlink(path)
            except OSError:
                target = "?"
            raise AudioError(
                path, f"broken symbolic link (its target {target!r} does not exist)"
            ) from None
        raise AudioError(path, "file not found") from None
    except PermissionError:
        raise AudioError(path, "permission denied") from None
    except OSError as exc:
        raise AudioError(path, f"cannot access the file ({exc.strerror or exc})") from None
    if stat.S_ISDIR(st.st_mode):
        raise AudioError(path, "is a directory, not an audio file")
    if not stat.S_ISREG(st.st_mode):
        raise AudioError(path, "not a regular file (a pipe, socket or device)")
    return st


def file_identity(path: str | os.PathLike) -> tuple[int, int]:
    """``(size in bytes, mtime in ns)`` of a file, to notice that it changed.

    Raises
    ------
    AudioError
        The file is missing, unreadable or not a regular file.
    """
    st = _stat(path)
    return st.st_size, st.st_mtime_ns


@dataclass(frozen=True)
class AudioInfo:
    """What :func:`probe` learns about a file without decoding it.

    Attributes
    ----------
    path : str
    samplerate : int
        Rate of the file, Hz.
    channels : int
    frames : int
        Length in samples per channel (an estimate if not ``frames_exact``).
    duration : float
        ``frames / samplerate``, seconds.
    format, subtype : str
        soundfile's names, e.g. ``"FLAC"`` / ``"PCM_16"``, ``"MP3"`` /
        ``"MPEG_LAYER_III"``, ``"OGG"`` / ``"OPUS"``.
    size, mtime_ns : int
        File identity when probed (see :func:`file_identity`).
    frames_exact : bool
        False when the file does not record its length (MP3 without a
        Xing/Info/VBRI header), so ``frames`` is the decoder's estimate.
    """

    path: str
    samplerate: int
    channels: int
    frames: int
    duration: float
    format: str
    subtype: str
    size: int
    mtime_ns: int
    frames_exact: bool = True

    @property
    def identity(self) -> tuple[int, int]:
        """``(size, mtime_ns)``, as returned by :func:`file_identity`."""
        return self.size, self.mtime_ns


@dataclass(frozen=True)
class AnalysisPolicy:
    """Which parts of a track are analysed.

    Tracks up to ``max_patches * patch_seconds`` long (30 s by default), and
    every track when ``whole`` is set, are analysed whole. Longer tracks are
    cut into ``max_patches`` equal sections and one excerpt of
    ``patch_seconds`` is taken from the centre of each, so the cost of a track
    does not grow with its length.
    """

    max_patches: int = 10
    patch_seconds: float = 3.0
    whole: bool = False

    def __post_init__(self) -> None:
        if (
            isinstance(self.max_patches, bool)
            or not isinstance(self.max_patches, numbers.Integral)
            or self.max_patches < 1
        ):
            raise ValueError(f"max_patches must be a positive integer, not {self.max_patches!r}")
        if not self.patch_seconds > 0:
            raise ValueError(f"patch_seconds must be positive, not {self.patch_seconds!r}")

    def analyses_whole(self, duration: float) -> bool:
        """Whether a track of ``duration`` seconds is analysed whole."""
        return self.whole or duration <= self.max_patches * self.patch_seconds

    def excerpts(self, duration: float) -> list[tuple[float, float]]:
        """``[(start, length), ...]`` in seconds of the parts to analyse.

        ``[(0, duration)]`` when the track is analysed whole.
        """
        if duration < 0:
            raise ValueError(f"duration must be >= 0, not {duration!r}")
        if self.analyses_whole(duration):
            return [(0.0, float(duration))]
        section = duration / self.max_patches
        return [
            ((i + 0.5) * section - self.patch_seconds / 2, float(self.patch_seconds))
            for i in range(self.max_patches)
        ]


@dataclass
class DecodedAudio:
    """Audio ready for a backend's ``features``.

    Attributes
    ----------
    segments : list of np.ndarray
        Mono float32 audio at ``sr``: the whole track as one segment when it
        is analysed whole, else one segment per excerpt, each exactly
        ``round(patch_seconds * sr)`` samples long.
    starts : np.ndarray
        Start of each segment in the track, seconds (float64).
    duration : float
        Length of the whole track, seconds.
    sr : int
    short : bool
        The track is shorter than one patch (the backend repeat-pads it).
    peak : float
        Largest absolute sample value over the segments (so, for a track
        analysed in excerpts, over the excerpts).
    whole : bool
        The track was analysed whole (one segment).
    info : AudioInfo
        The file as probed; its identity is the one the audio was read with.
    """

    segments: list[np.ndarray]
    starts: np.ndarray
    duration: float
    sr: int
    short: bool
    peak: float
    whole: bool = True
    info: AudioInfo | None = field(default=None, repr=False)


# --------------------------------------------------------------------------
# Opening


def _libsndfile_message(exc: BaseException) -> str:
    msg = getattr(exc, "error_string", None) or str(exc)
    msg = msg.strip()
    if msg.lower().startswith("error :"):
        msg = msg[len("error :") :].strip()
    if "does not exist or is not a regular file" in msg:
        # What libsndfile says when mpg123 finds no complete frame; the file
        # does exist (it is open), so say what it really means.
        msg = "no decodable audio stream found"
    return msg.rstrip(".")


@contextmanager
def _open(path: str | os.PathLike) -> Iterator[sf.SoundFile]:
    """Open ``path`` for reading with soundfile, mapping errors to AudioError."""
    try:
        if _USE_FILE_OBJECT:
            handle = open(path, "rb")
        else:
            handle = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    except PermissionError:
        raise AudioError(path, "permission denied") from None
    except FileNotFoundError:
        raise AudioError(path, "file not found") from None
    except IsADirectoryError:
        raise AudioError(path, "is a directory, not an audio file") from None
    except OSError as exc:
        raise AudioError(path, f"cannot open the file ({exc.strerror or exc})") from None
    try:
        try:
            # closefd=False: on a failed open libsndfile may or may not have
            # closed the descriptor; we always close it ourselves.
            snd = sf.SoundFile(handle, closefd=False)
        except (sf.SoundFileError, RuntimeError, TypeError, ValueError) as exc:
            raise AudioError(
                path, f"not a readable audio file (libsndfile: {_libsndfile_message(exc)})"
            ) from None
        with snd:
            yield snd
    finally:
        if _USE_FILE_OBJECT:
            handle.close()
        else:
            os.close(handle)


_TRUNCATED_CHUNK = re.compile(
    r"^\s*(data|SSND|Data Size|riff)\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE
)
_PLACEHOLDER_SIZES = {0, 0xFFFFFFFF, 0xFFFFFFFFFFFFFFFF}


def _container_problem(log: str) -> str | None:
    """Truncation that libsndfile noticed while parsing the header, from its log.

    libsndfile reads what it can of a truncated WAV/AIFF/AU/W64 or Ogg file
    without an error and reports the shorter length; only its parser log says
    the file is cut short. Best effort: the log is text, so the tests pin the
    wording of the libsndfile version in use.
    """
    if "lacks an end-of-stream bit" in log:
        return "file is truncated (the Ogg stream has no end-of-stream page)"
    for match in _TRUNCATED_CHUNK.finditer(log):
        declared, actual = int(match.group(2)), int(match.group(3))
        if declared not in _PLACEHOLDER_SIZES and actual < declared:
            return (
                f"file is truncated (its header announces {declared} bytes of "
                f"{match.group(1)!r}, only {actual} are present)"
            )
    return None


def _mpeg_length_is_exact(path: str | os.PathLike) -> bool:
    """Whether an MPEG audio file records its length (Xing, Info or VBRI header).

    These headers sit inside the first audio frame, after any ID3v2 tag.
    """
    try:
        with open(path, "rb") as fh:
            head = fh.read(10)
            offset = 0
            if len(head) == 10 and head[:3] == b"ID3":
                size = 0
                for byte in head[6:10]:
                    size = (size << 7) | (byte & 0x7F)
                offset = 10 + size + (10 if head[5] & 0x10 else 0)
            fh.seek(offset)
            data = fh.read(1 << 16)
    except OSError:
        return False
    for i in range(len(data) - 4):
        b1, b2 = data[i + 1], data[i + 2]
        if (
            data[i] == 0xFF
            and b1 & 0xE0 == 0xE0
            and (b1 >> 3) & 3 != 1  # version not reserved
            and (b1 >> 1) & 3 != 0  # layer not reserved
            and (b2 >> 4) not in (0, 15)  # bitrate not free/bad
            and (b2 >> 2) & 3 != 3  # sample rate not reserved
        ):
            frame = data[i : i + 64]
            return b"Xing" in frame or b"Info" in frame or b"VBRI" in frame
    return False


def _count_frames(snd: sf.SoundFile, path: str | os.PathLike) -> int:
    """Decode the whole file, discarding the audio, and return its length."""
    if snd.seekable():
        snd.seek(0)
    total = 0
    try:
        while True:
            block = snd.read(_CHUNK_FRAMES, dtype="float32", always_2d=True)
            total += len(block)
            if len(block) < _CHUNK_FRAMES:
                return total
    except (sf.SoundFileError, RuntimeError) as exc:
        raise _corrupt(path, exc) from None


def _corrupt(path: str | os.PathLike, exc: BaseException) -> AudioError:
    return AudioError(
        path, f"corrupt or truncated audio data (libsndfile: {_libsndfile_message(exc)})"
    )


def probe(path: str | os.PathLike) -> AudioInfo:
    """Open ``path`` and describe its audio, without decoding it.

    Raises
    ------
    AudioError
        Missing file, broken symbolic link, permission denied, a directory,
        an empty file, a file libsndfile cannot read, a file whose header says
        it was truncated, or audio with no samples.
    """
    st = _stat(path)
    if st.st_size == 0:
        raise AudioError(path, "file is empty (0 bytes)")
    with _open(path) as snd:
        return _describe(snd, path, st)


def _describe(snd: sf.SoundFile, path: str | os.PathLike, st: os.stat_result) -> AudioInfo:
    problem = _container_problem(snd.extra_info)
    if problem:
        raise AudioError(path, problem)
    frames = snd.frames
    exact = True
    if frames >= _UNKNOWN_FRAMES:
        # Rare (a stream without a length): measure it, which is then exact.
        frames = _count_frames(snd, path)
    elif snd.format == "MP3":
        exact = _mpeg_length_is_exact(path)
    if frames == 0:
        raise AudioError(path, "audio has no samples (0 frames)")
    return AudioInfo(
        path=os.fspath(path),
        samplerate=snd.samplerate,
        channels=snd.channels,
        frames=frames,
        duration=frames / snd.samplerate,
        format=snd.format,
        subtype=snd.subtype,
        size=st.st_size,
        mtime_ns=st.st_mtime_ns,
        frames_exact=exact,
    )


# --------------------------------------------------------------------------
# Decoding


@dataclass(frozen=True)
class _Range:
    """A stretch of the file to decode: [first, stop) at the file's rate.

    ``start`` is where the wanted audio begins (``first`` is earlier by the
    resampling margin); ``length`` is the wanted number of output samples, or
    None for everything.
    """

    first: int
    stop: int
    start: int
    length: int | None


def _plan(frames: int, file_sr: int, sr: int, policy: AnalysisPolicy) -> list[_Range]:
    duration = frames / file_sr
    if policy.analyses_whole(duration):
        return [_Range(0, frames, 0, None)]
    grid = file_sr // math.gcd(file_sr, sr)  # file samples between coinciding instants
    if grid > _MAX_SNAP_SECONDS * file_sr:
        grid = 1
    # A whole number of grid steps, so the cut after resampling is exact too.
    margin = 0 if file_sr == sr else math.ceil(_MARGIN_SECONDS * file_sr / grid) * grid
    ranges = []
    for start_s, length_s in policy.excerpts(duration):
        length = round(length_s * sr)
        need = math.ceil(length * file_sr / sr)
        start = round(start_s * file_sr / grid) * grid
        start = min(max(start, 0), max(frames - need, 0))
        start -= start % grid
        ranges.append(
            _Range(max(start - margin, 0), min(start + need + margin, frames), start, length)
        )
    return ranges


def _to_mono(block: np.ndarray, path: str | os.PathLike) -> np.ndarray:
    # Column sums: several times faster than block.mean(axis=1) on (N, 2) arrays.
    mono = block[:, 0].copy()
    for c in range(1, block.shape[1]):
        mono += block[:, c]
    if block.shape[1] > 1:
        mono *= np.float32(1.0 / block.shape[1])
    # NaN and inf survive the sum (inf - inf is NaN), so one check on the mix will do.
    if not np.isfinite(mono).all():
        raise AudioError(path, "audio contains NaN or infinite sample values")
    return mono


def _read_into(snd: sf.SoundFile, out: np.ndarray, path: str | os.PathLike) -> int:
    """Fill ``out`` with mono audio from the current position; frames read."""
    done = 0
    try:
        while done < len(out):
            block = snd.read(min(_CHUNK_FRAMES, len(out) - done), dtype="float32", always_2d=True)
            if len(block) == 0:
                break
            out[done : done + len(block)] = _to_mono(block, path)
            done += len(block)
    except (sf.SoundFileError, RuntimeError) as exc:
        raise _corrupt(path, exc) from None
    return done


def _end_slack(file_sr: int) -> int:
    """Frames a decoder may fall short of the announced length at the very end.

    Some encoders' headers count a few frames more than the decoder returns
    (seen: 10 frames at 48 kHz in Opus files of Debian's warzone2100-music);
    that is not a truncated file.
    """
    return int(0.05 * file_sr)


def _truncated(path: str | os.PathLike, at: int, expected: int, file_sr: int) -> AudioError:
    return AudioError(
        path,
        f"file is truncated or corrupt (audio ends at {at / file_sr:.2f} s, "
        f"but the header announces {expected / file_sr:.2f} s)",
    )


def _skip(snd: sf.SoundFile, n: int, path: str | os.PathLike) -> int:
    """Decode and discard ``n`` frames; the number actually decoded."""
    done = 0
    try:
        while done < n:
            got = len(snd.read(min(_CHUNK_FRAMES, n - done), dtype="float32", always_2d=True))
            if got == 0:
                break
            done += got
    except (sf.SoundFileError, RuntimeError) as exc:
        raise _corrupt(path, exc) from None
    return done


def _move(snd: sf.SoundFile, pos: int, target: int, frames: int, path: str | os.PathLike) -> None:
    """Go from frame ``pos`` to frame ``target``.

    A short way forward is decoded and discarded instead of seeking: that is
    as fast, and libsndfile 1.2.2's Ogg Vorbis decoder lands up to a few
    thousand samples early when asked to seek less than 2 s ahead of where
    it is (its "skip without bisection" path miscounts when block sizes
    vary), while its longer and backward seeks are exact.
    """
    if 0 <= target - pos <= _READ_THROUGH_SECONDS * snd.samplerate:
        got = _skip(snd, target - pos, path)
        if got < target - pos:
            raise _truncated(path, pos + got, frames, snd.samplerate)
        return
    try:
        snd.seek(target)
    except (sf.SoundFileError, RuntimeError) as exc:
        raise _corrupt(path, exc) from None


def _read_seeking(
    snd: sf.SoundFile, ranges: list[_Range], frames: int, path: str | os.PathLike
) -> list[np.ndarray]:
    chunks = []
    pos = snd.tell()
    for r in ranges:
        _move(snd, pos, r.first, frames, path)
        buf = np.empty(r.stop - r.first, dtype=np.float32)
        got = _read_into(snd, buf, path)
        if got < len(buf):
            if r.first + got < frames - _end_slack(snd.samplerate):
                raise _truncated(path, r.first + got, frames, snd.samplerate)
            buf[got:] = 0.0  # a codec's length a few frames off at the very end
        chunks.append(buf)
        pos = r.stop
    if pos < frames:
        # Excerpts skip the end of the file: check that it is there, since a
        # cut-off MP3 or FLAC is only noticed when its missing part is read.
        tail = np.empty(min(frames - pos, 4096), dtype=np.float32)
        _move(snd, pos, frames - len(tail), frames, path)
        got = _read_into(snd, tail, path)
        if got < len(tail) - _end_slack(snd.samplerate):
            raise _truncated(path, frames - len(tail) + got, frames, snd.samplerate)
    return chunks


def _read_sequential(
    snd: sf.SoundFile, ranges: list[_Range], frames: int, path: str | os.PathLike
) -> list[np.ndarray]:
    """Decode from the start, keeping only the ranges (for unseekable files)."""
    if snd.seekable():
        snd.seek(0)
    chunks = [np.empty(r.stop - r.first, dtype=np.float32) for r in ranges]
    end = max(r.stop for r in ranges)
    pos = 0
    block = np.empty(_CHUNK_FRAMES, dtype=np.float32)
    while pos < end:
        got = _read_into(snd, block[: min(_CHUNK_FRAMES, end - pos)], path)
        if got == 0:
            if pos < frames - _end_slack(snd.samplerate):
                raise _truncated(path, pos, frames, snd.samplerate)
            for r, chunk in zip(ranges, chunks, strict=True):
                chunk[max(pos - r.first, 0) :] = 0.0  # a few frames short at the very end
            break
        for r, chunk in zip(ranges, chunks, strict=True):
            lo, hi = max(r.first, pos), min(r.stop, pos + got)
            if lo < hi:
                chunk[lo - r.first : hi - r.first] = block[lo - pos : hi - pos]
        pos += got
    return chunks


def _decode(
    path: str | os.PathLike, info: AudioInfo, sr: int, policy: AnalysisPolicy
) -> tuple[list[_Range], list[np.ndarray], int]:
    """Decode the audio ``policy`` asks for: ranges, mono audio at file rate, frames."""
    frames = info.frames
    if not info.frames_exact:
        with _open(path) as snd:
            frames = _count_frames(snd, path)
        if frames == 0:
            raise AudioError(path, "audio has no samples (0 frames)")
    with _open(path) as snd:
        problem = _container_problem(snd.extra_info)
        if problem:
            raise AudioError(path, problem)
        ranges = _plan(frames, snd.samplerate, sr, policy)
        if snd.seekable():
            chunks = _read_seeking(snd, ranges, frames, path)
        else:
            chunks = _read_sequential(snd, ranges, frames, path)
    return ranges, chunks, frames


def _resample(x: np.ndarray, file_sr: int, sr: int) -> np.ndarray:
    if file_sr == sr:
        return x
    return soxr.resample(x, file_sr, sr, quality="HQ").astype(np.float32, copy=False)


def load_excerpts(
    path: str | os.PathLike,
    sr: int,
    *,
    policy: AnalysisPolicy = AnalysisPolicy(),
    info: AudioInfo | None = None,
) -> DecodedAudio:
    """Decode the parts of a track that ``policy`` analyses, as mono at ``sr``.

    Parameters
    ----------
    path : str or path-like
        Any length, any characters.
    sr : int
        Output sample rate (the backend's).
    policy : AnalysisPolicy, keyword-only
        Whole track or excerpts; see :class:`AnalysisPolicy`.
    info : AudioInfo, keyword-only
        From an earlier :func:`probe` of the same file, to save opening it
        twice. If the file changed since (size or mtime differ), an
        AudioError is raised rather than returning audio that does not match
        the identity the caller holds.

    Returns
    -------
    DecodedAudio
        Channels averaged to mono, resampled with soxr ("HQ"), float32.
        Tracks shorter than one patch are returned as they are, with
        ``short=True``.

    Raises
    ------
    AudioError
        Everything :func:`probe` raises, plus: corrupt or truncated audio
        data, NaN or infinite samples, silent audio (peak below
        :data:`SILENCE_PEAK`, -80 dBFS), and a file that changed while it
        was being read.
    """
    sr = int(sr)
    if sr <= 0:
        raise ValueError(f"sr must be positive, not {sr!r}")
    if info is None:
        info = probe(path)
    elif file_identity(path) != info.identity:
        raise AudioError(path, "file changed since it was probed")

    ranges, chunks, frames = _decode(path, info, sr, policy)

    if file_identity(path) != info.identity:
        raise AudioError(path, "file changed while it was being read")

    file_sr = info.samplerate
    segments = []
    for r, chunk in zip(ranges, chunks, strict=True):
        y = _resample(chunk, file_sr, sr)
        if r.length is not None:
            offset = round((r.start - r.first) * sr / file_sr)
            y = y[offset : offset + r.length]
            if len(y) < r.length:  # rounding at the very end of the file
                y = np.pad(y, (0, r.length - len(y)))
        segments.append(np.ascontiguousarray(y, dtype=np.float32))

    peak = max(float(np.max(np.abs(s))) if len(s) else 0.0 for s in segments)
    if not np.isfinite(peak):
        raise AudioError(path, "audio contains NaN or infinite sample values")
    if peak < SILENCE_PEAK:
        level = 20 * math.log10(peak) if peak > 0 else -math.inf
        raise AudioError(path, f"audio is silent (peak {level:.0f} dBFS, below -80 dBFS)")

    duration = frames / file_sr
    return DecodedAudio(
        segments=segments,
        starts=np.array([r.start / file_sr for r in ranges], dtype=np.float64),
        duration=duration,
        sr=sr,
        short=duration < policy.patch_seconds,
        peak=peak,
        whole=ranges[0].length is None,
        info=info,
    )

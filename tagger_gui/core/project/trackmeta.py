"""What the project knows of a file: its tags, its length and a content fingerprint.

Both functions are tolerant: a file without tags, with damaged tags or of a
format mutagen does not know still gets a :class:`TrackMeta` (empty fields,
``problem`` saying why), because the track belongs to the library whatever
its tags say.
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass

__all__ = ["FINGERPRINT_CHUNK", "TrackMeta", "fingerprint", "read_track_meta"]

#: Bytes read at each end of a file for :func:`fingerprint`.
FINGERPRINT_CHUNK = 64 * 1024

_FIELDS = ("artist", "album", "title", "genre")


@dataclass(frozen=True)
class TrackMeta:
    """Tags and length of one file, as read by :func:`read_track_meta`.

    Attributes
    ----------
    duration : float or None
        Seconds, or None when neither mutagen nor libsndfile could tell.
    artist, album, title, genre : str
        The file's own tags; several values are joined with ``"; "``; ``""``
        when absent.
    problem : str or None
        Why the tags could not be read (the track is still usable).
    """

    duration: float | None = None
    artist: str = ""
    album: str = ""
    title: str = ""
    genre: str = ""
    problem: str | None = None


def fingerprint(path: str | os.PathLike, size: int | None = None) -> bytes:
    """A 16-byte content fingerprint: blake2b of the size, the first and last 64 KiB.

    Cheap (at most 128 KiB read per file, and the head is read anyway for
    the tags) and enough to recognise a renamed or moved file among those of
    the same size. Editing the tags changes it (the tags sit at the head or
    the tail), which is right: the file changed.

    Parameters
    ----------
    path : path-like
    size : int, optional
        The size from a recent ``stat``; read from the open file if omitted.

    Raises
    ------
    OSError
        The file cannot be opened or read.
    """
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as fh:
        if size is None:
            size = os.fstat(fh.fileno()).st_size
        h.update(size.to_bytes(8, "little"))
        h.update(fh.read(FINGERPRINT_CHUNK))
        if size > 2 * FINGERPRINT_CHUNK:
            fh.seek(size - FINGERPRINT_CHUNK)
            h.update(fh.read(FINGERPRINT_CHUNK))
        elif size > FINGERPRINT_CHUNK:
            h.update(fh.read())
    return h.digest()


def _join(values) -> str:
    if values is None:
        return ""
    if isinstance(values, str):
        values = [values]
    parts = [str(v).strip() for v in values]
    return "; ".join(p for p in parts if p)


def read_track_meta(path: str | os.PathLike) -> TrackMeta:
    """Read artist, album, title, genre and duration of an audio file.

    Uses ``mutagen.File(path, easy=True)``; when mutagen does not know the
    format or gives no length, the length comes from libsndfile. Never
    raises for a bad file: the reason is in :attr:`TrackMeta.problem`.
    """
    import mutagen

    fields: dict[str, str] = {}
    duration: float | None = None
    problem: str | None = None
    try:
        audio = mutagen.File(path, easy=True)
    # mutagen raises more than MutagenError on damaged files (struct.error,
    # ValueError, IndexError...); a bad tag must never stop a library scan.
    except Exception as exc:
        audio = None
        problem = f"tags cannot be read ({type(exc).__name__}: {exc})"
    if audio is not None:
        tags = audio.tags
        if tags is not None:
            for name in _FIELDS:
                try:
                    fields[name] = _join(tags.get(name))
                except Exception:  # a damaged frame: leave that field empty
                    fields[name] = ""
        length = getattr(getattr(audio, "info", None), "length", None)
        if isinstance(length, int | float) and math.isfinite(length) and length > 0:
            duration = float(length)
    if duration is None:
        from tagger_gui.core.audio import probe
        from tagger_gui.core.errors import AudioError

        try:
            duration = probe(path).duration
        except AudioError as exc:
            problem = problem or exc.reason
    return TrackMeta(duration=duration, problem=problem, **fields)

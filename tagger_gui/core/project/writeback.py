"""Writing tags into the audio files' own metadata, with a preview and an undo journal.

Three steps, each safe to stop (see ``docs/export.md``):

1. :func:`plan_writeback` reads each file's current value of the field and
   returns one :class:`Change` per file: old values, new values, or why the
   file is skipped (read-only, changed since it was analysed, unsupported,
   unreadable tags). Nothing is written; :func:`format_preview` prints it.
2. :func:`apply_writeback` (a generator task: :func:`apply_writeback_task`)
   writes the changes one file at a time. Before a file is touched, a line
   with its old values is appended to a JSON-lines journal and fsynced. Each
   file is written to a temporary copy in its folder, checked, and moved
   over the original with ``os.replace``, so a crash leaves either the old
   file or the new one, never a half-written one.
3. :func:`undo_writeback` reads the journal and puts the old values back
   (removing the field, or the whole tag block, where there was none).

The field (default :data:`DEFAULT_FIELD`) is written as:

========================  =============================================
MP3, WAV, AIFF            ID3v2.4 ``TXXX:<field>`` (``id3_version=3``: v2.3)
FLAC, Ogg Vorbis, Opus    Vorbis comment ``<FIELD>`` (one per value)
MP4 / M4A                 freeform atom ``----:com.apple.iTunes:<field>``
========================  =============================================

Only that field is changed; the audio data is never rewritten (mutagen
rewrites the metadata blocks and copies the audio bytes as they are).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tagger_gui import __version__
from tagger_gui.core.errors import WritebackError
from tagger_gui.core.fileio import fsync_dir
from tagger_gui.core.tasks import run_task

__all__ = [
    "DEFAULT_FIELD",
    "ID3_V23_SEPARATOR",
    "JOURNAL_VERSION",
    "Change",
    "FileResult",
    "WritebackProgress",
    "WritebackReport",
    "apply_writeback",
    "apply_writeback_task",
    "format_preview",
    "plan_writeback",
    "plan_writeback_task",
    "read_field",
    "undo_writeback",
    "undo_writeback_task",
]

#: The default field name. A custom field (not GROUPING, GENRE or MOOD, which
#: people fill by hand and other tools overwrite): it shows up under this name
#: in Picard, foobar2000, Mp3tag, Kid3 and beets, and is plainly ours.
DEFAULT_FIELD = "TAGGER_TAGS"

#: ID3v2.3 has no multi-value text frames: values are joined with this.
ID3_V23_SEPARATOR = "; "

#: Version of the journal layout.
JOURNAL_VERSION = 1

_JOURNAL_KIND = "tagger_gui writeback journal"


# --- formats -----------------------------------------------------------------


class _Format:
    """How one family of files stores the field."""

    name = ""

    def key(self, field_name: str) -> str:
        return field_name

    def has_tags(self, audio) -> bool:
        return audio.tags is not None

    def read(self, audio, field_name: str) -> list[str]:
        if audio.tags is None:
            return []
        return [str(v) for v in audio.tags.get(self.key(field_name), [])]

    def write(self, audio, field_name: str, values: Sequence[str]) -> None:
        if audio.tags is None:
            audio.add_tags()
        key = self.key(field_name)
        if values:
            audio.tags[key] = list(values)
        elif key in audio.tags:
            del audio.tags[key]

    def save(self, audio, path: Path, id3_version: int) -> None:
        audio.save(path)

    def readback(self, values: Sequence[str], id3_version: int) -> list[str]:
        """What :meth:`read` gives after :meth:`write` of ``values``."""
        return list(values)

    def drop_tags(self, audio, path: Path) -> None:
        """Remove the whole tag block (undo of a write to a file that had none)."""
        audio.delete(path)


class _VorbisFormat(_Format):
    """FLAC, Ogg Vorbis, Ogg Opus, Ogg FLAC: a Vorbis comment, repeated per value.

    Vorbis comment names are case-insensitive; mutagen's dict treats them so.
    """

    def key(self, field_name: str) -> str:
        return field_name.upper()


class _ID3Format(_Format):
    """MP3, WAV, AIFF: an ID3v2 ``TXXX`` frame whose description is the field."""

    def key(self, field_name: str) -> str:
        return f"TXXX:{field_name}"

    def read(self, audio, field_name: str) -> list[str]:
        if audio.tags is None:
            return []
        return [str(t) for frame in audio.tags.getall(self.key(field_name)) for t in frame.text]

    def write(self, audio, field_name: str, values: Sequence[str]) -> None:
        from mutagen.id3 import TXXX

        if audio.tags is None:
            audio.add_tags()
        audio.tags.delall(self.key(field_name))
        if values:
            audio.tags.add(TXXX(encoding=3, desc=field_name, text=list(values)))

    def save(self, audio, path: Path, id3_version: int) -> None:
        audio.save(path, v2_version=id3_version, v23_sep=ID3_V23_SEPARATOR)

    def readback(self, values: Sequence[str], id3_version: int) -> list[str]:
        if id3_version == 3 and values:
            return [ID3_V23_SEPARATOR.join(values)]
        return list(values)


class _MP4Format(_Format):
    """MP4/M4A: an iTunes freeform atom, one UTF-8 data atom per value."""

    def key(self, field_name: str) -> str:
        return f"----:com.apple.iTunes:{field_name}"

    def read(self, audio, field_name: str) -> list[str]:
        if audio.tags is None:
            return []
        return [
            bytes(v).decode("utf-8", "replace") for v in audio.tags.get(self.key(field_name), [])
        ]

    def write(self, audio, field_name: str, values: Sequence[str]) -> None:
        from mutagen.mp4 import AtomDataType, MP4FreeForm

        if audio.tags is None:
            audio.add_tags()
        key = self.key(field_name)
        if values:
            audio.tags[key] = [
                MP4FreeForm(v.encode("utf-8"), dataformat=AtomDataType.UTF8) for v in values
            ]
        elif key in audio.tags:
            del audio.tags[key]


def _load(path: Path) -> tuple[str, _Format, Any] | None:
    """Open ``path`` with mutagen: (format name, adapter, file), or None if unsupported.

    Raises mutagen's errors (and OSError) for files it cannot read.
    """
    import mutagen
    from mutagen.aiff import AIFF
    from mutagen.flac import FLAC
    from mutagen.mp3 import MP3
    from mutagen.mp4 import MP4
    from mutagen.oggflac import OggFLAC
    from mutagen.oggopus import OggOpus
    from mutagen.oggvorbis import OggVorbis
    from mutagen.wave import WAVE

    kinds = [
        (MP3, "mp3", _ID3Format),
        (WAVE, "wav", _ID3Format),
        (AIFF, "aiff", _ID3Format),
        (FLAC, "flac", _VorbisFormat),
        (OggVorbis, "ogg-vorbis", _VorbisFormat),
        (OggOpus, "ogg-opus", _VorbisFormat),
        (OggFLAC, "ogg-flac", _VorbisFormat),
        (MP4, "mp4", _MP4Format),
    ]
    audio = mutagen.File(path, options=[k[0] for k in kinds])
    if audio is None:
        return None
    for cls, name, fmt in kinds:
        if type(audio) is cls:
            return name, fmt(), audio
    return None  # pragma: no cover - mutagen returned a class we did not offer


def read_field(path: str | os.PathLike, field_name: str = DEFAULT_FIELD) -> list[str]:
    """The values of ``field_name`` in one audio file (``[]`` if absent).

    Parameters
    ----------
    path : str or path-like
        An audio file of a supported format.
    field_name : str
        The field, as given to :func:`plan_writeback`.

    Raises
    ------
    WritebackError
        The format is not supported or the tags cannot be read.
    """
    path = Path(path)
    try:
        loaded = _load(path)
    except Exception as exc:
        raise WritebackError(f"{path}: tags cannot be read ({exc})") from exc
    if loaded is None:
        raise WritebackError(f"{path}: unsupported format")
    _, fmt, audio = loaded
    return fmt.read(audio, field_name)


def _check_field(field_name: str) -> str:
    # Vorbis comment names: printable ASCII 0x20-0x7D without "=" (the spec);
    # the strictest of the three formats, so a name works everywhere.
    if not field_name or any(not (0x20 <= ord(c) <= 0x7D) or c == "=" for c in field_name):
        raise ValueError(
            f"field name {field_name!r}: use printable ASCII letters, digits, spaces or "
            "punctuation, without '=' (the Vorbis comment rule)"
        )
    return field_name


# --- the plan ------------------------------------------------------------------


@dataclass
class Change:
    """What a write-back will do to one file.

    Attributes
    ----------
    relpath : str
        The file, relative to the library root.
    format : str
        ``mp3``, ``wav``, ``aiff``, ``flac``, ``ogg-vorbis``, ``ogg-opus``,
        ``ogg-flac``, ``mp4``, or ``""`` when unknown.
    field : str
        The field as stored in this format (``TXXX:TAGGER_TAGS``,
        ``TAGGER_TAGS``, ``----:com.apple.iTunes:TAGGER_TAGS``).
    old, new : list of str
        The field's values now and after the write-back (``new == []``
        removes the field).
    skip_reason : str or None
        Why the file will not be written, or None.
    size, mtime_ns : int or None
        The file's size and modification time when planned; the write is
        skipped if they differ just before writing.
    """

    relpath: str
    format: str
    field: str
    old: list[str]
    new: list[str]
    skip_reason: str | None = None
    size: int | None = None
    mtime_ns: int | None = None
    field_name: str = DEFAULT_FIELD
    id3_version: int = 4

    @property
    def action(self) -> str:
        """``skip``, ``none`` (already so), ``remove`` (field emptied) or ``write``."""
        if self.skip_reason:
            return "skip"
        if sorted(self.old) == sorted(self._readback()):
            return "none"
        if self.id3_version == 3 and self.format in ("mp3", "wav", "aiff"):
            # v2.3 keeps one joined string: the same tags in another order are the same
            split = [v for o in self.old for v in o.split(ID3_V23_SEPARATOR)]
            if sorted(split) == sorted(self.new):
                return "none"
        return "remove" if not self.new else "write"

    def _readback(self) -> list[str]:
        if self.format in ("mp3", "wav", "aiff"):
            return _ID3Format().readback(self.new, self.id3_version)
        return list(self.new)

    def describe(self) -> str:
        """One line of the preview."""
        old = "; ".join(self.old) if self.old else "(none)"
        new = "; ".join(self.new) if self.new else "(removed)"
        if self.action == "skip":
            return f"SKIP   {self.relpath}: {self.skip_reason}"
        if self.action == "none":
            return f"same   {self.relpath} [{self.field}]: {old}"
        return f"{self.action:<6} {self.relpath} [{self.field}]: {old} -> {new}"


def format_preview(changes: Iterable[Change], *, show_unchanged: bool = False) -> str:
    """A printable preview of a plan: one line per file, then the counts.

    Parameters
    ----------
    changes : iterable of Change
        From :func:`plan_writeback`.
    show_unchanged : bool
        List files whose field already has the wanted values.

    Returns
    -------
    str
        Lines ``write  path [field]: old -> new``, ``SKIP   path: reason``.
    """
    lines: list[str] = []
    counts = {"write": 0, "remove": 0, "none": 0, "skip": 0}
    for ch in changes:
        counts[ch.action] += 1
        if ch.action != "none" or show_unchanged:
            lines.append(ch.describe())
    lines.append(
        f"{counts['write']} to write, {counts['remove']} to clear, "
        f"{counts['none']} already up to date, {counts['skip']} skipped"
    )
    return "\n".join(lines)


@dataclass
class WritebackProgress:
    """What the write-back tasks yield before each file."""

    done: int
    total: int
    current: str | None = None
    stage: str = "writing"


def _is_writable(path: Path) -> bool:
    """Whether we may write ``path`` (a function of its own so tests can stand in)."""
    return os.access(path, os.W_OK)


def _clean_values(relpath: str, values: Sequence[str]) -> list[str]:
    if isinstance(values, str):
        raise TypeError(f"{relpath}: give a list of tags, not the string {values!r}")
    out: list[str] = []
    for v in values:
        if not isinstance(v, str) or not v.strip():
            raise ValueError(f"{relpath}: tag names must be non-empty strings, not {v!r}")
        if v not in out:
            out.append(v)
    return out


def plan_writeback_task(
    library_root: str | os.PathLike,
    wanted: Mapping[str, Sequence[str]],
    *,
    field: str = DEFAULT_FIELD,
    id3_version: int = 4,
    expected: Mapping[str, tuple[int, int]] | None = None,
) -> Generator[WritebackProgress, None, list[Change]]:
    """The generator behind :func:`plan_writeback` (yields before each file)."""
    _check_field(field)
    if id3_version not in (3, 4):
        raise ValueError(f"id3_version must be 3 or 4, not {id3_version!r}")
    root = Path(library_root)
    changes: list[Change] = []
    total = len(wanted)
    for i, (relpath, tags) in enumerate(wanted.items()):
        yield WritebackProgress(i, total, relpath, "reading")
        changes.append(
            _plan_one(root, relpath, _clean_values(relpath, tags), field, id3_version, expected)
        )
    yield WritebackProgress(total, total, None, "reading")
    return changes


def _plan_one(root, relpath, new, field_name, id3_version, expected) -> Change:
    path = root / relpath
    ch = Change(relpath, "", field_name, [], new, field_name=field_name, id3_version=id3_version)
    parts = relpath.replace("\\", "/").split("/")
    if Path(relpath).is_absolute() or ".." in parts:
        ch.skip_reason = "not a path inside the library folder"
        return ch
    try:
        st = path.stat()
    except OSError as exc:
        ch.skip_reason = f"cannot be found or read ({exc.strerror})"
        return ch
    ch.size, ch.mtime_ns = st.st_size, st.st_mtime_ns
    if expected is not None:
        known = expected.get(relpath)
        if known is None:
            ch.skip_reason = "not among the analysed files"
            return ch
        if (st.st_size, st.st_mtime_ns) != tuple(known):
            ch.skip_reason = "changed since it was analysed (size or modification time differ)"
            return ch
    try:
        loaded = _load(path)
    except Exception as exc:  # mutagen raises many kinds; the file is skipped, not fatal
        ch.skip_reason = f"tags cannot be read ({type(exc).__name__}: {exc})"
        return ch
    if loaded is None:
        ch.skip_reason = "unsupported format (no tag format known for this file)"
        return ch
    ch.format, fmt, audio = loaded
    ch.field = fmt.key(field_name)
    ch.old = fmt.read(audio, field_name)
    if not _is_writable(path):
        ch.skip_reason = "read-only file"
    return ch


def plan_writeback(
    library_root: str | os.PathLike,
    wanted: Mapping[str, Sequence[str]],
    *,
    field: str = DEFAULT_FIELD,
    id3_version: int = 4,
    expected: Mapping[str, tuple[int, int]] | None = None,
) -> list[Change]:
    """Plan writing each file's tags into its own metadata (a dry run).

    Parameters
    ----------
    library_root : str or path-like
        The library folder.
    wanted : mapping of str to sequence of str
        For each file (relative path) the tags the field should hold, in
        order; an empty sequence removes the field. Files not listed are not
        touched.
    field : str
        The field name (see :data:`DEFAULT_FIELD`); printable ASCII without
        ``=``.
    id3_version : {4, 3}
        The ID3v2 version MP3/WAV/AIFF tags are saved in (the whole ID3 tag
        is saved in that version).
    expected : mapping of str to (int, int), optional
        The (size, mtime_ns) of each file when it was analysed; a file whose
        size or time differ, or that is not listed, is skipped.

    Returns
    -------
    list of Change
        One per file of ``wanted``, in its order. Nothing is written.
    """
    return run_task(
        plan_writeback_task(
            library_root, wanted, field=field, id3_version=id3_version, expected=expected
        )
    )


# --- the journal ---------------------------------------------------------------


class _Journal:
    """An append-only JSON-lines file, fsynced after every line."""

    def __init__(self, path: Path, header: dict):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._fh = open(path, "x", encoding="utf-8", newline="\n")
        except FileExistsError:
            raise WritebackError(
                f"{path}: a journal of that name exists (each write-back needs its own)"
            ) from None
        self.append(header)
        fsync_dir(path.parent)

    @classmethod
    def reopen(cls, path: Path) -> _Journal:
        self = cls.__new__(cls)
        self.path = path
        self._fh = open(path, "a", encoding="utf-8", newline="\n")
        return self

    def append(self, entry: dict) -> None:
        self._fh.write(json.dumps(entry, ensure_ascii=False) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        self._fh.close()


def _read_journal(path: Path) -> tuple[dict, list[dict]]:
    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        raise WritebackError(f"{path}: journal cannot be read ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise WritebackError(f"{path}: not a write-back journal (not UTF-8)") from None
    lines = text.split("\n")
    entries = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            entries.append(json.loads(line))
        except ValueError:
            if n == len(lines) or (n == len(lines) - 1 and not lines[-1]):
                break  # a line torn by a crash while it was appended: nothing was done after it
            raise WritebackError(f"{path}, line {n}: journal line is not JSON") from None
    if not entries or entries[0].get("journal") != _JOURNAL_KIND:
        raise WritebackError(f"{path}: not a tagger_gui write-back journal")
    version = entries[0].get("version")
    if version != JOURNAL_VERSION:
        raise WritebackError(
            f"{path}: journal version {version!r}; this tagger_gui reads version "
            f"{JOURNAL_VERSION} (a newer tagger_gui wrote it?)"
        )
    return entries[0], entries[1:]


# --- writing one file ------------------------------------------------------------


class _ChangedMeanwhile(Exception):
    """The file changed between our check and our write."""


def _stat_key(st: os.stat_result) -> tuple[int, int, int]:
    return st.st_size, st.st_mtime_ns, st.st_ino


def _use_copy(path: Path, st: os.stat_result) -> bool:
    """Whether to write a copy and replace the original (see docs/export.md).

    Not for hard-linked files (replacing would split the links) nor for files
    owned by someone else (the copy would change the owner): those are
    written in place.
    """
    if st.st_nlink > 1:
        return False
    if hasattr(os, "geteuid") and st.st_uid != os.geteuid():
        return False
    return os.access(path.parent, os.W_OK)


def _write_values(
    path: Path,
    field_name: str,
    values: Sequence[str],
    *,
    id3_version: int | None,
    drop_tags: bool = False,
    expected_stat: tuple[int, int] | None = None,
) -> os.stat_result:
    """Set the field of one file (or drop its tag block) and check the result.

    Raises
    ------
    _ChangedMeanwhile
        ``expected_stat`` does not match the file, before or after our copy.
    WritebackError
        The format is unsupported, or the field does not read back as written.
    """
    st = path.stat()
    if expected_stat is not None and (st.st_size, st.st_mtime_ns) != tuple(expected_stat):
        raise _ChangedMeanwhile()
    target = path
    tmp: Path | None = None
    if _use_copy(path, st):
        tmp = path.with_name(f".{path.name}.tagger-{os.getpid()}.tmp")
        shutil.copy2(path, tmp)  # mode and extended attributes too
        target = tmp
    try:
        loaded = _load(target)
        if loaded is None:
            raise WritebackError(f"{path}: unsupported format")
        _, fmt, audio = loaded
        version = id3_version or 4
        if drop_tags:
            fmt.drop_tags(audio, target)
        else:
            fmt.write(audio, field_name, values)
            fmt.save(audio, target, version)
            got = fmt.read(_load(target)[2], field_name)
            if got != fmt.readback(values, version):
                raise WritebackError(f"{path}: the field reads back as {got!r}, not {values!r}")
        with open(target, "rb+") as fh:
            os.fsync(fh.fileno())
        if tmp is not None:
            if _stat_key(path.stat()) != _stat_key(st):
                raise _ChangedMeanwhile()
            os.replace(tmp, path)
            tmp = None
            fsync_dir(path.parent)
    finally:
        if tmp is not None:
            try:
                tmp.unlink()
            except FileNotFoundError:
                pass
    return path.stat()


# --- applying and undoing ----------------------------------------------------------


@dataclass
class FileResult:
    """What happened to one file."""

    relpath: str
    status: str  # written, unchanged, skipped, failed, restored
    reason: str = ""
    size: int | None = None
    mtime_ns: int | None = None


@dataclass
class WritebackReport:
    """What :func:`apply_writeback` or :func:`undo_writeback` did.

    ``new_stats`` gives the (size, mtime_ns) of every file written, so that
    whoever tracks files by size and time (the project, the embedding cache)
    can record the new ones instead of taking them for changed music.
    """

    journal_path: Path
    results: list[FileResult] = field(default_factory=list)

    def _with(self, status: str) -> list[FileResult]:
        return [r for r in self.results if r.status == status]

    @property
    def written(self) -> list[str]:
        return [r.relpath for r in self.results if r.status in ("written", "restored")]

    @property
    def skipped(self) -> list[tuple[str, str]]:
        return [(r.relpath, r.reason) for r in self._with("skipped")]

    @property
    def failed(self) -> list[tuple[str, str]]:
        return [(r.relpath, r.reason) for r in self._with("failed")]

    @property
    def unchanged(self) -> int:
        return len(self._with("unchanged"))

    @property
    def new_stats(self) -> dict[str, tuple[int, int]]:
        return {
            r.relpath: (r.size, r.mtime_ns)
            for r in self.results
            if r.status in ("written", "restored") and r.size is not None
        }

    def summary(self) -> str:
        """One line: the counts."""
        return (
            f"{len(self.written)} files written, {self.unchanged} unchanged, "
            f"{len(self.skipped)} skipped, {len(self.failed)} failed"
        )


def apply_writeback_task(
    library_root: str | os.PathLike,
    changes: Sequence[Change],
    *,
    journal_path: str | os.PathLike,
) -> Generator[WritebackProgress, None, WritebackReport]:
    """The generator behind :func:`apply_writeback`: yields before each file.

    Closing it between files (a GUI cancel) leaves every file either fully
    written and journaled, or untouched.
    """
    root = Path(library_root)
    journal = _Journal(
        Path(journal_path),
        {
            "journal": _JOURNAL_KIND,
            "version": JOURNAL_VERSION,
            "tagger_version": __version__,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "library_root": str(root.absolute()),
        },
    )
    report = WritebackReport(Path(journal_path))
    total = len(changes)
    try:
        for i, ch in enumerate(changes):
            yield WritebackProgress(i, total, ch.relpath)
            report.results.append(_apply_one(root, ch, journal))
        yield WritebackProgress(total, total)
    finally:
        journal.close()
    return report


def _apply_one(root: Path, ch: Change, journal: _Journal) -> FileResult:
    action = ch.action
    if action == "skip":
        return FileResult(ch.relpath, "skipped", ch.skip_reason or "")
    if action == "none":
        return FileResult(ch.relpath, "unchanged")
    path = root / ch.relpath
    try:
        st = path.stat()
    except OSError as exc:
        return FileResult(ch.relpath, "skipped", f"cannot be found ({exc.strerror})")
    if (st.st_size, st.st_mtime_ns) != (ch.size, ch.mtime_ns):
        return FileResult(ch.relpath, "skipped", "changed since the preview; plan again")
    if not _is_writable(path):
        return FileResult(ch.relpath, "skipped", "read-only file")
    # What undo needs, on disk before the file is touched.
    try:
        _, fmt, audio = _load(path)
        had_tags = fmt.has_tags(audio)
        id3_before = (
            audio.tags.version[1] if ch.format in ("mp3", "wav", "aiff") and had_tags else None
        )
        old = fmt.read(audio, ch.field_name)
    except Exception as exc:
        return FileResult(ch.relpath, "failed", f"tags cannot be read ({exc})")
    if sorted(old) != sorted(ch.old):
        return FileResult(ch.relpath, "skipped", "the field changed since the preview; plan again")
    journal.append(
        {
            "op": "write",
            "relpath": ch.relpath,
            "format": ch.format,
            "field": ch.field_name,
            "old": old,
            "new": ch.new,
            "had_tags": had_tags,
            "id3_version_before": id3_before,
            "id3_version": ch.id3_version,
            "size": st.st_size,
            "mtime_ns": st.st_mtime_ns,
        }
    )
    try:
        new_st = _write_values(
            path,
            ch.field_name,
            ch.new,
            id3_version=ch.id3_version,
            expected_stat=(st.st_size, st.st_mtime_ns),
        )
    except _ChangedMeanwhile:
        journal.append({"op": "failed", "relpath": ch.relpath, "reason": "changed meanwhile"})
        return FileResult(ch.relpath, "skipped", "changed while it was being written; untouched")
    except Exception as exc:  # mutagen and the OS raise many kinds; report, go on
        reason = f"{type(exc).__name__}: {exc}"
        journal.append({"op": "failed", "relpath": ch.relpath, "reason": reason})
        return FileResult(ch.relpath, "failed", reason)
    journal.append(
        {
            "op": "done",
            "relpath": ch.relpath,
            "size": new_st.st_size,
            "mtime_ns": new_st.st_mtime_ns,
        }
    )
    return FileResult(ch.relpath, "written", "", new_st.st_size, new_st.st_mtime_ns)


def apply_writeback(
    library_root: str | os.PathLike,
    changes: Sequence[Change],
    *,
    journal_path: str | os.PathLike,
) -> WritebackReport:
    """Write a plan's changes into the files, journaling each one first.

    Parameters
    ----------
    library_root : str or path-like
        The library folder the plan was made for.
    changes : sequence of Change
        From :func:`plan_writeback`; skipped and up-to-date ones are reported
        and not touched.
    journal_path : str or path-like
        A new file (it must not exist) for the undo journal.

    Returns
    -------
    WritebackReport
        Per file: written (with its new size and time), unchanged, skipped
        (read-only, changed since the plan) or failed (with mutagen's or the
        OS's reason). A failure never stops the others.
    """
    return run_task(apply_writeback_task(library_root, changes, journal_path=journal_path))


def undo_writeback_task(
    journal_path: str | os.PathLike,
    *,
    library_root: str | os.PathLike | None = None,
    force: bool = False,
) -> Generator[WritebackProgress, None, WritebackReport]:
    """The generator behind :func:`undo_writeback`: yields before each file."""
    journal_path = Path(journal_path)
    header, entries = _read_journal(journal_path)
    root = Path(library_root) if library_root is not None else Path(header["library_root"])
    # The last "write" of each file that was not undone yet (a file written
    # twice in one journal goes back to its first old value).
    todo: dict[str, dict] = {}
    for e in entries:
        rel = e.get("relpath")
        if e.get("op") == "write" and rel not in todo:
            todo[rel] = e
        elif e.get("op") == "undone":
            todo.pop(rel, None)
    report = WritebackReport(journal_path)
    journal = _Journal.reopen(journal_path)
    try:
        for i, (rel, e) in enumerate(todo.items()):
            yield WritebackProgress(i, len(todo), rel, "undoing")
            result = _undo_one(root, e, force)
            if result.status == "restored" or result.status == "unchanged":
                journal.append(
                    {
                        "op": "undone",
                        "relpath": rel,
                        "size": result.size,
                        "mtime_ns": result.mtime_ns,
                    }
                )
            report.results.append(result)
        yield WritebackProgress(len(todo), len(todo), None, "undoing")
    finally:
        journal.close()
    return report


def _undo_one(root: Path, e: dict, force: bool) -> FileResult:
    rel = e["relpath"]
    path = root / rel
    try:
        loaded = _load(path)
    except Exception as exc:
        return FileResult(rel, "failed", f"tags cannot be read ({exc})")
    if loaded is None:
        return FileResult(rel, "failed", "unsupported format")
    _, fmt, audio = loaded
    current = fmt.read(audio, e["field"])
    old = list(e["old"])
    st = path.stat()
    if sorted(current) == sorted(old):
        # Never written (a crash or failure after the journal line), or undone already.
        return FileResult(rel, "unchanged", "", st.st_size, st.st_mtime_ns)
    written = fmt.readback(e["new"], e.get("id3_version") or 4)
    if sorted(current) != sorted(written) and not force:
        return FileResult(
            rel, "skipped", f"the field was changed since the write-back (now {current!r})"
        )
    if not _is_writable(path):
        return FileResult(rel, "skipped", "read-only file")
    # A file that had no tag block at all gets none back, if ours is all there is.
    drop = not e.get("had_tags", True) and _only_field(fmt, audio, e["field"])
    try:
        new_st = _write_values(
            path,
            e["field"],
            old,
            id3_version=e.get("id3_version_before") or e.get("id3_version") or 4,
            drop_tags=drop,
        )
    except Exception as exc:
        return FileResult(rel, "failed", f"{type(exc).__name__}: {exc}")
    return FileResult(rel, "restored", "", new_st.st_size, new_st.st_mtime_ns)


def _only_field(fmt: _Format, audio, field_name: str) -> bool:
    tags = audio.tags
    if tags is None:
        return True
    if isinstance(fmt, _ID3Format):
        return set(tags.keys()) <= {fmt.key(field_name)}
    return {k.upper() for k in tags.keys()} <= {fmt.key(field_name).upper()}


def undo_writeback(
    journal_path: str | os.PathLike,
    *,
    library_root: str | os.PathLike | None = None,
    force: bool = False,
) -> WritebackReport:
    """Put back the values a write-back replaced.

    Parameters
    ----------
    journal_path : str or path-like
        The journal :func:`apply_writeback` wrote.
    library_root : str or path-like, optional
        Where the library is now (default: the folder named in the journal).
    force : bool
        Restore even files whose field was changed since (by another tool).

    Returns
    -------
    WritebackReport
        ``restored`` files, ``unchanged`` ones (never written, e.g. after a
        failure or a crash, or undone already), ``skipped`` ones (field
        changed since, read-only) and ``failed`` ones. Undoing twice is
        harmless: the journal records what was undone.
    """
    return run_task(undo_writeback_task(journal_path, library_root=library_root, force=force))

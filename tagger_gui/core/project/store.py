"""The project store: tracks, tags, labels, undo and app state in one SQLite file.

A project is a folder holding ``project.sqlite`` (by default the library's
own ``<library>/.tagger/`` folder, next to the embedding cache). It records
the library root and the embedding cache path, so it may also live apart
from the music. ``docs/project.md`` describes the schema, the durability and
locking choices, undo and rename matching.

The :class:`Project` object is what the desktop app and the few-shot engine
use::

    with Project.open(folder) as project:
        report = run_task(project.sync_library())
        jazz = project.create_tag("jazz")
        project.set_labels(jazz, [12, 40], "positive")
        project.undo()                      # 'label 2 tracks positive for "jazz"'
        labels = project.labels("jazz")     # with the tag hierarchy applied
        labels.positives, labels.negatives  # track id arrays for the probe

Every method that changes labels or tags commits before it returns (with
``synchronous=FULL``: the commit is on disk, see ``docs/project.md``). One
call is one transaction and one undo step. Methods are safe to call from
several threads (one lock serialises them); :meth:`Project.sync_library`
holds the lock only while it writes a batch, so the UI can label meanwhile.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import math
import os
import re
import sqlite3
import threading
import time
import unicodedata
import urllib.parse
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tagger_gui import __version__ as APP_VERSION
from tagger_gui.core.errors import ProjectError
from tagger_gui.core.project import schema
from tagger_gui.core.project.locking import ProjectLock

__all__ = [
    "PROJECT_DIRNAME",
    "PROJECT_FILENAME",
    "SOURCES",
    "VALUES",
    "VALUE_CODES",
    "ActionResult",
    "HistoryEntry",
    "Project",
    "SavedProbe",
    "SyncProgress",
    "SyncReport",
    "Tag",
    "TagLabels",
    "Track",
    "TrackTable",
    "default_project_dir",
    "locate_project",
]

PROJECT_DIRNAME = ".tagger"
PROJECT_FILENAME = "project.sqlite"

#: Label values, and their codes in :class:`TagLabels` arrays.
VALUES = ("positive", "negative", "skip")
VALUE_CODES = {"positive": 1, "negative": -1, "skip": 0}
#: Who decided a label: the human, a model proposal the human accepted, an import.
SOURCES = ("human", "model", "imported")

_MAX_TAG_NAME = 200
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_COLOUR = re.compile(r"#([0-9a-fA-F]{3}|[0-9a-fA-F]{6})")
# SQLite's default limit on host parameters is 32766 (>= 3.32); stay well below.
_CHUNK = 900
# sync_library commits its work at least this often (files, seconds), so a
# cancelled or killed scan keeps what it did.
_SYNC_BATCH = 200
_SYNC_BATCH_SECONDS = 2.0


# --------------------------------------------------------------------------
# Where projects live
# --------------------------------------------------------------------------


def default_project_dir(library_root: str | os.PathLike) -> Path:
    """The folder of the project of ``library_root`` when none is chosen.

    ``<library_root>/.tagger/`` (next to the embedding cache), or, when the
    library folder is read-only and has no project yet,
    ``$XDG_DATA_HOME/tagger_gui/projects/<folder name>-<hash of its path>/``
    (labels are data, not a cache, so not under ``~/.cache``).
    """
    root = Path(library_root)
    local = root / PROJECT_DIRNAME
    if (local / PROJECT_FILENAME).exists() or not root.is_dir() or os.access(root, os.W_OK):
        return local
    resolved = root.resolve()
    base = Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share"))
    digest = hashlib.sha1(str(resolved).encode("utf-8", "surrogateescape")).hexdigest()[:12]
    return base / "tagger_gui" / "projects" / f"{resolved.name}-{digest}"


def locate_project(path: str | os.PathLike) -> Path:
    """The project folder meant by ``path``: a project folder, its database, or a library.

    Parameters
    ----------
    path : path-like
        A project folder (holding ``project.sqlite``), the ``project.sqlite``
        file itself, or a music folder whose project is in its ``.tagger/``
        folder (or in the per-user fallback of :func:`default_project_dir`).

    Raises
    ------
    ProjectError
        ``path`` does not exist or holds no project.
    """
    p = Path(path)
    if p.is_file():
        if p.name != PROJECT_FILENAME:
            raise ProjectError(
                f"{p} is not a tagger project (a project is a folder holding {PROJECT_FILENAME})"
            )
        return p.parent.absolute()
    if not p.exists():
        raise ProjectError(f"{p}: no such file or folder")
    if not p.is_dir():
        raise ProjectError(f"{p}: not a project folder")
    for candidate in (p, p / PROJECT_DIRNAME, default_project_dir(p)):
        if (candidate / PROJECT_FILENAME).is_file():
            return candidate.absolute()
    raise ProjectError(
        f"{p} is not a tagger project (no {PROJECT_FILENAME} in it or in "
        f"{PROJECT_DIRNAME}/); create one with `tagger project init MUSIC_DIR`"
    )


# --------------------------------------------------------------------------
# What the store returns
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Tag:
    """A tag of the project.

    Attributes
    ----------
    id : int
        Stable identifier (survives renames).
    name : str
        Unique among live tags, ignoring case.
    description : str
    colour : str or None
        ``"#rrggbb"``.
    parent_id : int or None
        The parent in the tag hierarchy.
    created : float
        Unix time.
    """

    id: int
    name: str
    description: str
    colour: str | None
    parent_id: int | None
    created: float


@dataclass(frozen=True)
class Track:
    """One track of the library, as the project knows it."""

    id: int
    relpath: str
    size: int
    mtime_ns: int
    duration: float | None
    artist: str
    album: str
    title: str
    genre: str
    missing: bool


@dataclass(eq=False)
class TrackTable:
    """Every track as parallel columns (ordered by id), loaded with one query.

    Attributes
    ----------
    id, size, mtime_ns : ndarray of int64
    duration : ndarray of float64
        NaN where unknown.
    missing : ndarray of bool
        The file was not found at the last :meth:`Project.sync_library`.
    relpath, artist, album, title, genre : list of str
    """

    id: np.ndarray
    relpath: list[str]
    size: np.ndarray
    mtime_ns: np.ndarray
    duration: np.ndarray
    artist: list[str]
    album: list[str]
    title: list[str]
    genre: list[str]
    missing: np.ndarray

    def __len__(self) -> int:
        return len(self.relpath)

    def row(self, i: int) -> Track:
        """The ``i``-th track (a row index, not a track id) as a :class:`Track`."""
        duration = float(self.duration[i])
        return Track(
            id=int(self.id[i]),
            relpath=self.relpath[i],
            size=int(self.size[i]),
            mtime_ns=int(self.mtime_ns[i]),
            duration=None if math.isnan(duration) else duration,
            artist=self.artist[i],
            album=self.album[i],
            title=self.title[i],
            genre=self.genre[i],
            missing=bool(self.missing[i]),
        )

    def rows_of(self, track_ids: Sequence[int] | np.ndarray) -> np.ndarray:
        """Row indices of ``track_ids`` (-1 for ids not in the table)."""
        ids = np.asarray(track_ids, dtype=np.int64)
        if len(self.id) == 0:
            return np.full(ids.shape, -1, dtype=np.int64)
        pos = np.minimum(np.searchsorted(self.id, ids), len(self.id) - 1)
        return np.where(self.id[pos] == ids, pos, -1)


@dataclass(eq=False)
class TagLabels:
    """The current labels of one tag, one entry per track, ordered by track id.

    With the hierarchy applied (the default of :meth:`Project.labels`), an
    entry may come from another tag: ``from_tag`` differs from ``tag.id``.

    Attributes
    ----------
    tag : Tag
    track_id : ndarray of int64
    value : ndarray of int8
        1 positive, -1 negative, 0 skip (:data:`VALUE_CODES`).
    source : list of str
        ``"human"``, ``"model"`` (a proposal the human accepted) or ``"imported"``.
    time : ndarray of float64
        When the label was set (Unix time).
    score : ndarray of float64
        The model score of accepted proposals, NaN otherwise.
    probe_version : list of (str or None)
    from_tag : ndarray of int64
        The tag the label was given to.
    """

    tag: Tag
    track_id: np.ndarray
    value: np.ndarray
    source: list[str]
    time: np.ndarray
    score: np.ndarray
    probe_version: list[str | None]
    from_tag: np.ndarray

    def __len__(self) -> int:
        return len(self.track_id)

    @property
    def positives(self) -> np.ndarray:
        """Track ids labelled positive."""
        return self.track_id[self.value == 1]

    @property
    def negatives(self) -> np.ndarray:
        """Track ids labelled negative."""
        return self.track_id[self.value == -1]

    @property
    def skipped(self) -> np.ndarray:
        """Track ids labelled skip."""
        return self.track_id[self.value == 0]

    @property
    def inherited(self) -> np.ndarray:
        """Boolean mask of the labels that come from another tag of the hierarchy."""
        return self.from_tag != self.tag.id

    def as_dict(self) -> dict[int, str]:
        """``{track_id: "positive" | "negative" | "skip"}``."""
        names = {1: "positive", -1: "negative", 0: "skip"}
        return {int(t): names[int(v)] for t, v in zip(self.track_id, self.value, strict=True)}


@dataclass(frozen=True)
class ActionResult:
    """What a labelling or tag action did.

    Attributes
    ----------
    action_id : int or None
        The undo step recorded, or None when nothing changed (no step recorded).
    changed : int
        Labels changed (for tag actions: 1).
    description : str
        What the action did, as undo/redo menus show it.
    created_tags : tuple of str
        Tags created by an import.
    """

    action_id: int | None
    changed: int
    description: str
    created_tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class SavedProbe:
    """A fitted probe saved with :meth:`Project.save_probe`."""

    blob: bytes
    meta: dict[str, Any]
    created: float


@dataclass(frozen=True)
class HistoryEntry:
    """One change of one label, from :meth:`Project.label_history`.

    ``old_value``/``new_value`` are None when there was no label before / after.
    ``state`` is the state of the action: ``"done"``, ``"undone"`` or
    ``"discarded"`` (undone, then replaced by a new action).
    """

    action_id: int
    description: str
    time: float
    state: str
    old_value: str | None
    new_value: str | None
    new_source: str | None
    new_score: float | None


@dataclass
class SyncProgress:
    """What :meth:`Project.sync_library` yields."""

    stage: str  # "scanning" or "reading"
    done: int
    total: int
    current: str | None = None


@dataclass
class SyncReport:
    """What :meth:`Project.sync_library` returns.

    Attributes
    ----------
    found : int
        Audio files in the library.
    added, updated, unchanged : int
        New tracks; known files that changed (size or mtime); untouched.
    moved : list of (old relpath, new relpath)
        Renamed or moved files recognised by size and fingerprint (their
        track ids, hence their labels, followed them).
    missing : list of str
        Tracks not found (newly, at this sync). Their labels are kept.
    returned : list of str
        Tracks that were missing and are back.
    problems : list of (relpath, reason)
        Files that could not be listed, or whose tags could not be read.
    """

    root: Path
    found: int = 0
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    moved: list[tuple[str, str]] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    returned: list[str] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0


@dataclass
class _FileRecord:
    relpath: str
    size: int
    mtime_ns: int
    fingerprint: bytes | None
    duration: float | None
    artist: str
    album: str
    title: str
    genre: str


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------


def _name_key(name: str) -> str:
    return unicodedata.normalize("NFC", name).casefold()


def _clean_tag_name(name: str) -> str:
    if not isinstance(name, str):
        raise ProjectError(f"a tag name must be text, not {type(name).__name__}")
    clean = unicodedata.normalize("NFC", name.strip())
    if not clean:
        raise ProjectError("a tag name cannot be empty")
    if _CONTROL.search(clean):
        raise ProjectError(f"tag name {name!r} contains control characters")
    if len(clean) > _MAX_TAG_NAME:
        raise ProjectError(f"tag name is too long ({len(clean)} > {_MAX_TAG_NAME} characters)")
    return clean


def _clean_colour(colour: str | None) -> str | None:
    if colour is None or colour == "":
        return None
    if not isinstance(colour, str) or not _COLOUR.fullmatch(colour):
        raise ProjectError(f"colour {colour!r} is not of the form #rrggbb")
    c = colour.lower()
    if len(c) == 4:
        c = "#" + "".join(ch * 2 for ch in c[1:])
    return c


def _chunks(seq: Sequence, n: int = _CHUNK) -> Iterator[Sequence]:
    for i in range(0, len(seq), n):
        yield seq[i : i + n]


def _placeholders(n: int) -> str:
    return ",".join("?" * n)


def _copy_tracks(table: TrackTable, keep: np.ndarray | None = None) -> TrackTable:
    """A copy of ``table`` (of its rows where ``keep``) that the caller may change freely."""
    if keep is None:
        return TrackTable(
            id=table.id.copy(),
            relpath=list(table.relpath),
            size=table.size.copy(),
            mtime_ns=table.mtime_ns.copy(),
            duration=table.duration.copy(),
            artist=list(table.artist),
            album=list(table.album),
            title=list(table.title),
            genre=list(table.genre),
            missing=table.missing.copy(),
        )
    rows = np.flatnonzero(keep).tolist()

    def pick(values: list[str]) -> list[str]:
        return [values[i] for i in rows]

    return TrackTable(
        id=table.id[keep],
        relpath=pick(table.relpath),
        size=table.size[keep],
        mtime_ns=table.mtime_ns[keep],
        duration=table.duration[keep],
        artist=pick(table.artist),
        album=pick(table.album),
        title=pick(table.title),
        genre=pick(table.genre),
        missing=table.missing[keep],
    )


def _tag_from_row(row) -> Tag:
    return Tag(
        id=row[0],
        name=row[1],
        description=row[2],
        colour=row[3],
        parent_id=row[4],
        created=row[5],
    )


_TAG_COLUMNS = "id, name, description, colour, parent_id, created"

# A label as stored: (value, source, time, score, probe_version)
_Label = tuple[str, str, float, float | None, str | None]


def _api(method: Callable) -> Callable:
    """Serialise a public method on the project lock; report database damage clearly."""

    @functools.wraps(method)
    def wrapper(self: Project, *args, **kwargs):
        with self._mutex:
            self._require_open()
            try:
                return method(self, *args, **kwargs)
            except sqlite3.ProgrammingError:
                raise
            except sqlite3.DatabaseError as exc:
                if "full" in str(exc):  # SQLITE_FULL: the transaction was rolled back
                    raise ProjectError(
                        f"{self.db_path}: the disk is full; nothing was changed, and what was "
                        "saved before is kept (free some space and try again)"
                    ) from exc
                raise ProjectError(f"{self.db_path}: database error: {exc}") from exc

    return wrapper


# --------------------------------------------------------------------------
# The project
# --------------------------------------------------------------------------


class Project:
    """An open tagging project. Make one with :meth:`create` or :meth:`open`.

    A writer (the default) holds the project's lock until :meth:`close`; a
    second writer, in any process, gets :class:`ProjectLockedError`. Any
    number of read-only openings may coexist with the writer.
    """

    def __init__(self, project_dir: Path, *, readonly: bool):
        self.project_dir = Path(project_dir)
        self.db_path = self.project_dir / PROJECT_FILENAME
        self.readonly = readonly
        self._conn: sqlite3.Connection | None = None
        self._lock = ProjectLock(
            self.db_path.with_name(PROJECT_FILENAME + ".lock"), str(project_dir)
        )
        self._mutex = threading.RLock()
        self._meta: dict[str, str] = {}
        self._syncing = False
        # The track table, read once and kept until the tracks change (see _track_table)
        self._tracks_cache: tuple[int, TrackTable, dict[str, int]] | None = None

    def __repr__(self) -> str:
        state = "closed" if self._conn is None else ("read-only" if self.readonly else "writer")
        return f"<Project {self.project_dir} ({state})>"

    # -- opening and closing ----------------------------------------------------

    @classmethod
    def create(
        cls,
        project_dir: str | os.PathLike | None,
        library_root: str | os.PathLike,
        *,
        cache_path: str | os.PathLike | None = None,
    ) -> Project:
        """Create a project for the library at ``library_root`` and open it for writing.

        Parameters
        ----------
        project_dir : path-like or None
            The project folder (created if missing); None for
            :func:`default_project_dir` (``<library_root>/.tagger/``).
        library_root : path-like
            The music folder. Track paths are stored relative to it.
        cache_path : path-like, optional, keyword-only
            The embedding cache; default :func:`~tagger_gui.core.cache.default_cache_path`
            of the library (where ``tagger embed`` puts it).

        Returns
        -------
        Project
            Open for writing, with no tracks yet: run :meth:`sync_library`.

        Raises
        ------
        ProjectError
            The library folder does not exist, a project already exists
            there, or the folder cannot be written.
        """
        from tagger_gui.core.cache import default_cache_path

        root = Path(os.path.abspath(library_root))
        if not root.is_dir():
            raise ProjectError(
                f"{library_root}: the music folder does not exist or is not a folder"
            )
        pdir = Path(os.path.abspath(project_dir)) if project_dir else default_project_dir(root)
        cache = Path(os.path.abspath(cache_path)) if cache_path else default_cache_path(root)
        db = pdir / PROJECT_FILENAME
        if db.exists() and db.stat().st_size > 0:
            raise ProjectError(f"{pdir} already holds a project; open it instead")
        try:
            pdir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ProjectError(f"cannot create the project folder {pdir}: {exc.strerror}") from None
        self = cls(pdir, readonly=False)
        try:
            self._lock.acquire()
            self._connect()
            conn = self._conn
            with self._transaction():
                if conn.execute("PRAGMA user_version").fetchone()[0] != 0:
                    raise ProjectError(f"{db} already holds a database")
                self._migrate(conn, 0)
                now = time.time()
                meta = {
                    "format": schema.FORMAT_NAME,
                    "schema_version": str(schema.latest_version()),
                    "created": repr(now),
                    "created_by": f"tagger_gui {APP_VERSION}",
                    **self._path_meta("library_root", root, root),
                    **self._path_meta("cache_path", cache, root),
                }
                conn.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", meta.items())
            self._load_meta()
        except BaseException:
            self.close()
            raise
        return self

    @classmethod
    def open(cls, path: str | os.PathLike, *, readonly: bool = False) -> Project:
        """Open an existing project.

        Parameters
        ----------
        path : path-like
            The project folder, its ``project.sqlite``, or a music folder with
            a project in ``.tagger/`` (see :func:`locate_project`).
        readonly : bool, keyword-only
            Read without taking the writer lock (works while another process
            writes; sees each of its commits). Writing methods then raise.

        Raises
        ------
        ProjectError
            Not a project, damaged, of a newer schema version, or (when
            ``readonly``) of an older version that needs upgrading.
        ProjectLockedError
            Another process has the project open for writing.
        """
        self = cls(locate_project(path), readonly=readonly)
        try:
            if not readonly:
                self._lock.acquire()
            self._connect()
            self._check_version()
            self._load_meta()
        except BaseException:
            self.close()
            raise
        return self

    def _connect(self) -> None:
        db = self.db_path
        try:
            if self.readonly:
                uri = "file:" + urllib.parse.quote(str(db)) + "?mode=ro"
                conn = sqlite3.connect(
                    uri, uri=True, isolation_level=None, check_same_thread=False, timeout=10
                )
            else:
                conn = sqlite3.connect(
                    db, isolation_level=None, check_same_thread=False, timeout=10
                )
        except sqlite3.Error as exc:
            raise ProjectError(f"{db}: cannot open the project database ({exc})") from None
        self._conn = conn
        try:
            conn.execute("PRAGMA user_version").fetchone()
            if not self.readonly:
                # WAL: readers never block the writer and a commit is one
                # append to the log. FULL: that append is fsynced before
                # COMMIT returns, so a label shown as saved survives a power
                # cut, not only a crash of the app (docs/project.md).
                mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
                if mode.lower() != "wal":
                    raise ProjectError(f"{db}: cannot switch the database to WAL mode ({mode})")
                conn.execute("PRAGMA synchronous=FULL")
            else:
                conn.execute("PRAGMA query_only=ON")
            conn.execute("PRAGMA foreign_keys=ON")
        except sqlite3.DatabaseError as exc:
            raise ProjectError(
                f"{db}: not a tagger project database, or it is damaged (sqlite says: {exc})"
            ) from None

    def _check_version(self) -> None:
        conn = self._conn
        db = self.db_path
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            tables = {
                r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
            }
            fmt = None
            if "meta" in tables:
                row = conn.execute("SELECT value FROM meta WHERE key='format'").fetchone()
                fmt = row[0] if row else None
        except sqlite3.DatabaseError as exc:
            raise ProjectError(
                f"{db}: not a tagger project database, or it is damaged (sqlite says: {exc})"
            ) from None
        if not tables:
            raise ProjectError(f"{db} is empty: not a tagger project database")
        if fmt != schema.FORMAT_NAME:
            raise ProjectError(f"{db} is an SQLite database but not a tagger project")
        latest = schema.latest_version()
        if version > latest:
            raise ProjectError(
                f"{db} was written by a newer tagger_gui (project schema version {version}; "
                f"this version {APP_VERSION} reads up to {latest}). Update tagger_gui to open it."
            )
        if version < latest:
            if self.readonly:
                raise ProjectError(
                    f"{db} has project schema version {version} and needs upgrading to "
                    f"{latest}; open it once for writing (e.g. `tagger project sync`)"
                )
            backup = db.with_name(f"{db.name}.v{version}.bak")
            try:
                with contextlib.closing(sqlite3.connect(backup)) as dst:
                    conn.backup(dst)
            except sqlite3.Error as exc:
                raise ProjectError(f"cannot back up {db} before upgrading it: {exc}") from None
            try:
                with self._transaction():
                    self._migrate(conn, version)
                    conn.execute(
                        "UPDATE meta SET value=? WHERE key='schema_version'", (str(latest),)
                    )
            except sqlite3.Error as exc:
                raise ProjectError(
                    f"{db}: upgrading the project from schema version {version} to {latest} "
                    f"failed ({exc}); the file is unchanged (a copy is in {backup.name})"
                ) from None

    @staticmethod
    def _migrate(conn: sqlite3.Connection, version: int) -> None:
        latest = schema.latest_version()
        for step in schema.MIGRATIONS[version:latest]:
            step(conn)
        conn.execute(f"PRAGMA user_version = {int(latest)}")

    def _load_meta(self) -> None:
        self._meta = dict(self._conn.execute("SELECT key, value FROM meta"))
        self._root, self._moved_with_library = self._resolve_root()

    def _path_meta(self, key: str, path: Path, root: Path) -> dict[str, str]:
        """A path is recorded absolute, plus relative to the project folder when
        the project lives inside the library (``<library>/.tagger/``), so that
        moving or copying the whole library, project included, keeps working."""
        meta = {key: str(path)}
        pdir = self.project_dir
        if pdir.is_relative_to(root) and path.is_relative_to(root):
            meta[key + "_relative"] = Path(os.path.relpath(path, pdir)).as_posix()
        return meta

    def _resolve_root(self) -> tuple[Path, bool]:
        """The library root, and whether it was found through the relative path.

        When the relative and the absolute paths disagree, the project was
        moved or copied: with its library (the relative path holds the
        tracks) or alone (the absolute path still does).
        """
        absolute = Path(self._meta["library_root"])
        rel = self._meta.get("library_root_relative")
        if rel is None:
            return absolute, False
        relative = Path(os.path.normpath(self.project_dir / rel))
        if relative == absolute:
            return absolute, False
        sample = [
            r[0]
            for r in self._conn.execute(
                "SELECT relpath FROM tracks WHERE missing_since IS NULL ORDER BY id LIMIT 20"
            )
        ]

        def holds(root: Path) -> bool:
            return root.is_dir() and any((root / s).exists() for s in sample)

        if sample:
            if holds(relative):
                return relative, True
            return absolute, False
        if absolute.is_dir() or not relative.is_dir():
            return absolute, False
        return relative, True

    def close(self) -> None:
        """Close the database and release the writer lock. Idempotent."""
        with self._mutex:
            if self._conn is not None:
                with contextlib.suppress(sqlite3.Error):
                    if not self.readonly and not self._conn.in_transaction:
                        self._conn.execute("PRAGMA optimize")
                self._conn.close()
                self._conn = None
            self._tracks_cache = None
            self._lock.release()

    def __enter__(self) -> Project:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._conn is None

    def _require_open(self) -> None:
        if self._conn is None:
            raise ProjectError(f"the project {self.project_dir} is closed")

    def _require_writable(self) -> None:
        if self.readonly:
            raise ProjectError(f"the project {self.project_dir} was opened read-only")

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, committed (durably) when the block ends."""
        self._require_writable()
        with self._mutex:
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    # -- what the project is about ----------------------------------------------------

    @property
    def library_root(self) -> Path:
        """The music folder (absolute)."""
        return self._root

    @property
    def cache_path(self) -> Path:
        """The embedding cache file of the library."""
        rel = self._meta.get("cache_path_relative")
        if self._moved_with_library and rel is not None:
            return Path(os.path.normpath(self.project_dir / rel))
        return Path(self._meta["cache_path"])

    @property
    def schema_version(self) -> int:
        """The schema version of the open database."""
        return int(self._meta.get("schema_version", "0"))

    @property
    def last_sync(self) -> float | None:
        """When :meth:`sync_library` last finished (Unix time), or None."""
        with self._mutex:
            self._require_open()
            self._load_meta()
        value = self._meta.get("last_sync")
        return float(value) if value is not None else None

    @_api
    def set_library_root(self, library_root: str | os.PathLike) -> None:
        """Point the project at the library's new place (a moved or remounted folder).

        Track paths are relative, so nothing else changes; run
        :meth:`sync_library` afterwards.
        """
        root = Path(os.path.abspath(library_root))
        if not root.is_dir():
            raise ProjectError(f"{library_root}: the music folder does not exist")
        cache = self.cache_path
        if cache.is_relative_to(self.library_root):  # the cache moved with the music
            cache = root / cache.relative_to(self.library_root)
        with self._transaction() as conn:
            conn.execute(
                "DELETE FROM meta WHERE key IN ('library_root', 'library_root_relative',"
                " 'cache_path', 'cache_path_relative')"
            )
            meta = {
                **self._path_meta("library_root", root, root),
                **self._path_meta("cache_path", cache, root),
            }
            conn.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", meta.items())
        self._load_meta()

    @_api
    def check(self) -> list[str]:
        """Run SQLite's ``integrity_check`` and our own consistency checks.

        Returns
        -------
        list of str
            Problems found; empty when the database is sound.
        """
        conn = self._conn
        rows = [r[0] for r in conn.execute("PRAGMA integrity_check")]
        problems = [] if rows == ["ok"] else [f"sqlite: {r}" for r in rows]
        problems += [
            f"foreign key: {r[0]} row {r[1]} points to a missing {r[2]}"
            for r in conn.execute("PRAGMA foreign_key_check")
        ]
        return problems

    # -- tracks -----------------------------------------------------------------------------

    @_api
    def tracks(self, *, include_missing: bool = True) -> TrackTable:
        """All tracks, ordered by id, as columns (a fresh copy each call).

        The table is read from the database once (0.3-1 s for 100,000
        tracks) and kept until the tracks change, here or in another
        connection; later calls copy it (a few ms).

        Parameters
        ----------
        include_missing : bool, keyword-only
            Also the tracks whose file was missing at the last sync.
        """
        table = self._track_table()[0]
        keep = None if include_missing else ~table.missing
        return _copy_tracks(table, keep)

    def _track_table(self) -> tuple[TrackTable, dict[str, int]]:
        """The cached track table and its relpath -> id map (read again if stale).

        Staleness: this connection's own writes to ``tracks`` drop the cache
        (:meth:`_tracks_changed`). A writer is the only writer (the lock), so
        nothing else can change the tracks; a read-only project also asks
        ``PRAGMA data_version``, which changes with other connections'
        commits. Callers hold ``self._mutex``.
        """
        version = self._conn.execute("PRAGMA data_version").fetchone()[0] if self.readonly else 0
        cached = self._tracks_cache
        if cached is not None and cached[0] == version:
            return cached[1], cached[2]
        rows = self._conn.execute(
            "SELECT id, relpath, size, mtime_ns, duration, artist, album, title, genre,"
            " missing_since IS NOT NULL FROM tracks ORDER BY id"
        ).fetchall()
        cols = list(zip(*rows, strict=True)) if rows else [()] * 10
        del rows
        table = TrackTable(
            id=np.array(cols[0], dtype=np.int64),
            relpath=list(cols[1]),
            size=np.array(cols[2], dtype=np.int64),
            mtime_ns=np.array(cols[3], dtype=np.int64),
            duration=np.array([np.nan if d is None else d for d in cols[4]], dtype=np.float64),
            artist=list(cols[5]),
            album=list(cols[6]),
            title=list(cols[7]),
            genre=list(cols[8]),
            missing=np.array(cols[9], dtype=bool),
        )
        ids = dict(zip(table.relpath, table.id.tolist(), strict=True))
        self._tracks_cache = (version, table, ids)
        return table, ids

    def _tracks_changed(self) -> None:
        """Forget the cached track table (call inside every write to ``tracks``)."""
        self._tracks_cache = None

    @_api
    def track(self, track_id: int) -> Track:
        """One track by id.

        Raises
        ------
        ProjectError
            No such track.
        """
        row = self._conn.execute(
            "SELECT id, relpath, size, mtime_ns, duration, artist, album, title, genre,"
            " missing_since IS NOT NULL FROM tracks WHERE id=?",
            (int(track_id),),
        ).fetchone()
        if row is None:
            raise ProjectError(f"no track with id {track_id}")
        return Track(*row[:9], missing=bool(row[9]))

    @_api
    def track_count(self) -> tuple[int, int]:
        """``(tracks, of which missing)``."""
        return tuple(
            self._conn.execute("SELECT count(*), count(missing_since) FROM tracks").fetchone()
        )

    @_api
    def track_ids_for_relpaths(self, relpaths: Iterable[str]) -> np.ndarray:
        """Track ids of library-relative paths (exact match), -1 where unknown.

        Returns
        -------
        ndarray of int64
            One id per path, in order.
        """
        relpaths = list(relpaths)
        if len(relpaths) <= _CHUNK and self._tracks_cache is None:
            sql = (
                f"SELECT relpath, id FROM tracks WHERE relpath IN ({_placeholders(len(relpaths))})"
            )
            found = dict(self._conn.execute(sql, relpaths))
        else:  # the cached map (read once) beats many lookups
            found = self._track_table()[1]
        get = found.get
        return np.fromiter((get(r, -1) for r in relpaths), dtype=np.int64, count=len(relpaths))

    @_api
    def relpaths_of_ids(self, track_ids: Sequence[int] | np.ndarray) -> list[str | None]:
        """Library-relative paths of track ids (None for ids that are no track).

        Reads the kept track table, so it costs the ids, not the library.
        """
        table = self._track_table()[0]
        rows = table.rows_of(track_ids).tolist()
        return [table.relpath[r] if r >= 0 else None for r in rows]

    def relpath_of(self, path: str | os.PathLike) -> str:
        """The library-relative, ``/``-separated form of a path.

        An absolute path must lie below the library root (as given or with
        symbolic links resolved); a relative one is taken as relative to the
        library root. Backslashes count as separators.

        Raises
        ------
        ProjectError
            An absolute path outside the library.
        """
        text = os.fspath(path).replace("\\", "/")
        p = Path(text)
        if not p.is_absolute():
            parts = [s for s in p.as_posix().split("/") if s not in ("", ".")]
            if ".." in parts:
                raise ProjectError(f"{path}: paths must not go up out of the library (..)")
            return "/".join(parts)
        root = self.library_root
        for candidate_root, candidate in ((root, p), (root.resolve(), p.resolve())):
            if candidate.is_relative_to(candidate_root):
                return candidate.relative_to(candidate_root).as_posix()
        raise ProjectError(f"{path} is not inside the music folder {root}")

    @_api
    def find_tracks(self, paths: Iterable[str | os.PathLike]) -> tuple[list[int], list[str]]:
        """Track ids of paths given by a user (absolute, or relative to the library).

        Exact matches first; then, for paths that did not match, a match that
        ignores Unicode normalisation (NFC/NFD) and case, when it is unique.

        Returns
        -------
        ids : list of int
            Ids of the paths that matched, in order.
        unmatched : list of str
            The paths that matched no track (or several, ignoring case).
        """
        paths = list(paths)
        rels = [self.relpath_of(p) for p in paths]
        ids = self.track_ids_for_relpaths(rels)
        out: list[int] = []
        unmatched: list[str] = []
        loose: dict[str, list[int]] | None = None
        for p, rel, tid in zip(paths, rels, ids, strict=True):
            if tid >= 0:
                out.append(int(tid))
                continue
            if loose is None:
                loose = {}
                for i, r in self._conn.execute("SELECT id, relpath FROM tracks"):
                    loose.setdefault(_name_key(r), []).append(i)
            hits = loose.get(_name_key(rel), [])
            if len(hits) == 1:
                out.append(hits[0])
            else:
                unmatched.append(os.fspath(p))
        return out, unmatched

    # -- library sync ---------------------------------------------------------------------

    def sync_library(self) -> Generator[SyncProgress, None, SyncReport]:
        """Bring the track list up to date with the music folder (a generator task).

        Scans the library; adds new files; re-reads files whose size or
        mtime changed; recognises renamed and moved files by size and
        content fingerprint, so their track ids and labels follow them; marks
        files that are gone as missing (their labels are kept). Work is
        committed in batches, so stopping the task (``close()``) keeps what
        was done. Run it with :func:`tagger_gui.core.tasks.run_task`.

        Yields
        ------
        SyncProgress

        Returns
        -------
        SyncReport

        Raises
        ------
        ProjectError
            The library folder does not exist (moved? see
            :meth:`set_library_root`), or another sync is running.
        """
        from tagger_gui.core.library import LibraryFile, scan_library
        from tagger_gui.core.project.trackmeta import fingerprint, read_track_meta

        with self._mutex:
            self._require_open()
            self._require_writable()
            if self._syncing:
                raise ProjectError("a library sync is already running")
            self._syncing = True
        try:
            start = time.monotonic()
            root = self.library_root
            if not root.is_dir():
                raise ProjectError(
                    f"the music folder {root} does not exist (unplugged or moved?); "
                    "tell the project where it is now"
                )
            report = SyncReport(root=root)
            with self._mutex:
                known = {
                    r[1]: r
                    for r in self._conn.execute(
                        "SELECT id, relpath, size, mtime_ns, missing_since, fingerprint FROM tracks"
                    )
                }

            # 1. scan (stat only)
            files: list[LibraryFile] = []
            for item in scan_library(root):
                if isinstance(item, LibraryFile):
                    files.append(item)
                else:
                    report.problems.append((item.relpath, item.reason))
                if len(files) % 500 == 0:
                    yield SyncProgress("scanning", len(files), 0, getattr(item, "relpath", None))
            report.found = len(files)

            seen: set[str] = set()
            to_read: list[tuple[LibraryFile, int | None]] = []
            returned: list[int] = []
            for f in files:
                seen.add(f.relpath)
                row = known.get(f.relpath)
                if row is None:
                    to_read.append((f, None))
                elif row[2] != f.size or row[3] != f.mtime_ns:
                    to_read.append((f, row[0]))
                else:
                    report.unchanged += 1
                    if row[4] is not None:
                        returned.append(row[0])
                        report.returned.append(f.relpath)
            # Tracks whose file is gone (now or before) may be the old name
            # of a new file: index them by (size, fingerprint).
            vanished = {r[0]: r for rel, r in known.items() if rel not in seen}
            by_identity: dict[tuple[int, bytes], list[int]] = {}
            for tid, r in vanished.items():
                if r[5] is not None:
                    by_identity.setdefault((r[2], r[5]), []).append(tid)
            if returned:
                with self._transaction() as conn:
                    self._tracks_changed()
                    for chunk in _chunks(returned):
                        conn.execute(
                            "UPDATE tracks SET missing_since=NULL WHERE id IN "
                            f"({_placeholders(len(chunk))})",
                            chunk,
                        )

            # 2. read tags and fingerprints of new and changed files, in batches
            added: list[_FileRecord] = []
            updated: list[tuple[int, _FileRecord]] = []
            moved: list[tuple[int, _FileRecord]] = []
            claimed: set[int] = set()
            last_commit = time.monotonic()
            total = len(to_read)
            for done, (f, tid) in enumerate(to_read, 1):
                yield SyncProgress("reading", done - 1, total, f.relpath)
                meta = read_track_meta(f.path)
                if meta.problem:
                    report.problems.append((f.relpath, meta.problem))
                try:
                    fp = fingerprint(f.path, f.size)
                except OSError as exc:
                    fp = None
                    report.problems.append((f.relpath, f"cannot be read ({exc.strerror})"))
                rec = _FileRecord(
                    f.relpath, f.size, f.mtime_ns, fp, meta.duration,
                    meta.artist, meta.album, meta.title, meta.genre,
                )  # fmt: skip
                if tid is not None:
                    updated.append((tid, rec))
                else:
                    match = self._pick_moved(
                        by_identity.get((f.size, fp), []), vanished, claimed, f
                    )
                    if match is None:
                        added.append(rec)
                    else:
                        claimed.add(match)
                        moved.append((match, rec))
                        report.moved.append((vanished[match][1], f.relpath))
                pending = len(added) + len(updated) + len(moved)
                if pending >= _SYNC_BATCH or (
                    pending and time.monotonic() - last_commit > _SYNC_BATCH_SECONDS
                ):
                    self._write_tracks(added, updated, moved)
                    report.added += len(added)
                    report.updated += len(updated)
                    added, updated, moved = [], [], []
                    last_commit = time.monotonic()
            self._write_tracks(added, updated, moved)
            report.added += len(added)
            report.updated += len(updated)

            # 3. what is gone
            now = time.time()
            gone = [tid for tid, r in vanished.items() if tid not in claimed and r[4] is None]
            report.missing = sorted(vanished[t][1] for t in gone)
            with self._transaction() as conn:
                if gone:  # (an unchanged library keeps the cached track table)
                    self._tracks_changed()
                for chunk in _chunks(gone):
                    marks = _placeholders(len(chunk))
                    sql = f"UPDATE tracks SET missing_since=? WHERE id IN ({marks})"
                    conn.execute(sql, [now, *chunk])
                conn.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES ('last_sync', ?)", (repr(now),)
                )
            report.seconds = time.monotonic() - start
            yield SyncProgress("reading", total, total, None)
            return report
        finally:
            with self._mutex:
                self._syncing = False

    @_api
    def record_rewritten_files(self, new_stats: dict[str, tuple[int, int]]) -> int:
        """Record files that *we* rewrote (a tag write-back) as unchanged music.

        Updates size, mtime and fingerprint, so the next sync and the next
        write-back do not take them for files someone else changed.

        Parameters
        ----------
        new_stats : dict of relpath to (size, mtime_ns)
            As in ``WritebackReport.new_stats``.

        Returns
        -------
        int
            Tracks updated (files unknown to the project are ignored).
        """
        from tagger_gui.core.project.trackmeta import fingerprint

        root = self.library_root
        updates = []
        for rel, (size, mtime_ns) in new_stats.items():
            try:
                fp = fingerprint(root / rel, size)
            except OSError:
                fp = None  # gone again: the next sync will tell
            updates.append((size, mtime_ns, fp, rel))
        with self._transaction() as conn:
            self._tracks_changed()
            before = conn.total_changes
            conn.executemany(
                "UPDATE tracks SET size=?, mtime_ns=?, fingerprint=? WHERE relpath=?", updates
            )
            return conn.total_changes - before

    @staticmethod
    def _pick_moved(candidates: list[int], vanished: dict, claimed: set[int], f) -> int | None:
        """Of the vanished tracks with the new file's identity, the one it most
        likely is: same file name first, then the first by old path."""
        free = [c for c in candidates if c not in claimed]
        if not free:
            return None
        name = f.relpath.rsplit("/", 1)[-1]
        same_name = [c for c in free if vanished[c][1].rsplit("/", 1)[-1] == name]
        pool = same_name or free
        return min(pool, key=lambda c: vanished[c][1])

    def _write_tracks(
        self,
        added: list[_FileRecord],
        updated: list[tuple[int, _FileRecord]],
        moved: list[tuple[int, _FileRecord]],
    ) -> None:
        if not (added or updated or moved):
            return
        now = time.time()
        with self._transaction() as conn:
            self._tracks_changed()
            conn.executemany(
                "INSERT INTO tracks (relpath, size, mtime_ns, fingerprint, duration, artist,"
                " album, title, genre, added) VALUES (?,?,?,?,?,?,?,?,?,?)",
                [
                    (r.relpath, r.size, r.mtime_ns, r.fingerprint, r.duration, r.artist,
                     r.album, r.title, r.genre, now)
                    for r in added
                ],
            )  # fmt: skip
            conn.executemany(
                "UPDATE tracks SET relpath=?, size=?, mtime_ns=?, fingerprint=?, duration=?,"
                " artist=?, album=?, title=?, genre=?, missing_since=NULL WHERE id=?",
                [
                    (r.relpath, r.size, r.mtime_ns, r.fingerprint, r.duration, r.artist,
                     r.album, r.title, r.genre, tid)
                    for tid, r in [*updated, *moved]
                ],
            )  # fmt: skip

    # -- tags ---------------------------------------------------------------------------

    def _tag_row(self, tag: str | int | Tag):
        conn = self._conn
        if isinstance(tag, Tag):
            tag = tag.id
        if isinstance(tag, int | np.integer):
            row = conn.execute(
                f"SELECT {_TAG_COLUMNS} FROM tags WHERE id=? AND deleted IS NULL", (int(tag),)
            ).fetchone()
            if row is None:
                raise ProjectError(f"no tag with id {tag}")
            return row
        if not isinstance(tag, str):
            raise ProjectError(f"a tag is named by its name or id, not {type(tag).__name__}")
        row = conn.execute(
            f"SELECT {_TAG_COLUMNS} FROM tags WHERE name_key=? AND deleted IS NULL",
            (_name_key(tag.strip()),),
        ).fetchone()
        if row is None:
            raise ProjectError(f"no tag named {tag!r}")
        return row

    @_api
    def tag(self, tag: str | int | Tag) -> Tag:
        """A tag by name (any case) or id.

        Raises
        ------
        ProjectError
            No such tag.
        """
        return _tag_from_row(self._tag_row(tag))

    @_api
    def has_tag(self, name: str) -> bool:
        """Whether a live tag has this name (ignoring case)."""
        return (
            self._conn.execute(
                "SELECT 1 FROM tags WHERE name_key=? AND deleted IS NULL",
                (_name_key(name.strip()),),
            ).fetchone()
            is not None
        )

    @_api
    def tags(self) -> list[Tag]:
        """All tags, ordered by name (ignoring case)."""
        rows = self._conn.execute(
            f"SELECT {_TAG_COLUMNS} FROM tags WHERE deleted IS NULL ORDER BY name_key, id"
        )
        return [_tag_from_row(r) for r in rows]

    def _parents(self) -> dict[int, int | None]:
        return dict(self._conn.execute("SELECT id, parent_id FROM tags WHERE deleted IS NULL"))

    @staticmethod
    def _ancestors_in(parents: dict[int, int | None], tag_id: int) -> list[int]:
        out: list[int] = []
        p = parents.get(tag_id)
        while p is not None and p not in out and p != tag_id:
            out.append(p)
            p = parents.get(p)
        return out

    @staticmethod
    def _descendants_in(parents: dict[int, int | None], tag_id: int) -> list[int]:
        children: dict[int, list[int]] = {}
        for t, p in parents.items():
            if p is not None:
                children.setdefault(p, []).append(t)
        out: list[int] = []
        stack = list(children.get(tag_id, []))
        while stack:
            t = stack.pop()
            if t in out or t == tag_id:
                continue
            out.append(t)
            stack.extend(children.get(t, []))
        return out

    @_api
    def ancestors(self, tag: str | int | Tag) -> list[Tag]:
        """The parent, grandparent... of a tag, nearest first."""
        tid = self._tag_row(tag)[0]
        return [self.tag(t) for t in self._ancestors_in(self._parents(), tid)]

    @_api
    def descendants(self, tag: str | int | Tag) -> list[Tag]:
        """Every tag below ``tag`` in the hierarchy."""
        tid = self._tag_row(tag)[0]
        return [self.tag(t) for t in sorted(self._descendants_in(self._parents(), tid))]

    def _begin_action(
        self, conn: sqlite3.Connection, kind: str, description: str, data: dict | None = None
    ) -> int:
        """Record a new undo step; a new action clears the redo stack."""
        now = time.time()
        conn.execute(
            "UPDATE actions SET state='discarded', state_time=? WHERE state='undone'", (now,)
        )
        cur = conn.execute(
            "INSERT INTO actions (kind, description, data, time) VALUES (?, ?, ?, ?)",
            (kind, description, json.dumps(data or {}), now),
        )
        return cur.lastrowid

    def _check_name_free(self, name: str, *, except_id: int | None = None) -> None:
        row = self._conn.execute(
            "SELECT id, name FROM tags WHERE name_key=? AND deleted IS NULL", (_name_key(name),)
        ).fetchone()
        if row is not None and row[0] != except_id:
            raise ProjectError(f"a tag named {row[1]!r} already exists")

    def _check_parent(self, tag_id: int | None, parent: str | int | Tag | None) -> int | None:
        if parent is None:
            return None
        pid = self._tag_row(parent)[0]
        if tag_id is not None:
            parents = self._parents()
            if pid == tag_id or tag_id in self._ancestors_in(parents, pid):
                raise ProjectError(
                    f"{self._tag_row(parent)[1]!r} cannot be the parent of "
                    f"{self._tag_row(tag_id)[1]!r}: the hierarchy would loop"
                )
        return pid

    @_api
    def create_tag(
        self,
        name: str,
        *,
        parent: str | int | Tag | None = None,
        description: str = "",
        colour: str | None = None,
    ) -> Tag:
        """Create a tag (one undo step).

        Parameters
        ----------
        name : str
            Unique among tags, ignoring case; surrounding blanks are removed.
        parent : tag name, id or Tag, optional, keyword-only
            Its parent in the hierarchy (a positive for the tag is then a
            positive for the parent).
        description : str, keyword-only
        colour : str, optional, keyword-only
            ``"#rrggbb"``.

        Raises
        ------
        ProjectError
            Empty, too long or duplicate name, unknown parent, bad colour.
        """
        self._require_writable()
        clean = _clean_tag_name(name)
        colour = _clean_colour(colour)
        self._check_name_free(clean)
        pid = self._check_parent(None, parent)
        with self._transaction() as conn:
            tid = self._insert_tag(conn, clean, pid, description, colour)
            self._begin_action(conn, "create_tag", f"create tag {clean!r}", {"tag_id": tid})
        return self.tag(tid)

    @staticmethod
    def _insert_tag(conn, name: str, parent_id: int | None, description: str, colour) -> int:
        cur = conn.execute(
            "INSERT INTO tags (name, name_key, description, colour, parent_id, created)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (name, _name_key(name), description or "", colour, parent_id, time.time()),
        )
        return cur.lastrowid

    @_api
    def rename_tag(self, tag: str | int | Tag, new_name: str) -> Tag:
        """Rename a tag (one undo step); its labels and children stay with it."""
        self._require_writable()
        row = self._tag_row(tag)
        clean = _clean_tag_name(new_name)
        if clean == row[1]:
            return _tag_from_row(row)
        self._check_name_free(clean, except_id=row[0])
        with self._transaction() as conn:
            conn.execute(
                "UPDATE tags SET name=?, name_key=? WHERE id=?", (clean, _name_key(clean), row[0])
            )
            self._begin_action(
                conn,
                "edit_tag",
                f"rename tag {row[1]!r} to {clean!r}",
                {"tag_id": row[0], "old": {"name": row[1]}, "new": {"name": clean}},
            )
        return self.tag(row[0])

    _UNSET: Any = object()

    @_api
    def edit_tag(
        self,
        tag: str | int | Tag,
        *,
        parent: str | int | Tag | None = _UNSET,
        description: str = _UNSET,
        colour: str | None = _UNSET,
    ) -> Tag:
        """Change a tag's parent, description or colour (one undo step).

        Only the arguments given change; ``parent=None`` makes it a top-level tag.

        Raises
        ------
        ProjectError
            The new parent would make the hierarchy loop, or a bad colour.
        """
        self._require_writable()
        row = self._tag_row(tag)
        tid = row[0]
        old: dict[str, Any] = {}
        new: dict[str, Any] = {}
        if parent is not self._UNSET:
            pid = self._check_parent(tid, parent)
            if pid != row[4]:
                old["parent_id"], new["parent_id"] = row[4], pid
        if description is not self._UNSET and (description or "") != row[2]:
            old["description"], new["description"] = row[2], description or ""
        if colour is not self._UNSET:
            c = _clean_colour(colour)
            if c != row[3]:
                old["colour"], new["colour"] = row[3], c
        if not new:
            return _tag_from_row(row)
        what = ", ".join(
            {"parent_id": "parent", "description": "description", "colour": "colour"}[k]
            for k in new
        )
        with self._transaction() as conn:
            self._set_tag_fields(conn, tid, new)
            self._begin_action(
                conn,
                "edit_tag",
                f"change {what} of tag {row[1]!r}",
                {"tag_id": tid, "old": old, "new": new},
            )
        return self.tag(tid)

    @staticmethod
    def _set_tag_fields(conn, tag_id: int, values: dict[str, Any]) -> None:
        for key, value in values.items():
            if key == "name":
                conn.execute(
                    "UPDATE tags SET name=?, name_key=? WHERE id=?",
                    (value, _name_key(value), tag_id),
                )
            elif key in ("parent_id", "description", "colour"):
                conn.execute(f"UPDATE tags SET {key}=? WHERE id=?", (value, tag_id))
            else:  # pragma: no cover - data written by this module only
                raise ProjectError(f"unknown tag field {key!r} in the undo history")

    @_api
    def delete_tag(self, tag: str | int | Tag) -> ActionResult:
        """Delete a tag (one undo step).

        Its children move up to its parent. Its labels and saved probe are
        kept in the database (hidden), so :meth:`undo` brings everything back.
        """
        self._require_writable()
        row = self._tag_row(tag)
        tid = row[0]
        children = [
            r[0]
            for r in self._conn.execute(
                "SELECT id FROM tags WHERE parent_id=? AND deleted IS NULL ORDER BY id", (tid,)
            )
        ]
        n = self._conn.execute("SELECT count(*) FROM labels WHERE tag_id=?", (tid,)).fetchone()[0]
        description = f"delete tag {row[1]!r}" + (f" ({n} labels)" if n else "")
        with self._transaction() as conn:
            conn.execute(
                f"UPDATE tags SET parent_id=? WHERE id IN ({_placeholders(len(children))})",
                [row[4], *children],
            )
            conn.execute("UPDATE tags SET deleted=? WHERE id=?", (time.time(), tid))
            action = self._begin_action(
                conn,
                "delete_tag",
                description,
                {"tag_id": tid, "children": children, "parent_id": row[4]},
            )
        return ActionResult(action, n, description)

    # -- labels -------------------------------------------------------------------------

    def _check_tracks(self, track_ids: Sequence[int]) -> None:
        missing: list[int] = []
        for chunk in _chunks(track_ids):
            found = {
                r[0]
                for r in self._conn.execute(
                    f"SELECT id FROM tracks WHERE id IN ({_placeholders(len(chunk))})", chunk
                )
            }
            missing += [t for t in chunk if t not in found]
        if missing:
            shown = ", ".join(map(str, missing[:10])) + (" ..." if len(missing) > 10 else "")
            raise ProjectError(f"no track with id {shown}")

    def _current(self, tag_id: int, track_ids: Sequence[int]) -> dict[int, _Label]:
        conn = self._conn
        cols = "track_id, value, source, time, score, probe_version"
        if len(track_ids) > 5 * _CHUNK:
            rows = conn.execute(f"SELECT {cols} FROM labels WHERE tag_id=?", (tag_id,))
            return {r[0]: tuple(r[1:]) for r in rows}
        out: dict[int, _Label] = {}
        for chunk in _chunks(track_ids):
            rows = conn.execute(
                f"SELECT {cols} FROM labels WHERE tag_id=? AND track_id IN "
                f"({_placeholders(len(chunk))})",
                [tag_id, *chunk],
            )
            out.update({r[0]: tuple(r[1:]) for r in rows})
        return out

    def _write_labels(
        self,
        conn: sqlite3.Connection,
        action_id: int,
        changes: list[tuple[int, int, _Label | None, _Label | None]],
    ) -> None:
        """Apply ``(tag_id, track_id, old, new)`` changes and record them in the history."""
        conn.executemany(
            "INSERT INTO label_history (action_id, tag_id, track_id, old_value, old_source,"
            " old_time, old_score, old_probe_version, new_value, new_source, new_time,"
            " new_score, new_probe_version) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            [
                (action_id, tag, track, *(old or (None,) * 5), *(new or (None,) * 5))
                for tag, track, old, new in changes
            ],
        )
        self._apply(conn, [(tag, track, new) for tag, track, _, new in changes])

    @staticmethod
    def _apply(conn: sqlite3.Connection, rows: list[tuple[int, int, _Label | None]]) -> None:
        conn.executemany(
            "INSERT OR REPLACE INTO labels (tag_id, track_id, value, source, time, score,"
            " probe_version) VALUES (?,?,?,?,?,?,?)",
            [(tag, track, *new) for tag, track, new in rows if new is not None],
        )
        conn.executemany(
            "DELETE FROM labels WHERE tag_id=? AND track_id=?",
            [(tag, track) for tag, track, new in rows if new is None],
        )

    def _describe_tracks(self, track_ids: Sequence[int]) -> str:
        if len(track_ids) == 1:
            row = self._conn.execute(
                "SELECT relpath, title FROM tracks WHERE id=?", (track_ids[0],)
            ).fetchone()
            return repr(row[1] or row[0].rsplit("/", 1)[-1])
        return f"{len(track_ids)} tracks"

    @staticmethod
    def _unique_ids(track_ids: Iterable[int] | np.ndarray) -> list[int]:
        seen: dict[int, None] = {}
        for t in np.asarray(track_ids, dtype=np.int64).ravel().tolist():
            seen[int(t)] = None
        return list(seen)

    @_api
    def set_labels(
        self,
        tag: str | int | Tag,
        track_ids: Iterable[int] | np.ndarray,
        value: str,
        *,
        source: str = "human",
        scores: float | Sequence[float] | np.ndarray | None = None,
        probe_version: str | None = None,
    ) -> ActionResult:
        """Label tracks for a tag: one transaction, committed on return, one undo step.

        Parameters
        ----------
        tag : tag name, id or Tag
        track_ids : iterable of int
            Duplicates are ignored.
        value : {"positive", "negative", "skip"}
        source : {"human", "model", "imported"}, keyword-only
            ``"model"``: a model proposal the human accepted (give ``scores``
            and ``probe_version``).
        scores : float or sequence of float, optional, keyword-only
            One score for all tracks, or one per track id.
        probe_version : str, optional, keyword-only

        Returns
        -------
        ActionResult
            ``changed`` counts the labels that differ from before; when none
            does, no undo step is recorded (``action_id`` is None).

        Raises
        ------
        ProjectError
            Unknown tag or track, bad value or source, read-only project.
        """
        self._require_writable()
        if value not in VALUES:
            raise ProjectError(f"label value must be one of {', '.join(VALUES)}, not {value!r}")
        if source not in SOURCES:
            raise ProjectError(f"label source must be one of {', '.join(SOURCES)}, not {source!r}")
        row = self._tag_row(tag)
        tag_id, tag_name = row[0], row[1]
        ids = np.asarray(list(track_ids) if not isinstance(track_ids, np.ndarray) else track_ids)
        if scores is None or np.ndim(scores) == 0:
            one = None if scores is None else float(scores)
            tracks = self._unique_ids(ids)
            score_of: Callable[[int], float | None] = lambda _track: one  # noqa: E731
        else:
            scores = np.asarray(scores, dtype=np.float64).ravel()
            if len(scores) != len(ids):
                raise ProjectError(f"{len(scores)} scores for {len(ids)} tracks")
            by_id = dict(zip(ids.astype(np.int64).tolist(), scores.tolist(), strict=True))
            tracks = list(by_id)
            score_of = by_id.get
        if not tracks:
            return ActionResult(None, 0, "nothing to label")
        self._check_tracks(tracks)
        current = self._current(tag_id, tracks)
        now = time.time()
        changes = []
        for t in tracks:
            new = (value, source, now, score_of(t), probe_version)
            old = current.get(t)
            if old is None or (old[0], old[1], old[3], old[4]) != (new[0], new[1], new[3], new[4]):
                changes.append((tag_id, t, old, new))
        if not changes:
            return ActionResult(None, 0, "labels unchanged")
        description = f"label {self._describe_tracks(tracks)} {value} for {tag_name!r}"
        with self._transaction() as conn:
            action = self._begin_action(conn, "labels", description)
            self._write_labels(conn, action, changes)
        return ActionResult(action, len(changes), description)

    @_api
    def clear_labels(
        self, tag: str | int | Tag, track_ids: Iterable[int] | np.ndarray
    ) -> ActionResult:
        """Remove the labels of tracks for a tag (one undo step; tracks without one are ignored)."""
        self._require_writable()
        row = self._tag_row(tag)
        tracks = self._unique_ids(
            list(track_ids) if not isinstance(track_ids, np.ndarray) else track_ids
        )
        current = self._current(row[0], tracks)
        changes = [(row[0], t, current[t], None) for t in tracks if t in current]
        if not changes:
            return ActionResult(None, 0, "no labels to remove")
        description = (
            f"remove the {row[1]!r} label of {self._describe_tracks([c[1] for c in changes])}"
        )
        with self._transaction() as conn:
            action = self._begin_action(conn, "labels", description)
            self._write_labels(conn, action, changes)
        return ActionResult(action, len(changes), description)

    @_api
    def import_labels(
        self,
        rows: Iterable[tuple[int, str, str]],
        *,
        description: str | None = None,
        create_tags: bool = True,
    ) -> ActionResult:
        """Apply resolved import rows all at once: one transaction, one undo step.

        Parameters
        ----------
        rows : iterable of (track_id, tag_name, value)
            ``value`` in :data:`VALUES`. Identical repeats are ignored.
        description : str, optional, keyword-only
            For the undo menu (e.g. the CSV file's name).
        create_tags : bool, keyword-only
            Create tags that do not exist yet (they are removed again by undo);
            if False, an unknown tag is an error.

        Returns
        -------
        ActionResult
            With ``source="imported"`` labels; ``created_tags`` names the new tags.

        Raises
        ------
        ProjectError
            Unknown track, bad value or tag name, or the same (track, tag)
            with two different values; nothing is imported then.
        """
        self._require_writable()
        wanted: dict[tuple[str, int], str] = {}
        names: dict[str, str] = {}
        for n, item in enumerate(rows, 1):
            try:
                track_id, tag_name, value = item
            except (TypeError, ValueError):
                raise ProjectError(f"import row {n}: expected (track_id, tag, value)") from None
            if value not in VALUES:
                raise ProjectError(
                    f"import row {n}: value must be one of {', '.join(VALUES)}, not {value!r}"
                )
            clean = _clean_tag_name(tag_name)
            key = (_name_key(clean), int(track_id))
            names.setdefault(key[0], clean)
            if wanted.get(key, value) != value:
                raise ProjectError(
                    f"import row {n}: track {track_id} is both {wanted[key]} and {value} "
                    f"for tag {clean!r}"
                )
            wanted[key] = value
        if not wanted:
            return ActionResult(None, 0, "nothing to import")
        self._check_tracks(sorted({t for _, t in wanted}))
        existing = {
            r[0]: r[1]
            for r in self._conn.execute("SELECT name_key, id FROM tags WHERE deleted IS NULL")
        }
        to_create = [names[k] for k in names if k not in existing]
        if to_create and not create_tags:
            raise ProjectError(f"unknown tag(s): {', '.join(map(repr, to_create))}")
        description = description or (
            f"import {len(wanted)} labels" + (f" ({len(to_create)} new tags)" if to_create else "")
        )
        now = time.time()
        by_tag: dict[str, list[tuple[int, str]]] = {}
        for (key, track), value in wanted.items():
            by_tag.setdefault(key, []).append((track, value))
        changes = []
        for key, items in by_tag.items():
            if key not in existing:
                continue  # a new tag: every row is a change, made below
            current = self._current(existing[key], [t for t, _ in items])
            for track, value in items:
                old = current.get(track)
                if old is None or (old[0], old[1]) != (value, "imported"):
                    new = (value, "imported", now, None, None)
                    changes.append((existing[key], track, old, new))
        if not changes and not to_create:
            return ActionResult(None, 0, "labels unchanged")
        with self._transaction() as conn:
            created = []
            for name in to_create:
                tid = self._insert_tag(conn, name, None, "", None)
                created.append(tid)
                changes += [
                    (tid, track, None, (value, "imported", now, None, None))
                    for track, value in by_tag[_name_key(name)]
                ]
            action = self._begin_action(conn, "labels", description, {"created_tags": created})
            self._write_labels(conn, action, changes)
        return ActionResult(action, len(changes), description, tuple(to_create))

    @_api
    def labels(self, tag: str | int | Tag, *, hierarchy: bool = True) -> TagLabels:
        """The current labels of a tag, with the tag hierarchy applied.

        With ``hierarchy`` (the default), for each track, in this order:

        1. the track's own positive or negative label for ``tag``;
        2. positive, if the track is positive for a descendant of ``tag``
           (a positive for "bebop" is a positive for "jazz");
        3. negative, if the track is negative for an ancestor of ``tag``
           (a negative for "jazz" is a negative for "bebop");
        4. the track's own "skip" for ``tag``.

        Parameters
        ----------
        tag : tag name, id or Tag
        hierarchy : bool, keyword-only
            False: only the labels given to ``tag`` itself.

        Returns
        -------
        TagLabels
        """
        row = self._tag_row(tag)
        the_tag = _tag_from_row(row)
        tid = row[0]
        parents = self._parents() if hierarchy else {}
        desc = set(self._descendants_in(parents, tid)) if hierarchy else set()
        anc = set(self._ancestors_in(parents, tid)) if hierarchy else set()
        wanted = [tid, *desc, *anc]
        rows = self._conn.execute(
            "SELECT track_id, tag_id, value, source, time, score, probe_version FROM labels "
            f"WHERE tag_id IN ({_placeholders(len(wanted))}) ORDER BY track_id",
            wanted,
        ).fetchall()
        if not desc and not anc:
            chosen = rows
        else:
            # rank: 0 own pos/neg, 1 descendant positive, 2 ancestor negative, 3 own skip
            best: dict[int, tuple[int, float, tuple]] = {}
            for r in rows:
                t, g, v = r[0], r[1], r[2]
                if g == tid:
                    rank = 3 if v == "skip" else 0
                elif g in desc and v == "positive":
                    rank = 1
                elif g in anc and v == "negative":
                    rank = 2
                else:
                    continue
                cur = best.get(t)
                # among equal ranks, the most recent label speaks
                if cur is None or (rank, -r[4]) < (cur[0], -cur[1]):
                    best[t] = (rank, r[4], r)
            chosen = [best[t][2] for t in sorted(best)]
        cols = list(zip(*chosen, strict=True)) if chosen else [()] * 7
        return TagLabels(
            tag=the_tag,
            track_id=np.array(cols[0], dtype=np.int64),
            value=np.array([VALUE_CODES[v] for v in cols[2]], dtype=np.int8),
            source=list(cols[3]),
            time=np.array(cols[4], dtype=np.float64),
            score=np.array([np.nan if s is None else s for s in cols[5]], dtype=np.float64),
            probe_version=list(cols[6]),
            from_tag=np.array(cols[1], dtype=np.int64),
        )

    @_api
    def label_counts(self, *, hierarchy: bool = True) -> dict[int, dict[str, int]]:
        """``{tag_id: {"positive": n, "negative": n, "skip": n}}`` for every tag."""
        out = {}
        for t in self.tags():
            lab = self.labels(t.id, hierarchy=hierarchy)
            out[t.id] = {
                "positive": int(np.sum(lab.value == 1)),
                "negative": int(np.sum(lab.value == -1)),
                "skip": int(np.sum(lab.value == 0)),
            }
        return out

    @_api
    def labels_of_track(self, track_id: int) -> dict[str, str]:
        """The labels given to one track: ``{tag name: value}`` (no hierarchy)."""
        rows = self._conn.execute(
            "SELECT tags.name, labels.value FROM labels JOIN tags ON tags.id = labels.tag_id "
            "WHERE labels.track_id=? AND tags.deleted IS NULL ORDER BY tags.name_key",
            (int(track_id),),
        )
        return dict(rows)

    @_api
    def label_rows(
        self,
        *,
        tags: Sequence[str | int | Tag] | None = None,
        hierarchy: bool = False,
    ) -> list[tuple[str, str, str, str, float, float | None, str | None]]:
        """Every current label as rows, for export.

        Parameters
        ----------
        tags : sequence of tag names, ids or Tags, optional, keyword-only
            Only these tags (default: all).
        hierarchy : bool, keyword-only
            Apply the tag hierarchy (as :meth:`labels` does): a track positive
            for "bebop" gets a "jazz" positive row too.

        Returns
        -------
        list of (relpath, tag name, value, source, time, score, probe_version)
            Ordered by path, then tag name (ignoring case).
        """
        chosen = self.tags() if tags is None else [self.tag(t) for t in tags]
        relpath_of = dict(self._conn.execute("SELECT id, relpath FROM tracks"))
        rows = []
        for tag in chosen:
            lab = self.labels(tag.id, hierarchy=hierarchy)
            names = {1: "positive", -1: "negative", 0: "skip"}
            for i, track in enumerate(lab.track_id.tolist()):
                score = float(lab.score[i])
                rows.append(
                    (
                        relpath_of[track],
                        tag.name,
                        names[int(lab.value[i])],
                        lab.source[i],
                        float(lab.time[i]),
                        None if math.isnan(score) else score,
                        lab.probe_version[i],
                    )
                )
        rows.sort(key=lambda r: (r[0], _name_key(r[1])))
        return rows

    @_api
    def positive_tags_by_track(
        self,
        *,
        tags: Sequence[str | int | Tag] | None = None,
        hierarchy: bool = True,
        include_missing: bool = False,
    ) -> dict[str, list[str]]:
        """For every track, the names of the tags it is positive for (for write-back).

        Every track is listed (with ``[]`` when it has no positive), so that a
        write-back also clears tags that were taken back.

        Parameters
        ----------
        tags : sequence of tag names, ids or Tags, optional, keyword-only
            Only these tags (default: all).
        hierarchy : bool, keyword-only
            A positive for a child tag counts for its ancestors.
        include_missing : bool, keyword-only
            Also tracks whose file was missing at the last sync.

        Returns
        -------
        dict of relpath to list of str
            Tag names sorted ignoring case.
        """
        chosen = self.tags() if tags is None else [self.tag(t) for t in tags]
        where = "" if include_missing else " WHERE missing_since IS NULL"
        relpath_of = dict(self._conn.execute(f"SELECT id, relpath FROM tracks{where}"))
        out: dict[str, list[str]] = {r: [] for r in sorted(relpath_of.values())}
        for tag in sorted(chosen, key=lambda t: _name_key(t.name)):
            for track in self.labels(tag.id, hierarchy=hierarchy).positives.tolist():
                if track in relpath_of:
                    out[relpath_of[track]].append(tag.name)
        return out

    @_api
    def label_snapshot(self, tag: str | int | Tag, *, hierarchy: bool = True) -> str:
        """A hash of the current (effective) labels of a tag: which tracks, which values.

        Equal snapshots mean a probe fitted on one fits the other: store it
        in :meth:`save_probe`'s metadata to notice stale probes.
        """
        lab = self.labels(tag, hierarchy=hierarchy)
        h = hashlib.blake2b(digest_size=16)
        h.update(lab.track_id.astype("<i8").tobytes())
        h.update(lab.value.astype("i1").tobytes())
        return h.hexdigest()

    @_api
    def label_history(self, track_id: int, tag: str | int | Tag) -> list[HistoryEntry]:
        """Every change of one track's label for one tag, oldest first (undone ones too)."""
        tid = self._tag_row(tag)[0]
        rows = self._conn.execute(
            "SELECT a.id, a.description, a.time, a.state, h.old_value, h.new_value,"
            " h.new_source, h.new_score FROM label_history h JOIN actions a ON a.id = h.action_id"
            " WHERE h.tag_id=? AND h.track_id=? ORDER BY h.id",
            (tid, int(track_id)),
        )
        return [HistoryEntry(*r) for r in rows]

    # -- undo / redo ------------------------------------------------------------------------

    def _last(self, state: str, newest: bool):
        order = "DESC" if newest else "ASC"
        return self._conn.execute(
            f"SELECT id, kind, description, data FROM actions WHERE state=? ORDER BY id {order}"
            " LIMIT 1",
            (state,),
        ).fetchone()

    @property
    def can_undo(self) -> bool:
        """Whether there is an action to undo."""
        return self.undo_text is not None

    @property
    def can_redo(self) -> bool:
        """Whether there is an undone action to redo."""
        return self.redo_text is not None

    @property
    @_api
    def undo_text(self) -> str | None:
        """What :meth:`undo` would undo (for the Edit menu), or None."""
        row = self._last("done", newest=True)
        return row[2] if row else None

    @property
    @_api
    def redo_text(self) -> str | None:
        """What :meth:`redo` would redo, or None."""
        row = self._last("undone", newest=False)
        return row[2] if row else None

    @_api
    def undo(self) -> str | None:
        """Undo the last action (labels or tags). Persisted: survives a reopen.

        Returns
        -------
        str or None
            The description of what was undone, None if there was nothing.
        """
        self._require_writable()
        with self._transaction() as conn:
            row = self._last("done", newest=True)
            if row is None:
                return None
            self._revert(conn, row, undo=True)
            conn.execute(
                "UPDATE actions SET state='undone', state_time=? WHERE id=?", (time.time(), row[0])
            )
        return row[2]

    @_api
    def redo(self) -> str | None:
        """Redo the last undone action; None if there is none (or a new action came since)."""
        self._require_writable()
        with self._transaction() as conn:
            row = self._last("undone", newest=False)
            if row is None:
                return None
            self._revert(conn, row, undo=False)
            conn.execute(
                "UPDATE actions SET state='done', state_time=? WHERE id=?", (time.time(), row[0])
            )
        return row[2]

    def _revert(self, conn: sqlite3.Connection, action, *, undo: bool) -> None:
        action_id, kind, _, data_text = action
        data = json.loads(data_text)
        now = time.time()
        if kind == "labels":
            created = data.get("created_tags", [])
            if not undo and created:
                self._undelete_tags(conn, created)
            order = "DESC" if undo else "ASC"
            rows = conn.execute(
                "SELECT tag_id, track_id, old_value, old_source, old_time, old_score,"
                " old_probe_version, new_value, new_source, new_time, new_score,"
                f" new_probe_version FROM label_history WHERE action_id=? ORDER BY id {order}",
                (action_id,),
            ).fetchall()
            apply = []
            for r in rows:
                label = r[2:7] if undo else r[7:12]
                apply.append((r[0], r[1], None if label[0] is None else tuple(label)))
            self._apply(conn, apply)
            if undo and created:
                conn.execute(
                    f"UPDATE tags SET deleted=? WHERE id IN ({_placeholders(len(created))})",
                    [now, *created],
                )
        elif kind == "create_tag":
            if undo:
                conn.execute("UPDATE tags SET deleted=? WHERE id=?", (now, data["tag_id"]))
            else:
                self._undelete_tags(conn, [data["tag_id"]])
        elif kind == "delete_tag":
            tid, children = data["tag_id"], data["children"]
            if undo:
                self._undelete_tags(conn, [tid])
                new_parent = tid
            else:
                conn.execute("UPDATE tags SET deleted=? WHERE id=?", (now, tid))
                new_parent = data["parent_id"]
            conn.execute(
                f"UPDATE tags SET parent_id=? WHERE id IN ({_placeholders(len(children))})",
                [new_parent, *children],
            )
        elif kind == "edit_tag":
            self._set_tag_fields(conn, data["tag_id"], data["old"] if undo else data["new"])
        else:
            raise ProjectError(f"cannot undo an action of unknown kind {kind!r}")

    def _undelete_tags(self, conn: sqlite3.Connection, tag_ids: list[int]) -> None:
        for tid in tag_ids:
            name = conn.execute("SELECT name FROM tags WHERE id=?", (tid,)).fetchone()[0]
            try:
                conn.execute("UPDATE tags SET deleted=NULL WHERE id=?", (tid,))
            except sqlite3.IntegrityError:
                raise ProjectError(
                    f"cannot bring back tag {name!r}: another tag has that name now"
                ) from None

    # -- app state and probes -------------------------------------------------------------

    @_api
    def set_state(self, key: str, value: Any) -> None:
        """Store a piece of app state (current tag, queue position...): any JSON value.

        Not an undoable action; committed on return. ``None`` removes the key.
        """
        with self._transaction() as conn:
            if value is None:
                conn.execute("DELETE FROM app_state WHERE key=?", (key,))
            else:
                conn.execute(
                    "INSERT OR REPLACE INTO app_state (key, value) VALUES (?, ?)",
                    (key, json.dumps(value)),
                )

    @_api
    def get_state(self, key: str, default: Any = None) -> Any:
        """A value stored with :meth:`set_state`, or ``default``."""
        row = self._conn.execute("SELECT value FROM app_state WHERE key=?", (key,)).fetchone()
        return default if row is None else json.loads(row[0])

    @_api
    def save_probe(self, tag: str | int | Tag, blob: bytes, meta: dict[str, Any]) -> None:
        """Store the fitted probe of a tag (replacing the previous one).

        Parameters
        ----------
        tag : tag name, id or Tag
        blob : bytes
            The probe as the few-shot engine serialised it.
        meta : dict
            JSON-able: backend, version, features, the :meth:`label_snapshot`
            it was fitted on, ... (``created`` is added if absent).
        """
        tid = self._tag_row(tag)[0]
        now = time.time()
        meta = {"created": now, **meta}
        try:
            meta_text = json.dumps(meta, sort_keys=True)
        except (TypeError, ValueError) as exc:
            raise ProjectError(f"probe metadata must be JSON-able: {exc}") from None
        with self._transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO probes (tag_id, blob, meta, created) VALUES (?, ?, ?, ?)",
                (tid, sqlite3.Binary(bytes(blob)), meta_text, now),
            )

    @_api
    def load_probe(self, tag: str | int | Tag) -> SavedProbe | None:
        """The probe saved for a tag, or None."""
        tid = self._tag_row(tag)[0]
        row = self._conn.execute(
            "SELECT blob, meta, created FROM probes WHERE tag_id=?", (tid,)
        ).fetchone()
        if row is None:
            return None
        return SavedProbe(bytes(row[0]), json.loads(row[1]), row[2])

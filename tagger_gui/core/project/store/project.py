"""The :class:`Project`: opening, creating, checking and closing a project, its
meta data, app state and saved probes; the tracks, tags, labels and undo parts
are mixed in from their own modules."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tagger_gui import __version__ as APP_VERSION
from tagger_gui.core.errors import ProjectError
from tagger_gui.core.project import schema
from tagger_gui.core.project.locking import ProjectLock
from tagger_gui.core.project.store.common import (
    _api,
)
from tagger_gui.core.project.store.history import UndoHistory
from tagger_gui.core.project.store.labels import LabelStore
from tagger_gui.core.project.store.records import (
    SavedProbe,
    Tag,
    TrackTable,
)
from tagger_gui.core.project.store.tags import TagStore
from tagger_gui.core.project.store.tracks import TrackStore

PROJECT_DIRNAME = ".tagger"
PROJECT_FILENAME = "project.sqlite"


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


# --------------------------------------------------------------------------
# The project
# --------------------------------------------------------------------------


class Project(TrackStore, TagStore, LabelStore, UndoHistory):
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

"""The library's tracks: the track table, path look-ups, and :meth:`sync_library`.

A part of :class:`~tagger_gui.core.project.store.Project`: the methods here use its
connection, lock and transactions (``project.py``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Generator, Iterable, Sequence
from pathlib import Path

import numpy as np

from tagger_gui.core.errors import ProjectError
from tagger_gui.core.project.store.common import (
    _CHUNK,
    _SYNC_BATCH,
    _SYNC_BATCH_SECONDS,
    _api,
    _chunks,
    _copy_tracks,
    _name_key,
    _placeholders,
)
from tagger_gui.core.project.store.records import (
    SyncProgress,
    SyncReport,
    Track,
    TrackTable,
    _FileRecord,
)


class TrackStore:
    """The library's tracks (mixed into :class:`Project`)."""

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

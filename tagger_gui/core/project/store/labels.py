"""Labels: set, clear, import (each one undo step), and reading them back.

A part of :class:`~tagger_gui.core.project.store.Project`: the methods here use its
connection, lock and transactions (``project.py``).
"""

from __future__ import annotations

import hashlib
import math
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence

import numpy as np

from tagger_gui.core.errors import ProjectError
from tagger_gui.core.project.store.common import (
    _CHUNK,
    _api,
    _chunks,
    _clean_tag_name,
    _Label,
    _name_key,
    _placeholders,
    _tag_from_row,
)
from tagger_gui.core.project.store.records import (
    SOURCES,
    VALUE_CODES,
    VALUES,
    ActionResult,
    HistoryEntry,
    Tag,
    TagLabels,
)


class LabelStore:
    """Labels (mixed into :class:`Project`)."""

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

"""Undo and redo of the project's actions, kept in the ``actions`` table.

A part of :class:`~tagger_gui.core.project.store.Project`: the methods here use its
connection, lock and transactions (``project.py``).
"""

from __future__ import annotations

import json
import sqlite3
import time

from tagger_gui.core.errors import ProjectError
from tagger_gui.core.project.store.common import (
    _api,
    _placeholders,
)


class UndoHistory:
    """Undo and redo (mixed into :class:`Project`)."""

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

"""Tags: create, rename, edit, delete (undoable), the hierarchy.

A part of :class:`~tagger_gui.core.project.store.Project`: the methods here use its
connection, lock and transactions (``project.py``).
"""

from __future__ import annotations

import json
import sqlite3
import time
from typing import Any

import numpy as np

from tagger_gui.core.errors import ProjectError
from tagger_gui.core.project.store.common import (
    _TAG_COLUMNS,
    _api,
    _clean_colour,
    _clean_tag_name,
    _name_key,
    _placeholders,
    _tag_from_row,
)
from tagger_gui.core.project.store.records import (
    ActionResult,
    Tag,
)


class TagStore:
    """Tags (mixed into :class:`Project`)."""

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

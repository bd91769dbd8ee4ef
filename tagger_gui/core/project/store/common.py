"""Helpers shared by the store's parts: name rules, SQL chunks, the API lock."""

from __future__ import annotations

import functools
import re
import sqlite3
import unicodedata
from collections.abc import Callable, Iterator, Sequence

import numpy as np

from tagger_gui.core.errors import ProjectError
from tagger_gui.core.project.store.records import (
    Tag,
    TrackTable,
)

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
    def wrapper(self, *args, **kwargs):
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

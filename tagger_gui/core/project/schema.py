"""The SQLite schema of a tagging project, its version and its migrations.

The schema version is kept twice: in ``PRAGMA user_version`` (what this
module checks, readable without knowing any table) and in the ``meta`` table
(``schema_version``, next to ``format``, for a human with the sqlite3 shell).
:data:`MIGRATIONS` is the list of steps: ``MIGRATIONS[i](conn)`` upgrades a
database from version ``i`` to ``i + 1``, so creating a project is running
every step from version 0 (an empty file). ``docs/project.md`` describes the
tables.

To change the schema: append a step to :data:`MIGRATIONS` (never edit a
released one), document the new version in ``docs/project.md`` and add a
test that upgrades a database of the previous version.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

__all__ = ["FORMAT_NAME", "MIGRATIONS", "SCHEMA_VERSION", "latest_version"]

FORMAT_NAME = "tagger_gui.project"

_V1 = """
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE tracks (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    relpath       TEXT NOT NULL UNIQUE,
    size          INTEGER NOT NULL,
    mtime_ns      INTEGER NOT NULL,
    fingerprint   BLOB,
    duration      REAL,
    artist        TEXT NOT NULL DEFAULT '',
    album         TEXT NOT NULL DEFAULT '',
    title         TEXT NOT NULL DEFAULT '',
    genre         TEXT NOT NULL DEFAULT '',
    added         REAL NOT NULL,
    missing_since REAL
);
CREATE INDEX tracks_identity ON tracks (size, fingerprint);

CREATE TABLE tags (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT NOT NULL,
    name_key    TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    colour      TEXT,
    parent_id   INTEGER REFERENCES tags (id),
    created     REAL NOT NULL,
    deleted     REAL
);
CREATE UNIQUE INDEX tags_live_name ON tags (name_key) WHERE deleted IS NULL;

CREATE TABLE actions (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    kind        TEXT NOT NULL,
    description TEXT NOT NULL,
    data        TEXT NOT NULL DEFAULT '{}',
    time        REAL NOT NULL,
    state       TEXT NOT NULL DEFAULT 'done'
                CHECK (state IN ('done', 'undone', 'discarded')),
    state_time  REAL
);
CREATE INDEX actions_state ON actions (state, id);

CREATE TABLE labels (
    tag_id        INTEGER NOT NULL REFERENCES tags (id),
    track_id      INTEGER NOT NULL REFERENCES tracks (id),
    value         TEXT NOT NULL CHECK (value IN ('positive', 'negative', 'skip')),
    source        TEXT NOT NULL CHECK (source IN ('human', 'model', 'imported')),
    time          REAL NOT NULL,
    score         REAL,
    probe_version TEXT,
    PRIMARY KEY (tag_id, track_id)
) WITHOUT ROWID;
CREATE INDEX labels_track ON labels (track_id);

CREATE TABLE label_history (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    action_id         INTEGER NOT NULL REFERENCES actions (id),
    tag_id            INTEGER NOT NULL REFERENCES tags (id),
    track_id          INTEGER NOT NULL REFERENCES tracks (id),
    old_value         TEXT,
    old_source        TEXT,
    old_time          REAL,
    old_score         REAL,
    old_probe_version TEXT,
    new_value         TEXT,
    new_source        TEXT,
    new_time          REAL,
    new_score         REAL,
    new_probe_version TEXT
);
CREATE INDEX label_history_action ON label_history (action_id);
CREATE INDEX label_history_target ON label_history (tag_id, track_id);

CREATE TABLE app_state (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE probes (
    tag_id  INTEGER PRIMARY KEY REFERENCES tags (id),
    blob    BLOB NOT NULL,
    meta    TEXT NOT NULL,
    created REAL NOT NULL
);
"""


def _create_v1(conn: sqlite3.Connection) -> None:
    """Version 0 (an empty file) -> 1: every table of the first release."""
    for statement in _V1.split(";"):
        if statement.strip():
            conn.execute(statement)


#: ``MIGRATIONS[i](conn)`` upgrades an open database from version ``i`` to
#: ``i + 1``, inside the caller's transaction (SQLite DDL is transactional, so
#: a failed step leaves the file as it was).
MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [_create_v1]

#: The version this code writes (at import time; see :func:`latest_version`).
SCHEMA_VERSION = len(MIGRATIONS)


def latest_version() -> int:
    """The schema version this code writes: the number of migration steps."""
    return len(MIGRATIONS)

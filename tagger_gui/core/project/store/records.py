"""What the project store hands out: tags, tracks, label arrays, reports."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

#: Label values, and their codes in :class:`TagLabels` arrays.
VALUES = ("positive", "negative", "skip")
VALUE_CODES = {"positive": 1, "negative": -1, "skip": 0}
#: Who decided a label: the human, a model proposal the human accepted, an import.
SOURCES = ("human", "model", "imported")


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

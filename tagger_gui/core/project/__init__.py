"""The tagging project: store, CSV import/export, write-back.

:class:`Project` (``store.py``) is the stable API the app and the few-shot
engine use; ``csv_io`` and ``writeback`` are pure functions over files.
"""

from tagger_gui.core.project.store import (
    SOURCES,
    VALUE_CODES,
    VALUES,
    ActionResult,
    HistoryEntry,
    Project,
    SavedProbe,
    SyncProgress,
    SyncReport,
    Tag,
    TagLabels,
    Track,
    TrackTable,
    default_project_dir,
    locate_project,
)

__all__ = [
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

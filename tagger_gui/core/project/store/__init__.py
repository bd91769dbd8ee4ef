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

The store is a package of parts, each a class mixed into :class:`Project`:
``project.py`` (open/create/check, state, probes), ``tracks.py`` (the track
table and the library sync), ``tags.py``, ``labels.py`` and ``history.py``
(undo/redo); ``records.py`` holds what they hand out and ``common.py`` the
helpers they share.
"""

from tagger_gui.core.project.store.project import (
    PROJECT_DIRNAME,
    PROJECT_FILENAME,
    Project,
    default_project_dir,
    locate_project,
)
from tagger_gui.core.project.store.records import (
    SOURCES,
    VALUE_CODES,
    VALUES,
    ActionResult,
    HistoryEntry,
    SavedProbe,
    SyncProgress,
    SyncReport,
    Tag,
    TagLabels,
    Track,
    TrackTable,
)

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

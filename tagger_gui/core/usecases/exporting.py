"""Exporting a project: its labels to CSV, its tags into the audio files.

The one code path behind ``tagger export``, ``tagger writeback`` and the
app's export dialog. :mod:`~tagger_gui.core.project.csv_io` and
:mod:`~tagger_gui.core.project.writeback` are pure functions over files; this
module joins them to an open :class:`~tagger_gui.core.project.store.Project`
(which labels, which files, where the journals live) and to the embedding
cache (files we rewrote keep their embeddings).

Every step is a generator task (:mod:`tagger_gui.core.tasks`) that yields
progress and can be stopped at each yield:

- :func:`export_csv_task`: labels (and optionally every track's predicted
  score) to a long or wide CSV file;
- :func:`plan_writeback_task`: the dry run, what each file's field would
  become; nothing is written;
- :func:`apply_writeback_task`: write a plan, journaled, then record the new
  file sizes and times in the project and the cache;
- :func:`undo_writeback_task`: put back what a journal says was replaced;
- :func:`writeback_task`: plan then apply, in one go.

Failures of the disk (full, read-only, permission) are raised as
:class:`ExportError` / :class:`~tagger_gui.core.errors.WritebackError` whose
messages name the file in plain words (:func:`describe_os_error`).
"""

from __future__ import annotations

import errno
import json
import os
import re
import time
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tagger_gui.core.errors import CacheError, ProjectError, TaggerError, WritebackError
from tagger_gui.core.project import writeback as wbk

__all__ = [
    "LAYOUTS",
    "ExportError",
    "ExportProgress",
    "ExportResult",
    "WritebackOutcome",
    "WritebackPlan",
    "apply_writeback_task",
    "describe_os_error",
    "export_csv_task",
    "journal_folder",
    "keep_embeddings",
    "latest_journal",
    "plain_reason",
    "plan_writeback_task",
    "undo_writeback_task",
    "writeback_task",
]

#: The CSV layouts: one row per track and tag, or one row per track.
LAYOUTS = ("long", "wide")


class ExportError(TaggerError):
    """An export file cannot be written. The message names the file and the reason."""

    def __init__(self, path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"Cannot write {self.path}: {reason}")


# --- plain words for the disk's failures -------------------------------------

_PLAIN = {
    errno.ENOSPC: "the disk is full (free some space or choose another disk)",
    errno.EDQUOT: "your disk quota is used up (free some space or choose another disk)",
    errno.EACCES: "you do not have permission to write there (choose another folder)",
    errno.EPERM: "you do not have permission to write there (choose another folder)",
    errno.EROFS: "the disk or share is read-only (choose another folder)",
    errno.ENOENT: "the folder does not exist (an unplugged drive or a moved folder?)",
    errno.EISDIR: "this is a folder, not a file name",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.ENAMETOOLONG: "the name is too long",
    errno.EIO: "the disk reported an input/output error (a failing or unplugged drive?)",
}


def describe_os_error(exc: OSError, path: str | os.PathLike | None = None) -> str:
    """Say in plain words why the disk refused, naming the file.

    Parameters
    ----------
    exc : OSError
        What the operating system raised.
    path : str or path-like, optional
        The file the user asked for (default: the one in ``exc``).

    Returns
    -------
    str
        E.g. ``"Cannot write /mnt/usb/tags.csv: the disk is full (...)"``.
    """
    where = path if path is not None else (exc.filename or "the file")
    return f"Cannot write {where}: {_why(exc)}"


def _why(exc: OSError) -> str:
    why = _PLAIN.get(exc.errno) if exc.errno is not None else None
    return why or exc.strerror or str(exc) or type(exc).__name__


_ERRNO_IN_TEXT = re.compile(r"\[Errno (\d+)\]")


def plain_reason(reason: str) -> str:
    """A write-back report's per-file reason, in plain words where the OS gave an errno.

    :mod:`~tagger_gui.core.project.writeback` reports a failed file as
    ``"OSError: [Errno 28] No space left on device: ..."``; this gives
    ``"the disk is full (...)"``. Other reasons are returned as they are.
    """
    match = _ERRNO_IN_TEXT.search(reason)
    if match is None:
        return reason
    return _PLAIN.get(int(match.group(1)), reason)


# --- CSV export ----------------------------------------------------------------


@dataclass
class ExportProgress:
    """What :func:`export_csv_task` yields: a stage and how far it is."""

    done: int
    total: int
    what: str = ""


@dataclass
class ExportResult:
    """What :func:`export_csv_task` wrote."""

    path: Path
    layout: str
    rows: int
    labels: int
    tags: int
    predicted_tags: int = 0

    def summary(self) -> str:
        """``Wrote N rows (L labels, T tags) to PATH``, as ``tagger export`` prints it."""
        extra = f", predictions for {self.predicted_tags} tags" if self.predicted_tags else ""
        return (
            f"Wrote {self.rows} rows ({self.labels} labels, {self.tags} tags{extra}) to {self.path}"
        )


def export_csv_task(
    project,
    path: str | os.PathLike,
    *,
    layout: str = "long",
    tags: Sequence[str] | None = None,
    hierarchy: bool = False,
    predictions: bool = False,
    threshold: float = 0.5,
    features: str | None = None,
) -> Generator[ExportProgress, None, ExportResult]:
    """Write a project's labels (and optionally its predictions) to a CSV file.

    Parameters
    ----------
    project : Project
        The open project (read-only is enough).
    path : str or path-like
        The CSV file; its folder is created if missing. ``<path>.json`` gets
        the provenance. The file is replaced atomically.
    layout : {"long", "wide"}
        One row per track and tag, or one row per track and a column per tag
        (see ``docs/export.md``).
    tags : sequence of str, optional
        Only these tags (default: all).
    hierarchy : bool
        Apply the tag hierarchy (a bebop positive is also a jazz positive).
    predictions : bool
        Fit each tag's probe and add every embedded track's score (long) or
        a 1 where predicted (wide). Probes are not saved.
    threshold : float
        The probability at or above which a track is predicted to have a tag.
    features : str, optional
        The probes' feature choice (default
        :data:`~tagger_gui.core.fewshot.features.DEFAULT_FEATURES`).

    Yields
    ------
    ExportProgress
        ``reading labels``, ``loading features``, each tag as it is fitted,
        ``writing``.

    Returns
    -------
    ExportResult

    Raises
    ------
    ExportError
        The file cannot be written (disk full, no permission, read-only disk).
    ProjectError
        An unknown tag.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, not {layout!r}")
    path = Path(path)
    chosen = [project.tag(t) for t in tags] if tags is not None else project.tags()
    steps = 2 + (len(chosen) + 1 if predictions else 0)
    yield ExportProgress(0, steps, "reading labels")
    rows = project.label_rows(tags=chosen, hierarchy=hierarchy)
    provenance: dict[str, Any] = {
        "project": str(project.project_dir),
        "library_root": str(project.library_root),
        "hierarchy": hierarchy,
        "labels": len(rows),
    }
    predicted: dict = {}
    if predictions:
        from tagger_gui.core.fewshot.features import DEFAULT_FEATURES
        from tagger_gui.core.usecases.predicting import predict_task

        task = predict_task(
            project,
            tags=[t.name for t in chosen],
            features=features or DEFAULT_FEATURES,
            threshold=threshold,
            save_probes=False,
        )
        done = 1
        try:
            while True:
                what = next(task)
                yield ExportProgress(done, steps, str(what))
                done += 1
        except StopIteration as stop:
            predicted = stop.value
        finally:
            task.close()
        provenance["threshold"] = threshold
        provenance["features"] = next(iter(predicted.values())).feature if predicted else ""
    yield ExportProgress(steps - 1, steps, "writing")
    tag_names = [t.name for t in chosen]
    try:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except FileExistsError:  # a file where a folder of the path should be
            raise ExportError(path, _PLAIN[errno.ENOTDIR]) from None
        if layout == "long":
            n = _write_long(path, rows, predicted, provenance)
        else:
            n = _write_wide(path, rows, predicted, tag_names, provenance)
    except OSError as exc:
        raise ExportError(path, _why(exc)) from exc
    yield ExportProgress(steps, steps, "written")
    return ExportResult(path, layout, n, len(rows), len(chosen), len(predicted))


def _write_long(path: Path, rows, predicted: dict, provenance: dict) -> int:
    from tagger_gui.core.project.csv_io import write_long_csv

    decided = {
        (rel, tag): (value, source, when, score, probe)
        for rel, tag, value, source, when, score, probe in rows
    }
    out_rows = [
        {
            "path": rel,
            "tag": tag,
            "decision": value,
            "source": source,
            # the score of a model proposal the human accepted
            "score": score if source == "model" else None,
            "probe_version": probe if source == "model" else None,
            "time": when,
        }
        for (rel, tag), (value, source, when, score, probe) in decided.items()
        if tag not in predicted
    ]
    for tag, pred in predicted.items():
        for rel, p in zip(pred.relpaths, pred.scores.tolist(), strict=True):
            value, source, when, _, _ = decided.get((rel, tag), ("", "", None, None, None))
            out_rows.append(
                {
                    "path": rel,
                    "tag": tag,
                    "decision": value,
                    "source": source,
                    "score": p,
                    "predicted": p >= pred.threshold,
                    "threshold": pred.threshold,
                    "feature": pred.feature,
                    "probe_version": pred.probe_version,
                    "time": when,
                }
            )
    out_rows.sort(key=lambda r: (r["path"], r["tag"].casefold()))
    return write_long_csv(path, out_rows, provenance=provenance)


def _write_wide(path: Path, rows, predicted: dict, tags: list[str], provenance: dict) -> int:
    from tagger_gui.core.project.csv_io import write_wide_csv

    cells: dict[str, dict] = {}
    for rel, tag, value, *_ in rows:
        cells.setdefault(rel, {})[tag] = value
    for tag, pred in predicted.items():
        for rel, hit in zip(pred.relpaths, pred.predicted().tolist(), strict=True):
            cell = cells.setdefault(rel, {})
            cell[tag] = (cell.get(tag), hit)
    return write_wide_csv(path, sorted(cells.items()), tags=tags, provenance=provenance)


# --- write-back into the audio files ---------------------------------------------


def journal_folder(project) -> Path:
    """Where a project's write-back journals are kept (``<project>/writeback``)."""
    return Path(project.project_dir) / "writeback"


def latest_journal(project) -> Path | None:
    """The newest write-back journal of ``project``, or None if there is none."""
    folder = journal_folder(project)
    found = sorted(folder.glob("*.jsonl")) if folder.is_dir() else []
    return found[-1] if found else None


@dataclass
class WritebackPlan:
    """A dry run over a project's files: what each file's field would become.

    Attributes
    ----------
    library_root : Path
        The music folder the plan was made for.
    field : str
        The field name.
    id3_version : int
        3 or 4: the ID3v2 version MP3/WAV/AIFF tags are saved in.
    changes : list of Change
        One per file (see :class:`~tagger_gui.core.project.writeback.Change`).
    """

    library_root: Path
    field: str
    id3_version: int
    changes: list[wbk.Change]

    def counts(self) -> dict[str, int]:
        """How many files will be written, cleared, left as they are, skipped."""
        out = {"write": 0, "remove": 0, "none": 0, "skip": 0}
        for ch in self.changes:
            out[ch.action] += 1
        return out

    @property
    def to_write(self) -> list[wbk.Change]:
        """The changes that will touch a file (``write`` or ``remove``)."""
        return [ch for ch in self.changes if ch.action in ("write", "remove")]

    def preview(self) -> str:
        """The printable preview (:func:`~tagger_gui.core.project.writeback.format_preview`)."""
        return wbk.format_preview(self.changes)


@dataclass
class WritebackOutcome:
    """What a write-back (or its undo) did, and what was recorded afterwards.

    Attributes
    ----------
    plan : WritebackPlan or None
        The plan written (None for an undo).
    report : WritebackReport or None
        Per file: written, unchanged, skipped, failed (None for a dry run).
    journal_path : Path or None
        The journal of the write-back (what undo reads).
    cache_adopted : int
        Embedding-cache rows moved to the files' new size and time (so the
        written files are not analysed again).
    cache_note : str or None
        Why the cache could not be updated, if it could not.
    """

    plan: WritebackPlan | None = None
    report: wbk.WritebackReport | None = None
    journal_path: Path | None = None
    cache_adopted: int = 0
    cache_note: str | None = None


def plan_writeback_task(
    project,
    *,
    field: str | None = None,
    id3_version: int = 4,
    tags: Sequence[str] | None = None,
    hierarchy: bool = True,
    labelled_only: bool = False,
) -> Generator[wbk.WritebackProgress, None, WritebackPlan]:
    """The dry run: read every track's field and say what would change.

    Parameters
    ----------
    project : Project
        The open project (read-only is enough).
    field : str, optional
        The field name (default :data:`~tagger_gui.core.project.writeback.DEFAULT_FIELD`).
    id3_version : {4, 3}
        Save MP3/WAV/AIFF tags as ID3v2.4 or v2.3.
    tags : sequence of str, optional
        Only these tags (default all).
    hierarchy : bool
        A positive for a child tag is written for its parents too.
    labelled_only : bool
        Only files with a positive tag (does not clear tags taken back).

    Yields
    ------
    WritebackProgress
        Before each file (stage ``reading``).

    Returns
    -------
    WritebackPlan
        Nothing is written.

    Raises
    ------
    ProjectError
        The music folder is missing, a bad field name, an unknown tag.
    """
    root = project.library_root
    if not root.is_dir():
        raise ProjectError(f"the music folder {root} does not exist (unplugged or moved?)")
    chosen = [project.tag(t) for t in tags] if tags else None
    wanted = project.positive_tags_by_track(tags=chosen, hierarchy=hierarchy)
    if labelled_only:
        wanted = {rel: names for rel, names in wanted.items() if names}
    table = project.tracks(include_missing=False)
    expected = {
        rel: (int(size), int(mtime))
        for rel, size, mtime in zip(table.relpath, table.size, table.mtime_ns, strict=True)
    }
    field = field or wbk.DEFAULT_FIELD
    try:
        changes = yield from wbk.plan_writeback_task(
            root, wanted, field=field, id3_version=id3_version, expected=expected
        )
    except ValueError as exc:
        raise ProjectError(str(exc)) from None
    return WritebackPlan(Path(root), field, id3_version, changes)


def keep_embeddings(
    project,
    new_stats: dict[str, tuple[int, int]],
    *,
    cache_path: str | os.PathLike | None = None,
) -> tuple[int, str | None]:
    """Tell the embedding cache that rewritten files kept their audio.

    Without this, the next embedding run would see new sizes and times and
    analyse every written file again. Only rows stored under the identity the
    project recorded (the file as it was before this write) are adopted, so
    call it *before* :meth:`Project.record_rewritten_files`.

    Parameters
    ----------
    project : Project
        The project whose files were rewritten.
    new_stats : dict of relpath to (size, mtime_ns)
        ``WritebackReport.new_stats``.
    cache_path : str or path-like, optional
        The cache (default ``project.cache_path``).

    Returns
    -------
    (int, str or None)
        Rows adopted, and why the cache was not updated if it was not (it
        is missing, or another program is writing it).
    """
    from tagger_gui.core.cache import EmbeddingCache

    path = Path(cache_path) if cache_path is not None else project.cache_path
    if not new_stats or not path.exists():
        return 0, None
    table = project.tracks()
    before = {
        rel: (int(size), int(mtime))
        for rel, size, mtime in zip(table.relpath, table.size, table.mtime_ns, strict=True)
        if rel in new_stats
    }
    changes = {rel: (*before[rel], *new) for rel, new in new_stats.items() if rel in before}
    try:
        with EmbeddingCache.open(path, mode="a") as cache:
            return cache.adopt_identity(changes), None
    except CacheError as exc:
        return 0, str(exc)


def _new_journal_path(project) -> Path:
    now = time.time()
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now)) + f"{now % 1:.3f}"[1:]
    return journal_folder(project) / f"{stamp}.jsonl"


def _stats_in_journal(path: Path, op: str) -> dict[str, tuple[int, int]]:
    """The new (size, mtime_ns) of the files a journal records as ``op`` (done/undone)."""
    out: dict[str, tuple[int, int]] = {}
    try:
        lines = path.read_text("utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return out
    for line in lines:
        try:
            e = json.loads(line)
        except ValueError:
            continue  # a torn last line
        if e.get("op") == op and e.get("size") is not None and e.get("mtime_ns") is not None:
            out[e["relpath"]] = (int(e["size"]), int(e["mtime_ns"]))
    return out


def _record(
    project, new_stats: dict[str, tuple[int, int]], cache_path, outcome: WritebackOutcome
) -> None:
    outcome.cache_adopted, outcome.cache_note = keep_embeddings(
        project, new_stats, cache_path=cache_path
    )
    project.record_rewritten_files(new_stats)


def _require_writable(project) -> None:
    if project.readonly:
        raise ProjectError(
            f"{project.project_dir}: the project is open read-only; a write-back records the "
            "files' new sizes and times, so it needs the project open for writing"
        )


def apply_writeback_task(
    project,
    plan: WritebackPlan,
    *,
    journal: str | os.PathLike | None = None,
    cache_path: str | os.PathLike | None = None,
) -> Generator[wbk.WritebackProgress, None, WritebackOutcome]:
    """Write a plan into the files, then record their new sizes and times.

    Each file is journaled before it is touched, written through a copy and
    checked (see :func:`~tagger_gui.core.project.writeback.apply_writeback`).
    Afterwards (also when stopped at a yield, or failing half-way) the files
    written so far are recorded in the project and the embedding cache adopts
    them, so neither takes them for changed music.

    Parameters
    ----------
    project : Project
        The project the plan was made for, open for writing.
    plan : WritebackPlan
        From :func:`plan_writeback_task`.
    journal : str or path-like, optional
        A new journal file (default: a time-stamped one in
        :func:`journal_folder`).
    cache_path : str or path-like, optional
        The embedding cache (default ``project.cache_path``).

    Yields
    ------
    WritebackProgress
        Before each file.

    Returns
    -------
    WritebackOutcome

    Raises
    ------
    WritebackError
        Nothing to write, or the journal cannot be written (disk full...).
    """
    _require_writable(project)
    if not plan.to_write:
        raise WritebackError("nothing to write: every file already holds its tags or is skipped")
    journal_path = Path(journal) if journal is not None else _new_journal_path(project)
    outcome = WritebackOutcome(plan=plan, journal_path=journal_path)
    try:
        journal_path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WritebackError(describe_os_error(exc, journal_path.parent)) from exc
    report = None
    try:
        report = yield from wbk.apply_writeback_task(
            plan.library_root, plan.changes, journal_path=journal_path
        )
    except OSError as exc:
        # per-file failures are reported, not raised: this is the journal itself
        raise WritebackError(
            describe_os_error(exc, exc.filename or journal_path)
            + "; the files written before it are listed in the journal and can be undone"
        ) from exc
    finally:
        # stopped or failed half-way: the journal says which files were written
        stats = report.new_stats if report is not None else _stats_in_journal(journal_path, "done")
        _record(project, stats, cache_path, outcome)
    outcome.report = report
    return outcome


def undo_writeback_task(
    project,
    journal: str | os.PathLike | None = None,
    *,
    force: bool = False,
    cache_path: str | os.PathLike | None = None,
) -> Generator[wbk.WritebackProgress, None, WritebackOutcome]:
    """Put back the values a write-back replaced, then record the files' new stats.

    Parameters
    ----------
    project : Project
        The project, open for writing.
    journal : str or path-like, optional
        The journal to undo (default: :func:`latest_journal`).
    force : bool
        Also restore files whose field was changed since (by another tool).
    cache_path : str or path-like, optional
        The embedding cache (default ``project.cache_path``).

    Yields
    ------
    WritebackProgress
        Before each file (stage ``undoing``).

    Returns
    -------
    WritebackOutcome
        ``report.written`` lists the files restored.

    Raises
    ------
    ProjectError
        No journal to undo.
    WritebackError
        The journal cannot be read or written.
    """
    _require_writable(project)
    if journal is None:
        journal = latest_journal(project)
        if journal is None:
            raise ProjectError(f"no write-back journal in {journal_folder(project)}")
    journal_path = Path(journal)
    outcome = WritebackOutcome(journal_path=journal_path)
    undone_before = _stats_in_journal(journal_path, "undone")
    report = None
    try:
        report = yield from wbk.undo_writeback_task(
            journal_path, library_root=project.library_root, force=force
        )
    except OSError as exc:
        raise WritebackError(describe_os_error(exc, exc.filename or journal_path)) from exc
    finally:
        if report is not None:
            stats = report.new_stats
        else:
            stats = {
                rel: st
                for rel, st in _stats_in_journal(journal_path, "undone").items()
                if undone_before.get(rel) != st
            }
        _record(project, stats, cache_path, outcome)
    outcome.report = report
    return outcome


def writeback_task(
    project,
    *,
    dry_run: bool = False,
    field: str | None = None,
    id3_version: int = 4,
    tags: Sequence[str] | None = None,
    hierarchy: bool = True,
    labelled_only: bool = False,
    journal: str | os.PathLike | None = None,
    cache_path: str | os.PathLike | None = None,
) -> Generator[wbk.WritebackProgress, None, WritebackOutcome]:
    """Plan a write-back and, unless ``dry_run`` or there is nothing to write, apply it.

    The parameters are those of :func:`plan_writeback_task` and
    :func:`apply_writeback_task`.

    Returns
    -------
    WritebackOutcome
        ``plan`` always; ``report`` and ``journal_path`` only when written.
    """
    plan = yield from plan_writeback_task(
        project,
        field=field,
        id3_version=id3_version,
        tags=tags,
        hierarchy=hierarchy,
        labelled_only=labelled_only,
    )
    if dry_run or not plan.to_write:
        return WritebackOutcome(plan=plan)
    return (yield from apply_writeback_task(project, plan, journal=journal, cache_path=cache_path))

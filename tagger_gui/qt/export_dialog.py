"""The export dialog: labels to a CSV file, or tags into the audio files.

A thin layer over :mod:`tagger_gui.core.usecases.exporting`, the code path
``tagger export`` and ``tagger writeback`` use, so the app and the command
line write the same files. Every step runs in the :class:`WorkerPool`:

- **CSV file**: the CSV export (and the probes' fits, with predicted scores)
  on the interactive pool;
- **Write into files**: the preview (a dry run, reading every file's tags) on
  the interactive pool; the write and its undo on the background pool, the
  one thread that writes the embedding cache (files we rewrote keep their
  embeddings), which also keeps a write-back from running while the
  embedding job reads the same files.

One job runs at a time; Cancel stops it at its next file. A failure (disk
full, no permission, read-only disk) is shown in the dialog in plain words,
naming the file, and the dialog stays usable.
"""

from __future__ import annotations

import html
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QObject, Qt, QUrl, Signal
from PySide6.QtGui import QCloseEvent, QDesktopServices
from PySide6.QtWidgets import (
    QAbstractItemView,
    QButtonGroup,
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QTableView,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from tagger_gui.core.project.writeback import DEFAULT_FIELD, Change, WritebackProgress
from tagger_gui.core.usecases import exporting
from tagger_gui.core.usecases.exporting import (
    ExportProgress,
    ExportResult,
    WritebackOutcome,
    WritebackPlan,
    describe_os_error,
    plain_reason,
)
from tagger_gui.qt.worker import TaskWorker, WorkerPool, describe_error

__all__ = ["ExportDialog", "WritebackTableModel", "default_csv_path", "plain_error"]


def default_csv_path(project) -> Path:
    """Where the CSV export goes unless the user says otherwise: ``<library>/tags.csv``."""
    return Path(project.library_root) / "tags.csv"


def plain_error(exc: BaseException) -> str:
    """The message shown for a failed export step: plain words, naming the file."""
    if isinstance(exc, OSError):
        return describe_os_error(exc)
    return describe_error(exc)


def _values(values: list[str], empty: str) -> str:
    return "; ".join(values) if values else empty


class WritebackTableModel(QAbstractTableModel):
    """The preview of a write-back, then what happened to each file.

    Columns: the file, the field's value now, its value after the write, and
    what happens (or happened) to the file, with the reason when skipped or
    failed.
    """

    HEADERS = ("File", "Now", "After", "What happens")
    #: The :class:`~tagger_gui.core.project.writeback.Change` of a row.
    ChangeRole = Qt.ItemDataRole.UserRole + 1

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._changes: list[Change] = []
        self._status: dict[str, str] = {}

    # -- data in ----------------------------------------------------------------
    def set_plan(self, plan: WritebackPlan | None) -> None:
        """Show a plan (a dry run), or nothing."""
        self.beginResetModel()
        # what will change first (then what is skipped, then what is up to date),
        # so a preview of thousands of files shows its few changes at the top
        order = {"write": 0, "remove": 0, "skip": 1, "none": 2}
        changes = list(plan.changes) if plan is not None else []
        self._changes = sorted(changes, key=lambda ch: order.get(ch.action, 1))
        self._status = {}
        self.endResetModel()

    def set_results(self, results: list[Any]) -> None:
        """Show what a write-back did (a list of ``FileResult``) in the last column."""
        texts = {
            "written": "written",
            "restored": "restored",
            "unchanged": "already up to date",
            "skipped": "skipped: {}",
            "failed": "FAILED: {}",
        }
        for r in results:
            text = texts.get(r.status, r.status)
            self._status[r.relpath] = text.format(plain_reason(r.reason)) if "{}" in text else text
        if self._changes:
            last = self.columnCount() - 1
            self.dataChanged.emit(
                self.index(0, last),
                self.index(len(self._changes) - 1, last),
                [Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.ToolTipRole],
            )

    def change(self, row: int) -> Change:
        """The planned change of ``row``."""
        return self._changes[row]

    @staticmethod
    def action_text(ch: Change) -> str:
        """What the write-back will do to one file, in words."""
        action = ch.action
        if action == "skip":
            return f"skipped: {ch.skip_reason}"
        return {"write": "write", "remove": "clear the field", "none": "already up to date"}[action]

    # -- the model API -------------------------------------------------------------
    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._changes)

    def columnCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.HEADERS)

    def headerData(self, section: int, orientation, role: int = Qt.ItemDataRole.DisplayRole):
        if (
            role == Qt.ItemDataRole.DisplayRole
            and orientation == Qt.Orientation.Horizontal
            and 0 <= section < len(self.HEADERS)
        ):
            return self.HEADERS[section]
        return None

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or not 0 <= index.row() < len(self._changes):
            return None
        ch = self._changes[index.row()]
        if role == self.ChangeRole:
            return ch
        if role not in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.ToolTipRole):
            return None
        col = index.column()
        if col == 0:
            return ch.relpath
        if col == 1:
            return _values(ch.old, "(empty)")
        if col == 2:
            action = ch.action
            if action == "skip":
                return ""
            if action == "none":
                return _values(ch.old, "(empty)")
            return _values(ch.new, "(removed)")
        if col == 3:
            return self._status.get(ch.relpath, self.action_text(ch))
        return None


class ExportDialog(QDialog):
    """File > Export…: the labels to a CSV file, or the tags into the audio files.

    Parameters
    ----------
    project : Project
        The open project (open for writing, for the write-back).
    pool : WorkerPool
        Where the work runs (never on the GUI thread).
    cache_path : str or path-like, optional
        The embedding cache (default ``project.cache_path``): the written
        files' rows are moved to their new size and time, so they are not
        embedded again; predicted scores need it.
    features : str, optional
        The probes' feature choice for predicted scores (default: the core's
        default).
    parent : QWidget, optional
        The Qt parent.

    Signals
    -------
    exported(ExportResult)
        A CSV file was written.
    filesRewritten(WritebackOutcome or None)
        A write-back or its undo changed files (their sizes and times are
        recorded in the project: the track table may want a refresh); None
        when it was stopped or failed half-way.
    """

    exported = Signal(object)
    filesRewritten = Signal(object)

    def __init__(
        self,
        project,
        pool: WorkerPool,
        *,
        cache_path: str | os.PathLike | None = None,
        features: str | None = None,
        parent: QWidget | None = None,
    ):
        super().__init__(parent)
        self.project = project
        self.pool = pool
        self.cache_path = Path(cache_path) if cache_path is not None else project.cache_path
        self.features = features
        self._plan: WritebackPlan | None = None
        self._n_to_write = 0
        self.last_export: ExportResult | None = None
        self.last_outcome: WritebackOutcome | None = None
        self.confirm_box: QMessageBox | None = None
        self._worker: TaskWorker | None = None
        self._close_when_done = False
        self.setWindowTitle("Export")
        self.setMinimumWidth(640)

        self.tabs = QTabWidget()
        self.tabs.addTab(self._build_csv_tab(), "CSV file")
        self.tabs.addTab(self._build_writeback_tab(), "Write into files")

        self.status_label = QLabel()
        self.status_label.setWordWrap(True)
        self.error_label = QLabel()
        self.error_label.setWordWrap(True)
        self.error_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.error_label.setStyleSheet("color: #b00020;")
        self.error_label.hide()
        self.progress = QProgressBar()
        self.progress.hide()
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop after the current file")
        self.cancel_button.clicked.connect(self.cancel)
        self.cancel_button.hide()
        run_row = QHBoxLayout()
        run_row.addWidget(self.progress, 1)
        run_row.addWidget(self.cancel_button)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        self.close_button = buttons.button(QDialogButtonBox.StandardButton.Close)

        layout = QVBoxLayout(self)
        layout.addWidget(self.tabs, 1)
        layout.addLayout(run_row)
        layout.addWidget(self.status_label)
        layout.addWidget(self.error_label)
        layout.addWidget(buttons)
        self._update_buttons()

    # -- the CSV tab --------------------------------------------------------------
    def _build_csv_tab(self) -> QWidget:
        page = QWidget()
        intro = QLabel(
            "Saves your labels to a spreadsheet file (CSV, UTF-8). Your audio files are not "
            "touched."
        )
        intro.setWordWrap(True)

        self.long_radio = QRadioButton("One row per track and tag (long)")
        self.long_radio.setToolTip(
            "path, tag, decision, source, score, ...: keeps people's decisions and the "
            "model's scores apart"
        )
        self.wide_radio = QRadioButton("One row per track, one column per tag (wide)")
        self.wide_radio.setToolTip("1 = positive, 0 = negative, empty = unknown")
        self.long_radio.setChecked(True)
        self._layout_group = QButtonGroup(self)
        self._layout_group.addButton(self.long_radio)
        self._layout_group.addButton(self.wide_radio)
        layout_box = QGroupBox("Layout")
        lb = QVBoxLayout(layout_box)
        lb.addWidget(self.long_radio)
        lb.addWidget(self.wide_radio)

        self.all_tags_radio = QRadioButton("All tags")
        self.some_tags_radio = QRadioButton("Only the tags checked below")
        self.all_tags_radio.setChecked(True)
        self._tags_group = QButtonGroup(self)
        self._tags_group.addButton(self.all_tags_radio)
        self._tags_group.addButton(self.some_tags_radio)
        self.tag_list = QListWidget()
        self.tag_list.setMaximumHeight(120)
        for tag in self.project.tags():
            item = QListWidgetItem(tag.name)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Checked)
            self.tag_list.addItem(item)
        self.tag_list.setEnabled(False)
        self.some_tags_radio.toggled.connect(self.tag_list.setEnabled)
        self.some_tags_radio.toggled.connect(self._update_buttons)
        self.tag_list.itemChanged.connect(self._update_buttons)
        self.hierarchy_check = QCheckBox(
            "Apply the tag hierarchy (a positive for a child tag also counts for its parent)"
        )
        tags_box = QGroupBox("Tags")
        tb = QVBoxLayout(tags_box)
        tb.addWidget(self.all_tags_radio)
        tb.addWidget(self.some_tags_radio)
        tb.addWidget(self.tag_list)
        tb.addWidget(self.hierarchy_check)

        self.predictions_check = QCheckBox(
            "Add the model's predicted score for every track (fits each tag's model first)"
        )
        self.threshold_spin = QDoubleSpinBox()
        self.threshold_spin.setRange(0.01, 0.99)
        self.threshold_spin.setSingleStep(0.05)
        self.threshold_spin.setDecimals(2)
        self.threshold_spin.setValue(0.5)
        self.threshold_spin.setToolTip(
            "A track is predicted to have the tag when its score is at least this"
        )
        self.threshold_spin.setEnabled(False)
        self.predictions_check.toggled.connect(self.threshold_spin.setEnabled)
        if not self.cache_path.exists():
            self.predictions_check.setEnabled(False)
            self.predictions_check.setToolTip(
                "Needs the embeddings: they are computed after the library is opened"
            )
        pred_row = QHBoxLayout()
        pred_row.addWidget(QLabel("Predicted when the score is at least"))
        pred_row.addWidget(self.threshold_spin)
        pred_row.addStretch(1)
        pred_box = QGroupBox("Predictions")
        pb = QVBoxLayout(pred_box)
        pb.addWidget(self.predictions_check)
        pb.addLayout(pred_row)

        self.path_edit = QLineEdit(str(default_csv_path(self.project)))
        self.path_edit.textChanged.connect(self._update_buttons)
        choose = QPushButton("Choose…")
        choose.clicked.connect(self.choose_csv_path)
        path_row = QHBoxLayout()
        path_row.addWidget(QLabel("Save to"))
        path_row.addWidget(self.path_edit, 1)
        path_row.addWidget(choose)

        self.export_button = QPushButton("Export")
        self.export_button.setDefault(True)
        self.export_button.clicked.connect(self.start_export)
        self.csv_result = QLabel()
        self.csv_result.setWordWrap(True)
        self.csv_result.setTextFormat(Qt.TextFormat.RichText)
        self.csv_result.linkActivated.connect(self._open_link)
        go_row = QHBoxLayout()
        go_row.addWidget(self.csv_result, 1)
        go_row.addWidget(self.export_button)

        layout = QVBoxLayout(page)
        layout.addWidget(intro)
        layout.addWidget(layout_box)
        layout.addWidget(tags_box)
        layout.addWidget(pred_box)
        layout.addLayout(path_row)
        layout.addLayout(go_row)
        layout.addStretch(1)
        return page

    def choose_csv_path(self) -> None:
        """Ask where to save the CSV file."""
        path, _ = QFileDialog.getSaveFileName(
            self, "Export labels to", self.path_edit.text(), "CSV files (*.csv);;All files (*)"
        )
        if path:
            self.path_edit.setText(path)

    def chosen_tags(self) -> list[str] | None:
        """The tags to export: None for all, else the checked ones."""
        if self.all_tags_radio.isChecked():
            return None
        return [
            self.tag_list.item(i).text()
            for i in range(self.tag_list.count())
            if self.tag_list.item(i).checkState() == Qt.CheckState.Checked
        ]

    def start_export(self) -> None:
        """Export the CSV file with the chosen options (in the pool)."""
        text = self.path_edit.text().strip()
        if not text:
            self._show_error("Choose a file to save to.")
            return
        path = Path(text).expanduser()
        if not path.is_absolute():  # a bare name goes in the music folder, not the cwd
            path = Path(self.project.library_root) / path
        if path.is_dir():
            self._show_error(f"Cannot write {path}: this is a folder, not a file name")
            return
        tags = self.chosen_tags()
        if tags is not None and not tags:
            self._show_error("Check at least one tag, or choose “All tags”.")
            return
        self.csv_result.clear()
        task = exporting.export_csv_task(
            self.project,
            path,
            layout="wide" if self.wide_radio.isChecked() else "long",
            tags=tags,
            hierarchy=self.hierarchy_check.isChecked(),
            predictions=self.predictions_check.isChecked(),
            threshold=self.threshold_spin.value(),
            features=self.features,
        )
        self._run("export", task, self._on_exported, f"Exporting to {path}…")

    def _on_exported(self, result: ExportResult) -> None:
        self.last_export = result
        folder = QUrl.fromLocalFile(str(result.path.parent)).toString()
        self.csv_result.setText(
            f"Wrote {result.rows} rows to {html.escape(str(result.path))}. "
            f'<a href="{html.escape(folder)}">Open folder</a>'
        )
        self.status_label.setText(result.summary())
        self.exported.emit(result)

    def _open_link(self, url: str) -> None:
        QDesktopServices.openUrl(QUrl(url))

    # -- the write-back tab -------------------------------------------------------------
    def _build_writeback_tab(self) -> QWidget:
        page = QWidget()
        intro = QLabel(
            "<b>This changes your audio files' tags.</b> Each track's positive tags are "
            "written into one field of the file's own tags (ID3 for MP3, WAV and AIFF; a "
            "Vorbis comment for FLAC and Ogg; an iTunes field for M4A). Only that field "
            "changes: the music itself is never rewritten. Preview first to see every "
            "change; every write keeps a journal, so it can be undone."
        )
        intro.setWordWrap(True)
        intro.setTextFormat(Qt.TextFormat.RichText)

        self.field_edit = QLineEdit(DEFAULT_FIELD)
        self.field_edit.setToolTip(
            "The tag field to write. TAGGER_TAGS is shown under that name by Picard, "
            "foobar2000, Mp3tag, Kid3 and beets"
        )
        self.id3v23_check = QCheckBox("Save MP3, WAV and AIFF tags as ID3v2.3 (for older players)")
        self.parents_check = QCheckBox("Also write the parent tags of each positive tag")
        self.parents_check.setChecked(True)
        folder = QLabel(str(self.project.library_root))
        folder.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        folder.setToolTip(f"The undo journals are kept in {exporting.journal_folder(self.project)}")
        form = QFormLayout()
        form.addRow("Files in", folder)
        form.addRow("Field", self.field_edit)
        form.addRow("", self.id3v23_check)
        form.addRow("", self.parents_check)
        for changed in (
            self.field_edit.textChanged,
            self.id3v23_check.toggled,
            self.parents_check.toggled,
        ):
            changed.connect(self._drop_plan)

        self.preview_model = WritebackTableModel(self)
        self.preview_view = QTableView()
        self.preview_view.setModel(self.preview_model)
        self.preview_view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.preview_view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.preview_view.verticalHeader().hide()
        header = self.preview_view.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(True)
        self.preview_summary = QLabel("Preview to see what would change. Nothing is written.")
        self.preview_summary.setWordWrap(True)

        self.preview_button = QPushButton("Preview")
        self.preview_button.setToolTip("Read every file's tags and list the changes (a dry run)")
        self.preview_button.clicked.connect(self.start_preview)
        self.write_button = QPushButton("Write…")
        self.write_button.clicked.connect(self.ask_to_write)
        self.undo_button = QPushButton("Undo last write-back")
        self.undo_button.setToolTip("Put back the values the last write-back replaced")
        self.undo_button.clicked.connect(self.start_undo)
        buttons = QHBoxLayout()
        buttons.addWidget(self.undo_button)
        buttons.addStretch(1)
        buttons.addWidget(self.preview_button)
        buttons.addWidget(self.write_button)

        layout = QVBoxLayout(page)
        layout.addWidget(intro)
        layout.addLayout(form)
        layout.addWidget(self.preview_view, 1)
        layout.addWidget(self.preview_summary)
        layout.addLayout(buttons)
        return page

    def _drop_plan(self) -> None:
        # the preview was for other settings: preview again before writing
        if self.plan is not None:
            self.plan = None
            self.preview_model.set_plan(None)
            self.preview_summary.setText("The settings changed: preview again.")
        self._update_buttons()

    def start_preview(self) -> None:
        """Run the dry run (in the pool) and fill the table."""
        task = exporting.plan_writeback_task(
            self.project,
            field=self.field_edit.text().strip() or DEFAULT_FIELD,
            id3_version=3 if self.id3v23_check.isChecked() else 4,
            hierarchy=self.parents_check.isChecked(),
        )
        self.plan = None
        self.preview_model.set_plan(None)
        self._run("preview", task, self._on_planned, "Reading the files' tags…")

    def _on_planned(self, plan: WritebackPlan) -> None:
        self.plan = plan
        self.preview_model.set_plan(plan)
        self.preview_view.resizeColumnToContents(0)
        c = plan.counts()
        self.preview_summary.setText(
            f"{c['write']} to write, {c['remove']} to clear, {c['none']} already up to date, "
            f"{c['skip']} skipped. Nothing is written yet."
        )
        self.status_label.setText(f"Preview of the field {plan.field}: {len(plan.changes)} files.")

    def ask_to_write(self) -> None:
        """Ask for confirmation (the count of files), then write."""
        if self.plan is None or not self.plan.to_write:
            return
        n = len(self.plan.to_write)
        box = QMessageBox(
            QMessageBox.Icon.Question,
            "Write tags into files",
            f"Write the tags into {n} audio file{'s' if n != 1 else ''} in "
            f"{self.plan.library_root}?",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
            self,
        )
        box.setInformativeText(
            f"Only the field {self.plan.field} changes; the music is not touched. "
            "“Undo last write-back” puts the old values back."
        )
        box.button(QMessageBox.StandardButton.Yes).setText(f"Write {n} files")
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        box.finished.connect(lambda code: self._on_confirmed(box, code))
        self.confirm_box = box
        box.open()

    def _on_confirmed(self, box: QMessageBox, code: int) -> None:
        if box is self.confirm_box:
            self.confirm_box = None
        box.deleteLater()
        if code == QMessageBox.StandardButton.Yes and self.plan is not None:
            self.start_write()

    def start_write(self) -> None:
        """Write the previewed plan (on the background pool), without asking."""
        if self.plan is None or not self.plan.to_write:
            return
        task = exporting.apply_writeback_task(self.project, self.plan, cache_path=self.cache_path)
        self._run(
            "write",
            task,
            self._on_written,
            "Waiting for the embedding to finish…",
            background=True,
            on_started="Writing tags…",
        )

    def _on_written(self, outcome: WritebackOutcome) -> None:
        self.last_outcome = outcome
        report = outcome.report
        self.preview_model.set_results(report.results)
        self.plan = None  # written: a new write needs a new preview
        text = (
            f"Wrote the tags into {len(report.written)} files; {len(report.skipped)} skipped, "
            f"{len(report.failed)} failed, {report.unchanged} already up to date."
        )
        self.preview_summary.setText(text)
        self.status_label.setText(text + self._cache_text(outcome))
        if report.failed:
            root = Path(outcome.plan.library_root)
            lines = [f"{root / rel}: {plain_reason(reason)}" for rel, reason in report.failed[:3]]
            more = f" (and {len(report.failed) - 3} more)" if len(report.failed) > 3 else ""
            self._show_error(
                f"{len(report.failed)} file(s) could not be written and are unchanged{more}:\n"
                + "\n".join(lines)
            )
            self.status_label.setText(text + self._cache_text(outcome))
        self.filesRewritten.emit(outcome)

    def start_undo(self) -> None:
        """Undo the latest write-back (on the background pool)."""
        task = exporting.undo_writeback_task(self.project, cache_path=self.cache_path)
        self._run(
            "undo",
            task,
            self._on_undone,
            "Waiting for the embedding to finish…",
            background=True,
            on_started="Putting the old values back…",
        )

    def _on_undone(self, outcome: WritebackOutcome) -> None:
        self.last_outcome = outcome
        report = outcome.report
        self.plan = None
        self.preview_model.set_plan(None)
        text = (
            f"Undid the last write-back: {len(report.written)} files restored, "
            f"{len(report.skipped)} skipped, {len(report.failed)} failed."
        )
        problems = report.failed + report.skipped
        if problems:
            rel, reason = problems[0]
            text += f" {rel}: {plain_reason(reason)}"
        self.preview_summary.setText(text)
        self.status_label.setText(text + self._cache_text(outcome))
        self.filesRewritten.emit(outcome)

    @staticmethod
    def _cache_text(outcome: WritebackOutcome) -> str:
        if outcome.cache_note:
            return (
                f" The embedding cache was not updated ({outcome.cache_note}): the written "
                "files will be analysed again."
            )
        return ""

    @property
    def plan(self) -> WritebackPlan | None:
        """The previewed plan the Write button writes, or None (preview first)."""
        return self._plan

    @plan.setter
    def plan(self, plan: WritebackPlan | None) -> None:
        self._plan = plan
        # counted once: the buttons ask on every keystroke, and a plan may hold 100,000 files
        self._n_to_write = len(plan.to_write) if plan is not None else 0

    # -- running one job at a time ----------------------------------------------------
    @property
    def is_busy(self) -> bool:
        """True while an export, preview, write or undo runs."""
        return self._worker is not None

    @property
    def worker(self) -> TaskWorker | None:
        """The job running, or None."""
        return self._worker

    def _run(
        self,
        kind: str,
        task,
        on_result: Callable[[Any], None],
        message: str,
        *,
        background: bool = False,
        on_started: str | None = None,
    ) -> None:
        if self._worker is not None:
            task.close()
            return
        self.error_label.hide()
        self.status_label.setText(message)
        worker = TaskWorker(task)
        if on_started is not None:
            worker.started.connect(lambda: self.status_label.setText(on_started))
        worker.progress.connect(self._on_progress)
        worker.result.connect(on_result)
        worker.error.connect(lambda exc: self._show_error(plain_error(exc)))
        worker.cancelled.connect(lambda: self._on_cancelled(kind))
        if kind == "write":
            # written or not, the plan no longer describes the files
            worker.finished.connect(lambda: setattr(self, "plan", None))
        if kind in ("write", "undo"):
            # stopped or failed half-way, some files may have been rewritten
            worker.cancelled.connect(lambda: self.filesRewritten.emit(None))
            worker.error.connect(lambda _exc: self.filesRewritten.emit(None))
        worker.finished.connect(self._on_finished)
        self._worker = worker
        self.progress.setRange(0, 0)
        self.progress.show()
        self.cancel_button.setEnabled(True)
        self.cancel_button.show()
        self._update_buttons()
        self.pool.start(worker, background=background)

    def _on_progress(self, p: Any) -> None:
        if isinstance(p, WritebackProgress):
            verb = {"reading": "Reading tags", "undoing": "Restoring"}.get(p.stage, "Writing tags")
            text = f"{verb} {min(p.done + 1, p.total)}/{p.total}"
            if p.current:
                text += f": {p.current}"
        elif isinstance(p, ExportProgress):
            text = f"Exporting: {p.what}"
        else:
            return
        self.progress.setRange(0, max(p.total, 1))
        self.progress.setValue(p.done)
        self.status_label.setText(text)

    def cancel(self) -> None:
        """Stop the running job after its current file."""
        if self._worker is not None:
            self._worker.cancel()
            self.cancel_button.setEnabled(False)
            self.status_label.setText("Stopping…")

    def _on_cancelled(self, kind: str) -> None:
        texts = {
            "export": "Export stopped; nothing was written.",
            "preview": "Preview stopped; nothing was written.",
            "write": "Stopped. The files already written keep their new tags (recorded in the "
            "journal); “Undo last write-back” puts the old values back.",
            "undo": "Stopped. Run “Undo last write-back” again to restore the other files.",
        }
        self.status_label.setText(texts[kind])
        if kind in ("write", "undo"):
            self.preview_model.set_plan(None)
            self.preview_summary.setText("Preview again to see the files as they are now.")

    def _on_finished(self) -> None:
        self._worker = None
        self.progress.hide()
        self.cancel_button.hide()
        self._update_buttons()
        if self._close_when_done:
            self._close_when_done = False
            super().reject()

    def _show_error(self, text: str) -> None:
        self.error_label.setText(text)
        self.error_label.show()
        self.status_label.setText("")

    def _update_buttons(self) -> None:
        busy = self._worker is not None
        tags = self.chosen_tags()
        self.export_button.setEnabled(
            not busy and bool(self.path_edit.text().strip()) and (tags is None or bool(tags))
        )
        self.preview_button.setEnabled(not busy)
        n = self._n_to_write
        self.write_button.setEnabled(not busy and n > 0)
        self.write_button.setText(f"Write {n} file{'s' if n != 1 else ''}…" if n else "Write…")
        self.undo_button.setEnabled(not busy and exporting.latest_journal(self.project) is not None)

    # -- closing ------------------------------------------------------------------
    def reject(self) -> None:
        """Close; a running job is cancelled first and the dialog closes when it stops."""
        if self._worker is not None:
            self._close_when_done = True
            self.cancel()
            return
        super().reject()

    def closeEvent(self, event: QCloseEvent) -> None:
        if self._worker is not None:
            self._close_when_done = True
            self.cancel()
            event.ignore()
            return
        super().closeEvent(event)

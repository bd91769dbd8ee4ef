"""The main window: start page, tags panel, library table, review area, background jobs.

A thin shell over the core. Opening a music folder opens (or creates) its
:class:`~tagger_gui.core.project.store.Project`, shows what it already
knows, and runs two core tasks one after the other on the background pool:
:meth:`Project.sync_library` (the track list) then
:func:`~tagger_gui.core.embed_job.embed_library` (the embeddings), with a
progress bar, an ETA and a Cancel button in the status bar.

The review panel is not built here: the app puts it in :attr:`MainWindow.review_area`
with :meth:`MainWindow.set_review_widget` and follows the window's signals.
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from PySide6.QtCore import QItemSelectionModel, QModelIndex, QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QCloseEvent, QGuiApplication, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QLineEdit,
    QListView,
    QMainWindow,
    QMenu,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from tagger_gui.core.embed_job import EmbedProgress, EmbedReport, embed_library
from tagger_gui.core.errors import ProjectError, ProjectLockedError, TaggerError
from tagger_gui.core.fewshot.features import DEFAULT_FEATURES
from tagger_gui.core.project.store import (
    Project,
    SyncProgress,
    SyncReport,
    Tag,
    TrackTable,
    locate_project,
)
from tagger_gui.qt.start_page import StartPage, recent_projects, remember_project
from tagger_gui.qt.tag_model import TagCountsDelegate, TagListModel
from tagger_gui.qt.track_model import Column, TrackIdRole, TrackTableModel, search_texts
from tagger_gui.qt.worker import TaskWorker, WorkerPool, describe_error

__all__ = ["DEFAULT_BACKENDS", "MainWindow", "NewTagDialog", "default_workers", "features_for"]

logger = logging.getLogger(__name__)

#: The backends the app embeds with.
DEFAULT_BACKENDS: tuple[str, ...] = ("musicnn-msd",)
GEOMETRY_KEY = "main_window/geometry"
SPLITTER_KEY = "main_window/splitter"
CURRENT_TAG_STATE = "current_tag"
_SEARCH_DELAY_MS = 150

MessageFunction = Callable[[str, str], None]


def features_for(backends: Sequence[str]) -> str:
    """The probes' feature choice for the embedded backends (the default when musicnn-msd is)."""
    return DEFAULT_FEATURES if "musicnn-msd" in backends else backends[0]


def default_workers() -> int:
    """Decoding processes of the embedding job: ``TAGGER_GUI_WORKERS``, else cores less one."""
    value = os.environ.get("TAGGER_GUI_WORKERS", "").strip()
    if value:
        try:
            return max(0, int(value))
        except ValueError:
            logger.warning("TAGGER_GUI_WORKERS=%r is not a number; ignored", value)
    return max(1, (os.cpu_count() or 2) - 1)


def _clock(seconds: float) -> str:
    seconds = int(max(0.0, seconds) + 0.5)
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def describe_embed_progress(p: EmbedProgress) -> str:
    """The status-bar text of an embedding progress: done/total, × realtime, ETA."""
    if p.stage == "scanning":
        return "Embedding: looking for new files…"
    if p.stage == "saving":
        return "Embedding: saving…"
    text = f"Embedding {p.done}/{p.total}"
    if p.elapsed > 0 and p.audio_seconds > 0:
        text += f" · {p.audio_seconds / p.elapsed:.0f}× realtime"
    if 0 < p.done < p.total and p.elapsed > 0:
        text += f" · about {_clock(p.elapsed / p.done * (p.total - p.done))} left"
    if p.failed:
        text += f" · {p.failed} failed"
    return text


class NewTagDialog(QDialog):
    """Asks a new tag's name and, optionally, its parent.

    Parameters
    ----------
    tags : list of Tag
        The possible parents.
    parent : QWidget, optional
    """

    def __init__(self, tags: Sequence[Tag], parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("New tag")
        self.name_edit = QLineEdit()
        self.name_edit.setPlaceholderText("e.g. calm, live recording, female vocals")
        self.parent_box = QComboBox()
        self.parent_box.addItem("(none)", None)
        for tag in tags:
            self.parent_box.addItem(tag.name, tag.name)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        self._ok = buttons.button(QDialogButtonBox.StandardButton.Ok)
        self._ok.setEnabled(False)
        self.name_edit.textChanged.connect(lambda text: self._ok.setEnabled(bool(text.strip())))
        form = QFormLayout(self)
        form.addRow("Name", self.name_edit)
        form.addRow("Parent", self.parent_box)
        form.addRow(buttons)

    def values(self) -> tuple[str, str | None]:
        """``(name, parent name or None)`` as entered."""
        return self.name_edit.text().strip(), self.parent_box.currentData()


class MainWindow(QMainWindow):
    """The app's window.

    Parameters
    ----------
    pool : WorkerPool, optional
        Where background tasks run; default a pool of the window's own.
    backends : sequence of str, keyword-only
        Embedding backends (default :data:`DEFAULT_BACKENDS`; tests use
        ``["handcrafted"]``).
    workers : int, optional, keyword-only
        Decoding processes (default :func:`default_workers`; 0 decodes in
        the background thread).
    show_message : callable(title, text), optional, keyword-only
        How problems are shown; default a warning message box. Every message
        is also written in the status bar (and on the start page while it is
        shown), so none is lost.

    Signals
    -------
    project_opened(Project)
        A project was opened and its tracks and tags shown.
    project_closing()
        The project is about to close: views write what they keep in it.
    project_closed()
        The project was closed (another opened, or the window closed).
    current_tag_changed(object)
        The :class:`Tag` selected in the tags panel, or None.
    project_changed()
        The window changed tags or labels (new tag, undo, redo): other views
        (the review panel) should read the project again.

    library_synced(object)
        The track list is up to date: the :class:`SyncReport`.
    embedding_progress(object)
        An :class:`EmbedProgress` of the running embedding job.
    embedding_finished(object)
        The embedding job ended: its :class:`EmbedReport`, or None if it was
        cancelled or failed.
    """

    project_opened = Signal(object)
    project_closing = Signal()
    project_closed = Signal()
    current_tag_changed = Signal(object)
    project_changed = Signal()
    library_synced = Signal(object)
    embedding_progress = Signal(object)
    embedding_finished = Signal(object)

    def __init__(
        self,
        pool: WorkerPool | None = None,
        *,
        backends: Sequence[str] = DEFAULT_BACKENDS,
        workers: int | None = None,
        show_message: MessageFunction | None = None,
        parent: QWidget | None = None,
    ):
        super().__init__(parent)
        self.pool = pool if pool is not None else WorkerPool(parent=self)
        self.backends = list(backends)
        self.workers = default_workers() if workers is None else int(workers)
        self._show_message = show_message
        self.project: Project | None = None
        self._job: TaskWorker | None = None  # the sync or embedding worker running
        self._job_generation = 0
        self._current_tag: Tag | None = None
        self._restoring_tag = False
        #: ``labeler(track_ids, value) -> bool`` labels for the current tag
        #: (the review session's panel, so that it refits); None: the window writes.
        self.labeler: Callable[[list[int], str], bool] | None = None
        self.last_self_test: str | None = None  # the report of Help → Self-test

        self.setWindowTitle("Tagger")
        # The model sorts and filters itself (numpy); there is no proxy model.
        self.track_model = TrackTableModel(parent=self)
        #: The same object as :attr:`track_model` (what the view shows), under
        #: the name older code and the benchmarks use.
        self.track_proxy = self.track_model
        self.tag_model = TagListModel(parent=self)

        self.start_page = StartPage()
        self.start_page.open_folder_clicked.connect(self.choose_folder)
        self.start_page.recent_chosen.connect(self.open_folder)
        self.start_page.demo_requested.connect(self.show_demo_dialog)
        self.workspace = self._build_workspace()
        self.pages = QStackedWidget()
        self.pages.addWidget(self.start_page)
        self.pages.addWidget(self.workspace)
        self.setCentralWidget(self.pages)
        self._build_menus()
        self._build_status_bar()
        self._restore_settings()
        self.show_start_page()

    # -- building ---------------------------------------------------------------------------

    def _build_workspace(self) -> QWidget:
        # tags panel
        self.tag_view = QListView()
        self.tag_view.setObjectName("tag_view")
        self.tag_view.setModel(self.tag_model)
        self.tag_view.setItemDelegate(TagCountsDelegate(self.tag_view))
        self.tag_view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.tag_view.selectionModel().currentChanged.connect(self._on_tag_selected)
        self.tag_view.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.tag_view.customContextMenuRequested.connect(self._tag_context_menu)
        self.tag_view.doubleClicked.connect(lambda _index: self.rename_tag())
        self.new_tag_button = QPushButton("New tag…")
        self.new_tag_button.clicked.connect(lambda: self.new_tag())
        tags_panel = QWidget()
        tags_layout = QVBoxLayout(tags_panel)
        tags_layout.setContentsMargins(0, 0, 0, 0)
        tags_layout.addWidget(QLabel("Tags"))
        self.no_tags_label = QLabel(
            "No tags yet. <b>New tag…</b> (Ctrl+T) makes one: any word that matters to you."
        )
        self.no_tags_label.setWordWrap(True)
        self.no_tags_label.setTextFormat(Qt.TextFormat.RichText)
        tags_layout.addWidget(self.no_tags_label)
        for signal in (
            self.tag_model.modelReset,
            self.tag_model.rowsInserted,
            self.tag_model.rowsRemoved,
        ):
            signal.connect(lambda *_: self.no_tags_label.setVisible(self.tag_model.rowCount() == 0))
        tags_layout.addWidget(self.tag_view, 1)
        tags_layout.addWidget(self.new_tag_button)

        # library table
        self.search_edit = QLineEdit()
        self.search_edit.setObjectName("search_edit")
        self.search_edit.setPlaceholderText("Search title, artist, album, path…")
        self.search_edit.setClearButtonEnabled(True)
        self._search_timer = QTimer(self)
        self._search_timer.setSingleShot(True)
        self._search_timer.setInterval(_SEARCH_DELAY_MS)  # one refilter per burst of keys
        self._search_timer.timeout.connect(self._apply_search)
        self.search_edit.textChanged.connect(self._search_timer.start)
        self.track_view = QTableView()
        self.track_view.setObjectName("track_view")
        self.track_view.setModel(self.track_model)
        self.track_view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.track_view.setAlternatingRowColors(True)
        self.track_view.verticalHeader().hide()
        self.track_view.verticalHeader().setDefaultSectionSize(22)
        # the model sorts (numpy); -1 first, or enabling sorting sorts by column 0
        self.track_view.horizontalHeader().setSortIndicator(-1, Qt.SortOrder.AscendingOrder)
        self.track_view.setSortingEnabled(True)
        self.track_view.horizontalHeader().setStretchLastSection(True)
        # fixed widths (measuring 100,000 rows to fit contents would be slow) that
        # keep Score and Label in view on a 1,400-px window; Path takes the rest
        for column, width in (
            (Column.TITLE, 220),
            (Column.ARTIST, 130),
            (Column.ALBUM, 150),
            (Column.DURATION, 70),
            (Column.SCORE, 60),
            (Column.LABEL, 100),
        ):
            self.track_view.setColumnWidth(column, width)
        self.track_view.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.track_view.customContextMenuRequested.connect(self._track_context_menu)
        self.track_view.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        library_panel = QWidget()
        library_layout = QVBoxLayout(library_panel)
        library_layout.setContentsMargins(0, 0, 0, 0)
        library_layout.addWidget(self.search_edit)
        library_layout.addWidget(self.track_view, 1)

        # the review panel goes here (set_review_widget)
        self.review_area = QWidget()
        self.review_area.setObjectName("review_area")
        review_layout = QVBoxLayout(self.review_area)
        review_layout.setContentsMargins(0, 0, 0, 0)
        self.review_area.hide()  # no empty column until the review panel is put in

        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(tags_panel)
        self.splitter.addWidget(library_panel)
        self.splitter.addWidget(self.review_area)
        self.splitter.setStretchFactor(0, 0)
        self.splitter.setStretchFactor(1, 3)
        self.splitter.setStretchFactor(2, 2)
        self.splitter.setSizes([200, 700, 400])
        return self.splitter

    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        self.open_action = QAction("&Open music folder…", self)
        self.open_action.setShortcut(QKeySequence.StandardKey.Open)
        self.open_action.triggered.connect(self.choose_folder)
        file_menu.addAction(self.open_action)
        self.export_action = QAction("&Export tags…", self)
        self.export_action.setShortcut(QKeySequence("Ctrl+E"))
        self.export_action.triggered.connect(lambda: self.export_tags())
        self.export_action.setEnabled(False)
        file_menu.addAction(self.export_action)
        file_menu.addSeparator()
        self.quit_action = QAction("&Quit", self)
        self.quit_action.setShortcut(QKeySequence.StandardKey.Quit)
        self.quit_action.setMenuRole(QAction.MenuRole.QuitRole)
        self.quit_action.triggered.connect(self.close)
        file_menu.addAction(self.quit_action)

        edit_menu = self.menuBar().addMenu("&Edit")
        self.undo_action = QAction("Undo", self)
        self.undo_action.setShortcut(QKeySequence("Ctrl+Z"))
        self.undo_action.triggered.connect(self.undo)
        self.redo_action = QAction("Redo", self)
        self.redo_action.setShortcut(QKeySequence("Ctrl+Shift+Z"))
        self.redo_action.triggered.connect(self.redo)
        edit_menu.addAction(self.undo_action)
        edit_menu.addAction(self.redo_action)

        tags_menu = self.menuBar().addMenu("&Tags")
        self.new_tag_action = QAction("&New tag…", self)
        self.new_tag_action.setShortcut(QKeySequence("Ctrl+T"))
        self.new_tag_action.triggered.connect(lambda: self.new_tag())
        self.rename_tag_action = QAction("&Rename tag…", self)
        self.rename_tag_action.setShortcut(QKeySequence("F2"))
        self.rename_tag_action.triggered.connect(lambda: self.rename_tag())
        self.delete_tag_action = QAction("&Delete tag…", self)
        self.delete_tag_action.triggered.connect(lambda: self.delete_tag())
        for action in (self.new_tag_action, self.rename_tag_action, self.delete_tag_action):
            tags_menu.addAction(action)
        self.rename_tag_action.setEnabled(False)
        self.delete_tag_action.setEnabled(False)

        self.demo_action = QAction("Try a &demo library…", self)
        self.demo_action.triggered.connect(lambda: self.show_demo_dialog())
        file_menu.insertAction(self.quit_action, self.demo_action)
        file_menu.insertSeparator(self.quit_action)

        help_menu = self.menuBar().addMenu("&Help")
        self.about_action = QAction("&About Tagger", self)
        self.about_action.setMenuRole(QAction.MenuRole.AboutRole)
        self.about_action.triggered.connect(self.about)
        help_menu.addAction(self.about_action)
        self.self_test_action = QAction("&Self-test…", self)
        self.self_test_action.setToolTip("Check this install: models, worker processes, audio")
        self.self_test_action.triggered.connect(lambda: self.self_test())
        help_menu.addAction(self.self_test_action)
        self.update_undo_actions()

    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        self.job_label = QLabel()
        self.job_label.setObjectName("job_label")
        self.job_progress = QProgressBar()
        self.job_progress.setMaximumWidth(220)
        self.job_progress.setTextVisible(True)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop the job; what is done so far is kept")
        self.cancel_button.clicked.connect(self.cancel_job)
        job = QWidget()
        layout = QHBoxLayout(job)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.job_label)
        layout.addWidget(self.job_progress)
        layout.addWidget(self.cancel_button)
        self.job_widget = job
        bar.addPermanentWidget(job)
        job.hide()

    # -- settings ---------------------------------------------------------------------------

    def _restore_settings(self) -> None:
        settings = QSettings()
        geometry = settings.value(GEOMETRY_KEY)
        if geometry is None or not self.restoreGeometry(geometry):
            self.resize(1300, 800)
        splitter = settings.value(SPLITTER_KEY)
        if splitter is not None:
            self.splitter.restoreState(splitter)

    def save_settings(self) -> None:
        """Write the window geometry and the panels' sizes to QSettings."""
        settings = QSettings()
        settings.setValue(GEOMETRY_KEY, self.saveGeometry())
        settings.setValue(SPLITTER_KEY, self.splitter.saveState())
        settings.sync()

    # -- messages ---------------------------------------------------------------------------

    def show_message(self, title: str, text: str) -> None:
        """Tell the user about a problem, in plain words (also in the status bar)."""
        logger.warning("%s: %s", title, text)
        self.statusBar().showMessage(f"{title}: {text}")
        if self.pages.currentWidget() is self.start_page:
            self.start_page.show_message(text)
        if self._show_message is not None:
            self._show_message(title, text)
        else:
            QMessageBox.warning(self, title, text)

    def about(self) -> None:
        """The Help → About box."""
        QMessageBox.about(
            self,
            "About Tagger",
            "<b>Tagger</b><p>Few-shot tagging of a music library: label a few tracks, "
            "and a model trained on audio embeddings ranks the rest.</p>",
        )

    def self_test(self) -> TaskWorker:
        """Help → Self-test…: the install's checks in the pool, then a report box.

        The checks are those of ``tagger --self-test`` except the window
        check, which this running window answers.
        """
        report = io.StringIO()

        def task():
            yield "self-test"
            from tagger_gui.selftest import run_self_test

            return run_self_test(report)  # no window check: this window answers it

        worker = TaskWorker(task())
        worker.result.connect(lambda status: self._self_test_done(status, report.getvalue()))
        worker.error.connect(lambda exc: self.show_message("Self-test", describe_error(exc)))
        self.self_test_action.setEnabled(False)
        worker.finished.connect(lambda: self.self_test_action.setEnabled(True))
        self.statusBar().showMessage("Self-test running…")
        self.pool.start(worker)
        return worker

    def _self_test_done(self, status: int, text: str) -> None:
        platform = QGuiApplication.platformName()
        lines = text.splitlines()
        lines.insert(-1, f"PASS main window: this one, running (platform {platform})")
        self.last_self_test = "\n".join(lines)
        failed = [line for line in lines if line.startswith("FAIL")]
        self.statusBar().showMessage(lines[-1], 10_000)
        box = QMessageBox(self)
        box.setWindowTitle("Self-test")
        box.setIcon(QMessageBox.Icon.Warning if failed else QMessageBox.Icon.Information)
        box.setText(
            f"{len(failed)} check(s) failed:\n\n" + "\n".join(failed)
            if failed
            else "All checks passed."
        )
        box.setDetailedText(self.last_self_test)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()

    # -- pages ------------------------------------------------------------------------------

    def show_start_page(self) -> None:
        """Show the start page with the recent projects."""
        self.start_page.set_recent(recent_projects())
        self.pages.setCurrentWidget(self.start_page)

    def set_review_widget(self, widget: QWidget) -> None:
        """Put ``widget`` (the review panel) in the right-hand area, replacing any before."""
        layout = self.review_area.layout()
        while layout.count():
            old = layout.takeAt(0).widget()
            if old is not None:
                old.setParent(None)
        layout.addWidget(widget)
        self.review_area.show()

    # -- opening and closing ----------------------------------------------------------------

    def choose_folder(self) -> None:
        """Ask for a music folder (or a project folder) and open it."""
        folder = QFileDialog.getExistingDirectory(self, "Open music folder")
        if folder:
            self.open_folder(folder)

    def open_folder(self, path: str | os.PathLike) -> bool:
        """Open the project of ``path`` (created if there is none) and start the jobs.

        Parameters
        ----------
        path : path-like
            A music folder, or a project folder.

        Returns
        -------
        bool
            False if nothing was opened (the problem was shown); the window
            then shows what it showed before.
        """
        path = Path(path)
        if self.project is not None and self._same_project(path):
            return True
        if not path.is_dir():
            self.show_message("Cannot open", f"{path}: no such folder")
            return False
        self.close_project()
        try:
            try:
                located = locate_project(path)
            except ProjectError:  # no project yet: a music folder seen for the first time
                project = Project.create(None, path)
            else:
                project = Project.open(located)
        except ProjectLockedError as exc:
            self.show_message("Project open elsewhere", describe_error(exc))
            self.show_start_page()
            self.start_page.show_message(describe_error(exc))
            return False
        except (TaggerError, OSError) as exc:
            self.show_message("Cannot open the project", describe_error(exc))
            self.show_start_page()
            self.start_page.show_message(describe_error(exc))
            return False
        self.project = project
        remember_project(project.library_root)
        self.setWindowTitle(f"{project.library_root.name} — Tagger")
        self.start_page.show_message("")
        self.tag_model.refresh(project)
        self._restore_current_tag()
        self.update_undo_actions()
        self.pages.setCurrentWidget(self.workspace)
        self.export_action.setEnabled(True)
        self.project_opened.emit(project)
        # the sync starts once the tracks are shown (Cancel: not at all)
        self._read_tracks_then(lambda cancelled: cancelled or self._start_sync())
        return True

    def _same_project(self, path: Path) -> bool:
        try:
            return locate_project(path) == self.project.project_dir.absolute()
        except ProjectError:
            return False

    def close_project(self) -> None:
        """Stop the jobs (waiting for them), close the project and clear the views."""
        if self.project is None:
            return
        self.cancel_job()
        # a write-back stops after its current file (what it wrote is recorded)
        self.pool.cancel_all()
        self.pool.wait_for_workers()
        self._job = None
        self.export_action.setEnabled(False)
        self._job_generation += 1  # late signals of the old jobs are ignored
        self.job_widget.hide()
        self.project_closing.emit()
        project, self.project = self.project, None
        project.close()
        # no current tag (the view too: reopening the same project must select it again)
        self.tag_view.setCurrentIndex(QModelIndex())
        self._current_tag = None
        self.track_model.set_tracks(TrackTableModel().table)  # an empty table
        # the tags panel keeps the old tags until the next project replaces them;
        # it is not shown meanwhile
        self.update_undo_actions()
        self.show_start_page()
        self.setWindowTitle("Tagger")
        self.project_closed.emit()

    def closeEvent(self, event: QCloseEvent) -> None:
        """Save the settings, stop the workers (waiting for them), close the project."""
        self.save_settings()
        self.cancel_job()
        if self.project is not None:
            self.project_closing.emit()
        self.pool.shutdown()
        if self.project is not None:
            self.project.close()
            self.project = None
            self.project_closed.emit()
        super().closeEvent(event)

    # -- background jobs --------------------------------------------------------------------

    @property
    def job(self) -> TaskWorker | None:
        """The sync or embedding worker running, or None."""
        return self._job

    def cancel_job(self) -> None:
        """Ask the running sync or embedding job to stop (what is done is kept)."""
        if self._job is not None:
            self._job.cancel()
            self.job_label.setText("Stopping…")
            self.cancel_button.setEnabled(False)

    def _run(self, task, on_progress, on_result, what: str) -> TaskWorker:
        generation = self._job_generation

        def live() -> bool:
            return generation == self._job_generation

        worker = TaskWorker(task)
        worker.progress.connect(lambda p: live() and on_progress(p))
        worker.result.connect(lambda r: live() and on_result(r))
        worker.error.connect(lambda exc: live() and self._on_job_error(what, exc))
        worker.cancelled.connect(lambda: live() and self._on_job_cancelled(what))
        self._job = worker
        self.job_widget.show()
        self.cancel_button.setEnabled(True)
        self.job_progress.setRange(0, 0)  # busy until the first progress
        self.pool.start(worker, background=True)
        return worker

    def _job_ended(self) -> None:
        self._job = None
        self.job_widget.hide()

    def _on_job_error(self, what: str, exc: BaseException) -> None:
        self._job_ended()
        if what == "embedding":
            self.embedding_finished.emit(None)
        self.show_message(f"The {what} failed", describe_error(exc))

    def _on_job_cancelled(self, what: str) -> None:
        self._job_ended()
        if what == "embedding":
            self.embedding_finished.emit(None)
        self.statusBar().showMessage(f"The {what} was cancelled; what was done is kept.", 10_000)

    def _read_tracks_then(self, then: Callable[[bool], None]) -> None:
        """Show the project's tracks read in the pool, then call ``then(cancelled)``.

        The first read of the track table after a change takes 0.3-1 s for
        100,000 tracks, too long for the GUI thread. On Cancel the table is
        read here instead (the tracks must be shown) and ``then(True)`` called.
        """
        self.job_label.setText("Reading the library…")
        project, generation = self.project, self._job_generation

        def read(result: tuple) -> None:
            self._job_ended()
            self._show_tracks(*result)
            then(False)

        def cancelled() -> None:
            if generation == self._job_generation and self.project is project:
                self._show_tracks(*_read_tracks_now(project))
                then(True)

        worker = self._run(_read_tracks(project), lambda _p: None, read, "reading of the library")
        worker.cancelled.connect(cancelled)

    def _show_tracks(self, table: TrackTable, texts: list[str]) -> None:
        self.track_model.set_tracks(table, search_texts=texts)  # keeps the scores
        self._load_current_labels(clear_scores=False)

    def _start_sync(self) -> None:
        self.job_label.setText("Reading the library…")
        self._run(self.project.sync_library(), self._on_sync_progress, self._on_synced, "sync")

    def _on_sync_progress(self, p: SyncProgress) -> None:
        if p.stage == "scanning" or p.total <= 0:
            self.job_label.setText("Looking for music files…")
            self.job_progress.setRange(0, 0)
        else:
            self.job_label.setText(f"Reading tags {p.done}/{p.total}")
            self.job_progress.setRange(0, p.total)
            self.job_progress.setValue(p.done)

    def _on_synced(self, report: SyncReport) -> None:
        self._job_ended()
        if _sync_changed_tracks(report):
            self._read_tracks_then(lambda cancelled: self._after_sync(report, embed=not cancelled))
        else:  # the table shown is up to date
            self._after_sync(report, embed=True)

    def _after_sync(self, report: SyncReport, *, embed: bool) -> None:
        self.library_synced.emit(report)
        if report.problems:
            first = ", ".join(f"{path} ({reason})" for path, reason in report.problems[:3])
            self.statusBar().showMessage(
                f"{len(report.problems)} file(s) could not be read: {first}", 20_000
            )
        if embed:
            self._start_embedding()

    def _start_embedding(self) -> None:
        project = self.project
        self.job_label.setText("Embedding: loading the model…")
        task = embed_library(
            project.library_root,
            cache_path=project.cache_path,
            backends=self.backends,
            workers=self.workers,
        )
        self._run(task, self._on_embed_progress, self._on_embedded, "embedding")

    def _on_embed_progress(self, p: EmbedProgress) -> None:
        self.job_label.setText(describe_embed_progress(p))
        if p.stage == "embedding" and p.total > 0:
            self.job_progress.setRange(0, p.total)
            self.job_progress.setValue(p.done)
        else:
            self.job_progress.setRange(0, 0)
        self.embedding_progress.emit(p)

    def _on_embedded(self, report: EmbedReport) -> None:
        self._job_ended()
        text = f"Embeddings up to date: {report.embedded} new, {report.unchanged} unchanged"
        if report.failed:
            first = ", ".join(f"{path} ({reason})" for path, reason in report.failed[:3])
            text += f"; {len(report.failed)} could not be embedded: {first}"
        self.statusBar().showMessage(text, 30_000)
        self.embedding_finished.emit(report)

    # -- tags -------------------------------------------------------------------------------

    @property
    def current_tag(self) -> Tag | None:
        """The tag selected in the tags panel."""
        return self._current_tag

    def select_tag(self, name: str | None) -> None:
        """Make the tag called ``name`` current (None: no tag)."""
        row = -1
        if name is not None:
            for i, tag in enumerate(self.tag_model.tags()):
                if tag.name == name:
                    row = i
                    break
        selection = self.tag_view.selectionModel()
        if row < 0:
            selection.clearSelection()
            selection.setCurrentIndex(QModelIndex(), QItemSelectionModel.SelectionFlag.NoUpdate)
            self._set_current_tag(None)
        else:
            self.tag_view.setCurrentIndex(self.tag_model.index(row))

    def _on_tag_selected(self, current, _previous=None) -> None:
        self._set_current_tag(self.tag_model.tag(current.row()) if current.isValid() else None)

    def _set_current_tag(self, tag: Tag | None) -> None:
        if tag == self._current_tag:
            return
        previous, self._current_tag = self._current_tag, tag
        self.rename_tag_action.setEnabled(tag is not None)
        self.delete_tag_action.setEnabled(tag is not None)
        if self.project is not None and not self._restoring_tag:
            try:
                self.project.set_state(CURRENT_TAG_STATE, None if tag is None else tag.name)
            except TaggerError as exc:  # e.g. a full disk: the tag is still selected
                self.show_message("Cannot save the current tag", describe_error(exc))
        # a renamed or recoloured tag keeps its scores
        another = previous is None or tag is None or previous.id != tag.id
        self._load_current_labels(clear_scores=another)
        self.current_tag_changed.emit(tag)

    def _restore_current_tag(self) -> None:
        self._restoring_tag = True
        try:
            self.select_tag(self.project.get_state(CURRENT_TAG_STATE))
        finally:
            self._restoring_tag = False

    def _load_current_labels(self, *, clear_scores: bool) -> None:
        """Show the current tag's labels (only the rows whose label changed are updated)."""
        tag, project = self._current_tag, self.project
        if clear_scores or tag is None or project is None:
            self.track_model.clear_scores()
        if tag is None or project is None:
            self.track_model.clear_labels()
            return
        labels = project.labels(tag.id)
        self.track_model.set_labels(labels.track_id, labels.value, replace=True)

    def new_tag(self, name: str | None = None, parent: str | None = None) -> Tag | None:
        """Create a tag (what the "New tag…" button does) and make it current.

        Parameters
        ----------
        name : str, optional
            Without one, :class:`NewTagDialog` asks for the name and parent.
        parent : str, optional
            The parent tag's name.

        Returns
        -------
        Tag or None
            None if the dialog was cancelled or the tag could not be created
            (the reason was shown).
        """
        if self.project is None:
            return None
        if name is None:
            dialog = NewTagDialog(self.project.tags(), self)
            if dialog.exec() != QDialog.DialogCode.Accepted:
                return None
            name, parent = dialog.values()
        try:
            tag = self.project.create_tag(name, parent=parent)
        except TaggerError as exc:
            self.show_message("Cannot create the tag", describe_error(exc))
            return None
        self.refresh()
        self.select_tag(tag.name)
        self.project_changed.emit()
        self.statusBar().showMessage(f"Created tag {tag.name!r}", 5000)
        return tag

    def _tag_context_menu(self, pos) -> None:
        index = self.tag_view.indexAt(pos)
        if index.isValid():
            self.tag_view.setCurrentIndex(index)
        menu = QMenu(self)
        menu.addAction(self.new_tag_action)
        if index.isValid():
            menu.addAction(self.rename_tag_action)
            menu.addAction(self.delete_tag_action)
        menu.exec(self.tag_view.viewport().mapToGlobal(pos))

    def rename_tag(self, new_name: str | None = None) -> Tag | None:
        """Rename the current tag (asks for the name when none is given); one undo step.

        Returns
        -------
        Tag or None
            The renamed tag; None if cancelled or refused (the reason was shown).
        """
        tag = self._current_tag
        if self.project is None or tag is None:
            return None
        if new_name is None:
            new_name, ok = QInputDialog.getText(
                self, "Rename tag", f"New name for {tag.name!r}:", text=tag.name
            )
            if not ok or not new_name.strip() or new_name.strip() == tag.name:
                return None
        try:
            renamed = self.project.rename_tag(tag.id, new_name.strip())
        except TaggerError as exc:
            self.show_message("Cannot rename the tag", describe_error(exc))
            return None
        self.refresh()
        self.project_changed.emit()
        self.statusBar().showMessage(f"Renamed {tag.name!r} to {renamed.name!r}", 5000)
        return renamed

    def delete_tag(self, *, confirm: bool = True) -> bool:
        """Delete the current tag after asking (its labels are kept for undo); one undo step.

        Returns
        -------
        bool
            True if the tag was deleted.
        """
        tag = self._current_tag
        if self.project is None or tag is None:
            return False
        counts = self.tag_model.counts(tag.id)
        if confirm:
            labeled = counts["positive"] + counts["negative"]
            answer = QMessageBox.question(
                self,
                "Delete tag",
                f"Delete the tag {tag.name!r} and its {labeled} label(s)?\n\n"
                "Its sub-tags move up one level. Edit → Undo brings everything back.",
            )
            if answer != QMessageBox.StandardButton.Yes:
                return False
        try:
            self.project.delete_tag(tag.id)
        except TaggerError as exc:
            self.show_message("Cannot delete the tag", describe_error(exc))
            return False
        self.refresh()
        self.project_changed.emit()
        self.statusBar().showMessage(f"Deleted tag {tag.name!r} (Ctrl+Z brings it back)", 8000)
        return True

    # -- labeling from the library table -----------------------------------------------------

    def selected_track_ids(self) -> list[int]:
        """Track ids of the library table's selected rows (in view order)."""
        rows = sorted({i.row() for i in self.track_view.selectionModel().selectedRows()})
        ids = [self.track_model.index(r, 0).data(TrackIdRole) for r in rows]
        return [int(t) for t in ids if t is not None]

    def _track_context_menu(self, pos) -> None:
        ids = self.selected_track_ids()
        tag = self._current_tag
        if not ids or tag is None:
            return
        menu = QMenu(self)
        n = f"{len(ids)} tracks" if len(ids) > 1 else "this track"
        for text, value in (
            (f"Yes: {n} have {tag.name!r}", "positive"),
            (f"No: {n} do not have {tag.name!r}", "negative"),
            (f"Skip {n} for {tag.name!r}", "skip"),
        ):
            menu.addAction(text, lambda v=value: self.label_tracks(ids, v))
        menu.exec(self.track_view.viewport().mapToGlobal(pos))

    def label_tracks(self, track_ids: Sequence[int], value: str) -> bool:
        """Label tracks for the current tag (one undo step), e.g. rows found with the search.

        With a review session the panel labels them (so it refits); before
        one exists (nothing embedded yet) the window writes them itself.

        Parameters
        ----------
        track_ids : sequence of int
        value : {"positive", "negative", "skip"}
        """
        tag = self._current_tag
        if self.project is None or tag is None or not len(track_ids):
            return False
        if self.labeler is not None:
            return self.labeler(list(track_ids), value)
        try:
            self.project.set_labels(tag.name, list(track_ids), value)
        except TaggerError as exc:
            self.show_message("Cannot label", describe_error(exc))
            return False
        self.refresh()
        return True

    # -- the demo library ---------------------------------------------------------------------

    def show_demo_dialog(self, **options):
        """Start page → Try a demo library…: says what it downloads and where, then opens it.

        ``options`` go to :class:`DemoDialog` (packages, dest, downloads).
        """
        from tagger_gui.qt.demo_dialog import DemoDialog  # imported when first used

        dialog = DemoDialog(self.pool, self, **options)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.library_ready.connect(self.open_folder)
        dialog.open()
        return dialog

    # -- export -------------------------------------------------------------------------------

    def export_tags(self):
        """File → Export tags…: the CSV / write-back dialog (the same core code as the CLI)."""
        if self.project is None:
            return None
        from tagger_gui.qt.export_dialog import ExportDialog  # imported when first used

        dialog = ExportDialog(
            self.project,
            self.pool,
            cache_path=self.project.cache_path,
            features=features_for(self.backends),
            parent=self,
        )
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.filesRewritten.connect(self._on_files_rewritten)
        self.project_closing.connect(dialog.reject)
        dialog.open()
        return dialog

    def _on_files_rewritten(self, _outcome) -> None:
        if self.project is not None:
            self.track_model.set_tracks(self.project.tracks())
            self._load_current_labels(clear_scores=False)

    # -- undo, redo, refresh ----------------------------------------------------------------

    def undo(self) -> str | None:
        """Undo the project's last action; returns what was undone."""
        return self._undo_redo(undo=True)

    def redo(self) -> str | None:
        """Redo the last undone action; returns what was redone."""
        return self._undo_redo(undo=False)

    def _undo_redo(self, *, undo: bool) -> str | None:
        if self.project is None:
            return None
        try:
            done = self.project.undo() if undo else self.project.redo()
        except TaggerError as exc:
            self.show_message("Cannot undo" if undo else "Cannot redo", describe_error(exc))
            return None
        if done:
            self.statusBar().showMessage(f"{'Undid' if undo else 'Redid'}: {done}", 5000)
        self.refresh()
        self.project_changed.emit()
        return done

    def refresh(self) -> None:
        """Read tags, counts, the current tag's labels and the undo texts again.

        Call it after changing the project elsewhere (the review panel's
        labels). It does not emit :attr:`project_changed` (which only says
        that the window itself changed the project), so connecting that
        signal to a view whose changes call this cannot loop.
        """
        if self.project is None:
            return
        tag_id = None if self._current_tag is None else self._current_tag.id
        self.tag_model.refresh(self.project)
        row = -1 if tag_id is None else self.tag_model.row_of(tag_id)
        if row >= 0:
            tag = self.tag_model.tag(row)
            if self.tag_view.currentIndex().row() != row:
                self.tag_view.setCurrentIndex(self.tag_model.index(row))
            if tag != self._current_tag:  # renamed or recoloured
                self._set_current_tag(tag)
            else:  # new labels: the scores stay until the refit replaces them
                self._load_current_labels(clear_scores=False)
        else:  # the tag is gone (an undone creation)
            self.select_tag(None)
        self.update_undo_actions()

    def update_undo_actions(self) -> None:
        """Edit → Undo/Redo say what they would do, and are disabled when there is nothing."""
        project = self.project
        undo = project.undo_text if project is not None else None
        redo = project.redo_text if project is not None else None
        self.undo_action.setText(f"Undo {undo}" if undo else "Undo")
        self.undo_action.setEnabled(undo is not None)
        self.redo_action.setText(f"Redo {redo}" if redo else "Redo")
        self.redo_action.setEnabled(redo is not None)

    # -- search -----------------------------------------------------------------------------

    def _apply_search(self) -> None:
        self.track_model.set_search(self.search_edit.text())


def _read_tracks(project: Project):
    """A task: :func:`_read_tracks_now` in a worker (see ``MainWindow._read_tracks_then``)."""
    yield None
    return _read_tracks_now(project)


def _read_tracks_now(project: Project) -> tuple[TrackTable, list[str]]:
    """The project's track table and its search texts."""
    table = project.tracks()
    return table, search_texts(table)


def _sync_changed_tracks(report: SyncReport) -> bool:
    """Whether a sync added, changed, moved, lost or found back any track."""
    return bool(report.added or report.updated or report.moved or report.missing or report.returned)

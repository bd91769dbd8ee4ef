"""The "Try a demo library…" dialog: what will be downloaded, where, and the download.

It wraps :mod:`tagger_gui.core.demo`: the plan (:func:`describe_demo`, which
reads apt's package lists, so it runs in the worker pool) is shown as a
table of packages, versions, sizes and licences with the destination and a
"Change…" button; "Download" runs :func:`build_demo_task` in the pool with
a progress bar, and "Cancel" stops it at its next step (the next try
resumes). When the library is ready the dialog emits
:attr:`DemoDialog.library_ready` with its folder and closes.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..core.demo import (
    DEMO_PACKAGES,
    DemoPlan,
    DemoProgress,
    DemoReport,
    build_demo_task,
    default_demo_dir,
    demo_folder_in,
    describe_demo,
    megabytes,
)
from .worker import TaskWorker, WorkerPool, describe_error

__all__ = ["DemoDialog"]

INTRO = (
    "<p>No music at hand? This builds a small library from the soundtracks of a few "
    "free games, as Debian packages them. The packages are downloaded with "
    "<tt>apt-get download</tt> (nothing is installed); their music is kept whole and "
    "tagged (title, artist, album). The music is under free licences; each folder "
    "gets its copyright file, and a README.txt says where it all came from.</p>"
)
#: The progress bar's steps (the build's progress is in bytes, too large for an int bar).
BAR_STEPS = 1000


def _plan_task(packages: Sequence[str], dest: Path | None, downloads: Path | None):
    """describe_demo as a task (apt-cache can take a few seconds)."""
    return describe_demo(packages, dest, downloads=downloads)
    yield  # a generator: TaskWorker runs it in the pool


class DemoDialog(QDialog):
    """Shows the demo library's plan, downloads it, and says where it is.

    Parameters
    ----------
    pool : WorkerPool
        Where the plan and the build run (the interactive pool).
    parent : QWidget, optional
        The Qt parent.
    packages : sequence of str
        Debian packages; default :data:`~tagger_gui.core.demo.DEMO_PACKAGES`.
    dest : path, optional
        The library's folder; default
        :func:`~tagger_gui.core.demo.default_demo_dir`.
    downloads : path, optional
        Where ``.deb`` files are looked for and downloaded to (default
        ``dest/.downloads``).

    Signals
    -------
    library_ready(str)
        The library is complete: its folder (the window opens it).
    """

    library_ready = Signal(str)

    def __init__(
        self,
        pool: WorkerPool,
        parent: QWidget | None = None,
        *,
        packages: Sequence[str] = DEMO_PACKAGES,
        dest: str | os.PathLike | None = None,
        downloads: str | os.PathLike | None = None,
    ):
        super().__init__(parent)
        self.pool = pool
        self.packages = list(packages)
        self.dest = Path(dest) if dest else default_demo_dir()
        self.downloads = Path(downloads) if downloads else None
        #: The plan shown (None while it is read, or when it failed).
        self.plan: DemoPlan | None = None
        self._plan_worker: TaskWorker | None = None
        self._build: TaskWorker | None = None
        self._close_when_stopped = False

        self.setWindowTitle("Try a demo library")
        self.setModal(True)
        intro = QLabel(INTRO)
        intro.setWordWrap(True)
        intro.setTextFormat(Qt.TextFormat.RichText)

        self.table = QTableWidget(0, 4)
        self.table.setObjectName("demo_packages")
        self.table.setHorizontalHeaderLabels(["Debian package", "Version", "Download", "Licence"])
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.table.verticalHeader().hide()
        self.table.setWordWrap(True)
        header = self.table.horizontalHeader()
        for column in range(3):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(3, QHeaderView.ResizeMode.Stretch)

        self.dest_edit = QLineEdit(str(self.dest))
        self.dest_edit.setObjectName("demo_dest")
        self.dest_edit.setReadOnly(True)
        self.change_button = QPushButton("Change…")
        self.change_button.setToolTip("Put the demo library somewhere else")
        self.change_button.clicked.connect(self.choose_destination)
        where = QHBoxLayout()
        where.addWidget(QLabel("Destination:"))
        where.addWidget(self.dest_edit, 1)
        where.addWidget(self.change_button)

        #: What will be downloaded in all, and the free space.
        self.summary_label = QLabel()
        self.summary_label.setObjectName("demo_summary")
        self.summary_label.setWordWrap(True)
        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, BAR_STEPS)
        self.progress_bar.hide()
        #: What the build is doing (or did).
        self.status_label = QLabel()
        self.status_label.setObjectName("demo_status")
        self.status_label.setWordWrap(True)
        #: The last problem, in plain words.
        self.error_label = QLabel()
        self.error_label.setObjectName("demo_error")
        self.error_label.setWordWrap(True)
        self.error_label.setStyleSheet("color: #c62828")
        self.error_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.error_label.hide()

        self.download_button = QPushButton("Download")
        self.download_button.setDefault(True)
        self.download_button.setEnabled(False)
        self.download_button.clicked.connect(self.start_download)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop the download (what is done is kept), or close")
        self.cancel_button.clicked.connect(self.cancel)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.download_button)
        buttons.addWidget(self.cancel_button)

        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addWidget(self.table, 1)
        layout.addLayout(where)
        layout.addWidget(self.summary_label)
        layout.addWidget(self.progress_bar)
        layout.addWidget(self.status_label)
        layout.addWidget(self.error_label)
        layout.addLayout(buttons)
        self.resize(760, 460)
        self.describe()

    # -- state ------------------------------------------------------------------------------
    @property
    def is_building(self) -> bool:
        """True while the download/build runs."""
        return self._build is not None

    # -- the plan ---------------------------------------------------------------------------
    def describe(self, *, keep_error: bool = False) -> None:
        """(Re)read the plan for the current destination, in the pool.

        ``keep_error`` leaves the last problem shown (after a failed build).
        """
        self.plan = None
        self.download_button.setEnabled(False)
        if not keep_error:
            self.show_error("")
        self.summary_label.setText("Reading the package lists…")
        worker = TaskWorker(_plan_task(self.packages, self.dest, self.downloads))
        # bound methods, not closures: Qt drops the connections if the dialog goes first
        worker.result.connect(self._on_plan)
        worker.error.connect(self._on_plan_error)
        self._plan_worker = worker  # only the newest plan is shown
        self.pool.start(worker)

    def _on_plan(self, plan: DemoPlan) -> None:
        if self.sender() is not self._plan_worker:  # a plan for an earlier destination
            return
        self._plan_worker = None
        self.show_plan(plan)

    def _on_plan_error(self, exc: BaseException) -> None:
        if self.sender() is not self._plan_worker:
            return
        self._plan_worker = None
        self.summary_label.setText("")
        self.show_error(describe_error(exc))

    def show_plan(self, plan: DemoPlan) -> None:
        """Show ``plan``: a row per package, the destination, sizes and free space."""
        self.plan = plan
        self.table.setRowCount(len(plan.packages))
        for row, p in enumerate(plan.packages):
            size = megabytes(p.download_bytes)
            if p.built:
                size += " (done)"
            elif p.downloaded:
                size += " (downloaded)"
            cells = [p.name, p.version, size, p.licence]
            for column, text in enumerate(cells):
                item = QTableWidgetItem(text)
                tip = f"{p.description}\n{p.homepage}".strip() if column == 0 else text
                item.setToolTip(tip)
                self.table.setItem(row, column, item)
        self.table.resizeRowsToContents()
        self.dest_edit.setText(str(plan.dest))
        if plan.is_built:
            self.summary_label.setText(f"The demo library is already complete in {plan.dest}.")
            self.download_button.setText("Open")
        else:
            self.summary_label.setText(
                f"To download: {megabytes(plan.download_bytes)}. It needs up to "
                f"{megabytes(plan.needed_bytes)} of disk space while it is built "
                f"({megabytes(plan.free_bytes)} free there); the downloads are deleted "
                "afterwards. Running it again later continues where it stopped."
            )
            self.download_button.setText("Download")
        self.download_button.setEnabled(True)

    def choose_destination(self) -> None:
        """Ask where to put the library (a ``tagger-demo`` folder inside a non-empty one)."""
        start = self.dest.parent if not self.dest.is_dir() else self.dest
        folder = QFileDialog.getExistingDirectory(self, "Where to put the demo library", str(start))
        if folder:
            self.set_destination(demo_folder_in(folder))

    def set_destination(self, dest: str | os.PathLike) -> None:
        """Use ``dest`` as the library's folder and read the plan again."""
        self.dest = Path(dest)
        self.dest_edit.setText(str(self.dest))
        self.describe()

    # -- the build --------------------------------------------------------------------------
    def start_download(self) -> None:
        """Build the library in the pool (or, if it is complete, just open it)."""
        if self.plan is None or self.is_building:
            return
        if self.plan.is_built:
            self._finish(str(self.plan.dest))
            return
        self.show_error("")
        self.download_button.setEnabled(False)
        self.change_button.setEnabled(False)
        self.progress_bar.setValue(0)
        self.progress_bar.show()
        self.status_label.setText("Starting…")
        worker = TaskWorker(
            build_demo_task(self.plan.dest, packages=self.packages, downloads=self.downloads)
        )
        worker.progress.connect(self._on_progress)
        worker.result.connect(self._on_built)
        worker.error.connect(self._on_build_error)
        worker.cancelled.connect(self._on_cancelled)
        worker.finished.connect(self._on_build_finished)
        self._build = worker
        self.pool.start(worker)

    def _on_progress(self, p: DemoProgress) -> None:
        if p.total > 0:
            self.progress_bar.setValue(round(BAR_STEPS * p.done / p.total))
        self.status_label.setText(p.what)

    def _on_built(self, report: DemoReport) -> None:
        minutes, seconds = divmod(report.seconds, 60)
        self.status_label.setText(
            f"{report.tracks} tracks ready in {report.dest} "
            f"({megabytes(report.downloaded_bytes)} downloaded in "
            f"{int(minutes)} min {seconds:.0f} s)."
        )
        self.progress_bar.setValue(BAR_STEPS)
        self._finish(str(report.dest))

    def _on_build_error(self, exc: BaseException) -> None:
        self.show_error(describe_error(exc))
        self.status_label.setText("")

    def _on_cancelled(self) -> None:
        self.status_label.setText(
            "Stopped. Press Download to continue where it stopped (what is done is kept)."
        )

    def _on_build_finished(self) -> None:
        self._build = None
        self.change_button.setEnabled(True)
        self.cancel_button.setEnabled(True)
        if self._close_when_stopped:
            super().reject()
            return
        if self.result() != QDialog.DialogCode.Accepted:
            self.progress_bar.hide()
            self.describe(keep_error=True)  # what is done now (downloaded, built)

    def _finish(self, dest: str) -> None:
        self.library_ready.emit(dest)
        self.accept()

    # -- stopping and closing ---------------------------------------------------------------
    def cancel(self) -> None:
        """The Cancel button: stop a running build (the dialog stays), else close."""
        if self._build is None:
            self.reject()
            return
        self.cancel_button.setEnabled(False)
        self.status_label.setText("Stopping…")
        self._build.cancel()

    def reject(self) -> None:
        """Close (Esc, the window's close button); a running build is stopped first."""
        if self._build is not None:
            self._close_when_stopped = True
            self.cancel()
            return
        super().reject()

    def show_error(self, text: str) -> None:
        """Show ``text`` in red above the buttons (empty hides it)."""
        self.error_label.setText(text)
        self.error_label.setVisible(bool(text))

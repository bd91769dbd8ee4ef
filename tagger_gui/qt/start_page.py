"""The start page: open a music folder, one of the recent projects, or try a demo library.

It only asks; :class:`~tagger_gui.qt.main_window.MainWindow` opens. Recent
projects are the library folders of projects opened before, kept in
QSettings (:func:`recent_projects`, :func:`remember_project`).
"""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import QSettings, Qt, Signal
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

__all__ = ["MAX_RECENT", "RECENT_KEY", "StartPage", "recent_projects", "remember_project"]

#: The QSettings key of the recent projects (library folders, newest first).
RECENT_KEY = "recent_projects"
#: How many recent projects are kept.
MAX_RECENT = 10

_PathRole = Qt.ItemDataRole.UserRole + 1


def recent_projects(settings: QSettings | None = None) -> list[str]:
    """The recent projects' folders, newest first (those that still exist).

    Parameters
    ----------
    settings : QSettings, optional
        Default: the application's settings.
    """
    settings = settings or QSettings()
    value = settings.value(RECENT_KEY, [])
    # an INI file gives back a one-item list as a plain string
    paths = [value] if isinstance(value, str) else list(value or [])
    return [p for p in paths if isinstance(p, str) and os.path.isdir(p)]


def remember_project(path: str | os.PathLike, settings: QSettings | None = None) -> list[str]:
    """Put ``path`` first in the recent projects; returns the new list."""
    settings = settings or QSettings()
    path = os.path.abspath(path)
    paths = [path] + [p for p in recent_projects(settings) if p != path]
    paths = paths[:MAX_RECENT]
    settings.setValue(RECENT_KEY, paths)
    return paths


class StartPage(QWidget):
    """What the window shows while no project is open.

    Signals
    -------
    open_folder_clicked()
        The "Open music folder…" button was pressed (the window asks which).
    recent_chosen(str)
        A recent project was clicked: its folder.
    demo_requested()
        The "Try a demo library…" button was pressed (the window shows
        :class:`~tagger_gui.qt.demo_dialog.DemoDialog`).
    """

    open_folder_clicked = Signal()
    recent_chosen = Signal(str)
    demo_requested = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        title = QLabel("<h1>Tagger</h1><p>Few-shot tagging of your music library.</p>")
        title.setTextFormat(Qt.TextFormat.RichText)
        self.open_button = QPushButton("Open music folder…")
        self.open_button.setToolTip(
            "Choose a folder of music; its project is created in a .tagger folder inside it"
        )
        self.open_button.clicked.connect(self.open_folder_clicked)
        self.demo_button = QPushButton("Try a demo library…")
        self.demo_button.setObjectName("demo_button")
        self.demo_button.setToolTip(
            "No music at hand? Download a few free game soundtracks (Debian packages, "
            "about 400 MB) into a small library to try the app on; you see what and where first"
        )
        self.demo_button.clicked.connect(self.demo_requested)
        self.recent_label = QLabel("Recent projects")
        self.recent_list = QListWidget()
        self.recent_list.setObjectName("recent_list")
        self.recent_list.itemActivated.connect(self._chosen)
        self.recent_list.itemClicked.connect(self._chosen)
        #: Shows the last problem (a project open elsewhere...) in plain words.
        self.message_label = QLabel()
        self.message_label.setObjectName("start_message")
        self.message_label.setWordWrap(True)
        self.message_label.setStyleSheet("color: #c62828")
        self.message_label.hide()

        layout = QVBoxLayout(self)
        layout.setContentsMargins(48, 32, 48, 32)
        layout.addWidget(title)
        buttons = QHBoxLayout()
        buttons.addWidget(self.open_button)
        buttons.addWidget(self.demo_button)
        buttons.addStretch(1)
        layout.addLayout(buttons)
        layout.addWidget(self.message_label)
        how = QLabel(
            "<ol style='margin-left:0'>"
            "<li><b>Open a music folder.</b> Each track is analysed once by a pre-trained "
            "music model, in the background; you can start at once. Nothing is uploaded.</li>"
            "<li><b>Create a tag</b> (any word that matters to you: “sea shanty”, “8-bit”…) "
            "and mark a few tracks that have it (<b>Y</b>) and some that do not (<b>N</b>).</li>"
            "<li>After each mark the rest of the library is <b>ranked</b>; review what it "
            "proposes, and watch how reliable the tag already is.</li>"
            "<li><b>Export</b> the tags to a CSV file or into the files' own tags.</li>"
            "</ol>"
        )
        how.setTextFormat(Qt.TextFormat.RichText)
        how.setWordWrap(True)
        how.setMaximumWidth(760)
        self.how_label = how
        layout.addSpacing(8)
        layout.addWidget(how)
        layout.addSpacing(8)
        layout.addWidget(self.recent_label)
        layout.addWidget(self.recent_list, 1)

    def set_recent(self, paths: list[str]) -> None:
        """Show ``paths`` as the recent projects."""
        self.recent_list.clear()
        for path in paths:
            item = QListWidgetItem(f"{Path(path).name}    —    {path}")
            item.setData(_PathRole, path)
            item.setToolTip(path)
            self.recent_list.addItem(item)
        self.recent_label.setVisible(bool(paths))
        self.recent_list.setVisible(bool(paths))

    def recent(self) -> list[str]:
        """The folders listed, in order."""
        return [self.recent_list.item(i).data(_PathRole) for i in range(self.recent_list.count())]

    def show_message(self, text: str) -> None:
        """Show ``text`` under the button (empty hides it)."""
        self.message_label.setText(text)
        self.message_label.setVisible(bool(text))

    def _chosen(self, item: QListWidgetItem) -> None:
        self.recent_chosen.emit(item.data(_PathRole))

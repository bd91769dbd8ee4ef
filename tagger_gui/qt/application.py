"""The QApplication of the desktop app: its names (where QSettings live) and icon."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from PySide6.QtCore import QCoreApplication
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication

from tagger_gui.resources import resource_path

__all__ = ["APPLICATION", "ORGANIZATION", "create_app"]

ORGANIZATION = "tagger_gui"
APPLICATION = "tagger-gui"


def create_app(argv: Sequence[str] | None = None) -> QApplication:
    """The QApplication (the existing one if there is one), named for QSettings."""
    app = QApplication.instance()
    if app is None:
        app = QApplication([sys.argv[0] if sys.argv else APPLICATION, *(argv or [])])
        # names decide where QSettings live; tests set their own before this runs
        QCoreApplication.setOrganizationName(ORGANIZATION)
        QCoreApplication.setApplicationName(APPLICATION)
        QApplication.setApplicationDisplayName("Tagger")
        QApplication.setDesktopFileName("tagger-gui")  # Wayland: match tagger-gui.desktop
        icon = QIcon()  # PNG sizes: no dependence on Qt's SVG icon plugin
        for size in (16, 32, 48, 64, 128, 256):
            icon.addFile(str(resource_path(f"tagger-gui-{size}.png")))
        QApplication.setWindowIcon(icon)
    return app

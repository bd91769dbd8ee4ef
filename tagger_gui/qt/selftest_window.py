"""The Qt side of the self-test: the main-window check.

:func:`open_and_close_main_window` is the ``window_check`` that ``tagger
--self-test`` and ``tagger-gui --self-test`` pass to
:func:`tagger_gui.selftest.run_self_test` (which never imports the Qt layer).
"""

from __future__ import annotations

import os

from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QApplication

__all__ = ["open_and_close_main_window"]


def open_and_close_main_window() -> str:
    """Open the real main window, let it paint, close it; returns what was seen.

    Uses the running QApplication if there is one; otherwise creates one, on
    the offscreen platform when there is no display (and no
    ``QT_QPA_PLATFORM`` chosen). The window's settings are read but not
    written back, so the user's saved geometry is left alone.
    """
    if QApplication.instance() is None and not any(
        os.environ.get(v) for v in ("QT_QPA_PLATFORM", "DISPLAY", "WAYLAND_DISPLAY")
    ):
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
    from tagger_gui.qt.application import create_app
    from tagger_gui.qt.main_window import MainWindow

    app = create_app()
    window = MainWindow(workers=0)
    # closing saves the geometry: this test window's must not replace the user's
    window.save_settings = lambda: None
    try:
        window.show()
        for _ in range(5):
            app.processEvents()
        if not window.isVisible():
            raise RuntimeError("the main window did not become visible")
        size = window.size()
        if not window.close():
            raise RuntimeError("the main window refused to close")
        app.processEvents()
    finally:
        window.deleteLater()
        app.processEvents()
    return (
        f"MainWindow {size.width()}x{size.height()} opened and closed "
        f"(platform {QGuiApplication.platformName()})"
    )

"""The ``tagger-gui`` command: the QApplication and the main window.

``tagger-gui [MUSIC_DIR_OR_PROJECT]`` opens the folder's project (creating
it for a music folder seen for the first time); without an argument the
start page offers recent projects and "Open music folder…".
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from PySide6.QtCore import QCoreApplication, QTimer
from PySide6.QtWidgets import QApplication

from tagger_gui.qt.main_window import MainWindow
from tagger_gui.qt.session import ReviewSession

__all__ = ["create_app", "main"]

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
    return app


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tagger-gui", description="Few-shot tagging of a music library (desktop app)."
    )
    parser.add_argument(
        "path",
        nargs="?",
        metavar="MUSIC_DIR_OR_PROJECT",
        help="a music folder (its project is created if needed) or a project folder",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="decoding processes for embedding (default: TAGGER_GUI_WORKERS, else cores - 1)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the app; returns the exit status.

    Parameters
    ----------
    argv : sequence of str, optional
        The command-line arguments (default ``sys.argv[1:]``).
    """
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    app = create_app()
    window = MainWindow(workers=args.workers)
    ReviewSession(window)
    window.show()
    if args.path:
        # after the window is up, so a problem is shown over it
        QTimer.singleShot(0, window, lambda: window.open_folder(args.path))
    return app.exec()


if __name__ == "__main__":  # the embedding job's spawned workers import this module
    sys.exit(main())

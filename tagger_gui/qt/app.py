"""The ``tagger-gui`` command: the QApplication and the main window.

``tagger-gui [MUSIC_DIR_OR_PROJECT]`` opens the folder's project (creating
it for a music folder seen for the first time); without an argument the
start page offers recent projects and "Open music folder…".
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Sequence

from PySide6.QtCore import QTimer
from PySide6.QtGui import QGuiApplication

from tagger_gui.qt.application import create_app
from tagger_gui.qt.main_window import MainWindow
from tagger_gui.qt.session import ReviewSession

__all__ = ["create_app", "main"]


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
    parser.add_argument(
        "--self-test", action="store_true", help="check this install and exit (see tagger --help)"
    )
    return parser


def _write_ready(path: str) -> None:
    # the time the window was up, and the Qt platform it is on (tests check it is xcb)
    with open(path, "w", encoding="utf-8") as f:
        f.write(f"{time.time()}\n{QGuiApplication.platformName()}\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the app; returns the exit status.

    Parameters
    ----------
    argv : sequence of str, optional
        The command-line arguments (default ``sys.argv[1:]``).
    """
    args = _parser().parse_args(argv)
    if args.self_test:
        from tagger_gui.qt.selftest_window import open_and_close_main_window
        from tagger_gui.selftest import run_self_test

        return run_self_test(window_check=open_and_close_main_window)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    app = create_app()
    window = MainWindow(workers=args.workers)
    ReviewSession(window)
    window.show()
    ready_file = os.environ.get("TAGGER_GUI_READY_FILE")
    if ready_file:  # benchmarks/frozen_startup.py: the event loop runs with the window shown
        QTimer.singleShot(0, window, lambda: _write_ready(ready_file))
    if args.path:
        # after the window is up, so a problem is shown over it
        QTimer.singleShot(0, window, lambda: window.open_folder(args.path))
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())

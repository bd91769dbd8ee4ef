"""The ``tagger-gui`` program: check that a window can open, then start the app.

Nothing here imports PySide6 before :func:`tagger_gui.platform_check.startup_problem`
has said a window can open: a missing GUI extra, a missing display or missing
system libraries are told in one sentence with the fix, and the program exits
with status 1 instead of Qt's abort.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from tagger_gui.platform_check import GUI_EXTRA_HINT, pyside_dir, startup_problem

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Check that a window can open here, then run the app (:func:`tagger_gui.qt.app.main`)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if pyside_dir() is None:
        print(GUI_EXTRA_HINT, file=sys.stderr)
        return 1
    # --help needs no window; the self-test reports a platform problem as one of its checks
    if not any(a in ("-h", "--help", "--self-test") for a in args):
        problem = startup_problem()
        if problem is not None:
            print(problem, file=sys.stderr)
            return 1
    from tagger_gui.qt.app import main as app_main

    return app_main(args)


if __name__ == "__main__":
    sys.exit(main())

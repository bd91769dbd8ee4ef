"""Run the desktop app through its main states and save a PNG of each.

    python docs/screenshots/make_screenshots.py MUSIC_DIR [--out docs/screenshots]
        [--tag NAME --match TEXT] [--fresh 40]

The app runs on a real X server: under ``xvfb-run`` when there is no
``DISPLAY`` (Debian's ``xvfb`` package, which ``scripts/ci_system.sh``
installs). It works on a copy of ``MUSIC_DIR`` in a temporary folder (hard
links to the audio, a copy of its embedding cache if it has one, minus the
last ``--fresh`` files so that the embedding state has work to show) with
settings of its own, so neither the music folder nor your settings change.

The script acts as a user would: it opens the folder, waits for the
embedding, creates the tag ``--tag`` and goes through the review queue
pressing Y for tracks whose path, album or artist contains ``--match`` and N
for the others. Saved: ``start.png``, ``embedding.png``, ``review.png``,
``quality.png``, ``export.png``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SIZE = (1500, 900)


def _under_xvfb(argv: list[str]) -> int:
    """Run this script again under xvfb-run (a real X server for the xcb plugin)."""
    if shutil.which("xvfb-run") is None:
        sys.exit("no DISPLAY and no xvfb-run: install xvfb and xauth (scripts/ci_system.sh)")
    cmd = ["xvfb-run", "-a", "-s", "-screen 0 1920x1080x24", sys.executable, __file__, *argv]
    return subprocess.call(cmd, env={**os.environ, "TAGGER_SCREENSHOTS_XVFB": "1"})


def _copy_library(src: Path, dst: Path, fresh: int) -> None:
    """Hard-link the audio of ``src`` into ``dst``; copy its cache minus ``fresh`` files."""
    from tagger_gui.core.audio import AUDIO_EXTENSIONS
    from tagger_gui.core.cache import EmbeddingCache, default_cache_path

    files = sorted(
        p for p in src.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS
    )
    files = [p for p in files if ".tagger" not in p.relative_to(src).parts]
    for p in files:
        target = dst / p.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(p, target)
        except OSError:
            shutil.copy2(p, target)
    cache = default_cache_path(src)
    if cache.exists():
        copied = default_cache_path(dst)
        copied.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(cache, copied)
        keep = [p.relative_to(src).as_posix() for p in files[: max(0, len(files) - fresh)]]
        with EmbeddingCache.open(copied, mode="a", library_root=dst) as c:
            c.prune(keep)


def _wait(app, condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        app.processEvents()
        time.sleep(0.02)


def _pause(app, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.02)


def _save(widget, out: Path, name: str) -> None:
    path = out / name
    if not widget.grab().save(str(path)):
        raise SystemExit(f"could not write {path}")
    print(f"wrote {path}")


def run(args: argparse.Namespace) -> int:
    from PySide6.QtCore import QCoreApplication, QSettings, Qt

    from tagger_gui.qt.application import create_app
    from tagger_gui.qt.main_window import MainWindow
    from tagger_gui.qt.session import ReviewSession
    from tagger_gui.qt.start_page import remember_project
    from tagger_gui.qt.track_model import Column

    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="tagger-shots-"))
    try:
        QSettings.setDefaultFormat(QSettings.Format.IniFormat)
        QSettings.setPath(
            QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(work / "settings")
        )
        QCoreApplication.setOrganizationName("tagger_gui_screenshots")
        QCoreApplication.setApplicationName("tagger-gui")
        app = create_app()
        music = work / Path(args.music).resolve().name
        _copy_library(Path(args.music).resolve(), music, args.fresh)
        remember_project(music)

        window = MainWindow()
        session = ReviewSession(window)
        window.resize(*SIZE)
        window.show()
        _pause(app, 0.5)
        _save(window, out, "start.png")

        progress = []
        window.embedding_progress.connect(
            lambda p: progress.append(p) if p.stage == "embedding" else None
        )
        finished = []
        window.embedding_finished.connect(finished.append)
        window.open_folder(music)
        started = lambda: any(p.done >= 4 for p in progress) or finished  # noqa: E731
        _wait(app, started, 900, "the embedding to start")
        _wait(app, lambda: session.panel is not None or finished, 120, "the review panel")
        if not finished:
            _pause(app, 1.0)
            _save(window, out, "embedding.png")
        _wait(app, lambda: bool(finished), 1800, "the embedding to finish")
        _wait(app, lambda: session.panel is not None, 300, "the review panel")

        window.new_tag(args.tag)
        panel = session.panel
        _wait(app, lambda: panel.tag == args.tag, 30, "the tag")
        match = args.match.lower()
        project = window.project
        tracks = project.tracks()
        row_of = {int(t): i for i, t in enumerate(tracks.id.tolist())}

        def matches(track_id: int) -> bool:
            i = row_of[track_id]
            text = " ".join((tracks.relpath[i], tracks.album[i], tracks.artist[i])).lower()
            return match in text

        # the first positives: found with the search box, as a user would
        found = [t for t in row_of if matches(t)][:: max(1, len(row_of) // 200)][:3]
        if not found:
            raise SystemExit(f"no track matches {args.match!r}")
        panel.label_rows([panel.row_of_track(t) for t in found], "positive")
        # review the top of the ranking, then what it is unsure of, then the audit
        # sample (an unbiased check of precision), as the quality panel suggests
        plan = [("top", args.labels // 2), ("uncertain", args.labels // 4)]
        plan.append(("audit", args.labels - sum(n for _, n in plan)))
        for strategy, count in plan:
            panel.set_strategy(strategy)
            for _ in range(count):
                _wait(app, lambda: not panel.is_busy, 120, "a refit")
                track = panel.current_track_id()
                if track < 0:
                    break
                panel.label_selection("positive" if matches(track) else "negative")
                _pause(app, 0.05)
        panel.set_strategy("top")
        _wait(app, lambda: not panel.is_busy, 120, "a refit")
        header = window.track_view.horizontalHeader()
        header.setSortIndicator(Column.SCORE, Qt.SortOrder.DescendingOrder)
        _pause(app, 3.0)  # the current track decodes and draws
        _save(window, out, "review.png")

        quality = getattr(panel, "quality_panel", None)
        _save(quality if quality is not None else panel, out, "quality.png")

        dialog = window.export_tags()
        dialog.resize(900, 600)
        if hasattr(dialog, "tabs"):
            dialog.tabs.setCurrentIndex(1)
            if hasattr(dialog, "preview_button"):
                dialog.preview_button.click()
        _pause(app, 3.0)
        _save(dialog, out, "export.png")
        dialog.reject()
        window.close()
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("music", metavar="MUSIC_DIR")
    parser.add_argument("--out", default=str(HERE))
    parser.add_argument("--tag", default="Wesnoth")
    parser.add_argument("--match", default="wesnoth")
    parser.add_argument("--labels", type=int, default=32, help="queue tracks to label")
    parser.add_argument("--fresh", type=int, default=24, help="files left to embed")
    args = parser.parse_args(argv)
    if not os.environ.get("DISPLAY") and not os.environ.get("TAGGER_SCREENSHOTS_XVFB"):
        return _under_xvfb(argv)
    os.environ.setdefault("QT_QPA_PLATFORM", "xcb")
    return run(args)


if __name__ == "__main__":
    sys.exit(main())

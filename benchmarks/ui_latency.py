"""How long the GUI thread is blocked while the app embeds, refits, sorts and searches.

    python benchmarks/ui_latency.py [--clips 60] [--tracks 100000] [--strict] [--phases a b c]

A ``QTimer`` heartbeat (every 10 ms, precise) runs on the GUI thread of a real
:class:`MainWindow` + :class:`ReviewSession` (offscreen Qt, settings in a
temporary folder) and records the time between its ticks; a gap minus the
period is how long the event loop could not answer. Phases:

``a-embed``
    A real embedding run started from the window (``open_folder`` on a
    folder of generated music-like clips; musicnn-msd, decoding processes
    as the app sets them), until the review panel of that small project is
    ready.
``open-100k``
    Opening the synthetic 100,000-track project
    (``benchmarks/_synthetic_project.py``) until its review panel is ready
    (informative: part of the start-up, see ``startup.py``).
``b-labels``
    On the 100k project: a new tag, 30 labels from the keyboard (Y/N on the
    queue, one every 300 ms: human-fast), then one bulk label of 500 tracks
    (``ReviewPanel.label_rows``), waiting for the refits to finish.
``c-sort-search``
    Sorting the 100k table by score (descending, as a header click does),
    typing a search (one key every 80 ms) and clearing it, then 5 labels
    while the table is sorted by score.

For each phase: heartbeats, p50 / p99 / worst of (gap - period), and the
gaps over 100 ms. A watchdog thread samples the GUI thread's Python stack
(every 5 ms) whenever the heartbeat is late by more than 40 ms; for each
long gap the script prints where the GUI thread was (the innermost
``tagger_gui`` frame and the slot that led there) and what the other threads
were running, with the sampled milliseconds. Exit status 1 with ``--strict``
when a phase's worst gap exceeds 100 ms.
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks" / "out"
PERIOD_MS = 10
LIMIT_MS = 100.0
SAMPLE_S = 0.005
LATE_S = 0.040


# --- the heartbeat and the watchdog -------------------------------------------


class Heartbeat:
    """Tick times of a precise 10-ms QTimer on the GUI thread, by phase."""

    def __init__(self):
        from PySide6.QtCore import Qt, QTimer

        self.phase: str | None = None
        self.ticks: dict[str, list[float]] = collections.defaultdict(list)
        self.last = time.perf_counter()
        self.timer = QTimer()
        self.timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.timer.setInterval(PERIOD_MS)
        self.timer.timeout.connect(self._tick)
        self.timer.start()

    def _tick(self) -> None:
        now = time.perf_counter()
        self.last = now
        if self.phase is not None:
            self.ticks[self.phase].append(now)

    def start(self, phase: str) -> None:
        self.phase = phase
        self.ticks[phase].append(time.perf_counter())

    def stop(self) -> None:
        if self.phase is not None:
            self.ticks[self.phase].append(time.perf_counter())
        self.phase = None


def _frame_name(frame) -> str:
    code = frame.f_code
    path = code.co_filename
    if "tagger_gui" in path:
        path = "tagger_gui" + path.rsplit("tagger_gui", 1)[1]
    else:
        path = Path(path).name
    return f"{code.co_name} ({path}:{frame.f_lineno})"


def _summarise_stack(frame) -> tuple[str, str]:
    """(innermost tagger_gui frame or innermost frame, outermost tagger_gui frame)."""
    frames = []
    while frame is not None:
        frames.append(frame)
        frame = frame.f_back
    ours = [
        f
        for f in frames
        if "tagger_gui" in f.f_code.co_filename and "benchmarks" not in f.f_code.co_filename
    ]
    inner = _frame_name(frames[0]) if frames else "?"
    if ours:
        here = _frame_name(ours[0])
        inner = here if here == inner else f"{inner} <- {here}"
        return inner, _frame_name(ours[-1])
    return inner, inner


class Watchdog(threading.Thread):
    """Samples the GUI thread's stack while the heartbeat is late."""

    def __init__(self, beat: Heartbeat):
        super().__init__(daemon=True)
        self.beat = beat
        self.gui = threading.get_ident()
        self.gui_stat = f"/proc/self/task/{threading.get_native_id()}/stat"
        self.samples: list[tuple[float, str, str, tuple[str, ...], str]] = []
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.wait(SAMPLE_S):
            now = time.perf_counter()
            if self.beat.phase is None or now - self.beat.last < LATE_S:
                continue
            frames = sys._current_frames()
            gui = frames.get(self.gui)
            if gui is None:
                continue
            inner, outer = _summarise_stack(gui)
            others = tuple(
                _summarise_stack(f)[0]
                for ident, f in frames.items()
                if ident not in (self.gui, threading.get_ident())
                and "threading.py" not in f.f_code.co_filename  # idle pool threads wait there
            )
            self.samples.append((now, inner, outer, others, self._gui_state()))

    def _gui_state(self) -> str:
        """The GUI thread's scheduler state: R running or runnable, S waiting (a lock: the GIL)."""
        try:
            with open(self.gui_stat) as fh:
                return fh.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            return "?"

    def stop(self) -> None:
        self._halt.set()
        self.join()


# --- driving the app --------------------------------------------------------------


def _make_clips(folder: Path, n: int) -> Path:
    """``n`` music-like clips of 8-20 s (FLAC, 22.05 kHz stereo); reused when present."""
    import soundfile as sf

    marker = folder / ".complete"
    if marker.exists() and marker.read_text() == str(n):
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    rng = np.random.default_rng(0)
    sr = 22050
    for i in range(n):
        seconds = float(rng.uniform(8, 20))
        t = np.arange(int(seconds * sr)) / sr
        f0 = 110 * 2 ** (rng.integers(0, 24) / 12)
        tone = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 5))
        beat = (np.sin(2 * np.pi * rng.uniform(1, 3) * t) > 0.7).astype(float)
        noise = rng.standard_normal(len(t)) * beat * 0.3
        y = 0.2 * (tone + noise)
        stereo = np.stack([y, np.roll(y, 100)], axis=1).astype(np.float32)
        path = folder / f"album {i // 10:02d}" / f"clip {i:03d}.flac"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, stereo, sr, format="FLAC", subtype="PCM_16")
    marker.write_text(str(n))
    return folder


class Script:
    """Runs a generator of steps on the event loop.

    A step yields a number (milliseconds to wait) or a callable (polled every
    20 ms until it returns true); the event loop runs meanwhile.
    """

    def __init__(self, app, steps, timeout_s: float = 900):
        from PySide6.QtCore import QTimer

        self.app = app
        self.steps = steps
        self.error: BaseException | None = None
        self.deadline = time.monotonic() + timeout_s
        QTimer.singleShot(0, self._next)

    def _next(self) -> None:
        from PySide6.QtCore import QTimer

        try:
            step = next(self.steps)
        except StopIteration:
            self.app.quit()
            return
        except BaseException as exc:
            self.error = exc
            traceback.print_exc()
            self.app.quit()
            return
        if callable(step):
            self._poll(step)
        else:
            QTimer.singleShot(int(step), self._next)

    def _poll(self, predicate) -> None:
        from PySide6.QtCore import QTimer

        try:
            done = predicate()
        except BaseException as exc:
            self.error = exc
            self.app.quit()
            return
        if time.monotonic() > self.deadline:
            self.error = TimeoutError(f"gave up waiting for {predicate}")
            self.app.quit()
        elif done:
            QTimer.singleShot(0, self._next)
        else:
            QTimer.singleShot(20, lambda: self._poll(predicate))


def run(args) -> int:
    from PySide6.QtCore import QSettings, Qt
    from PySide6.QtTest import QTest

    from tagger_gui.qt.application import create_app

    app = create_app()
    settings = tempfile.mkdtemp(prefix="ui-latency-settings-")
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    for fmt in (QSettings.Format.IniFormat, QSettings.Format.NativeFormat):
        for scope in (QSettings.Scope.UserScope, QSettings.Scope.SystemScope):
            QSettings.setPath(fmt, scope, settings)

    from tagger_gui.qt.main_window import MainWindow
    from tagger_gui.qt.session import ReviewSession
    from tagger_gui.qt.track_model import Column

    messages: list[str] = []
    window = MainWindow(show_message=lambda t, m: messages.append(f"{t}: {m}"))
    session = ReviewSession(window)
    window.show()
    beat = Heartbeat()
    dog = Watchdog(beat)
    dog.start()
    events: list[str] = []

    sys.path.insert(0, str(REPO / "benchmarks"))
    from _synthetic_project import build, out_dir

    big = build(out_dir(args.tracks), n_tracks=args.tracks)
    clips = _make_clips(OUT / "latency_clips", args.clips)

    def panel_ready():
        if messages and window.project is None:  # e.g. the project is open in another process
            raise RuntimeError(messages[-1])
        return session.panel is not None

    def refits_done():
        return session.panel is not None and not session.panel.is_busy

    def steps():
        if "a" in args.phases:
            shutil.rmtree(clips / ".tagger", ignore_errors=True)  # embed from scratch
            finished = []
            window.embedding_finished.connect(finished.append)
            beat.start("a-embed")
            t = time.perf_counter()
            window.open_folder(clips)
            yield lambda: bool(finished)
            report = finished[0]
            if report is None:
                raise RuntimeError(f"the embedding failed: {messages}")
            yield panel_ready
            beat.stop()
            events.append(
                f"a-embed: {report.embedded} clips embedded, panel ready after "
                f"{time.perf_counter() - t:.1f} s"
            )
            window.embedding_finished.disconnect(finished.append)
            window.close_project()
            yield 500
        if not ({"b", "c"} & set(args.phases)):
            return
        beat.start("open-100k")
        t = time.perf_counter()
        window.open_folder(big)
        yield panel_ready
        beat.stop()
        events.append(f"open-100k: panel ready after {time.perf_counter() - t:.1f} s")
        yield 500
        panel = session.panel
        tag_name = f"bench {time.strftime('%H%M%S')}"
        if "b" in args.phases:
            beat.start("b-labels")
            t = time.perf_counter()
            window.new_tag(tag_name)
            yield lambda: panel.tag == tag_name
            panel.queue.setFocus()
            for i in range(30):
                key = Qt.Key.Key_Y if i < 5 or i % 3 else Qt.Key.Key_N
                QTest.keyClick(panel.queue, key)
                yield 300
            yield refits_done
            y = panel.labels()
            rows = np.flatnonzero(y == -1)[:500].tolist()
            panel.label_rows(rows, "negative")
            yield 200
            yield refits_done
            beat.stop()
            labeled = int((panel.labels() != -1).sum())
            events.append(
                f"b-labels: {labeled} tracks labeled; done after {time.perf_counter() - t:.1f} s"
            )
            yield 300
        if "c" in args.phases:
            if panel.tag is None:
                window.new_tag(tag_name)
                yield lambda: panel.tag == tag_name
            beat.start("c-sort-search")
            window.track_view.sortByColumn(Column.SCORE, Qt.SortOrder.DescendingOrder)
            yield 500
            window.search_edit.setFocus()
            for ch in "blue river":
                QTest.keyClick(window.search_edit, ch)
                yield 80
            yield 800
            events.append(f"c: search shows {window.track_proxy.rowCount()} rows")
            window.search_edit.clear()
            yield 800
            panel.queue.setFocus()
            for _ in range(5):
                QTest.keyClick(panel.queue, Qt.Key.Key_N)
                yield 300
            yield refits_done
            yield 300
            beat.stop()
        if window.project is not None and window.project.has_tag(tag_name):
            window.project.delete_tag(tag_name)  # leave the synthetic project as it was

    script = Script(app, steps())
    app.exec()
    dog.stop()
    beat.timer.stop()
    window.close()
    shutil.rmtree(settings, ignore_errors=True)
    if script.error is not None:
        print(f"the script failed: {script.error!r}; messages: {messages}")
        return 2

    print(f"load average (1 min) at the end: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    for line in events:
        print(f"  {line}")
    print(f"\nGUI-thread heartbeat every {PERIOD_MS} ms; lateness = gap - period (ms):")
    print(f"  {'phase':15s} {'beats':>6s} {'p50':>7s} {'p99':>7s} {'worst':>7s} {'>100ms':>7s}")
    failed = False
    long_gaps = []
    for phase, ticks in beat.ticks.items():
        t = np.asarray(ticks)
        late = np.diff(t) * 1000 - PERIOD_MS
        if not len(late):
            continue
        over = np.flatnonzero(late > LIMIT_MS)
        worst = float(late.max())
        gate = phase != "open-100k"  # start-up is startup.py's figure
        failed |= gate and worst > LIMIT_MS
        print(
            f"  {phase:15s} {len(t) - 1:6d} {np.percentile(late, 50):7.1f} "
            f"{np.percentile(late, 99):7.1f} {worst:7.0f} {len(over):7d}"
            + ("" if gate else "   (start-up: not gated)")
        )
        for i in over:
            long_gaps.append((phase, t[i], t[i + 1]))
    if long_gaps:
        print(
            f"\nwhere the GUI thread was during gaps over {LIMIT_MS:.0f} ms (sampled every 5 ms):"
        )
    for phase, lo, hi in sorted(long_gaps, key=lambda g: g[1] - g[2])[: args.show]:
        inside = [s for s in dog.samples if lo <= s[0] <= hi]
        print(f"  [{phase}] {1000 * (hi - lo):.0f} ms gap at +{lo - beat.ticks[phase][0]:.1f} s:")
        states = collections.Counter(s[4] for s in inside)
        if inside:
            print(
                "      GUI thread state when sampled: "
                + ", ".join(f"{k} {100 * n / len(inside):.0f}%" for k, n in states.most_common())
                + "  (R: running or waiting for a CPU; S: waiting, e.g. for the GIL)"
            )
        gui = collections.Counter((s[1], s[2]) for s in inside)
        for (inner, outer), n in gui.most_common(3):
            via = "" if inner.endswith(outer) or inner == outer else f"\n        via {outer}"
            print(f"      GUI {n * SAMPLE_S * 1000:4.0f} ms  {inner}{via}")
        others = collections.Counter(o for s in inside for o in s[3])
        for name, n in others.most_common(2):
            print(f"      bg  {n * SAMPLE_S * 1000:4.0f} ms  {name}")
    if len(long_gaps) > args.show:
        print(f"  ... and {len(long_gaps) - args.show} more")
    if messages:
        print(f"\nmessages shown by the app: {messages[:5]}")
    return 1 if failed and args.strict else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=60, help="clips embedded in phase a")
    parser.add_argument("--tracks", type=int, default=100_000)
    parser.add_argument("--phases", nargs="+", default=["a", "b", "c"], choices=["a", "b", "c"])
    parser.add_argument("--strict", action="store_true", help="exit 1 if a gap exceeds 100 ms")
    parser.add_argument("--show", type=int, default=12, help="long gaps explained")
    args = parser.parse_args(argv)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    return run(args)


if __name__ == "__main__":
    sys.exit(main())

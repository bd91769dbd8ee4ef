"""Start-up time of the frozen desktop app (dist/tagger/tagger-gui) to an interactive window.

    python benchmarks/frozen_startup.py [--runs 7] [--app dist/tagger/tagger-gui]

Each run starts the program in a fresh process, from a temporary folder,
with an emptied environment (``PATH=/usr/bin:/bin``, ``HOME`` a temporary
folder, so the start page shows and the user's settings are not read) and
``TAGGER_GUI_READY_FILE`` set: once the main window is shown and the event
loop answers a 0-ms timer, the app writes the time into that file
(:func:`tagger_gui.qt.app.main`). The figure is that time minus the time
just before the process was started; the process is then terminated.

Qt runs offscreen unless ``DISPLAY`` is set (then on xcb). The unfrozen app
(``.venv/bin/python -m tagger_gui.qt.app``) is measured the same way in the
same run, as the baseline. The first run of each is reported apart: it may
read the files from disk rather than from the page cache (a first launch
after download is slower than the figures here). Target: median under 3 s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_SECONDS = 3.0


def time_to_window(cmd: list[str], *, timeout: float = 120.0) -> float:
    """Seconds from launching ``cmd`` to its main window being shown and responsive."""
    with tempfile.TemporaryDirectory(prefix="tagger-startup-") as tmp:
        ready = Path(tmp) / "ready"
        env = {
            "HOME": tmp,
            "PATH": "/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "TAGGER_GUI_READY_FILE": str(ready),
        }
        if os.environ.get("DISPLAY"):
            env["DISPLAY"] = os.environ["DISPLAY"]
            env["XAUTHORITY"] = os.environ.get("XAUTHORITY", "")
        else:
            env["QT_QPA_PLATFORM"] = "offscreen"
        start = time.time()
        proc = subprocess.Popen(
            cmd, cwd=tmp, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        try:
            while not (ready.is_file() and ready.read_text().endswith("\n")):
                if proc.poll() is not None:
                    raise SystemExit(f"{cmd[0]} exited ({proc.returncode}):\n{proc.stderr.read()}")
                if time.time() - start > timeout:
                    raise SystemExit(f"{cmd[0]}: no window after {timeout:.0f} s")
                time.sleep(0.01)
            return float(ready.read_text()) - start
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            proc.stderr.close()


def measure(label: str, cmd: list[str], runs: int) -> dict[str, float]:
    first = time_to_window(cmd)
    rest = [time_to_window(cmd) for _ in range(runs)]
    row = {
        "first": first,
        "median": statistics.median(rest),
        "worst": max(rest),
        "best": min(rest),
    }
    print(
        f"{label:<10} first {row['first']:5.2f} s | next {runs}: median {row['median']:5.2f} s, "
        f"best {row['best']:5.2f} s, worst {row['worst']:5.2f} s",
        flush=True,
    )
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7, help="runs after the first (default 7)")
    parser.add_argument("--app", type=Path, default=ROOT / "dist" / "tagger" / "tagger-gui")
    parser.add_argument("--no-baseline", action="store_true", help="skip the unfrozen app")
    args = parser.parse_args()
    if not os.access(args.app, os.X_OK):
        raise SystemExit(f"{args.app}: not built (bash scripts/build_app.sh)")
    print(f"time to an interactive window; {os.cpu_count()} CPUs; target {TARGET_SECONDS:g} s")
    frozen = measure("frozen", [str(args.app.resolve())], args.runs)
    if not args.no_baseline:
        measure(
            "unfrozen",
            [str(ROOT / ".venv" / "bin" / "python"), "-m", "tagger_gui.qt.app"],
            args.runs,
        )
    ok = frozen["median"] < TARGET_SECONDS
    print(f"frozen median {frozen['median']:.2f} s: {'under' if ok else 'OVER'} the target")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

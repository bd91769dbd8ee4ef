"""``tagger-gui`` on a machine that cannot show its window: one sentence with the fix, exit 1.

The missing-library cases hide real system libraries from a real
``tagger-gui`` process: in a private mount namespace (``unshare -m``, root
only) a hard-linked copy of the system's library folder without those files
is mounted over the original, so the dynamic loader cannot find them, as on
a desktop where the package was never installed. The other tests run the real
program too: without PySide6 importable, without a display, and on a real X
server (Xvfb) with the xcb platform, where the window must open.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tagger_gui import platform_check as pc

BIN = Path(sys.executable).parent
SYSTEM_LIBS = Path("/usr/lib/x86_64-linux-gnu")
HIDDEN = ("libxcb-cursor.so.0", "libxcb-icccm.so.4")


def _clean_env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("QT_QPA_PLATFORM", "DISPLAY", "WAYLAND_DISPLAY", "XDG_SESSION_TYPE")
    }
    env.update(extra)
    return env


def test_the_platform_is_chosen_as_qt_chooses_it():
    assert pc.chosen_platform({"QT_QPA_PLATFORM": "offscreen"}) == "offscreen"
    assert pc.chosen_platform({"QT_QPA_PLATFORM": "wayland;xcb", "DISPLAY": ":0"}) == "wayland"
    assert pc.chosen_platform({"QT_QPA_PLATFORM": "xcb:nograb"}) == "xcb"
    assert pc.chosen_platform({"DISPLAY": ":0"}) == "xcb"
    assert pc.chosen_platform({"WAYLAND_DISPLAY": "wayland-0", "DISPLAY": ":0"}) == "wayland"
    # an X11 session that also runs a Wayland compositor's socket stays on X11
    session = {"WAYLAND_DISPLAY": "wayland-0", "DISPLAY": ":0", "XDG_SESSION_TYPE": "x11"}
    assert pc.chosen_platform(session) == "xcb"
    assert pc.chosen_platform({}) is None


def test_packages_are_named_for_missing_libraries():
    assert pc._install_command(["libxcb-cursor.so.0", "libxcb-icccm.so.4"]) == (
        "sudo apt-get install libxcb-cursor0 libxcb-icccm4"
    )
    assert "the packages that provide libweird.so.3" in pc._install_command(["libweird.so.3"])


def test_a_library_that_cannot_load_is_found_missing(tmp_path):
    # a real shared object whose dependency is absent: the loader's own verdict
    src = tmp_path / "dep.c"
    src.write_text("int dep(void) { return 1; }\n")
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler to build a test library")
    subprocess.run(
        [
            cc,
            "-shared",
            "-fPIC",
            "-o",
            tmp_path / "libtaggerdep.so.1",
            src,
            "-Wl,-soname,libtaggerdep.so.1",
        ],
        check=True,
    )
    user = tmp_path / "user.c"
    user.write_text("int dep(void); int use(void) { return dep(); }\n")
    subprocess.run(
        [
            cc,
            "-shared",
            "-fPIC",
            "-o",
            tmp_path / "libuser.so",
            user,
            f"-L{tmp_path}",
            "-l:libtaggerdep.so.1",
        ],
        check=True,
    )
    (tmp_path / "libtaggerdep.so.1").unlink()
    assert pc.missing_libraries(tmp_path / "libuser.so") == ["libtaggerdep.so.1"]
    assert pc.missing_libraries(Path(sys.executable).resolve()) == []


def test_without_pyside6_tagger_gui_says_how_to_install_it():
    code = (
        "import sys; sys.modules['PySide6'] = None\n"  # PySide6 cannot be imported
        "from tagger_gui.gui_launcher import main\n"
        "sys.exit(main([]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=_clean_env(DISPLAY=":0")
    )
    assert done.returncode == 1
    assert "pip install 'tagger-gui[gui]'" in done.stderr
    assert "Traceback" not in done.stderr and "ModuleNotFoundError" not in done.stderr


def test_without_a_display_tagger_gui_says_so(tmp_path):
    done = subprocess.run(
        [BIN / "tagger-gui", str(tmp_path)], capture_output=True, text=True, env=_clean_env()
    )
    assert done.returncode == 1, done.stderr
    assert "there is no display" in done.stderr and "tagger embed" in done.stderr
    assert "qt.qpa" not in done.stderr


def _in_namespace_without(libraries: tuple[str, ...], tmp_path: Path, command: str, env: dict):
    """Run ``command`` (sh) where ``libraries`` cannot be loaded; the CompletedProcess."""
    if os.geteuid() != 0 or shutil.which("unshare") is None or not SYSTEM_LIBS.is_dir():
        pytest.skip("needs root and unshare to hide system libraries (CI runs as root)")
    present = [name for name in libraries if (SYSTEM_LIBS / name).exists()]
    if len(present) != len(libraries):
        pytest.fail(f"{set(libraries) - set(present)} not installed: run scripts/ci_system.sh")
    copy = tmp_path / "libs"
    subprocess.run(["cp", "-al", str(SYSTEM_LIBS), str(copy)], check=True)
    for name in libraries:
        for f in copy.glob(name + "*"):
            f.unlink()
    script = f"mount --bind {copy} {SYSTEM_LIBS} && {command}"
    return subprocess.run(
        ["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, env=env, timeout=120
    )


def test_missing_xcb_libraries_give_one_sentence_and_exit_1(tmp_path):
    done = _in_namespace_without(
        HIDDEN, tmp_path, f"'{BIN / 'tagger-gui'}' '{tmp_path}'", _clean_env(DISPLAY=":99")
    )
    assert done.returncode == 1, (done.returncode, done.stderr)
    message = done.stderr.strip()
    assert len(message.splitlines()) == 1
    assert "cannot open a window on X11" in message
    assert "sudo apt-get install libxcb-cursor0 libxcb-icccm4" in message
    assert "QT_QPA_PLATFORM=wayland" in message
    # Qt never started: no plugin abort, no core dump
    assert "qt.qpa.plugin" not in done.stderr and "Aborted" not in done.stderr
    assert not (tmp_path / ".tagger").exists()


def test_the_self_test_names_the_missing_system_libraries(tmp_path):
    code = (
        "from tagger_gui.selftest import check_system_libraries, CheckFailed\n"
        "try:\n    check_system_libraries()\nexcept CheckFailed as e:\n    print(e)\n"
    )
    done = _in_namespace_without(
        HIDDEN, tmp_path, f"'{sys.executable}' -c \"{code}\"", _clean_env()
    )
    assert done.returncode == 0, done.stderr
    assert "xcb: libxcb-cursor.so.0, libxcb-icccm.so.4" in done.stdout
    assert "sudo apt-get install libxcb-cursor0 libxcb-icccm4" in done.stdout


def test_the_window_opens_on_a_real_x_server(tmp_path):
    """With the libraries present, the same command opens its window on xcb (Xvfb)."""
    if shutil.which("xvfb-run") is None:
        pytest.fail("xvfb-run is missing: run scripts/ci_system.sh")
    assert pc.platform_problems("xcb") == [], "run scripts/ci_system.sh"
    music = tmp_path / "Music"
    music.mkdir()
    ready = tmp_path / "ready"
    env = _clean_env(
        TAGGER_GUI_READY_FILE=str(ready),
        XDG_CONFIG_HOME=str(tmp_path / "config"),  # the user's settings are not touched
        XDG_DATA_HOME=str(tmp_path / "data"),
        TAGGER_GUI_WORKERS="0",
    )
    proc = subprocess.Popen(
        ["xvfb-run", "-a", "-s", "-screen 0 1280x800x24", str(BIN / "tagger-gui"), str(music)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 90
        while not ready.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert ready.exists(), proc.stdout.read() if proc.poll() is not None else "timeout"
        time.sleep(0.3)
        lines = ready.read_text().split()
        assert lines[1] == "xcb"
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=30)

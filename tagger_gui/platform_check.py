"""Can a window open here? Checked before PySide6 is imported (``tagger-gui``, self-test).

Qt aborts the process (exit 134, a core dump) when its platform plugin cannot
load, with a message about plugins that does not say what to install. So
before PySide6 is imported this module checks, without importing it:

- that PySide6 is installed at all (``pip install 'tagger-gui[gui]'``);
- which platform Qt will use (``QT_QPA_PLATFORM``, else Wayland or X11 from
  the session's variables), that there is a display for it, and that the
  system libraries its plugin links are present (``ldd`` on the plugin, or
  loading it when there is no ``ldd``).

A problem is printed as one sentence naming the missing Debian/Ubuntu
packages and the command that installs them, with the alternatives, and the
program exits with status 1. ``tagger --self-test`` runs the same checks
(:func:`platform_problems`). :mod:`tagger_gui.gui_launcher` runs
:func:`startup_problem` before it imports the app.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

__all__ = [
    "GUI_EXTRA_HINT",
    "LIBRARY_PACKAGES",
    "chosen_platform",
    "missing_libraries",
    "platform_plugin",
    "platform_problems",
    "pyside_dir",
    "startup_problem",
]

GUI_EXTRA_HINT = (
    "tagger-gui needs the desktop part of tagger_gui (PySide6 and sounddevice), which is not "
    "installed: run bash scripts/install.sh in the source folder, or pip install "
    "'tagger-gui[gui]'; the command line (tagger embed, tagger label, ...) works without it"
)

#: shared library (soname) -> the Debian/Ubuntu package that ships it
LIBRARY_PACKAGES = {
    "libxcb-cursor.so.0": "libxcb-cursor0",
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-xkb.so.1": "libxcb-xkb1",
    "libxcb-xfixes.so.0": "libxcb-xfixes0",
    "libxcb-sync.so.1": "libxcb-sync1",
    "libxcb-shm.so.0": "libxcb-shm0",
    "libxcb-render.so.0": "libxcb-render0",
    "libxcb-util.so.1": "libxcb-util1",
    "libxcb.so.1": "libxcb1",
    "libX11-xcb.so.1": "libx11-xcb1",
    "libX11.so.6": "libx11-6",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    "libxkbcommon.so.0": "libxkbcommon0",
    "libEGL.so.1": "libegl1",
    "libGL.so.1": "libgl1",
    "libfontconfig.so.1": "libfontconfig1",
    "libfreetype.so.6": "libfreetype6",
    "libdbus-1.so.3": "libdbus-1-3",
    "libglib-2.0.so.0": "libglib2.0-0",
    "libwayland-client.so.0": "libwayland-client0",
    "libwayland-cursor.so.0": "libwayland-cursor0",
    "libportaudio.so.2": "libportaudio2",
}

_BUNDLED = ("libQt6", "libpyside6", "libshiboken6")
_PLATFORM_NAMES = {"xcb": "X11 (Qt's xcb platform)", "wayland": "Wayland"}
_NOT_FOUND = re.compile(r"^\s*(\S+)\s+=>\s+not found", re.M)
_DLOPEN_ERROR = re.compile(r"(\S+\.so[.\d]*): cannot open shared object file")


def chosen_platform(environ: dict[str, str] | None = None) -> str | None:
    """The Qt platform plugin the app will load, as Qt picks it; None without a display."""
    env = os.environ if environ is None else environ
    explicit = env.get("QT_QPA_PLATFORM", "").strip()
    if explicit:
        # "wayland;xcb" is a list of fall-backs; "xcb:option" carries options
        return explicit.split(";")[0].split(":")[0].strip()
    if env.get("WAYLAND_DISPLAY") and env.get("XDG_SESSION_TYPE", "wayland") == "wayland":
        return "wayland"
    if env.get("DISPLAY"):
        return "xcb"
    if env.get("WAYLAND_DISPLAY"):
        return "wayland"
    return None


def pyside_dir() -> Path | None:
    try:
        spec = importlib.util.find_spec("PySide6")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def platform_plugin(name: str) -> Path | None:
    """The file of Qt's platform plugin ``name`` (``libq<name>.so``) in PySide6, if present."""
    folder = pyside_dir()
    if folder is None:
        return None
    path = folder / "Qt" / "plugins" / "platforms" / f"libq{name}.so"
    return path if path.is_file() else None


def missing_libraries(library: Path) -> list[str]:
    """The shared libraries ``library`` needs that the system cannot load (sonames).

    Uses ``ldd`` (every missing library at once); where there is no ``ldd``,
    loads the file and reads the first missing name from the loader's error.
    """
    ldd = shutil.which("ldd")
    if ldd is not None:
        try:
            done = subprocess.run(
                [ldd, str(library)], capture_output=True, text=True, timeout=30, check=False
            )
        except (OSError, subprocess.TimeoutExpired):
            done = None
        if done is not None and (done.returncode == 0 or "not found" in done.stdout):
            return list(dict.fromkeys(_NOT_FOUND.findall(done.stdout)))
    try:
        ctypes.CDLL(str(library), mode=os.RTLD_LAZY)
    except OSError as exc:
        found = _DLOPEN_ERROR.search(str(exc))
        return [found.group(1) if found else str(exc)]
    return []


def _install_command(sonames: Sequence[str]) -> str:
    packages = [LIBRARY_PACKAGES[s] for s in sonames if s in LIBRARY_PACKAGES]
    unknown = [s for s in sonames if s not in LIBRARY_PACKAGES]
    command = f"sudo apt-get install {' '.join(dict.fromkeys(packages))}" if packages else ""
    if unknown:
        extra = f"the packages that provide {', '.join(unknown)}"
        command = f"{command} and {extra}" if command else f"install {extra}"
    return command


def platform_problems(platform: str) -> list[str]:
    """The sonames missing for Qt's ``platform`` plugin (empty if it can load)."""
    plugin = platform_plugin(platform)
    if plugin is None:
        return []  # not a plugin file we can check (Qt says so itself if it is unknown)
    # Qt's own libraries come with PySide6 (or the frozen app) and are found
    # through its run paths; only the system's are ours to report
    return [s for s in missing_libraries(plugin) if not s.startswith(_BUNDLED)]


def startup_problem(environ: dict[str, str] | None = None) -> str | None:
    """Why a window cannot open here, in one sentence with the fix; None if it can."""
    if pyside_dir() is None:
        return GUI_EXTRA_HINT
    platform = chosen_platform(environ)
    if platform is None:
        return (
            "tagger-gui cannot open a window: there is no display (neither DISPLAY nor "
            "WAYLAND_DISPLAY is set); run it in a desktop session, or use the command line "
            "(tagger embed MUSIC_DIR analyses a folder without a window), or set "
            "QT_QPA_PLATFORM=offscreen for a window nobody sees"
        )
    missing = platform_problems(platform)
    if not missing:
        return None
    where = _PLATFORM_NAMES.get(platform, f"Qt's {platform} platform")
    alternatives = (
        "QT_QPA_PLATFORM=wayland on a Wayland desktop"
        if platform == "xcb"
        else "QT_QPA_PLATFORM=xcb on an X11 desktop"
    )
    return (
        f"tagger-gui cannot open a window on {where}: the system "
        f"librar{'ies' if len(missing) > 1 else 'y'} {', '.join(missing)} "
        f"{'are' if len(missing) > 1 else 'is'} missing; install "
        f"{'them' if len(missing) > 1 else 'it'} with: {_install_command(missing)} "
        f"(scripts/install.sh does this when run with sudo rights), or try {alternatives}"
    )

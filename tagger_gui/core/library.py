"""Finding the audio files of a music library."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tagger_gui.core.audio import is_audio_path

# Folders never scanned: our own data, and the usual hidden/system folders.
SKIPPED_DIRS = frozenset({".tagger", ".git", "__MACOSX", ".Trash", ".Trashes"})


@dataclass(frozen=True)
class LibraryFile:
    """One audio file found in a library.

    ``relpath`` uses forward slashes whatever the platform, so that a cache
    or project made on one machine reads on another.
    """

    relpath: str
    path: Path
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class ScanProblem:
    """A file that looked like audio but could not even be listed (stat failed)."""

    relpath: str
    reason: str


def scan_library(root: str | os.PathLike) -> Iterator[LibraryFile | ScanProblem]:
    """Yield the audio files below ``root`` in a stable (sorted) order.

    Hidden folders and :data:`SKIPPED_DIRS` are skipped. Symbolic links to
    files are followed; a broken link is reported as a :class:`ScanProblem`
    rather than silently dropped, since the user may expect that track.
    """
    root = Path(root)
    if not root.is_dir():
        raise NotADirectoryError(f"{root}: not a folder")

    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            rel = folder.relative_to(root).as_posix()
            yield ScanProblem(rel or ".", f"folder cannot be read ({exc.strerror})")
            continue
        subdirs = []
        for entry in entries:
            if entry.name.startswith(".") and entry.is_dir(follow_symlinks=False):
                continue
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
            except OSError:
                is_dir = False
            if is_dir:
                if entry.name not in SKIPPED_DIRS:
                    subdirs.append(Path(entry.path))
                continue
            if not is_audio_path(entry.name):
                continue
            rel = Path(entry.path).relative_to(root).as_posix()
            try:
                st = entry.stat(follow_symlinks=True)
            except FileNotFoundError:
                yield ScanProblem(rel, "broken symbolic link (its target does not exist)")
                continue
            except OSError as exc:
                yield ScanProblem(rel, f"cannot be read ({exc.strerror})")
                continue
            yield LibraryFile(rel, Path(entry.path), st.st_size, st.st_mtime_ns)
        stack.extend(reversed(subdirs))

"""Matching the paths written in someone else's list to the files of a library.

A CSV made by another tool, on another machine or before the library moved
names its files in many ways: absolute or relative, with Windows separators
and drive letters, ``./`` prefixes, ``file://`` URIs, another letter case, or
unicode composed differently (macOS writes NFD, most other systems NFC).
:class:`PathMatcher` is built once from the library's relative paths and then
answers each lookup with a few dictionary look-ups (no scan of the library).
"""

from __future__ import annotations

import posixpath
import re
import unicodedata
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import unquote, urlsplit

__all__ = ["AMBIGUOUS", "PathMatcher", "split_parts"]

#: Marker stored in the look-up tables for keys that several files share.
AMBIGUOUS = -1

_WINDOWS_ABSOLUTE = re.compile(r"^(?:[A-Za-z]:[\\/]|\\\\|//)")


def _nfc(text: str) -> str:
    # is_normalized is a fast C check; most paths already are NFC.
    if unicodedata.is_normalized("NFC", text):
        return text
    return unicodedata.normalize("NFC", text)


def split_parts(path: str) -> list[str]:
    """Split a path on ``/`` and ``\\`` into its non-empty components.

    A leading Windows drive (``C:``) or UNC server stays as the first part.
    """
    return [p for p in re.split(r"[\\/]+", path) if p]


class PathMatcher:
    """Find the library file a path written in a list refers to.

    Parameters
    ----------
    relpaths : sequence of str
        The library's files, relative to its root, with ``/`` separators
        (as :class:`tagger_gui.core.library.LibraryFile.relpath`).
    library_root : str or path-like, optional
        The library folder. Needed to resolve absolute paths; without it,
        absolute paths are matched by the library folder's name only.

    Notes
    -----
    A path is tried, in order:

    1. exactly as written;
    2. unicode NFC-normalised, ``\\`` read as ``/``, ``./`` and ``a/../``
       resolved, a ``file://`` URI decoded;
    3. an absolute path under ``library_root`` is made relative to it (also
       after resolving the root's symbolic links, and ignoring case);
       an absolute path elsewhere (another machine, a Windows drive, a moved
       library) is cut after a folder with the library folder's *name*;
    4. ignoring letter case, if exactly one file matches that way.

    A relative path that climbs out of the root (``../x.mp3``) and an
    absolute path with no part named like the library folder are reported as
    outside the library.
    """

    def __init__(self, relpaths: Sequence[str], *, library_root: str | Path | None = None):
        self.relpaths = relpaths
        self._exact: dict[str, int] = {}
        self._nfc: dict[str, int] = {}
        self._folded: dict[str, int] = {}
        for i, rel in enumerate(relpaths):
            self._exact.setdefault(rel, i)
            key = _nfc(rel)
            self._nfc[key] = AMBIGUOUS if self._nfc.get(key, i) != i else i
            folded = key.casefold()
            self._folded[folded] = AMBIGUOUS if self._folded.get(folded, i) != i else i
        self._roots: list[list[str]] = []
        self._root_name: str | None = None
        if library_root is not None:
            root = Path(library_root)
            candidates = [str(root.absolute()), str(root.resolve())]
            for cand in candidates:
                parts = split_parts(_nfc(cand))
                if parts and parts not in self._roots:
                    self._roots.append(parts)
            if self._roots and self._roots[0]:
                self._root_name = self._roots[0][-1].casefold()
        # Long-format files repeat a path on consecutive rows (one per tag).
        self._last: tuple[str, tuple[int | None, str]] | None = None

    def __len__(self) -> int:
        return len(self.relpaths)

    def match(self, raw: str) -> tuple[int | None, str]:
        """Look up one path.

        Parameters
        ----------
        raw : str
            The path as written in the list.

        Returns
        -------
        index : int or None
            The index of the file in ``relpaths``, or None if no file matches.
        reason : str
            Why nothing matched (empty when a file matched).
        """
        found = self._exact.get(raw)
        if found is not None:
            return found, ""
        last = self._last
        if last is not None and last[0] == raw:
            return last[1]
        result = self._match_slow(raw)
        self._last = (raw, result)
        return result

    # -- internals -----------------------------------------------------------

    def _match_slow(self, raw: str) -> tuple[int | None, str]:
        text = _nfc(raw.strip())
        if not text:
            return None, "empty path"
        if text[:5].lower() == "file:":
            text = _from_uri(text)
        if text.startswith("/") or _WINDOWS_ABSOLUTE.match(text):
            return self._match_absolute(text)
        rel = posixpath.normpath(text.replace("\\", "/"))
        if rel == ".." or rel.startswith("../"):
            return None, "outside the library folder (climbs above it with ..)"
        if rel.startswith("/"):  # "a/../../..//x" cannot start with / here, but be safe
            return self._match_absolute(rel)
        return self._lookup(rel)

    def _lookup(self, rel: str) -> tuple[int | None, str]:
        for table, key in ((self._exact, rel), (self._nfc, rel), (self._folded, rel.casefold())):
            found = table.get(key)
            if found is None:
                continue
            if found == AMBIGUOUS:
                return None, "matches several files when case or unicode form is ignored"
            return found, ""
        return None, "no such file in the library"

    def _match_absolute(self, text: str) -> tuple[int | None, str]:
        parts = split_parts(text)
        # Resolve "." and ".." inside the absolute path, as the OS would.
        clean: list[str] = []
        for p in parts:
            if p == ".":
                continue
            if p == ".." and clean:
                clean.pop()
                continue
            clean.append(p)
        parts = clean
        folded = [p.casefold() for p in parts]
        for root in self._roots:
            n = len(root)
            if len(parts) > n and (parts[:n] == root or folded[:n] == [r.casefold() for r in root]):
                return self._lookup("/".join(parts[n:]))
        if self._root_name is not None:
            # Another machine's or a moved library's path: cut after a folder
            # named like our library folder (the first one that matches).
            for i, name in enumerate(folded[:-1]):
                if name == self._root_name:
                    idx, _ = self._lookup("/".join(parts[i + 1 :]))
                    if idx is not None:
                        return idx, ""
            return None, "outside the library folder"
        return None, "absolute path, but the library folder is not known"


def _from_uri(text: str) -> str:
    """The local path of a ``file:`` URI (``file:///C:/x`` gives ``C:/x``)."""
    parts = urlsplit(text)
    path = unquote(parts.path)
    if re.match(r"^/[A-Za-z]:/", path):
        path = path[1:]
    if parts.netloc and parts.netloc.lower() != "localhost":
        path = f"//{parts.netloc}{path}"
    return _nfc(path)

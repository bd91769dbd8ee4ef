"""The demo library: a small music library made of Debian's free game soundtracks.

A newcomer should see the app working in minutes, on real music they may
share. Debian packages the soundtracks of several free games; their music is
under free licences (GPL-2+, some CC-BY-SA) that allow redistribution. This
module

- says what building the library will download (:func:`describe_demo`:
  packages, versions and sizes from apt's metadata, licences, destination),
- builds it (:func:`build_demo_task`, a generator task): ``apt-get download``
  of each package (no install, no root), unpacking of its music folder
  (streamed from ``dpkg-deb --fsys-tarfile``), then each music file is
  moved, whole and in its original encoding, to
  ``DEST/<soundtrack>/<title>.<ext>`` and tagged (title, artist, album,
  genre, tracknumber, comment) with mutagen. Each soundtrack folder gets the
  package's copyright file, ``DEST/README.txt`` says what this is.

Re-running resumes: a package whose files are all in place is skipped, a
downloaded ``.deb`` is not downloaded again. Nothing here needs the network
but :func:`fetch_deb` (and ``apt-cache``, which reads the local package lists).

The knowledge of where each package keeps its music (:data:`LAYOUTS`,
:func:`music_files`, :func:`describe_music_file`) is shared with the
benchmark corpus builder, ``benchmarks/corpora/debian_game_music.py``.
"""

from __future__ import annotations

import errno
import fnmatch
import json
import logging
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections import Counter
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import mutagen
import soundfile as sf

from .errors import TaggerError

__all__ = [
    "DEMO_PACKAGES",
    "LAYOUTS",
    "MUSIC_SUFFIXES",
    "DemoError",
    "DemoPackage",
    "DemoPlan",
    "DemoProgress",
    "DemoReport",
    "Layout",
    "build_demo_task",
    "copy_licences",
    "default_demo_dir",
    "demo_folder_in",
    "describe_demo",
    "describe_music_file",
    "fetch_deb",
    "music_files",
    "parse_apt_show",
    "read_tags",
    "slug",
    "unpack_deb",
    "wanted_paths",
]

logger = logging.getLogger(__name__)

#: The packages of the default demo library (about 400 MB to download, 113
#: whole tracks): three soundtracks that sound different (orchestral fantasy,
#: electronic/cinematic science fiction, playful platformer).
DEMO_PACKAGES: tuple[str, ...] = ("wesnoth-1.16-music", "warzone2100-music", "supertux-data")
MUSIC_SUFFIXES = {".ogg", ".opus", ".mp3", ".flac", ".wav"}
#: The genre written into every demo track.
GENRE = "Soundtrack"
#: The file in DEST that records what was built (for resuming and the README).
MANIFEST = ".tagger-demo.json"
MANIFEST_VERSION = 1
#: How often a task waiting for apt-get or dpkg-deb yields (seconds).
POLL_SECONDS = 0.25


class DemoError(TaggerError):
    """The demo library cannot be described or built; the message says why, in plain words."""


@dataclass(frozen=True)
class Layout:
    """Where a package keeps its music, and what in there is not music."""

    soundtrack: str  # the benchmark's coarse tag: soundtrack:<soundtrack>
    album: str  # the album written into the files when they carry none (and the demo's folder)
    music_dirs: tuple[str, ...]  # globs relative to the unpacked package
    exclude: frozenset[str] = frozenset()  # paths in the music dir, without suffix
    licence: str = ""  # in plain words, for people; the copyright file is authoritative


# What each package contains (Debian bookworm), and what is left out:
# - warzone2100-music: music/menu.opus plus music/albums/<album>/*.opus with an
#   album.json (titles, author) per album; all of it is music.
# - wesnoth-1.16-music: data/core/music/*.ogg, tagged. victory*, defeat* are
#   end-of-scenario stingers (5-21 s) and silence.ogg is 10 s of silence.
# - supertux-data: music/<folder>/*.ogg (plus *.music loop descriptors, sounds/
#   and speech/, which are not taken). misc/leveldone, misc/invincible and
#   misc/bonuscave are jingles or short loops (8-14 s).
# - hedgewars-data: Data/Music/*.ogg; Data/Sounds (effects and voices) is not taken.
# - frozen-bubble-data: snd/ mixes 3 music files with effects; the duration
#   limit keeps the music (the effects are under 3 s).
LAYOUTS = {
    "warzone2100-music": Layout(
        "warzone2100",
        "Warzone 2100",
        ("usr/share/games/warzone2100/music",),
        licence="GPL-2+ (see COPYRIGHT); the Legacy and Aftermath albums by "
        "LupusMechanicus: CC-BY-SA-3.0+ or GPL-2+ (see COPYRIGHT-<album>.txt)",
    ),
    "wesnoth-1.16-music": Layout(
        "wesnoth",
        "The Battle for Wesnoth OST",
        ("usr/share/games/wesnoth/*/data/core/music",),
        exclude=frozenset({"victory", "victory2", "defeat", "defeat2", "silence"}),
        licence="GPL-2+ (see COPYRIGHT; the files' own tags say license=GPL)",
    ),
    "supertux-data": Layout(
        "supertux",
        "SuperTux Soundtrack",
        ("usr/share/games/supertux2/music",),
        exclude=frozenset({"misc/leveldone", "misc/invincible", "misc/bonuscave"}),
        licence="GPL-2+ (see COPYRIGHT, Files: data/music/*)",
    ),
    "hedgewars-data": Layout(
        "hedgewars",
        "Hedgewars Soundtrack",
        ("usr/share/games/hedgewars/Data/Music",),
        licence="GPL-2 (see COPYRIGHT)",
    ),
    "frozen-bubble-data": Layout(
        "frozen-bubble",
        "Frozen-Bubble",
        ("usr/share/games/frozen-bubble/snd",),
        licence="GPL-2 (see COPYRIGHT)",
    ),
}

# SuperTux keeps its music in one folder per world. Checked against the levels
# in the package (levels/<world>/*.stl name the music they play):
#   antarctic -> world1 "Icy Island" (chipdisko, cave, voc-*, airship_remix, ...)
#   forest    -> world2 "Rooted Forest" (forest, forest2, ghostforest, ...)
#   retro     -> "Revenge in Redmond" (the retro world: music of SuperTux 0.1)
#   castle    -> the fortress/castle levels of worlds 1 and 2 (2 tracks)
#   tropical  -> no level in the package plays it (2 tracks)
#   misc      -> title, credits, seasonal and battle themes: no world, no tag
SUPERTUX_WORLDS = {
    "antarctic": "icy-island",
    "forest": "rooted-forest",
    "retro": "revenge-in-redmond",
    "castle": "castle",
    "tropical": "tropical",
}


def slug(text: str) -> str:
    """``"Joseph G. Toscano (Zhaytee)"`` -> ``"joseph-g-toscano-zhaytee"``."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "x"


# ---------------------------------------------------------------- metadata


def _first(tags, key: str) -> str:
    try:
        values = tags[key]
    except (KeyError, TypeError, ValueError):
        return ""
    value = values[0] if isinstance(values, list) and values else values
    return str(value).strip() if value else ""


def read_tags(path: Path) -> dict[str, str]:
    """title, album, artist, composer, tracknumber, discnumber ('' when absent)."""
    try:
        f = mutagen.File(path, easy=True)
    except mutagen.MutagenError:
        f = None
    tags = f.tags if f is not None else None
    keys = ("title", "album", "artist", "composer", "tracknumber", "discnumber")
    return {k: _first(tags, k) if tags is not None else "" for k in keys}


def _warzone_album(src: Path) -> tuple[str, str, str, str, int] | None:
    """(album folder, album title, track title, author, track number) from album.json."""
    meta_file = src.parent / "album.json"
    if src.parent.parent.name != "albums" or not meta_file.is_file():
        return None
    meta = json.loads(meta_file.read_text(encoding="utf-8"))
    for number, entry in enumerate(meta.get("tracks", []), 1):
        if entry.get("filename") == src.name:
            title = entry.get("title", "")
            return src.parent.name, meta.get("title", ""), title, entry.get("author", ""), number
    return src.parent.name, meta.get("title", ""), "", meta.get("author", ""), 0


def describe_music_file(package: str, src: Path, rel: PurePosixPath, duration: float) -> dict:
    """Title, album, artist, numbers and weak tags of one music file of ``package``.

    Parameters
    ----------
    package : str
        A package of :data:`LAYOUTS`.
    src : Path
        The file, in the unpacked package.
    rel : PurePosixPath
        The file's path inside the package's music folder.
    duration : float
        Its duration in seconds (copied into the result).

    Returns
    -------
    dict
        ``title``, ``album``, ``artist``, ``tracknumber``, ``discnumber``
        (strings, '' when unknown), ``duration`` and ``tags``:
        ``soundtrack:<game>`` plus a finer tag where the files carry one (the
        Warzone 2100 album, the SuperTux world, the Wesnoth composer).
    """
    layout = LAYOUTS[package]
    t = read_tags(src)
    title = t["title"] or " ".join(w[:1].upper() + w[1:] for w in re.split(r"[-_ ]+", rel.stem))
    album = layout.album
    artist = t["composer"] or t["artist"]
    tracknumber, discnumber = t["tracknumber"], t["discnumber"]
    tags = [f"soundtrack:{layout.soundtrack}"]
    if package == "warzone2100-music":
        found = _warzone_album(src)
        if found:
            folder, album_title, track_title, author, number = found
            tags.append(f"warzone-album:{slug(folder.removesuffix('_soundtrack'))}")
            title = track_title or title
            artist = artist or author
            if album_title:
                album = (
                    album_title
                    if "warzone" in album_title.lower()
                    else (f"Warzone 2100 {album_title}")
                )
            tracknumber = tracknumber or (str(number) if number else "")
    elif package == "supertux-data" and len(rel.parts) > 1:
        world = SUPERTUX_WORLDS.get(rel.parts[0])
        if world:
            tags.append(f"supertux-world:{world}")
    elif package.startswith("wesnoth") and (t["composer"] or t["artist"]):
        tags.append(f"wesnoth-composer:{slug(t['composer'] or t['artist'])}")
    return {
        "title": title,
        "album": album,
        "artist": artist,
        "tracknumber": tracknumber,
        "discnumber": discnumber,
        "duration": duration,
        "tags": tags,
    }


def music_files(package: str, unpacked: Path, *, min_seconds: float) -> list[tuple[Path, str]]:
    """(file, path inside its music folder) of every music file of ``package``.

    Files shorter than ``min_seconds`` (sound effects, jingles) and the
    layout's excluded files are left out; an unreadable file is logged and
    left out.
    """
    layout = _layout(package)
    found: list[tuple[Path, str]] = []
    for pattern in layout.music_dirs:
        for music_dir in sorted(unpacked.glob(pattern)):
            for src in sorted(music_dir.rglob("*")):
                if src.suffix.lower() not in MUSIC_SUFFIXES or not src.is_file():
                    continue
                rel = src.relative_to(music_dir).as_posix()
                if rel.rsplit(".", 1)[0] in layout.exclude:
                    continue
                try:
                    if sf.info(src).duration < min_seconds:
                        continue
                except (sf.LibsndfileError, RuntimeError):
                    logger.warning("skipped (unreadable): %s", src)
                    continue
                found.append((src, rel))
    return found


def copy_licences(unpacked: Path, target: Path) -> list[Path]:
    """Copy the package's copyright file (and per-album licences) into ``target``.

    The copyright file becomes ``target/COPYRIGHT``; Warzone 2100's album
    licences ``target/COPYRIGHT-<album>.txt``. Returns the files written.
    """
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for copyright_file in unpacked.glob("usr/share/doc/*/copyright"):
        shutil.copyfile(copyright_file, target / "COPYRIGHT")
        written.append(target / "COPYRIGHT")
    for licence in unpacked.glob("usr/share/games/warzone2100/music/albums/*/license.txt"):
        dst = target / f"COPYRIGHT-{licence.parent.name}.txt"
        shutil.copyfile(licence, dst)
        written.append(dst)
    return written


def _layout(package: str) -> Layout:
    try:
        return LAYOUTS[package]
    except KeyError:
        raise DemoError(
            f"{package}: not a package the demo knows how to read "
            f"(known: {', '.join(sorted(LAYOUTS))})"
        ) from None


# ---------------------------------------------------------------- apt and dpkg


def parse_apt_show(text: str) -> dict[str, dict[str, str]]:
    """The stanzas of ``apt-cache show`` (or a ``DEBIAN/control`` file), by package name.

    Continuation lines (starting with a space) are joined to their field with
    a newline. When a package appears in several stanzas the first is kept
    (``apt-cache show`` lists the candidate version first).
    """
    packages: dict[str, dict[str, str]] = {}
    for stanza in re.split(r"\n\s*\n", text.strip()):
        fields: dict[str, str] = {}
        key = None
        for line in stanza.splitlines():
            if line[:1] in (" ", "\t") and key is not None:
                fields[key] += "\n" + line.strip()
            elif ":" in line:
                key, _, value = line.partition(":")
                key = key.strip()
                fields[key] = value.strip()
        if "Package" in fields:
            packages.setdefault(fields["Package"], fields)
    return packages


def _need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise DemoError(
            f"{tool} is not available on this machine: the demo library is built from "
            "Debian's packages, so it needs a Debian-based system (Debian, Ubuntu, Mint...). "
            "Open a music folder of your own instead."
        )
    return path


def _apt_failure(package: str, output: str) -> DemoError:
    """A plain-words error for a failed ``apt-get download`` / ``apt-cache show``."""
    text = output.strip()
    last = text.splitlines()[-1] if text else "no output"
    if "Unable to locate package" in text or "No packages found" in text:
        return DemoError(
            f"apt does not know the package {package}: the package lists are missing or "
            "out of date. Run `sudo apt-get update` once, then try again."
        )
    if "No space left on device" in text:
        return DemoError(f"the disk is full: downloading {package} failed ({last})")
    if re.search(
        r"Temporary failure resolving|Could not connect|Network is unreachable|"
        r"Connection timed out|Could not resolve|Failed to fetch",
        text,
    ):
        return DemoError(
            f"could not download {package}: no connection to Debian's servers. "
            f"Check the network and try again (apt-get said: {last})"
        )
    return DemoError(f"apt-get could not download {package}: {last}")


def _run(args: list[str], what: str) -> str:
    try:
        done = subprocess.run(args, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise DemoError(f"{what}: {exc.strerror or exc}") from None
    if done.returncode != 0:
        raise DemoError(f"{what} failed: {(done.stderr or done.stdout).strip() or done.returncode}")
    return done.stdout


def deb_fields(deb: Path) -> dict[str, str]:
    """The control fields of a ``.deb`` file (``dpkg-deb -f``)."""
    _need("dpkg-deb")
    text = _run(["dpkg-deb", "-f", str(deb)], f"reading {deb}")
    fields = parse_apt_show(text)
    if not fields:
        raise DemoError(f"{deb}: not a Debian package (it has no Package field)")
    return next(iter(fields.values()))


def _find_deb(package: str, downloads: Path) -> Path | None:
    found = sorted(downloads.glob(f"{package}_*.deb"))
    return found[-1] if found else None


def _tree_bytes(folder: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


def _wait(proc: subprocess.Popen, measure) -> Generator[int, None, None]:
    """Yield ``measure()`` every :data:`POLL_SECONDS` until ``proc`` ends; kill it if closed."""
    try:
        while proc.poll() is None:
            yield measure()
            try:
                proc.wait(POLL_SECONDS)
            except subprocess.TimeoutExpired:
                pass
    finally:
        if proc.poll() is None:  # closed (cancelled) while running
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def fetch_deb(package: str, downloads: Path) -> Generator[int, None, Path]:
    """Task: the package's ``.deb`` in ``downloads``, downloaded with apt-get if missing.

    Yields the bytes downloaded so far; returns the ``.deb``'s path. The
    download goes to a temporary folder first, so a ``.deb`` in ``downloads``
    is always complete (apt checks it against its hashes). Closing the task
    stops apt-get and removes the partial download.

    Raises
    ------
    DemoError
        apt-get is missing, apt does not know the package, the network or
        the disk failed (the message says which).
    """
    downloads = Path(downloads)
    found = _find_deb(package, downloads)
    if found is not None:
        return found
    _need("apt-get")
    downloads.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{package}-", dir=downloads))
    try:
        with tempfile.TemporaryFile(mode="w+") as log:
            proc = subprocess.Popen(
                ["apt-get", "download", "-q", package],
                cwd=tmp,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                text=True,
            )
            yield from _wait(proc, lambda: _tree_bytes(tmp))
            log.seek(0)
            output = log.read()
        got = _find_deb(package, tmp)
        if proc.returncode != 0 or got is None:
            raise _apt_failure(package, output)
        yield got.stat().st_size
        return Path(shutil.move(str(got), downloads / got.name))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class _CountingReader:
    """A file's ``read`` that counts the bytes read (the progress of a stream)."""

    def __init__(self, raw):
        self.raw = raw
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self.count += len(data)
        return data


def wanted_paths(package: str) -> list[str]:
    """Glob patterns of what the demo needs of ``package``: its music folders, its copyright."""
    return [f"{d}/*" for d in _layout(package).music_dirs] + ["usr/share/doc/*/copyright"]


def unpack_deb(
    deb: Path, target: Path, *, only: Sequence[str] | None = None
) -> Generator[int, None, Path]:
    """Task: unpack the regular files of ``deb`` into ``target`` (once).

    ``dpkg-deb --fsys-tarfile`` streams the package's files, which are
    written as they come, so only the files wanted take disk space.

    Parameters
    ----------
    deb : Path
        The package file.
    target : Path
        Where its root goes; an existing ``target`` is taken as complete
        (unpacking goes to a temporary sibling, renamed at the end).
    only : sequence of str, optional
        Glob patterns (``fnmatch``, ``*`` crosses folders) of the paths to
        write, relative to the package's root, e.g. :func:`wanted_paths`;
        default every regular file (links and devices are never written).

    Yields
    ------
    int
        Bytes of the package's file tree read so far.

    Raises
    ------
    DemoError
        The file is not a readable package, or the disk is full.
    """
    target = Path(target)
    if target.is_dir():
        return target
    _need("dpkg-deb")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    proc = None
    try:
        with tempfile.TemporaryFile() as errors:
            proc = subprocess.Popen(
                ["dpkg-deb", "--fsys-tarfile", str(deb)],
                stdout=subprocess.PIPE,
                stderr=errors,
                stdin=subprocess.DEVNULL,
            )
            reader = _CountingReader(proc.stdout)
            broken = ""
            shown = 0
            try:
                with tarfile.open(fileobj=reader, mode="r|") as tar:
                    for member in tar:
                        name = PurePosixPath(member.name.removeprefix("./"))
                        wanted = only is None or any(
                            fnmatch.fnmatchcase(name.as_posix(), g) for g in only
                        )
                        if member.isfile() and wanted and ".." not in name.parts:
                            dst = tmp.joinpath(*name.parts)
                            dst.parent.mkdir(parents=True, exist_ok=True)
                            with tar.extractfile(member) as src, open(dst, "wb") as out:
                                shutil.copyfileobj(src, out, 1 << 20)
                        if reader.count - shown >= 1 << 20:  # every MB or so
                            shown = reader.count
                            yield shown
            except tarfile.TarError as exc:
                broken = str(exc)
            except OSError as exc:
                raise _disk_error(exc, tmp) from None
            proc.stdout.close()
            proc.wait()
            errors.seek(0)
            said = errors.read().decode(errors="replace").strip()
        if proc.returncode != 0 or broken:
            first = (said or broken or f"exit status {proc.returncode}").splitlines()[0]
            raise DemoError(
                f"{deb}: cannot be unpacked, it looks damaged or incomplete ({first}); "
                "delete it and try again"
            )
        yield reader.count
        os.replace(tmp, target)
        return target
    finally:
        if proc is not None and proc.poll() is None:  # closed (cancelled) while running
            proc.kill()
            proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)


# ---------------------------------------------------------------- the plan


def default_demo_dir() -> Path:
    """``<music folder>/tagger-demo``: the XDG music folder (``~/Music`` when unset)."""
    home = Path.home()
    music = home / "Music"
    config = Path(os.environ.get("XDG_CONFIG_HOME") or home / ".config")
    try:
        text = (config / "user-dirs.dirs").read_text(encoding="utf-8")
    except OSError:
        text = ""
    m = re.search(r'^XDG_MUSIC_DIR="([^"]+)"', text, re.MULTILINE)
    if m:
        value = m.group(1).replace("$HOME", str(home))
        if os.path.isabs(value) and Path(value) != home:  # $HOME itself means "no music dir"
            music = Path(value)
    return music / "tagger-demo"


def demo_folder_in(chosen: str | os.PathLike) -> Path:
    """The demo library's folder when the user picks ``chosen`` as its place.

    ``chosen`` itself when it is empty or missing, or already a demo library;
    otherwise its ``tagger-demo`` subfolder, so the demo never mixes with
    music already there.
    """
    chosen = Path(chosen).expanduser().absolute()
    if not chosen.is_dir() or (chosen / MANIFEST).is_file() or not any(chosen.iterdir()):
        return chosen
    return chosen / "tagger-demo"


@dataclass(frozen=True)
class DemoPackage:
    """One package of the demo library, as apt (or the downloaded file) describes it."""

    name: str
    version: str
    download_bytes: int  # the .deb's size
    installed_bytes: int  # what it unpacks to (an upper bound of its music)
    folder: str  # DEST/<folder> holds its tracks
    licence: str
    homepage: str = ""
    description: str = ""
    downloaded: bool = False  # its .deb is already in the downloads folder
    built: bool = False  # its tracks are already in DEST: nothing to do

    @property
    def bytes_to_download(self) -> int:
        return 0 if (self.built or self.downloaded) else self.download_bytes


@dataclass(frozen=True)
class DemoPlan:
    """What building the demo library will download, and where it puts it."""

    packages: tuple[DemoPackage, ...]
    dest: Path
    downloads: Path
    free_bytes: int  # free space where DEST is (or would be)

    @property
    def download_bytes(self) -> int:
        """Bytes still to download."""
        return sum(p.bytes_to_download for p in self.packages)

    @property
    def needed_bytes(self) -> int:
        """Disk space the build needs at most: downloads plus unpacked packages."""
        return sum(p.bytes_to_download + p.installed_bytes for p in self.packages if not p.built)

    @property
    def is_built(self) -> bool:
        return all(p.built for p in self.packages)

    def text(self) -> str:
        """The plan in plain words, as the CLI prints it."""
        lines = ["The demo library is made of free game soundtracks packaged by Debian:", ""]
        for p in self.packages:
            state = (
                " (already in the library)"
                if p.built
                else (" (already downloaded)" if p.downloaded else "")
            )
            lines.append(f"  {p.name} {p.version}: {megabytes(p.download_bytes)}{state}")
            lines.append(f"      -> {self.dest / p.folder}")
            lines.append(f"      licence: {p.licence}")
        lines += [
            "",
            f"To download: {megabytes(self.download_bytes)} with `apt-get download` "
            "(no package is installed; no root needed).",
            f"Destination: {self.dest} (downloads are kept in {self.downloads} "
            "until each package is done, then deleted).",
            f"Free space there: {megabytes(self.free_bytes)}; needed at most "
            f"{megabytes(self.needed_bytes)}.",
        ]
        return "\n".join(lines)


def megabytes(n: int) -> str:
    """``153244368`` -> ``"153 MB"``."""
    return f"{n / 1e6:.0f} MB" if n >= 1e6 or n == 0 else f"{n / 1e6:.2f} MB"


def _free_bytes(path: Path) -> int:
    for folder in (path, *path.parents):
        if folder.exists():
            return shutil.disk_usage(folder).free
    return 0


def _read_manifest(dest: Path) -> dict:
    try:
        data = json.loads((dest / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {"version": MANIFEST_VERSION, "packages": {}}
    if data.get("version") != MANIFEST_VERSION:
        return {"version": MANIFEST_VERSION, "packages": {}}
    return data


def _is_built(dest: Path, entry: dict | None) -> bool:
    return (
        bool(entry)
        and bool(entry.get("files"))
        and all((dest / f).is_file() for f in entry["files"])
    )


def describe_demo(
    packages: Sequence[str] = DEMO_PACKAGES,
    dest: str | os.PathLike | None = None,
    *,
    downloads: str | os.PathLike | None = None,
) -> DemoPlan:
    """What :func:`build_demo_task` will download and where it will put it.

    Reads apt's package lists (``apt-cache show``; no network) for the
    packages neither built nor downloaded yet, the control fields of the
    ``.deb`` files already downloaded, and the record of what is built.

    Parameters
    ----------
    packages : sequence of str
        Packages of :data:`LAYOUTS`; default :data:`DEMO_PACKAGES`.
    dest : path, optional
        The library's folder; default :func:`default_demo_dir`.
    downloads : path, optional
        Where the ``.deb`` files go; default ``DEST/.downloads``.

    Raises
    ------
    DemoError
        A package is unknown here or to apt (lists missing: the message says
        to run ``sudo apt-get update``), or apt is not available.
    """
    if not packages:
        raise DemoError("no package chosen for the demo library")
    dest = Path(dest).expanduser().absolute() if dest else default_demo_dir()
    downloads = Path(downloads).expanduser().absolute() if downloads else dest / ".downloads"
    if dest.exists() and not dest.is_dir():
        raise DemoError(f"{dest}: exists and is not a folder; choose another destination")
    layouts = {p: _layout(p) for p in packages}
    manifest = _read_manifest(dest).get("packages", {})
    fields: dict[str, dict[str, str]] = {}
    states: dict[str, tuple[bool, bool]] = {}
    ask_apt = []
    for p in packages:
        entry = manifest.get(p)
        built = _is_built(dest, entry)
        deb = _find_deb(p, downloads)
        if built:
            fields[p] = entry["fields"]
        elif deb is not None:
            fields[p] = dict(deb_fields(deb), Size=str(deb.stat().st_size))
        else:
            ask_apt.append(p)
        states[p] = (built, deb is not None)
    if ask_apt:
        _need("apt-cache")
        try:
            done = subprocess.run(
                ["apt-cache", "show", "--no-all-versions", *ask_apt],
                capture_output=True,
                text=True,
                check=False,
            )
        except OSError as exc:
            raise DemoError(f"apt-cache could not run: {exc}") from None
        known = parse_apt_show(done.stdout)
        for p in ask_apt:
            if p not in known:
                raise _apt_failure(p, done.stderr or "No packages found")
            fields[p] = known[p]
    described = []
    for p in packages:
        f = fields[p]
        described.append(
            DemoPackage(
                name=p,
                version=f.get("Version", "?"),
                download_bytes=int(f.get("Size") or 0),
                installed_bytes=int(f.get("Installed-Size") or 0) * 1024 or int(f.get("Size") or 0),
                folder=_folder_name(layouts[p].album),
                licence=layouts[p].licence,
                homepage=f.get("Homepage", ""),
                description=f.get("Description", "").split("\n")[0],
                downloaded=states[p][1],
                built=states[p][0],
            )
        )
    return DemoPlan(tuple(described), dest, downloads, _free_bytes(dest))


# ---------------------------------------------------------------- building


@dataclass(frozen=True)
class DemoProgress:
    """What the build is doing: ``done`` of ``total`` bytes of work, and in words.

    The work is each package's download plus its unpacking (weighed by its
    size), so one bar covers the whole build.
    """

    stage: str  # "download", "unpack", "tracks", "done"
    package: str
    what: str
    done: int
    total: int


@dataclass
class DemoReport:
    """What :func:`build_demo_task` made."""

    dest: Path
    tracks: int
    packages: dict[str, int]  # tracks per package
    downloaded_bytes: int
    library_bytes: int
    seconds: float
    skipped: list[str] = field(default_factory=list)  # packages already built


_UNSAFE = re.compile(r'[\\/:*?"<>|\x00-\x1f]+')


def _folder_name(text: str) -> str:
    return _UNSAFE.sub(" ", text).strip(" .") or "track"


def _tag_file(path: Path, tags: dict[str, str]) -> None:
    f = mutagen.File(path, easy=True)
    if f is None:  # a format mutagen cannot tag (wav): keep the file untagged
        return
    if f.tags is None:
        f.add_tags()
    for key, value in tags.items():
        if not value:
            continue
        try:
            f[key] = value
        except (KeyError, ValueError):  # a key this format's easy interface lacks
            pass
    f.save()


def _add_tracks(
    package: str,
    version: str,
    unpacked: Path,
    dest: Path,
    folder: str,
    *,
    min_seconds: float,
) -> Generator[tuple[int, int, str], None, list[str]]:
    """Move the package's music into ``dest/folder``, tagged; yields (i, n, title)."""
    files = music_files(package, unpacked, min_seconds=min_seconds)
    if not files:
        dirs = ", ".join(LAYOUTS[package].music_dirs)
        raise DemoError(
            f"{package} {version}: no music found where it should be ({dirs}); "
            "this version of the package is laid out differently"
        )
    target = dest / folder
    target.mkdir(parents=True, exist_ok=True)
    names: Counter = Counter()
    written = []
    for number, (src, rel) in enumerate(files, 1):
        meta = describe_music_file(package, src, PurePosixPath(rel), sf.info(src).duration)
        stem = _folder_name(meta["title"])[:120]
        names[stem.lower()] += 1
        if names[stem.lower()] > 1:  # two files with the same title
            stem = f"{stem} ({names[stem.lower()]})"
        dst = target / f"{stem}{src.suffix.lower()}"
        written.append(dst.relative_to(dest).as_posix())
        yield number, len(files), meta["title"]
        if dst.exists():
            continue
        tmp = dst.with_name(dst.name + ".part")
        try:
            shutil.move(str(src), tmp)
            _tag_file(
                tmp,
                {
                    "title": meta["title"],
                    "artist": meta["artist"],
                    "album": meta["album"],
                    "genre": GENRE,
                    "tracknumber": meta["tracknumber"] or str(number),
                    "discnumber": meta["discnumber"],
                    "comment": f"Debian package {package} {version}, "
                    f"file {src.relative_to(unpacked).as_posix()}. "
                    f"Licence: see COPYRIGHT in this folder.",
                },
            )
            os.replace(tmp, dst)
        finally:
            tmp.unlink(missing_ok=True)
    return written


def _write_readme(dest: Path, manifest: dict) -> None:
    rows = []
    for name, e in manifest["packages"].items():
        rows.append(
            f"- {e['folder']}/: {len(e['files'])} tracks from the Debian package {name} "
            f"{e['fields'].get('Version', '')}"
            + (f" ({e['fields']['Homepage']})" if e["fields"].get("Homepage") else "")
            + f".\n  Licence: {e['licence']}.\n  The package's copyright file is "
            f"{e['folder']}/COPYRIGHT."
        )
    text = f"""tagger demo library
===================

A small music library to try tagger (tagger_gui) on: the soundtracks of a few
free games, as Debian packages them. `tagger demo` downloaded the packages
with `apt-get download` (nothing was installed), took their music files
whole, in their original encoding, and wrote title, artist, album, genre
and track number tags into them.

{chr(10).join(rows)}

The music keeps the licence it has in Debian: free licences that allow
sharing and changing it, with attribution (see each folder's COPYRIGHT file,
which is authoritative). The files were only retagged, not changed.

Open it with:  tagger-gui "{dest}"
To remove it, delete this folder; nothing else on the machine was changed.
"""
    tmp = dest / "README.txt.part"
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, dest / "README.txt")


def _write_manifest(dest: Path, manifest: dict) -> None:
    tmp = dest / (MANIFEST + ".part")
    tmp.write_text(json.dumps(manifest, indent=1, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, dest / MANIFEST)


def _disk_error(exc: OSError, where: Path) -> DemoError:
    if exc.errno == errno.ENOSPC:
        return DemoError(f"the disk is full: could not write {exc.filename or where}")
    return DemoError(f"{exc.filename or where}: {exc.strerror or exc}")


def _add_package(
    p: DemoPackage,
    deb: Path,
    unpacked_dir: Path,
    dest: Path,
    base: int,
    total: int,
    min_seconds: float,
) -> Generator[DemoProgress, None, list[str]]:
    """Unpack one package, move its music into ``dest``, copy its licences."""
    unpack = unpack_deb(deb, unpacked_dir, only=wanted_paths(p.name))
    try:
        while True:
            got = next(unpack)
            yield DemoProgress(
                "unpack",
                p.name,
                f"{p.name}: unpacking ({megabytes(got)})",
                base + min(got, p.installed_bytes),
                total,
            )
    except StopIteration as stop:
        unpacked = stop.value
    finally:
        unpack.close()
    base += p.installed_bytes
    try:
        adding = _add_tracks(p.name, p.version, unpacked, dest, p.folder, min_seconds=min_seconds)
        try:
            while True:
                i, n, title = next(adding)
                what = f"{p.name}: track {i} of {n}, {title}"
                yield DemoProgress("tracks", p.name, what, base, total)
        except StopIteration as stop:
            files = stop.value
        finally:
            adding.close()
        copy_licences(unpacked, dest / p.folder)
    except OSError as exc:
        raise _disk_error(exc, dest / p.folder) from None
    return files


def build_demo_task(
    dest: str | os.PathLike | None = None,
    *,
    packages: Sequence[str] = DEMO_PACKAGES,
    downloads: str | os.PathLike | None = None,
    keep_downloads: bool = False,
    min_seconds: float = 20.0,
) -> Generator[DemoProgress, None, DemoReport]:
    """Task: build the demo library in ``dest``; yields :class:`DemoProgress`.

    For each package not built yet: download its ``.deb`` (unless it is in
    ``downloads``), unpack it next to the downloads, move its music files
    (at least ``min_seconds`` long) into ``dest/<soundtrack>/`` and tag them,
    copy its copyright file, then delete the unpacked tree and (unless
    ``keep_downloads``) the ``.deb``. Writes ``dest/README.txt``.

    It can be closed at any yield: a running apt-get or dpkg-deb is stopped,
    partial files are removed, and the next run resumes.

    Parameters
    ----------
    dest : path, optional
        The library's folder; default :func:`default_demo_dir`.
    packages : sequence of str
        Packages of :data:`LAYOUTS`; default :data:`DEMO_PACKAGES`.
    downloads : path, optional
        Where ``.deb`` files are looked for and downloaded to; default
        ``dest/.downloads`` (a hidden folder: the library scan skips it).
    keep_downloads : bool
        Keep the ``.deb`` files after use.
    min_seconds : float
        Shorter music files (jingles) are left out.

    Returns
    -------
    DemoReport

    Raises
    ------
    DemoError
        In plain words: no apt, unknown package (run ``apt-get update``), no
        network, disk full, a package laid out differently.
    """
    start = time.monotonic()
    plan = describe_demo(packages, dest, downloads=downloads)
    dest, downloads = plan.dest, plan.downloads
    todo = [p for p in plan.packages if not p.built]
    if plan.needed_bytes > plan.free_bytes:
        raise DemoError(
            f"not enough free space in {dest}: the demo needs up to "
            f"{megabytes(plan.needed_bytes)}, and {megabytes(plan.free_bytes)} are free"
        )
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _disk_error(exc, dest) from None
    manifest = _read_manifest(dest)
    total = sum(p.bytes_to_download + p.installed_bytes for p in todo)
    base = 0
    downloaded = 0
    for p in todo:
        yield DemoProgress("download", p.name, f"{p.name}: downloading", base, total)
        deb = None
        fetch = fetch_deb(p.name, downloads)
        try:
            while True:
                got = next(fetch)
                step = min(got, p.bytes_to_download)
                yield DemoProgress(
                    "download",
                    p.name,
                    f"{p.name}: {megabytes(got)} of {megabytes(p.download_bytes)}"
                    if got
                    else f"{p.name}: asking apt for it",
                    base + step,
                    total,
                )
        except StopIteration as stop:
            deb = stop.value
        finally:
            fetch.close()
        downloaded += p.bytes_to_download
        base += p.bytes_to_download
        # unpacked afresh each run: an interrupted run has moved some files out
        unpacked_dir = downloads / f".unpacked-{p.name}"
        shutil.rmtree(unpacked_dir, ignore_errors=True)
        try:
            files = yield from _add_package(p, deb, unpacked_dir, dest, base, total, min_seconds)
        finally:
            shutil.rmtree(unpacked_dir, ignore_errors=True)
        base += p.installed_bytes
        manifest["packages"][p.name] = {
            "fields": {
                "Package": p.name,
                "Version": p.version,
                "Size": str(p.download_bytes),
                "Installed-Size": str(p.installed_bytes // 1024),
                "Homepage": p.homepage,
            },
            "folder": p.folder,
            "licence": p.licence,
            "files": files,
        }
        _write_manifest(dest, manifest)
        if not keep_downloads:
            deb.unlink(missing_ok=True)
    if not keep_downloads:
        _remove_empty(downloads)
    _write_readme(dest, manifest)
    tracks = {name: len(e["files"]) for name, e in manifest["packages"].items() if name in packages}
    library_bytes = sum(
        (dest / f).stat().st_size
        for name, e in manifest["packages"].items()
        if name in packages
        for f in e["files"]
    )
    yield DemoProgress("done", "", f"{sum(tracks.values())} tracks in {dest}", total, total)
    return DemoReport(
        dest=dest,
        tracks=sum(tracks.values()),
        packages=tracks,
        downloaded_bytes=downloaded,
        library_bytes=library_bytes,
        seconds=time.monotonic() - start,
        skipped=[p.name for p in plan.packages if p.built],
    )


def _remove_empty(folder: Path) -> None:
    try:
        folder.rmdir()  # only when empty
    except OSError:
        pass

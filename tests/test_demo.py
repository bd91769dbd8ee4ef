"""The demo library (tagger_gui.core.demo): the plan, and a build from a real local .deb.

The build tests make a small but real Debian package with ``dpkg-deb
--build`` (generated music in SuperTux's layout), so the whole pipeline runs
without network. One test reads this machine's real apt metadata when apt
knows the package.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import mutagen
import pytest
import soundfile as sf

from tagger_gui.core.demo import (
    LAYOUTS,
    MANIFEST,
    DemoError,
    _apt_failure,
    build_demo_task,
    default_demo_dir,
    demo_folder_in,
    describe_demo,
    fetch_deb,
    parse_apt_show,
)
from tagger_gui.core.tasks import run_task

from .conftest import write_audio

needs_dpkg = pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb")

PACKAGE = "supertux-data"
VERSION = "0.6.3-2"
# (path in the music folder, seconds, tags): three tracks kept (>= 20 s), a
# jingle too short, a jingle excluded by name
TRACKS = [
    ("forest/forest.ogg", 21.0, {"title": "Forest Dance", "artist": "Wansti"}),
    ("antarctic/chipdisko.ogg", 20.5, {"composer": "Mortimer Twang"}),
    ("misc/theme.ogg", 22.0, {}),
    ("forest/forestmap.ogg", 4.0, {}),
    ("misc/leveldone.ogg", 21.0, {}),
]
KEPT = 3


def make_deb(folder: Path, *, music: bool = True, package: str = PACKAGE) -> Path:
    """A real .deb of ``package``, its music where its layout says; returns its path.

    The music folder must be a plain path (SuperTux's, Frozen-Bubble's).
    """
    root = folder / f"{package}-root"
    music_dir = root / LAYOUTS[package].music_dirs[0]
    if music:
        for i, (rel, seconds, tags) in enumerate(TRACKS):
            path = write_audio(music_dir / rel, seconds, seed=i, channels=1)
            if tags:
                f = mutagen.File(path)
                for key, value in tags.items():
                    f[key] = value
                f.save()
    else:
        (root / "usr/share/games/levels").mkdir(parents=True)
        (root / "usr/share/games/levels/readme.txt").write_text("no music here\n")
    doc = root / f"usr/share/doc/{package}/copyright"
    doc.parent.mkdir(parents=True)
    doc.write_text("Files: data/music/*\nLicense: GPL-2+\n")
    (root / "DEBIAN").mkdir()
    (root / "DEBIAN/control").write_text(
        f"Package: {package}\nVersion: {VERSION}\nArchitecture: all\n"
        "Maintainer: test <test@example.org>\nInstalled-Size: 2000\n"
        "Homepage: https://www.supertux.org/\nDescription: test package\n"
        " made by the tests.\n"
    )
    deb = folder / f"{package}_{VERSION}_all.deb"
    subprocess.run(
        ["dpkg-deb", "--root-owner-group", "-Zgzip", "-b", str(root), str(deb)],
        check=True,
        capture_output=True,
    )
    shutil.rmtree(root)
    return deb


@pytest.fixture(scope="module")
def built_deb(tmp_path_factory) -> Path:
    if shutil.which("dpkg-deb") is None:
        pytest.skip("needs dpkg-deb")
    return make_deb(tmp_path_factory.mktemp("deb"))


def downloads_with(deb: Path, folder: Path) -> Path:
    """A downloads folder holding a copy of ``deb`` (the build deletes it when done)."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(deb, folder / deb.name)
    return folder


# ---------------------------------------------------------------- the plan

APT_SHOW = """\
Package: frozen-bubble-data
Source: frozen-bubble
Version: 2.212-11
Installed-Size: 24284
Maintainer: Debian Games Team <pkg-games-devel@lists.alioth.debian.org>
Architecture: all
Description: Data files for Frozen-Bubble game
 This package contains data files for Frozen-Bubble.
Homepage: http://www.frozen-bubble.org/
Size: 21929412

Package: frozen-bubble-data
Version: 2.212-10
Installed-Size: 24000
Size: 21000000
"""


def test_parse_apt_show_keeps_the_first_stanza_and_joins_continuations():
    parsed = parse_apt_show(APT_SHOW)
    assert list(parsed) == ["frozen-bubble-data"]
    fields = parsed["frozen-bubble-data"]
    assert (fields["Version"], fields["Size"], fields["Installed-Size"]) == (
        "2.212-11",
        "21929412",
        "24284",
    )
    assert fields["Description"] == (
        "Data files for Frozen-Bubble game\nThis package contains data files for Frozen-Bubble."
    )


def _apt_knows(package: str) -> bool:
    if shutil.which("apt-cache") is None:
        return False
    done = subprocess.run(
        ["apt-cache", "show", "--no-all-versions", package], capture_output=True, text=True
    )
    return f"Package: {package}" in done.stdout


@pytest.mark.skipif(not _apt_knows("frozen-bubble-data"), reason="apt lists lack the package")
def test_describe_demo_from_this_machines_apt_lists(tmp_path):
    plan = describe_demo(["frozen-bubble-data", "warzone2100-music"], tmp_path / "demo")
    fb, wz = plan.packages
    assert (fb.name, wz.name) == ("frozen-bubble-data", "warzone2100-music")
    for p in plan.packages:
        assert p.version and p.version[0].isdigit()
        assert p.download_bytes > 1_000_000 and p.installed_bytes > 1_000_000
        assert not p.downloaded and not p.built
        assert "GPL" in p.licence
    assert plan.download_bytes == fb.download_bytes + wz.download_bytes
    assert plan.downloads == tmp_path / "demo" / ".downloads"
    text = plan.text()
    assert f"frozen-bubble-data {fb.version}" in text
    assert str(tmp_path / "demo" / "Warzone 2100") in text
    assert "CC-BY-SA" in text


@pytest.mark.skipif(not _apt_knows("frozen-bubble-data"), reason="apt lists lack the package")
def test_no_network_is_said_in_plain_words(tmp_path, monkeypatch):
    # apt honours the proxy variables: a closed port on this machine is a network that is down
    for name in ("http_proxy", "https_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    downloads = tmp_path / "debs"
    with pytest.raises(DemoError) as caught:
        run_task(fetch_deb("frozen-bubble-data", downloads))
    message = str(caught.value)
    assert message.startswith("could not download frozen-bubble-data: no connection")
    assert "Could not connect to 127.0.0.1:9" in message  # apt's own words, last line
    assert list(downloads.iterdir()) == []  # the temporary download folder is gone


def test_unknown_package_is_named():
    with pytest.raises(DemoError, match="no-such-soundtrack: not a package the demo knows"):
        describe_demo(["no-such-soundtrack"], "/tmp/x")


def test_without_apt_the_error_says_debian_is_needed(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no apt-cache, no dpkg-deb
    with pytest.raises(DemoError, match=r"apt-cache is not available.*Debian-based"):
        describe_demo(["frozen-bubble-data"], tmp_path / "demo")


@pytest.mark.parametrize(
    ("apt_output", "expected"),
    [
        ("E: Unable to locate package wesnoth-1.16-music", "Run `sudo apt-get update` once"),
        (
            "Err:1 http://deb.debian.org/debian bookworm/main amd64 wesnoth-1.16-music all "
            "1:1.16.9-1\n  Temporary failure resolving 'deb.debian.org'\nE: Failed to fetch "
            "http://deb.debian.org/debian/pool/main/w/wesnoth-1.16/x.deb  Temporary failure "
            "resolving 'deb.debian.org'",
            "no connection to Debian's servers",
        ),
        ("E: Write error - write (28: No space left on device)", "the disk is full"),
        ("E: something else entirely", "apt-get could not download wesnoth-1.16-music"),
    ],
)
def test_apt_failures_in_plain_words(apt_output, expected):
    message = str(_apt_failure("wesnoth-1.16-music", apt_output))
    assert expected in message
    assert "wesnoth-1.16-music" in message


def test_default_dir_follows_the_xdg_music_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    assert default_demo_dir() == tmp_path / "Music" / "tagger-demo"
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg/user-dirs.dirs").write_text('XDG_MUSIC_DIR="$HOME/Musik"\n')
    assert default_demo_dir() == tmp_path / "Musik" / "tagger-demo"


def test_a_chosen_folder_with_music_gets_a_demo_folder_inside(tmp_path):
    assert demo_folder_in(tmp_path / "new") == tmp_path / "new"  # missing: used as it is
    (tmp_path / "empty").mkdir()
    assert demo_folder_in(tmp_path / "empty") == tmp_path / "empty"
    (tmp_path / "Music" / "Album").mkdir(parents=True)
    assert demo_folder_in(tmp_path / "Music") == tmp_path / "Music" / "tagger-demo"
    (tmp_path / "old-demo").mkdir()
    (tmp_path / "old-demo" / MANIFEST).write_text("{}")
    assert demo_folder_in(tmp_path / "old-demo") == tmp_path / "old-demo"


def test_a_broken_deb_is_named(tmp_path):
    downloads = tmp_path / "debs"
    downloads.mkdir()
    bad = downloads / f"{PACKAGE}_{VERSION}_all.deb"
    bad.write_text("not a package\n")
    if shutil.which("dpkg-deb") is None:
        pytest.skip("needs dpkg-deb")
    with pytest.raises(DemoError, match=re.escape(str(bad))):
        describe_demo([PACKAGE], tmp_path / "demo", downloads=downloads)


# ---------------------------------------------------------------- building


@needs_dpkg
def test_build_from_a_local_deb_then_resume(built_deb, tmp_path):
    dest = tmp_path / "My Music" / "tagger-demo"
    downloads = downloads_with(built_deb, tmp_path / "debs")

    plan = describe_demo([PACKAGE], dest, downloads=downloads)
    (p,) = plan.packages
    assert (p.version, p.downloaded, p.built) == (VERSION, True, False)
    assert p.download_bytes == built_deb.stat().st_size
    assert plan.download_bytes == 0  # already downloaded
    assert p.installed_bytes == 2000 * 1024
    assert "already downloaded" in plan.text()

    progress = []
    report = run_task(
        build_demo_task(dest, packages=[PACKAGE], downloads=downloads), progress.append
    )
    assert report.tracks == KEPT and report.packages == {PACKAGE: KEPT}
    assert report.downloaded_bytes == 0 and report.skipped == []
    dones = [q.done for q in progress]
    assert dones == sorted(dones) and progress[-1].done == progress[-1].total > 0
    assert {q.stage for q in progress} >= {"unpack", "tracks", "done"}
    assert any("track 2 of 3" in q.what for q in progress)

    folder = dest / "SuperTux Soundtrack"
    tracks = sorted(f.name for f in folder.glob("*.ogg"))
    # titles from the tags, else from the file name; the jingles are left out
    assert tracks == ["Chipdisko.ogg", "Forest Dance.ogg", "Theme.ogg"]
    forest = mutagen.File(folder / "Forest Dance.ogg", easy=True)
    assert forest["title"] == ["Forest Dance"]
    assert forest["artist"] == ["Wansti"]
    assert forest["album"] == ["SuperTux Soundtrack"]
    assert forest["genre"] == ["Soundtrack"]
    assert forest["tracknumber"]
    assert "supertux-data 0.6.3-2" in forest["comment"][0]
    assert sf.info(folder / "Forest Dance.ogg").duration == pytest.approx(21.0, abs=0.1)
    chip = folder / "Chipdisko.ogg"
    assert mutagen.File(chip, easy=True)["artist"] == ["Mortimer Twang"]  # the composer
    assert (folder / "COPYRIGHT").read_text().startswith("Files: data/music/*")

    readme = (dest / "README.txt").read_text()
    assert "supertux-data 0.6.3-2" in readme and "GPL-2+" in readme
    assert "3 tracks" in readme and f'tagger-gui "{dest}"' in readme
    manifest = json.loads((dest / MANIFEST).read_text())
    assert len(manifest["packages"][PACKAGE]["files"]) == KEPT
    # the .deb and the unpacked tree are gone; nothing half-written is left
    assert not downloads.exists()
    assert not list(dest.rglob("*.part"))

    # again: nothing to download or unpack, the files are left as they are
    stamps = {f: f.stat().st_mtime_ns for f in folder.iterdir()}
    again = describe_demo([PACKAGE], dest, downloads=downloads)
    assert again.is_built and again.download_bytes == 0 and again.needed_bytes == 0
    assert "already in the library" in again.text()
    second = run_task(build_demo_task(dest, packages=[PACKAGE], downloads=downloads))
    assert second.skipped == [PACKAGE] and second.tracks == KEPT
    assert {f: f.stat().st_mtime_ns for f in folder.iterdir()} == stamps


@needs_dpkg
def test_cancelled_build_cleans_up_and_resumes(built_deb, tmp_path):
    dest = tmp_path / "demo"
    downloads = downloads_with(built_deb, tmp_path / "debs")
    task = build_demo_task(dest, packages=[PACKAGE], downloads=downloads)
    for p in task:
        if p.stage == "tracks" and "track 2 of 3" in p.what:
            break
    task.close()  # as the Qt worker does on Cancel
    folder = dest / "SuperTux Soundtrack"
    assert len(list(folder.glob("*.ogg"))) == 1  # the first track was done
    assert not list(downloads.glob(".unpacked-*")) and not list(dest.rglob("*.part"))
    assert (downloads / built_deb.name).is_file()  # kept for the next run
    assert not describe_demo([PACKAGE], dest, downloads=downloads).is_built

    report = run_task(build_demo_task(dest, packages=[PACKAGE], downloads=downloads))
    assert report.tracks == KEPT
    assert len(list(folder.glob("*.ogg"))) == KEPT


@needs_dpkg
def test_a_package_without_music_says_so(tmp_path):
    deb = make_deb(tmp_path / "deb", music=False)
    dest = tmp_path / "demo"
    with pytest.raises(DemoError, match=r"supertux-data 0\.6\.3-2: no music found"):
        run_task(build_demo_task(dest, packages=[PACKAGE], downloads=deb.parent))
    assert not list(deb.parent.glob(".unpacked-*"))


def test_a_file_as_destination_is_refused(tmp_path):
    dest = tmp_path / "file.txt"
    dest.write_text("x")
    with pytest.raises(DemoError, match=r"file\.txt: exists and is not a folder"):
        describe_demo([PACKAGE], dest)


@needs_dpkg
def test_a_truncated_download_is_named_and_nothing_is_left(built_deb, tmp_path):
    downloads = tmp_path / "debs"
    downloads.mkdir()
    cut = downloads / built_deb.name
    cut.write_bytes(built_deb.read_bytes()[: built_deb.stat().st_size // 2])
    with pytest.raises(DemoError, match=re.escape(f"{cut}: cannot be unpacked")) as caught:
        run_task(build_demo_task(tmp_path / "demo", packages=[PACKAGE], downloads=downloads))
    assert "delete it and try again" in str(caught.value)
    assert [p.name for p in downloads.iterdir()] == [cut.name]  # no unpacked leftovers


@needs_dpkg
def test_two_packages_one_progress_scale(built_deb, tmp_path):
    downloads = downloads_with(built_deb, tmp_path / "debs")
    make_deb(downloads, package="frozen-bubble-data")
    progress = []
    task = build_demo_task(
        tmp_path / "demo", packages=["frozen-bubble-data", PACKAGE], downloads=downloads
    )
    report = run_task(task, progress.append)
    # frozen-bubble has no jingles to leave out: 4 files of 20 s or more
    assert report.packages == {"frozen-bubble-data": 4, PACKAGE: KEPT}
    dones = [q.done for q in progress]
    assert dones == sorted(dones), "progress went backwards"
    assert {q.total for q in progress} == {progress[0].total}
    first_tracks = next(q for q in progress if q.package == PACKAGE)
    assert 0 < first_tracks.done < first_tracks.total
    assert sorted(p.name for p in (tmp_path / "demo").iterdir()) == [
        ".tagger-demo.json",
        "Frozen-Bubble",
        "README.txt",
        "SuperTux Soundtrack",
    ]

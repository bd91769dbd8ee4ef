"""``tagger demo`` as a user runs it: the plan, the confirmation, a build from a local .deb."""

from __future__ import annotations

import shutil

import pytest

from tagger_gui.cli import main

from .test_demo import KEPT, PACKAGE, VERSION, built_deb, downloads_with

__all__ = ["built_deb"]  # a fixture, shared with test_demo.py

needs_dpkg = pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb")


def tagger(capsys, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@needs_dpkg
def test_dry_run_prints_the_plan_and_builds_nothing(built_deb, tmp_path, capsys):
    dest = tmp_path / "demo"
    downloads = downloads_with(built_deb, tmp_path / "debs")
    code, out, _ = tagger(
        capsys, "demo", dest, "--dry-run", "--packages", PACKAGE, "--downloads", downloads
    )
    assert code == 0
    assert f"{PACKAGE} {VERSION}" in out
    assert "GPL-2+" in out
    assert str(dest / "SuperTux Soundtrack") in out
    assert "To download: 0 MB" in out and "already downloaded" in out
    assert not dest.exists()


@needs_dpkg
def test_without_a_terminal_it_asks_for_yes(built_deb, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", None)  # as under CI: nothing to ask on
    dest = tmp_path / "demo"
    downloads = downloads_with(built_deb, tmp_path / "debs")
    code, _, err = tagger(capsys, "demo", dest, "--packages", PACKAGE, "--downloads", downloads)
    assert code == 2 and "--yes" in err
    assert not dest.exists()


@needs_dpkg
def test_build_from_a_local_deb(built_deb, tmp_path, capsys):
    dest = tmp_path / "demo"
    downloads = downloads_with(built_deb, tmp_path / "debs")
    args = ["demo", dest, "--yes", "--packages", PACKAGE, "--downloads", downloads, "--quiet"]
    code, out, _ = tagger(capsys, *args)
    assert code == 0
    assert f"{KEPT} tracks" in out
    assert f'Next:  tagger-gui "{dest}"' in out
    assert len(list((dest / "SuperTux Soundtrack").glob("*.ogg"))) == KEPT
    assert (dest / "README.txt").is_file()

    code, out, _ = tagger(capsys, *args)  # again: already complete
    assert code == 0 and "already complete" in out and "already in the library" in out


def test_an_unknown_package_is_refused_by_the_parser(capsys):
    with pytest.raises(SystemExit):
        main(["demo", "--dry-run", "--packages", "no-such-soundtrack"])
    assert "invalid choice: 'no-such-soundtrack'" in capsys.readouterr().err


def test_errors_are_plain_words(tmp_path, capsys):
    dest = tmp_path / "file.txt"
    dest.write_text("x")
    code, _, err = tagger(capsys, "demo", dest, "--dry-run", "--packages", PACKAGE)
    assert code == 2
    assert err.strip() == f"tagger: {dest}: exists and is not a folder; choose another destination"

"""The Debian game-music corpus builder, on fake unpacked packages (no network)."""

from __future__ import annotations

import csv
import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf
from mutagen.flac import FLAC
from mutagen.oggvorbis import OggVorbis

from tests.conftest import REPO, write_audio

_spec = importlib.util.spec_from_file_location(
    "debian_game_music", REPO / "benchmarks" / "corpora" / "debian_game_music.py"
)
corpus = importlib.util.module_from_spec(_spec)
sys.modules["debian_game_music"] = corpus
_spec.loader.exec_module(corpus)

# Short clips keep the test fast: 2-s clips, files of 3 s or more, a last
# part of 1 s or more kept, at most 3 clips per track.
OPTIONS = dict(clip_seconds=2.0, min_seconds=3.0, min_remainder=1.0, max_clips=3)
SR = corpus.SAMPLE_RATE


def _vorbis(path: Path, seconds: float, seed: int, **tags: str) -> Path:
    write_audio(path, seconds, seed=seed)
    if tags:
        f = OggVorbis(path)
        for key, value in tags.items():
            f[key] = value
        f.save()
    return path


def fake_supertux(root: Path) -> Path:
    music = root / "usr/share/games/supertux2/music"
    _vorbis(music / "forest/forest.ogg", 7.5, 1, title="Forest Dance", artist="Wansti")
    _vorbis(music / "forest/ghostforest.ogg", 5.5, 2)
    _vorbis(music / "forest/wisphunt.ogg", 4.4, 3, tracknumber="7")
    _vorbis(music / "forest/forestmap.ogg", 2.0, 4)  # too short: left out
    _vorbis(music / "antarctic/chipdisko.ogg", 3.2, 5, composer="Mortimer Twang")
    _vorbis(music / "misc/leveldone.ogg", 4.0, 6)  # a jingle: excluded by name
    write_audio(root / "usr/share/games/supertux2/sounds/rain.wav", 5.0, seed=7)  # not music
    doc = root / "usr/share/doc/supertux-data/copyright"
    doc.parent.mkdir(parents=True)
    doc.write_text("Files: data/music/*\nLicense: GPL-2+\n")
    return root


def fake_wesnoth(root: Path) -> Path:
    music = root / "usr/share/games/wesnoth/1.16/data/core/music"
    _vorbis(music / "knolls.ogg", 3.5, 11, title="The Knolls", composer="Timothy Pinkham")
    _vorbis(music / "wanderer.ogg", 3.5, 12, artist="Timothy Pinkham")
    _vorbis(music / "sad.ogg", 3.5, 13, composer="Tyler Johnson", artist="Tyler Johnson")
    _vorbis(music / "victory2.ogg", 4.0, 14, composer="Ryan Reilly")  # a stinger
    return root


def fake_warzone(root: Path) -> Path:
    music = root / "usr/share/games/warzone2100/music"
    write_audio(music / "menu.opus", 3.5, seed=21)
    album = music / "albums/legacy_soundtrack"
    write_audio(album / "track5.opus", 3.5, seed=22)
    meta = {
        "title": "Legacy Soundtrack",
        "author": "LupusMechanicus",
        "tracks": [
            {"filename": "track4.opus", "title": "Uncertain Future", "author": "LupusMechanicus"},
            {"filename": "track5.opus", "title": "Recovery Ops", "author": "LupusMechanicus"},
        ],
    }
    (album / "album.json").write_text(json.dumps(meta))
    return root


def _rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_plan_clips_keeps_a_long_remainder_and_spreads_the_cap():
    sr = 10
    assert corpus.plan_clips(95, sr, 2.0, 1.0, None) == [
        (0, 0, 20),
        (1, 20, 40),
        (2, 40, 60),
        (3, 60, 80),
        (4, 80, 95),
    ]
    assert [c for c, _, _ in corpus.plan_clips(95, sr, 2.0, 1.6, None)] == [0, 1, 2, 3]
    assert [c for c, _, _ in corpus.plan_clips(95, sr, 2.0, 1.0, 3)] == [0, 2, 4]
    assert corpus.plan_clips(9, sr, 2.0, 1.0, 3) == []


def test_supertux_clips_lengths_tags_and_labels(tmp_path):
    unpacked = fake_supertux(tmp_path / "pkg")
    out = tmp_path / "out"
    tracks = corpus.build_package("supertux-data", unpacked, out, **OPTIONS)

    by_group = {t.group: t for t in tracks}
    assert sorted(by_group) == [
        "supertux-data/chipdisko",
        "supertux-data/forest",
        "supertux-data/ghostforest",
        "supertux-data/wisphunt",
    ]
    clip_names = {g: [Path(c).name for c in t.clips] for g, t in by_group.items()}
    # 7.5 s: clips 0-3 (the last 1.5 s), capped to 3 spread over the track
    assert clip_names["supertux-data/forest"] == [
        "forest_c00.flac",
        "forest_c02.flac",
        "forest_c03.flac",
    ]
    assert clip_names["supertux-data/ghostforest"] == [f"ghostforest_c0{i}.flac" for i in range(3)]
    assert clip_names["supertux-data/wisphunt"] == [
        "wisphunt_c00.flac",
        "wisphunt_c01.flac",
    ]  # 0.4 s dropped
    assert clip_names["supertux-data/chipdisko"] == ["chipdisko_c00.flac", "chipdisko_c01.flac"]

    for t in tracks:
        for clip in t.clips:
            path = out / clip
            assert path.parent == out / "clips" / "supertux-data" / t.slug
            info = sf.info(path)
            assert (info.samplerate, info.channels, info.format, info.subtype) == (
                SR,
                1,
                "FLAC",
                "PCM_16",
            )
            n = int(path.stem.rsplit("_c", 1)[1])
            expected = min(2.0, t.duration - 2.0 * n)
            assert info.frames == pytest.approx(expected * SR, abs=2)

    forest = by_group["supertux-data/forest"]
    tags = FLAC(out / forest.clips[0])
    assert tags["title"] == ["Forest Dance"]
    assert tags["artist"] == ["Wansti"]
    assert tags["album"] == ["SuperTux Soundtrack"]
    assert tags["tracknumber"]  # the position in the package when the file has none
    assert FLAC(out / by_group["supertux-data/wisphunt"].clips[0])["tracknumber"] == ["7"]
    assert FLAC(out / by_group["supertux-data/wisphunt"].clips[0])["title"] == ["Wisphunt"]
    assert FLAC(out / by_group["supertux-data/chipdisko"].clips[0])["artist"] == ["Mortimer Twang"]
    assert forest.tags == ["soundtrack:supertux", "supertux-world:rooted-forest"]
    assert by_group["supertux-data/chipdisko"].tags == [
        "soundtrack:supertux",
        "supertux-world:icy-island",
    ]

    kept, dropped = corpus.write_tables(out, tracks, min_tracks=3)
    assert kept == {"soundtrack:supertux": (10, 4), "supertux-world:rooted-forest": (8, 3)}
    assert dropped == {"supertux-world:icy-island": (2, 1)}
    rows = _rows(out / "labels.csv")
    assert list(rows[0]) == ["path", "tag", "group"]
    assert len(rows) == 10 + 8
    for row in rows:
        assert (out / "clips" / row["path"]).is_file()
        assert "\\" not in row["path"] and row["path"].startswith("supertux-data/")
        assert row["group"] == "supertux-data/" + row["path"].split("/")[1]
    assert {r["tag"] for r in rows if "chipdisko" in r["path"]} == {"soundtrack:supertux"}
    track_rows = _rows(out / "tracks.csv")
    assert [r["group"] for r in track_rows] == [t.group for t in tracks]
    assert {r["clips"] for r in track_rows if r["group"].endswith("/forest")} == {"3"}
    assert "supertux-world:icy-island" in corpus.summary(tracks, kept, dropped, 2.0)


def test_rerun_skips_written_clips_and_fills_gaps(tmp_path):
    unpacked = fake_supertux(tmp_path / "pkg")
    out = tmp_path / "out"
    first = corpus.build_package("supertux-data", unpacked, out, **OPTIONS)
    clips = sorted((out / "clips").rglob("*.flac"))
    stamps = {p: p.stat().st_mtime_ns for p in clips}
    removed = clips[0]
    removed.unlink()

    second = corpus.build_package("supertux-data", unpacked, out, **OPTIONS)
    assert [(t.group, t.clips, t.tags) for t in second] == [
        (t.group, t.clips, t.tags) for t in first
    ]
    assert removed.is_file()
    assert sorted((out / "clips").rglob("*.flac")) == clips
    assert not list((out / "clips").rglob("*.part"))
    for p in clips:
        if p != removed:
            assert p.stat().st_mtime_ns == stamps[p]


def test_wesnoth_composer_and_warzone_album(tmp_path):
    out = tmp_path / "out"
    wesnoth = corpus.build_package(
        "wesnoth-1.16-music", fake_wesnoth(tmp_path / "w"), out, **OPTIONS
    )
    assert [t.slug for t in wesnoth] == ["knolls", "sad", "wanderer"]  # victory2 left out
    assert {t.slug: t.tags[1] for t in wesnoth} == {
        "knolls": "wesnoth-composer:timothy-pinkham",
        "sad": "wesnoth-composer:tyler-johnson",
        "wanderer": "wesnoth-composer:timothy-pinkham",
    }
    assert FLAC(out / wesnoth[0].clips[0])["artist"] == ["Timothy Pinkham"]
    assert FLAC(out / wesnoth[0].clips[0])["album"] == ["The Battle for Wesnoth OST"]

    warzone = corpus.build_package(
        "warzone2100-music", fake_warzone(tmp_path / "z"), out, **OPTIONS
    )
    by_slug = {t.slug: t for t in warzone}
    track5 = by_slug["track5"]
    assert track5.tags == ["soundtrack:warzone2100", "warzone-album:legacy"]
    assert (track5.title, track5.album, track5.artist, track5.tracknumber) == (
        "Recovery Ops",
        "Warzone 2100 Legacy Soundtrack",
        "LupusMechanicus",
        "2",
    )
    assert by_slug["menu"].tags == ["soundtrack:warzone2100"]
    tags = FLAC(out / track5.clips[0])
    assert (tags["title"], tags["album"]) == (["Recovery Ops"], ["Warzone 2100 Legacy Soundtrack"])
    assert sf.info(out / track5.clips[0]).samplerate == SR  # from 48 kHz Opus

    kept, dropped = corpus.write_tables(out, wesnoth + warzone, min_tracks=2)
    assert set(kept) == {
        "soundtrack:wesnoth",
        "soundtrack:warzone2100",
        "wesnoth-composer:timothy-pinkham",
    }
    assert set(dropped) == {"wesnoth-composer:tyler-johnson", "warzone-album:legacy"}


@pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb")
def test_cli_from_a_local_deb(tmp_path, capsys):
    root = fake_supertux(tmp_path / "supertux-data")
    (root / "DEBIAN").mkdir()
    (root / "DEBIAN/control").write_text(
        "Package: supertux-data\nVersion: 0.6.3-2\nArchitecture: all\n"
        "Maintainer: test <test@example.org>\nDescription: test\n"
    )
    debs = tmp_path / "debs"
    debs.mkdir()
    subprocess.run(
        [
            "dpkg-deb",
            "--root-owner-group",
            "-Zgzip",
            "-b",
            str(root),
            str(debs / "supertux-data_0.6.3-2_all.deb"),
        ],
        check=True,
        capture_output=True,
    )
    out = tmp_path / "corpus"
    args = [str(out), "--packages", "supertux-data", "--debs", str(debs), "--clip-seconds", "2"]
    args += ["--max-clips-per-track", "3", "--min-seconds", "3", "--min-remainder", "1"]
    assert corpus.main(args) == 0
    printed = capsys.readouterr().out
    assert "supertux-world:rooted-forest" in printed and "dropped" in printed
    assert (out / "clips/supertux-data/COPYRIGHT").read_text().startswith("Files: data/music/*")
    readme = (out / "README.md").read_text()
    assert "supertux-data_0.6.3-2_all.deb" in readme and "GPL-2+" in readme
    assert len(_rows(out / "labels.csv")) == 18

    assert corpus.main(args) == 0  # again: nothing to cut, same tables
    assert len(_rows(out / "labels.csv")) == 18

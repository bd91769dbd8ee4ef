"""`tagger project|label|undo|redo|tag` as a user (or a script) runs them."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tagger_gui.cli import main
from tagger_gui.core.project import Project

from .conftest import write_audio


@pytest.fixture
def music(tmp_path: Path) -> Path:
    root = tmp_path / "Music"
    write_audio(root / "a.wav", 0.2, seed=1)
    write_audio(root / "Album" / "b.flac", 0.2, seed=2)
    write_audio(root / "Album" / "Ünïcode.ogg", 0.2, seed=3)
    return root


def tagger(capsys, *args: str) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def inited(music: Path, capsys) -> Path:
    code, out, _ = tagger(capsys, "project", "init", music, "--quiet")
    assert code == 0, out
    return music


def labels(music: Path, tag: str) -> dict[str, str]:
    with Project.open(music, readonly=True) as p:
        table = p.tracks()
        lab = p.labels(tag, hierarchy=False).as_dict()
        return {table.relpath[table.rows_of([t])[0]]: v for t, v in lab.items()}


def test_init_scans_and_status_reports(inited: Path, capsys):
    code, out, _ = tagger(capsys, "project", "status", inited)
    assert code == 0
    assert f"Music:   {inited}" in out
    assert "Tracks:  3, of which 0 missing" in out
    assert "No tags yet" in out
    code, out, err = tagger(capsys, "project", "init", inited)
    assert code == 2 and "already holds a project" in err


def test_init_reports_what_it_found(music: Path, capsys):
    (music / "junk.mp3").write_text("not audio")
    code, out, _ = tagger(capsys, "project", "init", music, "--quiet")
    assert code == 0
    assert "Found 4 audio files" in out and "new        4" in out
    assert "junk.mp3:" in out  # a problem, listed, but the file is a track


def test_project_apart_from_the_music(music: Path, tmp_path: Path, capsys):
    pdir = tmp_path / "my project"
    code, out, _ = tagger(capsys, "project", "init", music, "--project", pdir, "--quiet")
    assert code == 0 and f"Created the project {pdir}" in out
    assert (pdir / "project.sqlite").is_file() and not (music / ".tagger").exists()
    code, out, _ = tagger(capsys, "project", "status", pdir)
    assert code == 0 and "Tracks:  3" in out
    code, _, err = tagger(capsys, "project", "status", music)
    assert code == 2 and "is not a tagger project" in err and "tagger project init" in err


def test_label_undo_redo(inited: Path, capsys, monkeypatch):
    assert tagger(capsys, "tag", "add", inited, "jazz")[0] == 0
    code, out, _ = tagger(capsys, "label", inited, "jazz", "a.wav", inited / "Album" / "b.flac")
    assert code == 0 and "label 2 tracks positive for 'jazz'" in out
    monkeypatch.chdir(inited / "Album")  # a path relative to the current folder
    code, out, _ = tagger(capsys, "label", inited, "jazz", "--negative", "b.flac")
    assert code == 0
    assert labels(inited, "jazz") == {"a.wav": "positive", "Album/b.flac": "negative"}
    code, out, _ = tagger(capsys, "undo", inited)
    assert code == 0 and out.strip() == "Undone: label 'b.flac' negative for 'jazz'"
    assert labels(inited, "jazz") == {"a.wav": "positive", "Album/b.flac": "positive"}
    code, out, _ = tagger(capsys, "redo", inited)
    assert code == 0 and out.startswith("Redone: label 'b.flac' negative")
    code, out, _ = tagger(capsys, "label", inited, "jazz", "--remove", "a.wav")
    assert code == 0 and labels(inited, "jazz") == {"Album/b.flac": "negative"}
    code, out, _ = tagger(capsys, "redo", inited)
    assert code == 1 and "Nothing to redo" in out
    code, out, _ = tagger(capsys, "label", inited, "jazz", "--negative", "b.flac")
    assert code == 0 and "Nothing changed" in out


def test_label_is_all_or_nothing(inited: Path, capsys):
    tagger(capsys, "tag", "add", inited, "jazz")
    code, _, err = tagger(capsys, "label", inited, "jazz", "a.wav", "nope.mp3", "/etc/hosts")
    assert code == 2
    assert "not inside the music folder" in err
    code, _, err = tagger(capsys, "label", inited, "jazz", "a.wav", "nope.mp3")
    assert code == 2 and "nope.mp3" in err and "nothing was labelled" in err
    assert labels(inited, "jazz") == {}
    code, _, err = tagger(capsys, "label", inited, "rock", "a.wav")
    assert code == 2 and "no tag named 'rock'" in err and "--create-tag" in err
    code, _, _ = tagger(capsys, "label", inited, "rock", "a.wav", "--create-tag")
    assert code == 0 and labels(inited, "rock") == {"a.wav": "positive"}


def test_label_paths_from_stdin_and_unicode(inited: Path, capsys, monkeypatch):
    tagger(capsys, "tag", "add", inited, "jazz")
    import unicodedata

    nfd = unicodedata.normalize("NFD", "Album/Ünïcode.ogg")
    monkeypatch.setattr(sys, "stdin", io.StringIO(f"a.wav\n\n{nfd}\n"))
    code, _, err = tagger(capsys, "label", inited, "jazz", "--skip", "-")
    assert code == 0, err
    assert labels(inited, "jazz") == {"a.wav": "skip", "Album/Ünïcode.ogg": "skip"}


def test_tags_tree_and_counts(inited: Path, capsys):
    assert tagger(capsys, "tag", "add", inited, "jazz", "--colour", "#123456")[0] == 0
    assert tagger(capsys, "tag", "add", inited, "bebop", "--parent", "jazz")[0] == 0
    code, _, err = tagger(capsys, "tag", "add", inited, "JAZZ")
    assert code == 2 and "already exists" in err
    tagger(capsys, "label", inited, "bebop", "a.wav", "Album/b.flac")
    tagger(capsys, "label", inited, "jazz", "--negative", "Album/Ünïcode.ogg")
    code, out, _ = tagger(capsys, "tag", "list", inited)
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "Tags (2):"
    assert lines[1].split()[:5] == ["jazz", "2", "positive", "1", "negative"]
    assert lines[2].startswith("    bebop") and lines[2].split()[1:5] == [
        "2",
        "positive",
        "1",
        "negative",
    ]
    assert tagger(capsys, "tag", "rename", inited, "bebop", "Bebop")[0] == 0
    code, _, err = tagger(capsys, "tag", "edit", inited, "jazz", "--parent", "Bebop")
    assert code == 2 and "would loop" in err
    code, out, _ = tagger(capsys, "tag", "edit", inited, "bebop", "--top-level")
    assert code == 0 and "change parent of tag 'Bebop'" in out
    code, out, _ = tagger(capsys, "tag", "delete", inited, "jazz")
    assert code == 0 and "delete tag 'jazz' (1 labels)" in out
    code, out, _ = tagger(capsys, "tag", "list", inited)
    assert "jazz" not in out and "Bebop" in out
    assert tagger(capsys, "undo", inited)[0] == 0
    assert labels(inited, "jazz") == {"Album/Ünïcode.ogg": "negative"}


def test_sync_follows_moved_files(inited: Path, capsys):
    tagger(capsys, "tag", "add", inited, "jazz")
    tagger(capsys, "label", inited, "jazz", "a.wav")
    (inited / "New").mkdir()
    shutil.move(inited / "a.wav", inited / "New" / "a renamed.wav")
    os.remove(inited / "Album" / "b.flac")
    code, out, _ = tagger(capsys, "project", "sync", inited, "--quiet")
    assert code == 0
    assert "a.wav -> New/a renamed.wav" in out
    assert "missing now (labels kept) 1" in out and "Album/b.flac" in out
    assert labels(inited, "jazz") == {"New/a renamed.wav": "positive"}
    code, out, _ = tagger(capsys, "project", "status", inited)
    assert "Tracks:  3, of which 1 missing" in out and "  Album/b.flac" in out


def test_bad_projects_give_clear_errors(tmp_path: Path, inited: Path, capsys):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "project.sqlite").write_bytes(b"garbage " * 1000)
    code, _, err = tagger(capsys, "project", "status", bad)
    assert code == 2 and str(bad / "project.sqlite") in err and "damaged" in err
    code, _, err = tagger(capsys, "undo", tmp_path / "nowhere")
    assert code == 2 and "no such file or folder" in err
    code, _, err = tagger(capsys, "project", "init", tmp_path / "no music")
    assert code == 2 and "not a folder" in err
    shutil.move(inited / ".tagger", tmp_path / "orphan")
    shutil.rmtree(inited)
    code, out, _ = tagger(capsys, "project", "status", tmp_path / "orphan")
    assert code == 0 and f"Music:   {inited}  (NOT FOUND" in out
    code, _, err = tagger(capsys, "project", "sync", tmp_path / "orphan")
    assert code == 2 and "does not exist" in err


def test_a_second_writer_gets_a_clear_message(inited: Path):
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                """
                import sys
                from tagger_gui.core.project import Project
                p = Project.open(sys.argv[1])
                print("ready", flush=True)
                sys.stdin.read()
                """
            ),
            str(inited),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ready"
        run = subprocess.run(
            [sys.executable, "-m", "tagger_gui", "tag", "add", str(inited), "jazz"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert run.returncode == 2
        assert f"project is open elsewhere (pid {holder.pid} on host" in run.stderr
        # reading still works
        run = subprocess.run(
            [sys.executable, "-m", "tagger_gui", "project", "status", str(inited)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert run.returncode == 0 and "Tracks:  3" in run.stdout
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)


def test_help_speaks_to_a_librarian(capsys):
    with pytest.raises(SystemExit):
        main(["project", "--help"])
    out = capsys.readouterr().out
    assert "tagger project init ~/Music" in out and "undo" in out
    with pytest.raises(SystemExit):
        main(["label", "--help"])
    out = capsys.readouterr().out
    for words in ("--negative", "--skip", "--remove", "stdin"):
        assert words in out


# --- export, import, write-back -------------------------------------------------------------


def read_csv(path: Path) -> list[list[str]]:
    import csv

    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.reader(line for line in fh if not line.startswith("#")))


@pytest.fixture
def labelled(inited: Path, capsys) -> Path:
    tagger(capsys, "tag", "add", inited, "jazz")
    tagger(capsys, "tag", "add", inited, "bebop", "--parent", "jazz")
    tagger(capsys, "label", inited, "bebop", "a.wav")
    tagger(capsys, "label", inited, "jazz", "--negative", "Album/Ünïcode.ogg")
    with Project.open(inited) as p:
        (b,) = p.track_ids_for_relpaths(["Album/b.flac"])
        p.set_labels("jazz", [b], "positive", source="model", scores=0.91, probe_version="v7")
    return inited


def test_export_long_and_wide(labelled: Path, tmp_path: Path, capsys):
    out = tmp_path / "out" / "labels.csv"
    code, text, err = tagger(capsys, "export", labelled, "-o", out)
    assert code == 0, err
    assert text.strip() == f"Wrote 3 rows (3 labels, 2 tags) to {out}"
    rows = read_csv(out)
    assert rows[0][:4] == ["path", "tag", "decision", "source"]
    body = {(r[0], r[1]): r for r in rows[1:]}
    assert set(body) == {
        ("a.wav", "bebop"),
        ("Album/b.flac", "jazz"),
        ("Album/Ünïcode.ogg", "jazz"),
    }
    assert body[("Album/b.flac", "jazz")][2:5] == ["positive", "model", "0.91"]
    assert body[("Album/b.flac", "jazz")][8] == "v7"
    assert body[("a.wav", "bebop")][2:5] == ["positive", "human", ""]
    assert out.read_text(encoding="utf-8").startswith("# ")
    assert (tmp_path / "out" / "labels.csv.json").is_file()

    wide = tmp_path / "wide.csv"
    code, _, err = tagger(capsys, "export", labelled, "-o", wide, "--format", "wide", "--hierarchy")
    assert code == 0, err
    rows = read_csv(wide)
    assert rows[0] == ["path", "bebop", "jazz"]
    cells = {r[0]: r[1:] for r in rows[1:]}
    assert cells["a.wav"] == ["1", "1"]  # the bebop positive counts for jazz
    assert cells["Album/Ünïcode.ogg"] == ["0", "0"]  # the jazz negative counts for bebop
    assert cells["Album/b.flac"] == ["", "1"]


def test_export_then_import_elsewhere(labelled: Path, tmp_path: Path, capsys):
    out = tmp_path / "labels.csv"
    assert tagger(capsys, "export", labelled, "-o", out)[0] == 0
    copy = tmp_path / "Copy"
    shutil.copytree(labelled, copy, ignore=shutil.ignore_patterns(".tagger"))
    assert tagger(capsys, "project", "init", copy, "--quiet")[0] == 0
    code, text, err = tagger(capsys, "import", copy, out, "--dry-run")
    assert code == 0 and "3 labels" in text and "Dry run" in text
    with Project.open(copy, readonly=True) as p:
        assert p.tags() == []
    code, text, err = tagger(capsys, "import", copy, out)
    assert code == 0, err
    assert "Imported 3 labels; new tags: " in text
    assert set(text.split("new tags: ")[1].split(".")[0].split(", ")) == {"bebop", "jazz"}
    assert labels(copy, "jazz") == {"Album/b.flac": "positive", "Album/Ünïcode.ogg": "negative"}
    assert labels(copy, "bebop") == {"a.wav": "positive"}
    code, text, _ = tagger(capsys, "undo", copy)
    assert code == 0 and text.strip() == f"Undone: import {out.name}"
    with Project.open(copy, readonly=True) as p:
        assert p.tags() == []


def test_import_is_all_or_nothing(inited: Path, tmp_path: Path, capsys):
    good = tmp_path / "good.csv"
    good.write_text(
        f'path,tag,value\n"{inited / "a.wav"}",rock,yes\nAlbum\\b.flac,rock,no\n'
        "not/here.mp3,rock,yes\n",
        encoding="utf-8",
    )
    code, text, err = tagger(capsys, "import", inited, good)
    assert code == 2 and "line 4: not/here.mp3" in text and "nothing imported" in err
    with Project.open(inited, readonly=True) as p:
        assert p.tags() == []
    code, text, err = tagger(capsys, "import", inited, good, "--allow-unmatched")
    assert code == 0, err
    assert labels(inited, "rock") == {"a.wav": "positive", "Album/b.flac": "negative"}
    bad = tmp_path / "bad.csv"
    bad.write_text('path,tag,value\na.wav,jazz,1\n"Album/b.flac,jazz,1\n', encoding="utf-8")
    code, _, err = tagger(capsys, "import", inited, bad)
    assert code == 2 and f"{bad}, line 3" in err
    with Project.open(inited, readonly=True) as p:
        assert not p.has_tag("jazz")


def test_writeback_preview_write_and_undo(labelled: Path, capsys):
    from tagger_gui.core.project.writeback import read_field

    files = {rel: (labelled / rel).read_bytes() for rel in ("a.wav", "Album/b.flac")}
    code, text, err = tagger(capsys, "writeback", labelled, "--dry-run", "--quiet")
    assert code == 0, err
    assert "a.wav [TXXX:TAGGER_TAGS]: (none) -> bebop; jazz" in text
    assert "Album/b.flac [TAGGER_TAGS]: (none) -> jazz" in text
    assert "Dry run: nothing written." in text
    assert all((labelled / rel).read_bytes() == data for rel, data in files.items())

    code, text, err = tagger(capsys, "writeback", labelled, "--quiet")
    assert code == 0, err
    assert "2 files written" in text and "Journal: " in text
    assert read_field(labelled / "a.wav") == ["bebop", "jazz"]
    assert read_field(labelled / "Album/b.flac") == ["jazz"]
    # our own rewrite is not "a file changed since the scan"
    code, text, _ = tagger(capsys, "writeback", labelled, "--dry-run", "--quiet")
    assert "0 to write, 0 to clear, 3 already up to date, 0 skipped" in text
    code, text, _ = tagger(capsys, "project", "sync", labelled, "--quiet")
    assert "changed    0" in text

    code, text, err = tagger(capsys, "writeback", labelled, "--undo", "--quiet")
    assert code == 0, err
    assert "2 files written" in text
    for rel, data in files.items():
        assert read_field(labelled / rel) == []
        # the audio is the same (the tag blocks may be laid out differently)
        before, _ = sf.read(io.BytesIO(data))
        after, _ = sf.read(labelled / rel)
        np.testing.assert_array_equal(before, after)


def test_writeback_skips_files_changed_since_the_scan(labelled: Path, capsys):
    write_audio(labelled / "a.wav", 0.4, seed=9)  # someone re-encoded it
    code, text, err = tagger(capsys, "writeback", labelled, "--quiet")
    assert code == 0, err
    assert "SKIP   a.wav: changed since it was analysed" in text
    assert "1 files written" in text
    code, _, err = tagger(capsys, "writeback", labelled, "--field", "A=B", "--dry-run")
    assert code == 2 and "without '='" in err


def test_writeback_keeps_the_embeddings_of_rewritten_files(labelled: Path, capsys):
    """Writing tags (and undoing it) must not make `tagger embed` analyse the files again."""
    from tagger_gui.core.cache import EmbeddingCache, default_cache_path

    code, _, err = tagger(
        capsys, "embed", labelled, "--backend", "handcrafted", "--workers", "0", "--quiet"
    )
    assert code == 0, err
    cache_path = default_cache_path(labelled)
    with EmbeddingCache.open(cache_path, mode="r") as cache:
        key = cache.backends()[0]
        rels, vectors = cache.load(key, "features")
        before = dict(zip(rels, vectors, strict=True))
        patches_before = dict(zip(rels, cache.tracks(key).n_patches.tolist(), strict=True))
    code, text, err = tagger(capsys, "writeback", labelled, "--quiet")
    assert code == 0, err
    assert "2 files written" in text
    code, text, err = tagger(
        capsys, "embed", labelled, "--backend", "handcrafted", "--workers", "0", "--quiet"
    )
    assert code == 0, err
    assert "embedded            0" in text and "unchanged (skipped) 3" in text
    with EmbeddingCache.open(cache_path, mode="r") as cache:
        rels, vectors = cache.load(key, "features")
        after = dict(zip(rels, vectors, strict=True))
        assert dict(zip(rels, cache.tracks(key).n_patches.tolist(), strict=True)) == patches_before
        assert not cache.verify()
    assert set(after) == set(before)
    for rel, vector in before.items():
        np.testing.assert_array_equal(after[rel], vector)

    code, text, err = tagger(capsys, "writeback", labelled, "--undo", "--quiet")
    assert code == 0, err
    code, text, err = tagger(
        capsys, "embed", labelled, "--backend", "handcrafted", "--workers", "0", "--quiet"
    )
    assert "embedded            0" in text and "unchanged (skipped) 3" in text


def test_adopt_identity_leaves_files_changed_otherwise(inited: Path, capsys):
    from tagger_gui.core.cache import EmbeddingCache, default_cache_path

    tagger(capsys, "embed", inited, "--backend", "handcrafted", "--workers", "0", "--quiet")
    with EmbeddingCache.open(default_cache_path(inited), mode="a") as cache:
        key = cache.backends()[0]
        table = cache.tracks(key)
        i = table.relpath.index("a.wav")
        size, mtime = int(table.size[i]), int(table.mtime_ns[i])
        changes = {
            "a.wav": (size, mtime, size + 10, mtime + 1),
            "Album/b.flac": (1, 2, 3, 4),  # not the identity the cache holds
        }
        assert cache.adopt_identity(changes) == 1
        table = cache.tracks(key)
        i = table.relpath.index("a.wav")
        assert (int(table.size[i]), int(table.mtime_ns[i])) == (size + 10, mtime + 1)
        assert not cache.verify()

"""The project store: creation, versions, library sync, tags, labels, undo."""

from __future__ import annotations

import os
import shutil
import sqlite3
import unicodedata
from pathlib import Path

import numpy as np
import pytest

from tagger_gui.core.errors import ProjectError
from tagger_gui.core.project import Project, locate_project, schema
from tagger_gui.core.project.store.records import _FileRecord
from tagger_gui.core.tasks import run_task

from .conftest import write_audio

UNICODE_NAME = "Björk – Jóga 日本語.flac"


@pytest.fixture
def library(tmp_path: Path) -> Path:
    root = tmp_path / "Music"
    write_audio(root / "a.wav", 0.3, seed=1)
    write_audio(root / "Album" / "b.flac", 0.3, seed=2)
    write_audio(root / "Album" / "c.ogg", 0.3, seed=3)
    write_audio(root / UNICODE_NAME, 0.3, seed=4)
    return root


@pytest.fixture
def project(library: Path):
    with Project.create(None, library) as p:
        run_task(p.sync_library())
        yield p


def name(p: Project, track_id: int) -> str:
    """How action descriptions name a track without a title tag."""
    return repr(p.track(track_id).relpath.rsplit("/", 1)[-1])


def ids_of(p: Project, *relpaths: str) -> list[int]:
    ids = p.track_ids_for_relpaths(relpaths)
    assert (ids >= 0).all(), relpaths
    return ids.tolist()


# --- creating and opening -----------------------------------------------------------


def test_create_records_library_and_cache_and_reopens(library: Path):
    with Project.create(None, library) as p:
        assert p.project_dir == library / ".tagger"
        assert p.library_root == library
        assert p.cache_path == library / ".tagger" / "embeddings.h5"
        assert p.schema_version == schema.latest_version()
    with Project.open(library) as p:  # the music folder finds its project
        assert p.library_root == library
        con = sqlite3.connect(p.db_path)
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert con.execute("PRAGMA user_version").fetchone()[0] == schema.latest_version()
        con.close()
    assert locate_project(library / ".tagger" / "project.sqlite") == library / ".tagger"


def test_project_inside_the_library_moves_with_it(library: Path, tmp_path: Path):
    with Project.create(None, library) as p:
        run_task(p.sync_library())
        p.create_tag("jazz")
        p.set_labels("jazz", ids_of(p, "a.wav"), "positive")
    moved = tmp_path / "elsewhere" / "Music"
    moved.parent.mkdir()
    shutil.move(library, moved)
    with Project.open(moved) as p:
        assert p.library_root == moved
        assert p.cache_path == moved / ".tagger" / "embeddings.h5"
        report = run_task(p.sync_library())
        assert report.missing == [] and report.added == 0
        assert p.labels("jazz").positives.tolist() == ids_of(p, "a.wav")


def test_a_project_moved_alone_still_finds_its_music(library: Path, tmp_path: Path):
    with Project.create(None, library) as p:
        run_task(p.sync_library())
    shutil.move(library / ".tagger", tmp_path / "kept elsewhere")
    with Project.open(tmp_path / "kept elsewhere") as p:
        assert p.library_root == library
        assert p.cache_path == library / ".tagger" / "embeddings.h5"
        assert run_task(p.sync_library()).missing == []


def test_a_copied_library_uses_its_own_copy(library: Path, tmp_path: Path):
    with Project.create(None, library) as p:
        run_task(p.sync_library())
        p.create_tag("jazz")
    shutil.copytree(library, tmp_path / "backup")
    with Project.open(tmp_path / "backup") as p:
        assert p.library_root == tmp_path / "backup"
        p.set_library_root(tmp_path / "backup")  # and it can be made permanent
    shutil.rmtree(library)
    with Project.open(tmp_path / "backup") as p:
        assert p.library_root == tmp_path / "backup"
        assert p.cache_path == tmp_path / "backup" / ".tagger" / "embeddings.h5"


def test_project_apart_from_the_music(library: Path, tmp_path: Path):
    pdir = tmp_path / "projects" / "mine"
    cache = tmp_path / "fast disk" / "emb.h5"
    with Project.create(pdir, library, cache_path=cache) as p:
        assert p.db_path == pdir / "project.sqlite"
        run_task(p.sync_library())
        assert len(p.tracks()) == 4
    assert not (library / ".tagger").exists()
    with Project.open(pdir) as p:
        assert p.library_root == library
        assert p.cache_path == cache


def test_create_refuses_a_missing_library_or_an_existing_project(library: Path, tmp_path: Path):
    with pytest.raises(ProjectError, match="does not exist"):
        Project.create(None, tmp_path / "nowhere")
    Project.create(None, library).close()
    with pytest.raises(ProjectError, match="already holds a project"):
        Project.create(None, library)


def test_a_folder_that_is_not_a_project(tmp_path: Path):
    (tmp_path / "stuff").mkdir()
    with pytest.raises(ProjectError, match=r"is not a tagger project.*tagger project init"):
        Project.open(tmp_path / "stuff")
    with pytest.raises(ProjectError, match="no such file or folder"):
        Project.open(tmp_path / "missing")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ProjectError, match=r"notes\.txt is not a tagger project"):
        Project.open(tmp_path / "notes.txt")


def test_a_corrupt_database_file_is_named(tmp_path: Path):
    pdir = tmp_path / "proj"
    pdir.mkdir()
    db = pdir / "project.sqlite"
    db.write_bytes(b"this is not SQLite at all, just some bytes\n" * 200)
    for readonly in (False, True):
        with pytest.raises(ProjectError, match=r"project\.sqlite: not a tagger project database"):
            Project.open(pdir, readonly=readonly)


def test_a_damaged_project_database_is_reported(project: Project):
    db = project.db_path
    project.close()
    data = bytearray(db.read_bytes())
    assert len(data) > 8192
    # Overwrite the second page and beyond (tables) but keep the header.
    data[4096:] = b"\xff" * (len(data) - 4096)
    db.write_bytes(bytes(data))
    with pytest.raises(ProjectError, match=str(db.name)):
        with Project.open(db.parent) as p:
            p.tracks()
            assert p.check() == []  # pragma: no cover - must not get here


def test_an_sqlite_file_of_someone_else(tmp_path: Path):
    pdir = tmp_path / "proj"
    pdir.mkdir()
    con = sqlite3.connect(pdir / "project.sqlite")
    con.execute("CREATE TABLE songs (x)")
    con.commit()
    con.close()
    with pytest.raises(ProjectError, match="SQLite database but not a tagger project"):
        Project.open(pdir)
    (pdir / "project.sqlite").write_bytes(b"")
    with pytest.raises(ProjectError, match="is empty"):
        Project.open(pdir)


def test_a_newer_schema_version_is_refused(project: Project):
    db = project.db_path
    project.close()
    con = sqlite3.connect(db)
    con.execute(f"PRAGMA user_version = {schema.latest_version() + 1}")
    con.commit()
    con.close()
    for readonly in (False, True):
        with pytest.raises(ProjectError, match=r"newer tagger_gui.*Update tagger_gui"):
            Project.open(db.parent, readonly=readonly)


def test_migrations_run_in_order_and_keep_a_backup(project: Project, monkeypatch):
    db = project.db_path
    project.create_tag("jazz")
    project.close()
    old = schema.latest_version()

    def add_rating(conn):
        conn.execute("ALTER TABLE tags ADD COLUMN rating INTEGER NOT NULL DEFAULT 3")

    monkeypatch.setattr(schema, "MIGRATIONS", [*schema.MIGRATIONS, add_rating])
    with pytest.raises(ProjectError, match="needs upgrading"):
        Project.open(db.parent, readonly=True)
    with Project.open(db.parent) as p:
        assert p.schema_version == old + 1
        assert p._conn.execute("SELECT rating FROM tags").fetchall() == [(3,)]
        assert [t.name for t in p.tags()] == ["jazz"]
    assert (db.parent / f"project.sqlite.v{old}.bak").is_file()
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA user_version").fetchone()[0] == old + 1
    con.close()


def test_a_failed_migration_leaves_the_file_as_it_was(project: Project, monkeypatch):
    db = project.db_path
    project.close()

    def broken(conn):
        conn.execute("CREATE TABLE half_done (x)")
        raise sqlite3.OperationalError("disk on fire")

    monkeypatch.setattr(schema, "MIGRATIONS", [*schema.MIGRATIONS, broken])
    with pytest.raises(ProjectError, match="disk on fire"):
        Project.open(db.parent)
    monkeypatch.undo()
    with Project.open(db.parent) as p:
        tables = {r[0] for r in p._conn.execute("SELECT name FROM sqlite_master")}
        assert "half_done" not in tables


def test_readonly_cannot_write(project: Project):
    project.create_tag("jazz")
    with Project.open(project.project_dir, readonly=True) as ro:
        assert [t.name for t in ro.tags()] == ["jazz"]
        with pytest.raises(ProjectError, match="read-only"):
            ro.create_tag("rock")
        with pytest.raises(ProjectError, match="read-only"):
            ro.set_labels("jazz", [1], "positive")
        with pytest.raises(ProjectError, match="read-only"):
            run_task(ro.sync_library())


def test_closed_project_says_so(project: Project):
    project.close()
    project.close()  # idempotent
    with pytest.raises(ProjectError, match="closed"):
        project.tags()


# --- library sync --------------------------------------------------------------------


def test_sync_reads_tags_and_tolerates_files_without_them(library: Path):
    import mutagen

    f = mutagen.File(library / "Album" / "b.flac", easy=True)
    f["artist"] = ["Ella"]
    f["title"] = ["Blue Skies"]
    f["genre"] = ["jazz", "swing"]
    f.save()
    (library / "broken.mp3").write_text("not audio at all")
    with Project.create(None, library) as p:
        report = run_task(p.sync_library())
        assert report.found == 5 and report.added == 5
        assert [r for r, _ in report.problems] == ["broken.mp3"]
        t = p.tracks()
        b = t.row(int(t.rows_of(ids_of(p, "Album/b.flac"))[0]))
        assert (b.artist, b.title, b.genre, b.album) == ("Ella", "Blue Skies", "jazz; swing", "")
        assert b.duration == pytest.approx(0.3, abs=0.01)
        broken = t.row(int(t.rows_of(ids_of(p, "broken.mp3"))[0]))
        assert broken.duration is None and broken.title == ""
        # relpaths use forward slashes and are relative
        assert "Album/c.ogg" in t.relpath and all(not r.startswith("/") for r in t.relpath)


def test_renamed_and_moved_files_keep_their_labels(project: Project, library: Path):
    a, b = ids_of(project, "a.wav", "Album/b.flac")
    project.create_tag("jazz")
    project.set_labels("jazz", [a], "positive")
    project.set_labels("jazz", [b], "negative")
    (library / "New Folder").mkdir()
    shutil.move(library / "a.wav", library / "New Folder" / "renamed a.wav")
    shutil.move(library / "Album" / "b.flac", library / "b moved.flac")
    report = run_task(project.sync_library())
    assert sorted(report.moved) == [
        ("Album/b.flac", "b moved.flac"),
        ("a.wav", "New Folder/renamed a.wav"),
    ]
    assert report.added == 0 and report.missing == []
    assert ids_of(project, "New Folder/renamed a.wav", "b moved.flac") == [a, b]
    assert project.labels("jazz").as_dict() == {a: "positive", b: "negative"}
    assert len(project.tracks()) == 4


def test_missing_files_keep_labels_and_come_back(project: Project, library: Path, tmp_path):
    (c,) = ids_of(project, "Album/c.ogg")
    project.create_tag("jazz")
    project.set_labels("jazz", [c], "positive")
    shutil.move(library / "Album" / "c.ogg", tmp_path / "away.ogg")
    report = run_task(project.sync_library())
    assert report.missing == ["Album/c.ogg"]
    t = project.tracks()
    assert t.missing[t.rows_of([c])[0]]
    assert len(project.tracks(include_missing=False)) == 3
    assert project.track_count() == (4, 1)
    assert project.labels("jazz").positives.tolist() == [c]
    # still missing: not reported again
    assert run_task(project.sync_library()).missing == []
    # back under another name, a sync later: recognised
    shutil.move(tmp_path / "away.ogg", library / "c again.ogg")
    report = run_task(project.sync_library())
    assert report.moved == [("Album/c.ogg", "c again.ogg")]
    assert ids_of(project, "c again.ogg") == [c]
    assert not project.track(c).missing


def test_a_changed_file_is_updated_in_place(project: Project, library: Path):
    (a,) = ids_of(project, "a.wav")
    before = project.track(a)
    write_audio(library / "a.wav", 0.6, seed=9)
    report = run_task(project.sync_library())
    assert report.updated == 1 and report.added == 0 and report.unchanged == 3
    after = project.track(a)
    assert after.id == a and after.size != before.size
    assert after.duration == pytest.approx(0.6, abs=0.01)


def test_identical_copies_pair_by_file_name(project: Project, library: Path):
    # two identical files vanish and reappear elsewhere: each keeps its own id
    write_audio(library / "x" / "one.wav", 0.3, seed=7)
    write_audio(library / "x" / "two.wav", 0.3, seed=7)
    run_task(project.sync_library())
    one, two = ids_of(project, "x/one.wav", "x/two.wav")
    shutil.move(library / "x", library / "y")
    run_task(project.sync_library())
    assert ids_of(project, "y/one.wav", "y/two.wav") == [one, two]


def test_a_copy_is_a_new_track(project: Project, library: Path):
    (a,) = ids_of(project, "a.wav")
    shutil.copy(library / "a.wav", library / "copy of a.wav")
    report = run_task(project.sync_library())
    assert report.added == 1 and report.moved == []
    assert ids_of(project, "a.wav") == [a]


def test_sync_with_the_library_gone(project: Project, library: Path, tmp_path: Path):
    shutil.move(library, tmp_path / "unplugged")
    with pytest.raises(ProjectError, match="does not exist"):
        run_task(project.sync_library())
    project.set_library_root(tmp_path / "unplugged")
    assert run_task(project.sync_library()).missing == []


def test_sync_can_be_stopped_and_resumed(library: Path):
    for i in range(12):
        write_audio(library / "many" / f"{i:02d}.wav", 0.1, seed=10 + i)
    with Project.create(None, library) as p:
        task = p.sync_library()
        for progress in task:
            if progress.stage == "reading" and progress.done == 5:
                break
        task.close()
        report = run_task(p.sync_library())
        assert len(p.tracks()) == 16
        assert report.added + report.unchanged == 16 and report.missing == []


def test_unicode_paths_match_whatever_the_normalisation(project: Project, library: Path):
    (u,) = ids_of(project, UNICODE_NAME)
    nfd = unicodedata.normalize("NFD", UNICODE_NAME)
    assert nfd != UNICODE_NAME
    ids, unmatched = project.find_tracks([nfd, str(library / UNICODE_NAME), "nope.mp3"])
    assert ids == [u, u] and unmatched == ["nope.mp3"]
    assert project.find_tracks(["ALBUM\\B.FLAC"])[0] == ids_of(project, "Album/b.flac")
    with pytest.raises(ProjectError, match="not inside the music folder"):
        project.find_tracks(["/etc/passwd"])
    with pytest.raises(ProjectError, match="up out of the library"):
        project.find_tracks(["../x.mp3"])


# --- tags ----------------------------------------------------------------------------------


def test_tag_names_are_unique_ignoring_case(project: Project):
    jazz = project.create_tag("Jazz", description="swing and all", colour="#F0A")
    assert jazz.colour == "#ff00aa" and jazz.description == "swing and all"
    for dup in ("jazz", " JAZZ "):
        with pytest.raises(ProjectError, match="'Jazz' already exists"):
            project.create_tag(dup)
    assert project.tag("jAzZ").id == jazz.id
    for bad, msg in (("", "empty"), ("a\tb", "control"), ("x" * 201, "too long")):
        with pytest.raises(ProjectError, match=msg):
            project.create_tag(bad)
    with pytest.raises(ProjectError, match="#rrggbb"):
        project.create_tag("rock", colour="red")
    with pytest.raises(ProjectError, match="no tag named 'rock'"):
        project.tag("rock")
    project.create_tag("Ära")
    with pytest.raises(ProjectError, match="already exists"):
        project.create_tag("ära")  # case-insensitive beyond ASCII


def test_rename_keeps_labels_and_id(project: Project):
    jazz = project.create_tag("jazz")
    project.set_labels(jazz, [1], "positive")
    renamed = project.rename_tag("jazz", "Jazz music")
    assert renamed.id == jazz.id
    assert project.labels("jazz music").positives.tolist() == [1]
    project.create_tag("rock")
    with pytest.raises(ProjectError, match="already exists"):
        project.rename_tag("rock", "JAZZ MUSIC")
    assert project.undo() == "create tag 'rock'"
    assert project.undo() == "rename tag 'jazz' to 'Jazz music'"
    assert project.tag(jazz.id).name == "jazz"


def test_hierarchy_cannot_loop(project: Project):
    music = project.create_tag("music")
    jazz = project.create_tag("jazz", parent=music)
    bebop = project.create_tag("bebop", parent="jazz")
    assert [t.name for t in project.ancestors(bebop)] == ["jazz", "music"]
    assert [t.name for t in project.descendants(music)] == ["jazz", "bebop"]
    for parent in (bebop, jazz):
        with pytest.raises(ProjectError, match="would loop"):
            project.edit_tag(jazz, parent=parent)
    project.edit_tag(bebop, parent=None)
    assert project.tag("bebop").parent_id is None
    project.undo()
    assert project.tag("bebop").parent_id == jazz.id


def test_hierarchy_positives_go_up_negatives_go_down(project: Project):
    a, b, c, d = project.tracks().id.tolist()
    project.create_tag("jazz")
    project.create_tag("bebop", parent="jazz")
    project.create_tag("cool", parent="jazz")
    project.set_labels("bebop", [a], "positive")
    project.set_labels("cool", [b], "positive")
    project.set_labels("jazz", [c], "negative")
    project.set_labels("jazz", [d], "skip")
    project.set_labels("bebop", [d], "positive")  # a child positive beats a skip

    jazz = project.labels("jazz")
    assert jazz.as_dict() == {a: "positive", b: "positive", c: "negative", d: "positive"}
    assert jazz.inherited.tolist() == [True, True, False, True]
    assert project.labels("jazz", hierarchy=False).as_dict() == {c: "negative", d: "skip"}
    bebop = project.labels("bebop")
    assert bebop.as_dict() == {a: "positive", c: "negative", d: "positive"}
    assert project.labels("cool").as_dict() == {b: "positive", c: "negative"}
    # the track's own label for the tag wins over an inherited one
    project.set_labels("bebop", [c], "positive")
    assert project.labels("bebop").as_dict()[c] == "positive"
    assert project.labels("jazz").as_dict()[c] == "negative"
    counts = project.label_counts()
    assert counts[project.tag("jazz").id] == {"positive": 3, "negative": 1, "skip": 0}


def test_delete_tag_reparents_children_and_undo_restores(project: Project):
    project.create_tag("jazz")
    project.create_tag("bebop", parent="jazz")
    project.create_tag("hard bop", parent="bebop")
    project.set_labels("bebop", [1, 2], "positive")
    project.save_probe("bebop", b"probe", {"backend": "x"})
    result = project.delete_tag("bebop")
    assert result.description == "delete tag 'bebop' (2 labels)"
    assert project.tag("hard bop").parent_id == project.tag("jazz").id
    assert not project.has_tag("bebop")
    assert project.labels("jazz").positives.tolist() == []
    # a new tag may take the name of a deleted one
    project.create_tag("bebop")
    assert project.labels("bebop").positives.tolist() == []
    assert project.undo() == "create tag 'bebop'"
    assert project.undo() == "delete tag 'bebop' (2 labels)"
    assert project.labels("bebop").positives.tolist() == [1, 2]
    assert project.tag("hard bop").parent_id == project.tag("bebop").id
    assert project.load_probe("bebop").blob == b"probe"
    assert project.redo() == "delete tag 'bebop' (2 labels)"
    assert not project.has_tag("bebop")


# --- labels, undo and redo ---------------------------------------------------------------


def test_set_labels_validates_everything(project: Project):
    project.create_tag("jazz")
    with pytest.raises(ProjectError, match="no track with id 999"):
        project.set_labels("jazz", [1, 999], "positive")
    with pytest.raises(ProjectError, match="label value must be"):
        project.set_labels("jazz", [1], "yes")
    with pytest.raises(ProjectError, match="label source must be"):
        project.set_labels("jazz", [1], "positive", source="robot")
    with pytest.raises(ProjectError, match="no tag named 'rock'"):
        project.set_labels("rock", [1], "positive")
    with pytest.raises(ProjectError, match="2 scores for 1 tracks"):
        project.set_labels("jazz", [1], "positive", scores=[0.1, 0.2])
    assert len(project.labels("jazz")) == 0
    assert project.undo_text == "create tag 'jazz'"


def test_model_labels_keep_score_and_probe_version(project: Project):
    project.create_tag("jazz")
    project.set_labels("jazz", [1, 2], "positive", source="model", scores=[0.9, 0.7],
                       probe_version="p3")  # fmt: skip
    lab = project.labels("jazz")
    assert lab.source == ["model", "model"]
    assert lab.score.tolist() == [0.9, 0.7] and lab.probe_version == ["p3", "p3"]
    # the human confirms track 1 themselves: a change (source), an undo step
    r = project.set_labels("jazz", [1], "positive")
    assert r.changed == 1
    assert project.labels("jazz").source == ["human", "model"]
    assert np.isnan(project.labels("jazz").score[0])


def test_unchanged_labels_make_no_undo_step(project: Project):
    project.create_tag("jazz")
    first = project.set_labels("jazz", [1, 2], "positive")
    assert first.changed == 2 and first.action_id is not None
    again = project.set_labels("jazz", [2, 1, 1], "positive")
    assert again.changed == 0 and again.action_id is None
    assert project.undo_text == first.description
    partial = project.set_labels("jazz", [1, 2, 3], "positive")
    assert partial.changed == 1


def test_undo_redo_sequence(project: Project):
    project.create_tag("jazz")
    project.set_labels("jazz", [1], "positive")
    bulk = project.set_labels("jazz", [1, 2, 3], "negative")
    assert bulk.description == "label 3 tracks negative for 'jazz'"
    project.clear_labels("jazz", [2, 4])
    assert project.labels("jazz").as_dict() == {1: "negative", 3: "negative"}

    assert project.undo() == f"remove the 'jazz' label of {name(project, 2)}"
    assert project.labels("jazz").as_dict() == {1: "negative", 2: "negative", 3: "negative"}
    assert project.undo() == bulk.description  # the bulk action is one step
    assert project.labels("jazz").as_dict() == {1: "positive"}
    assert project.redo() == bulk.description
    assert project.labels("jazz").as_dict() == {1: "negative", 2: "negative", 3: "negative"}
    assert project.can_redo
    project.set_labels("jazz", [4], "skip")  # a new action clears the redo stack
    assert not project.can_redo and project.redo() is None
    assert project.undo() == f"label {name(project, 4)} skip for 'jazz'"
    while project.can_undo:
        project.undo()
    assert project.undo() is None
    assert project.tags() == []


def test_undo_survives_reopening(project: Project):
    project.create_tag("jazz")
    project.set_labels("jazz", [1, 2], "positive")
    project.set_labels("jazz", [3], "negative")
    project.undo()
    pdir = project.project_dir
    project.close()
    with Project.open(pdir) as p:
        assert p.redo_text == f"label {name(p, 3)} negative for 'jazz'"
        assert p.labels("jazz").as_dict() == {1: "positive", 2: "positive"}
        assert p.redo() is not None
        assert p.labels("jazz").as_dict()[3] == "negative"
        assert p.undo() == f"label {name(p, 3)} negative for 'jazz'"
        assert p.undo() == "label 2 tracks positive for 'jazz'"
    with Project.open(pdir) as p:
        assert p.labels("jazz").as_dict() == {}
        assert p.undo_text == "create tag 'jazz'"
        assert p.redo_text == "label 2 tracks positive for 'jazz'"


def test_history_is_kept(project: Project):
    project.create_tag("jazz")
    project.set_labels("jazz", [1], "positive")
    project.set_labels("jazz", [1], "negative")
    project.undo()
    project.set_labels("jazz", [1], "skip")
    h = project.label_history(1, "jazz")
    assert [(e.old_value, e.new_value, e.state) for e in h] == [
        (None, "positive", "done"),
        ("positive", "negative", "discarded"),
        ("positive", "skip", "done"),
    ]


def test_import_is_all_or_nothing_and_one_undo_step(project: Project):
    project.create_tag("jazz")
    project.set_labels("jazz", [1], "negative")
    rows = [(1, "Jazz", "positive"), (2, "rock", "positive"), (3, "rock", "negative"),
            (2, "rock", "positive")]  # fmt: skip
    with pytest.raises(ProjectError, match="both positive and negative"):
        project.import_labels([*rows, (2, "ROCK", "negative")])
    with pytest.raises(ProjectError, match="no track with id 77"):
        project.import_labels([*rows, (77, "rock", "positive")])
    with pytest.raises(ProjectError, match="unknown tag"):
        project.import_labels(rows, create_tags=False)
    assert not project.has_tag("rock")
    assert project.labels("jazz").as_dict() == {1: "negative"}

    r = project.import_labels(rows, description="import tags.csv")
    assert r.created_tags == ("rock",) and r.changed == 3
    assert project.labels("jazz").as_dict() == {1: "positive"}
    assert project.labels("jazz").source == ["imported"]
    assert project.labels("rock").as_dict() == {2: "positive", 3: "negative"}
    assert project.undo() == "import tags.csv"
    assert not project.has_tag("rock")
    assert project.labels("jazz").as_dict() == {1: "negative"}
    assert project.redo() == "import tags.csv"
    assert project.labels("rock").as_dict() == {2: "positive", 3: "negative"}
    assert project.import_labels(rows).action_id is None  # nothing new


def test_state_probe_and_snapshot(project: Project):
    project.create_tag("jazz")
    assert project.get_state("current_tag", "none") == "none"
    project.set_state("current_tag", "jazz")
    project.set_state("queue", {"position": 12, "ids": [3, 1]})
    assert project.get_state("queue") == {"position": 12, "ids": [3, 1]}
    project.set_state("current_tag", None)
    assert project.get_state("current_tag") is None

    empty = project.label_snapshot("jazz")
    project.set_labels("jazz", [1], "positive")
    snap = project.label_snapshot("jazz")
    assert snap != empty
    project.set_labels("jazz", [1], "positive", source="model", scores=0.8)
    assert project.label_snapshot("jazz") == snap  # same tracks, same values
    project.set_labels("jazz", [1], "negative")
    assert project.label_snapshot("jazz") != snap

    assert project.load_probe("jazz") is None
    blob = bytes(range(256)) * 10
    project.save_probe("jazz", blob, {"backend": "musicnn-msd@1", "snapshot": snap})
    saved = project.load_probe("jazz")
    assert saved.blob == blob and saved.meta["backend"] == "musicnn-msd@1"
    assert saved.meta["created"] == saved.created
    with pytest.raises(ProjectError, match="JSON"):
        project.save_probe("jazz", b"", {"x": object()})
    # state and probes are not undo steps
    assert project.undo_text == f"label {name(project, 1)} negative for 'jazz'"


def test_database_passes_integrity_check_after_work(project: Project):
    project.create_tag("jazz")
    project.set_labels("jazz", project.tracks().id, "positive")
    project.undo()
    assert project.check() == []


# --- scale ---------------------------------------------------------------------------------


def fake_records(n: int) -> list[_FileRecord]:
    return [
        _FileRecord(
            f"disc{i // 1000}/track {i}.mp3",
            1000 + i,
            i,
            os.urandom(16),
            180.0,
            f"artist {i % 50}",
            "album",
            f"title {i}",
            "",
        )
        for i in range(n)
    ]


def count_statements(project: Project, fn) -> tuple[object, list[str]]:
    statements: list[str] = []
    project._conn.set_trace_callback(statements.append)
    try:
        result = fn()
    finally:
        project._conn.set_trace_callback(None)
    return result, [s for s in statements if not s.startswith(("BEGIN", "COMMIT"))]


def test_hundred_thousand_tracks_load_with_one_query(project: Project):
    project._write_tracks(fake_records(100_000), [], [])
    table, statements = count_statements(project, project.tracks)
    assert len(table) == 100_004 and len(statements) == 1
    assert table.id.dtype == np.int64 and np.all(np.diff(table.id) > 0)
    row = table.rows_of([table.id[-1]])[0]
    assert table.relpath[row] == "disc99/track 99999.mp3"
    assert table.rows_of([-5]).tolist() == [-1]


def test_one_label_costs_the_same_in_a_big_project(project: Project):
    project.create_tag("jazz")
    _, small = count_statements(project, lambda: project.set_labels("jazz", [1], "positive"))
    project._write_tracks(fake_records(50_000), [], [])
    big_ids = project.tracks().id[-20_000:]
    project.set_labels("jazz", big_ids, "negative")  # a bulk action of 20,000 tracks
    _, big = count_statements(project, lambda: project.set_labels("jazz", [2], "positive"))
    assert len(big) == len(small) <= 12
    assert project.undo() == f"label {name(project, 2)} positive for 'jazz'"
    assert project.undo() == "label 20000 tracks negative for 'jazz'"
    assert project.labels("jazz").as_dict() == {1: "positive"}


# --- export helpers ------------------------------------------------------------------------


def test_rows_for_export_and_write_back(project: Project, library: Path):
    a, b, c = ids_of(project, "a.wav", "Album/b.flac", "Album/c.ogg")
    project.create_tag("jazz")
    project.create_tag("Bebop", parent="jazz")
    project.set_labels("Bebop", [a], "positive")
    project.set_labels("jazz", [b], "negative")
    project.set_labels("jazz", [c], "positive", source="model", scores=0.75, probe_version="v2")
    direct = project.label_rows()
    assert [(r[0], r[1], r[2], r[3]) for r in direct] == [
        ("Album/b.flac", "jazz", "negative", "human"),
        ("Album/c.ogg", "jazz", "positive", "model"),
        ("a.wav", "Bebop", "positive", "human"),
    ]
    assert direct[1][5:] == (0.75, "v2")
    effective = project.label_rows(hierarchy=True)
    assert ("a.wav", "jazz") in {(r[0], r[1]) for r in effective}
    assert ("Album/b.flac", "Bebop", "negative") in {r[:3] for r in effective}
    assert [r[1] for r in project.label_rows(tags=["bebop"])] == ["Bebop"]

    wanted = project.positive_tags_by_track()
    assert wanted == {
        "a.wav": ["Bebop", "jazz"],
        "Album/b.flac": [],
        "Album/c.ogg": ["jazz"],
        UNICODE_NAME: [],
    }
    assert project.positive_tags_by_track(hierarchy=False)["a.wav"] == ["Bebop"]
    os.remove(library / UNICODE_NAME)
    run_task(project.sync_library())
    assert UNICODE_NAME not in project.positive_tags_by_track()


def test_rewritten_files_are_not_changed_music(project: Project, library: Path):
    import mutagen

    (b,) = ids_of(project, "Album/b.flac")
    f = mutagen.File(library / "Album" / "b.flac", easy=True)
    f["title"] = ["a tag written by us"]
    f.save()
    st = (library / "Album" / "b.flac").stat()
    assert project.record_rewritten_files({"Album/b.flac": (st.st_size, st.st_mtime_ns),
                                           "not/known.mp3": (1, 2)}) == 1  # fmt: skip
    assert project.track(b).size == st.st_size
    report = run_task(project.sync_library())
    assert report.updated == 0 and report.unchanged == 4
    # and the new fingerprint still recognises the file when it moves
    shutil.move(library / "Album" / "b.flac", library / "b.flac")
    assert run_task(project.sync_library()).moved == [("Album/b.flac", "b.flac")]


def test_labelling_while_a_sync_runs_on_another_thread(project: Project, library: Path):
    import threading

    for i in range(30):
        write_audio(library / "more" / f"{i:02d}.wav", 0.05, seed=50 + i)
    project.create_tag("jazz")
    errors: list[BaseException] = []

    def sync():
        try:
            run_task(project.sync_library())
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    worker = threading.Thread(target=sync)
    worker.start()
    labelled = 0
    while worker.is_alive() or labelled < 5:
        project.set_labels("jazz", [1 + labelled % 4], "positive" if labelled % 2 else "negative")
        labelled += 1
    worker.join()
    assert errors == []
    assert len(project.tracks()) == 34 and project.check() == []
    with pytest.raises(ProjectError, match="already running"):
        task = project.sync_library()
        next(task)
        run_task(project.sync_library())
    task.close()

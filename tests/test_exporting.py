"""The shared export code path (CLI and app): CSV export and project write-back tasks."""

from __future__ import annotations

import errno
import io
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tagger_gui.cli import main
from tagger_gui.core.errors import ProjectError, WritebackError
from tagger_gui.core.project import Project
from tagger_gui.core.project.csv_io import read_provenance
from tagger_gui.core.project.writeback import read_field
from tagger_gui.core.tasks import run_task
from tagger_gui.core.usecases import exporting as ex

from .conftest import write_audio

FILES = ("a.mp3", "Album/b.flac", "Album/c.ogg", "d.wav")


def make_library(tmp_path: Path) -> Path:
    """A small music folder of real files, with a project, tags and labels.

    Tags: jazz, bebop (child of jazz), calm. Labels: bebop+ a.mp3, jazz+
    Album/b.flac (an accepted model proposal), jazz- Album/c.ogg, calm+ d.wav,
    calm- a.mp3.
    """
    root = tmp_path / "Music"
    for seed, rel in enumerate(FILES, 1):
        write_audio(root / rel, 0.3, seed=seed)
    assert main(["project", "init", str(root), "--quiet"]) == 0
    with Project.open(root) as p:
        p.create_tag("jazz")
        p.create_tag("bebop", parent="jazz")
        p.create_tag("calm")
        ids = dict(zip(FILES, p.track_ids_for_relpaths(FILES).tolist(), strict=True))
        p.set_labels("bebop", [ids["a.mp3"]], "positive")
        p.set_labels(
            "jazz",
            [ids["Album/b.flac"]],
            "positive",
            source="model",
            scores=0.91,
            probe_version="v7",
        )
        p.set_labels("jazz", [ids["Album/c.ogg"]], "negative")
        p.set_labels("calm", [ids["d.wav"]], "positive")
        p.set_labels("calm", [ids["a.mp3"]], "negative")
    return root


def csv_rows(path: Path) -> list[str]:
    """The CSV's lines without the provenance comments."""
    return [line for line in path.read_text("utf-8").splitlines() if not line.startswith("#")]


@pytest.fixture
def library(tmp_path: Path) -> Path:
    return make_library(tmp_path)


def test_plain_words_for_the_disk():
    full = OSError(errno.ENOSPC, "No space left on device", "/mnt/usb/tags.csv")
    assert ex.describe_os_error(full) == (
        "Cannot write /mnt/usb/tags.csv: the disk is full (free some space or choose another disk)"
    )
    denied = PermissionError(errno.EACCES, "Permission denied", "/x/.tmp")
    text = ex.describe_os_error(denied, "/x/tags.csv")
    assert text.startswith("Cannot write /x/tags.csv: you do not have permission")
    assert "read-only" in ex.describe_os_error(OSError(errno.EROFS, "Read-only file system"), "f")
    assert ex.plain_reason("OSError: [Errno 28] No space left on device: 'x'").startswith(
        "the disk is full"
    )
    assert ex.plain_reason("tags cannot be read (bad header)") == "tags cannot be read (bad header)"


def test_export_is_what_the_cli_writes(library: Path, tmp_path: Path, capsys):
    cli = tmp_path / "cli.csv"
    assert main(["export", str(library), "-o", str(cli), "--format", "wide", "--hierarchy"]) == 0
    printed = capsys.readouterr().out.strip()
    with Project.open(library, readonly=True) as p:
        task = ex.export_csv_task(p, tmp_path / "out" / "core.csv", layout="wide", hierarchy=True)
        stages = []
        result = run_task(task, lambda prog: stages.append(prog.what))
    assert stages == ["reading labels", "writing", "written"]
    assert result.summary() == printed.replace(str(cli), str(result.path))
    assert result.rows == 4 and result.labels > 5 and result.tags == 3
    assert csv_rows(result.path) == csv_rows(cli)
    assert csv_rows(cli)[0] == "path,bebop,calm,jazz"
    prov = read_provenance(result.path)
    assert prov["format"] == "wide" and prov["hierarchy"] is True
    assert prov["library_root"] == str(library)


def test_export_errors_name_the_file(library: Path, tmp_path: Path):
    blocker = tmp_path / "a file"
    blocker.write_text("in the way")
    target = blocker / "tags.csv"
    with Project.open(library, readonly=True) as p:
        with pytest.raises(ex.ExportError) as info:
            run_task(ex.export_csv_task(p, target))
        assert (
            str(info.value) == f"Cannot write {target}: a part of the path is a file, not a folder"
        )
        assert info.value.path == str(target)
        with pytest.raises(ValueError, match="layout"):
            run_task(ex.export_csv_task(p, tmp_path / "x.csv", layout="tall"))
        with pytest.raises(ProjectError, match="rock"):
            run_task(ex.export_csv_task(p, tmp_path / "x.csv", tags=["rock"]))
    assert not list(tmp_path.glob("*.csv"))


def test_dry_run_writes_nothing(library: Path):
    before = {rel: (library / rel).read_bytes() for rel in FILES}
    with Project.open(library, readonly=True) as p:
        outcome = run_task(ex.writeback_task(p, dry_run=True))
        with pytest.raises(ProjectError, match="read-only"):
            run_task(ex.apply_writeback_task(p, outcome.plan))
    assert outcome.report is None and outcome.journal_path is None
    assert outcome.plan.counts() == {"write": 3, "remove": 0, "none": 1, "skip": 0}
    new = {ch.relpath: ch.new for ch in outcome.plan.changes}
    assert new == {
        "a.mp3": ["bebop", "jazz"],
        "Album/b.flac": ["jazz"],
        "Album/c.ogg": [],
        "d.wav": ["calm"],
    }
    assert {rel: (library / rel).read_bytes() for rel in FILES} == before


def test_write_then_undo_records_the_new_stats(library: Path):
    with Project.open(library) as p:
        outcome = run_task(ex.writeback_task(p))
        assert outcome.journal_path == ex.latest_journal(p)
        assert sorted(outcome.report.written) == ["Album/b.flac", "a.mp3", "d.wav"]
        table = p.tracks()
        for rel, size, mtime in zip(table.relpath, table.size, table.mtime_ns, strict=True):
            st = (library / rel).stat()
            assert (int(size), int(mtime)) == (st.st_size, st.st_mtime_ns)
        assert read_field(library / "a.mp3") == ["bebop", "jazz"]
        again = run_task(ex.writeback_task(p, dry_run=True))
        assert again.plan.counts()["none"] == 4  # our own write is not "changed since"
        with pytest.raises(WritebackError, match="nothing to write"):
            run_task(ex.apply_writeback_task(p, again.plan))
        undone = run_task(ex.undo_writeback_task(p))
        assert sorted(undone.report.written) == ["Album/b.flac", "a.mp3", "d.wav"]
        assert all(read_field(library / rel) == [] for rel in FILES)
        assert run_task(ex.writeback_task(p, dry_run=True)).plan.counts()["skip"] == 0


def test_stopped_write_records_what_was_written(library: Path):
    """Closing the task at a yield (the app's Cancel) keeps the project in step."""
    audio = {rel: sf.read(io.BytesIO((library / rel).read_bytes()))[0] for rel in FILES}
    with Project.open(library) as p:
        plan = run_task(ex.plan_writeback_task(p))
        task = ex.apply_writeback_task(p, plan)
        seen = []
        for progress in task:
            seen.append(progress.current)
            if len(seen) == 2:  # the first file is written, the second not yet
                break
        task.close()
        journal = ex.latest_journal(p)
        first = plan.changes[0].relpath
        assert read_field(library / first) == plan.changes[0].new
        table = p.tracks()
        i = table.relpath.index(first)
        st = (library / first).stat()
        assert (int(table.size[i]), int(table.mtime_ns[i])) == (st.st_size, st.st_mtime_ns)
        assert all(read_field(library / ch.relpath) == [] for ch in plan.changes[1:])
        undone = run_task(ex.undo_writeback_task(p, journal))
        assert undone.report.written == [first]
    for rel, samples in audio.items():
        np.testing.assert_array_equal(sf.read(library / rel)[0], samples)


def test_undo_without_a_journal(library: Path):
    with Project.open(library) as p:
        assert ex.latest_journal(p) is None
        with pytest.raises(ProjectError, match="no write-back journal"):
            run_task(ex.undo_writeback_task(p))

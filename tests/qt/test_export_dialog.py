"""The export dialog, driven like a user would, on a real project of real audio files."""

from __future__ import annotations

import errno
import io
import os
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from PySide6.QtCore import Qt, QUrl
from PySide6.QtWidgets import QMessageBox

from tagger_gui.cli import main as tagger
from tagger_gui.core.cache import EmbeddingCache
from tagger_gui.core.project import Project
from tagger_gui.core.project import writeback as wbk
from tagger_gui.core.project.csv_io import read_provenance
from tagger_gui.core.project.writeback import read_field
from tagger_gui.core.tasks import run_task
from tagger_gui.core.usecases import exporting as ex
from tagger_gui.qt.export_dialog import ExportDialog, WritebackTableModel
from tagger_gui.qt.worker import TaskWorker

from ..test_exporting import FILES, csv_rows, make_library

WAIT_MS = 60_000


@pytest.fixture
def library(tmp_path: Path) -> Path:
    return make_library(tmp_path)


@pytest.fixture
def project(library: Path):
    """The project as the app holds it: open for writing."""
    p = Project.open(library)
    yield p
    p.close()


@pytest.fixture
def dialog(qtbot, project, worker_pool) -> ExportDialog:
    d = ExportDialog(project, worker_pool)
    qtbot.addWidget(d)
    d.show()
    return d


def run(qtbot, dialog: ExportDialog, start) -> None:
    """Start a job the way its button does, and wait until the dialog is idle again."""
    start()
    assert dialog.is_busy
    qtbot.waitUntil(lambda: not dialog.is_busy, timeout=WAIT_MS)


def write_confirmed(qtbot, dialog: ExportDialog) -> QMessageBox:
    """Click Write…, then the confirmation's Write button; wait for the write."""
    dialog.write_button.click()
    box = dialog.confirm_box
    assert box is not None and box.isVisible()
    box.button(QMessageBox.StandardButton.Yes).click()
    qtbot.waitUntil(lambda: dialog.is_busy or dialog.last_outcome is not None, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: not dialog.is_busy, timeout=WAIT_MS)
    return box


def decoded(data_or_path) -> np.ndarray:
    source = io.BytesIO(data_or_path) if isinstance(data_or_path, bytes) else data_or_path
    return sf.read(source)[0]


def cell(model: WritebackTableModel, relpath: str, column: int) -> str:
    for row in range(model.rowCount()):
        if model.index(row, 0).data() == relpath:
            return model.index(row, column).data()
    raise AssertionError(f"{relpath} is not in the preview")


def test_preview_model_structure(qtmodeltester, project):
    model = WritebackTableModel()
    qtmodeltester.check(model)
    plan = run_task(ex.plan_writeback_task(project))
    model.set_plan(plan)
    qtmodeltester.check(model)
    assert model.rowCount() == len(FILES)
    assert cell(model, "a.mp3", 1) == "(empty)"
    assert cell(model, "a.mp3", 2) == "bebop; jazz"
    assert cell(model, "a.mp3", 3) == "write"
    assert cell(model, "Album/c.ogg", 3) == "already up to date"
    assert cell(model, "Album/c.ogg", 2) == "(empty)"
    row = [model.index(r, 0).data() for r in range(model.rowCount())].index("d.wav")
    assert model.index(row, 0).data(WritebackTableModel.ChangeRole).new == ["calm"]


def test_csv_long_and_wide_are_what_the_cli_writes(qtbot, dialog, library, tmp_path):
    # long, all tags, to the default <library>/tags.csv
    assert dialog.path_edit.text() == str(library / "tags.csv")
    run(qtbot, dialog, dialog.export_button.click)
    out = library / "tags.csv"
    assert not dialog.error_label.isVisible()
    assert dialog.status_label.text() == f"Wrote 5 rows (5 labels, 3 tags) to {out}"
    assert f"Wrote 5 rows to {out}" in dialog.csv_result.text()
    assert "Open folder" in dialog.csv_result.text()
    assert QUrl.fromLocalFile(str(library)).toString() in dialog.csv_result.text()
    cli = tmp_path / "cli long.csv"
    assert tagger(["export", str(library), "-o", str(cli)]) == 0
    assert csv_rows(out) == csv_rows(cli)
    assert len(csv_rows(out)) == 6

    def provenance(path: Path) -> dict:
        prov = read_provenance(path)
        assert prov.pop("exported")  # the time of the export differs, nothing else
        return prov

    assert provenance(out) == provenance(cli)

    # wide, two of the three tags, hierarchy applied, to a chosen file
    dialog.wide_radio.setChecked(True)
    dialog.some_tags_radio.setChecked(True)
    items = {dialog.tag_list.item(i).text(): dialog.tag_list.item(i) for i in range(3)}
    items["calm"].setCheckState(Qt.CheckState.Unchecked)
    dialog.hierarchy_check.setChecked(True)
    wide = tmp_path / "exports" / "wide.csv"
    dialog.path_edit.setText(str(wide))
    run(qtbot, dialog, dialog.export_button.click)
    cli = tmp_path / "cli wide.csv"
    args = ["--format", "wide", "--tag", "bebop", "--tag", "jazz", "--hierarchy"]
    assert tagger(["export", str(library), "-o", str(cli), *args]) == 0
    assert csv_rows(wide)[0] == "path,bebop,jazz"
    assert csv_rows(wide) == csv_rows(cli)
    assert provenance(wide) == provenance(cli)
    assert dialog.last_export.layout == "wide" and dialog.last_export.tags == 2

    # no tag checked: nothing runs, the dialog says why
    for item in items.values():
        item.setCheckState(Qt.CheckState.Unchecked)
    assert not dialog.export_button.isEnabled()


def test_predicted_scores_are_what_the_cli_writes(qtbot, project, worker_pool, library, tmp_path):
    assert tagger(["embed", str(library), "--backend", "handcrafted", "--workers", "0"]) == 0
    dialog = ExportDialog(project, worker_pool, features="handcrafted")
    qtbot.addWidget(dialog)
    assert dialog.predictions_check.isEnabled()
    dialog.predictions_check.setChecked(True)
    dialog.threshold_spin.setValue(0.6)
    out = tmp_path / "predicted.csv"
    dialog.path_edit.setText(str(out))
    run(qtbot, dialog, dialog.export_button.click)
    assert dialog.last_export.predicted_tags == 3, dialog.error_label.text()
    cli = tmp_path / "cli.csv"
    args = ["--predictions", "--threshold", "0.6", "--features", "handcrafted"]
    assert tagger(["export", str(library), "-o", str(cli), *args]) == 0
    assert csv_rows(out) == csv_rows(cli)
    assert len(csv_rows(out)) == 1 + 3 * len(FILES)
    assert {line.split(",")[6] for line in csv_rows(out)[1:]} == {"0.6"}


def test_no_predictions_without_embeddings(dialog):
    assert not dialog.predictions_check.isEnabled()
    assert "embeddings" in dialog.predictions_check.toolTip()


def test_preview_write_and_undo(qtbot, dialog, library, project):
    before = {rel: (library / rel).read_bytes() for rel in FILES}
    dialog.tabs.setCurrentIndex(1)
    assert not dialog.write_button.isEnabled() and not dialog.undo_button.isEnabled()
    run(qtbot, dialog, dialog.preview_button.click)
    model = dialog.preview_model
    assert sorted(model.index(r, 0).data() for r in range(model.rowCount())) == sorted(FILES)
    assert cell(model, "Album/b.flac", 2) == "jazz"
    assert "3 to write, 0 to clear, 1 already up to date, 0 skipped" in (
        dialog.preview_summary.text()
    )
    assert {rel: (library / rel).read_bytes() for rel in FILES} == before  # a dry run

    # asked first, with the count; Cancel writes nothing
    assert dialog.write_button.text() == "Write 3 files…"
    dialog.write_button.click()
    box = dialog.confirm_box
    assert "Write the tags into 3 audio files" in box.text()
    assert "the music is not touched" in box.informativeText()
    box.button(QMessageBox.StandardButton.Cancel).click()
    qtbot.waitUntil(lambda: dialog.confirm_box is None)
    assert not dialog.is_busy
    assert {rel: (library / rel).read_bytes() for rel in FILES} == before

    rewritten = []
    dialog.filesRewritten.connect(rewritten.append)
    write_confirmed(qtbot, dialog)
    assert rewritten == [dialog.last_outcome]
    assert not dialog.error_label.isVisible(), dialog.error_label.text()
    report = dialog.last_outcome.report
    assert sorted(report.written) == ["Album/b.flac", "a.mp3", "d.wav"]
    assert "Wrote the tags into 3 files; 0 skipped, 0 failed" in dialog.status_label.text()
    assert cell(model, "a.mp3", 3) == "written"
    assert read_field(library / "a.mp3") == ["bebop", "jazz"]
    assert read_field(library / "Album/b.flac") == ["jazz"]
    assert read_field(library / "d.wav") == ["calm"]
    for rel in FILES:
        np.testing.assert_array_equal(decoded(library / rel), decoded(before[rel]))
    # the project knows our own write is not "a file changed since the scan"
    table = project.tracks()
    for rel, size in zip(table.relpath, table.size, strict=True):
        assert int(size) == (library / rel).stat().st_size
    assert not dialog.write_button.isEnabled()  # a new write needs a new preview
    assert dialog.undo_button.isEnabled()

    run(qtbot, dialog, dialog.undo_button.click)
    assert "3 files restored, 0 skipped, 0 failed" in dialog.status_label.text()
    for rel in FILES:
        assert read_field(library / rel) == []
        np.testing.assert_array_equal(decoded(library / rel), decoded(before[rel]))
    # files that had no tag block get none back: byte for byte the original
    assert (library / "a.mp3").read_bytes() == before["a.mp3"]
    assert (library / "d.wav").read_bytes() == before["d.wav"]


def test_settings_changed_after_the_preview_need_a_new_one(qtbot, dialog):
    dialog.tabs.setCurrentIndex(1)
    run(qtbot, dialog, dialog.preview_button.click)
    assert dialog.write_button.isEnabled()
    dialog.id3v23_check.setChecked(True)
    assert not dialog.write_button.isEnabled()
    assert dialog.preview_model.rowCount() == 0
    dialog.field_edit.setText("MY=FIELD")
    run(qtbot, dialog, dialog.preview_button.click)
    assert dialog.error_label.isVisible() and "without '='" in dialog.error_label.text()
    dialog.field_edit.setText("MY_FIELD")
    run(qtbot, dialog, dialog.preview_button.click)
    assert not dialog.error_label.isVisible()
    assert dialog.plan.field == "MY_FIELD" and dialog.plan.id3_version == 3


def test_unwritable_destination_is_named_and_the_dialog_keeps_working(qtbot, dialog, tmp_path):
    blocker = tmp_path / "not a folder"
    blocker.write_text("a file where a folder should be")
    bad = blocker / "tags.csv"
    dialog.path_edit.setText(str(bad))
    run(qtbot, dialog, dialog.export_button.click)
    assert dialog.error_label.isVisible()
    text = dialog.error_label.text()
    assert text == f"Cannot write {bad}: a part of the path is a file, not a folder"
    assert "Traceback" not in text and "Errno" not in text
    assert dialog.last_export is None
    assert dialog.export_button.isEnabled() and dialog.preview_button.isEnabled()

    good = tmp_path / "ok" / "tags.csv"
    dialog.path_edit.setText(str(good))
    run(qtbot, dialog, dialog.export_button.click)
    assert not dialog.error_label.isVisible()
    assert good.is_file() and dialog.last_export.path == good

    # a bare name is saved in the music folder; a folder is not a file name
    dialog.path_edit.setText("mine.csv")
    run(qtbot, dialog, dialog.export_button.click)
    assert dialog.last_export.path == dialog.project.library_root / "mine.csv"
    dialog.path_edit.setText(str(tmp_path))
    dialog.export_button.click()
    assert not dialog.is_busy
    assert (
        dialog.error_label.text() == f"Cannot write {tmp_path}: this is a folder, not a file name"
    )


@pytest.mark.skipif(
    hasattr(os, "geteuid") and os.geteuid() == 0, reason="root may write into any folder"
)
def test_a_folder_without_permission_is_named(qtbot, dialog, tmp_path):
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        dialog.path_edit.setText(str(folder / "tags.csv"))
        run(qtbot, dialog, dialog.export_button.click)
        assert dialog.error_label.text() == (
            f"Cannot write {folder / 'tags.csv'}: you do not have permission to write there "
            "(choose another folder)"
        )
    finally:
        folder.chmod(0o700)


def test_a_full_disk_is_reported_in_plain_words(qtbot, dialog, library, monkeypatch):
    # A full disk cannot be had here without mounting one: the write of one
    # file fails as the OS reports it (ENOSPC); the others are real writes.
    real = wbk._write_values

    def write_values(path, *args, **kwargs):
        if Path(path).name == "d.wav":
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(wbk, "_write_values", write_values)
    before = (library / "d.wav").read_bytes()
    dialog.tabs.setCurrentIndex(1)
    run(qtbot, dialog, dialog.preview_button.click)
    write_confirmed(qtbot, dialog)
    text = dialog.error_label.text()
    assert dialog.error_label.isVisible()
    assert f"{library / 'd.wav'}: the disk is full" in text
    assert "Errno" not in text
    assert cell(dialog.preview_model, "d.wav", 3).startswith("FAILED: the disk is full")
    assert "Wrote the tags into 2 files; 0 skipped, 1 failed" in dialog.status_label.text()
    assert (library / "d.wav").read_bytes() == before
    assert read_field(library / "a.mp3") == ["bebop", "jazz"]
    # still usable: undo puts back the two files written
    run(qtbot, dialog, dialog.undo_button.click)
    assert "2 files restored" in dialog.status_label.text()
    assert read_field(library / "a.mp3") == []


def test_written_files_keep_their_embeddings(qtbot, project, worker_pool, library, capsys):
    assert tagger(["embed", str(library), "--backend", "handcrafted", "--workers", "0"]) == 0
    dialog = ExportDialog(project, worker_pool)
    qtbot.addWidget(dialog)
    run(qtbot, dialog, dialog.preview_button.click)
    write_confirmed(qtbot, dialog)
    outcome = dialog.last_outcome
    assert outcome.cache_adopted == 3 and outcome.cache_note is None
    with EmbeddingCache.open(project.cache_path, mode="r") as cache:
        table = cache.tracks(cache.backends()[0])
        for rel, size, mtime in zip(table.relpath, table.size, table.mtime_ns, strict=True):
            st = (library / rel).stat()
            assert (int(size), int(mtime)) == (st.st_size, st.st_mtime_ns), rel
    # what the embedding job sees: nothing to analyse again
    capsys.readouterr()
    assert tagger(["embed", str(library), "--backend", "handcrafted", "--workers", "0"]) == 0
    out = capsys.readouterr().out
    assert "embedded            0" in out and "unchanged (skipped) 4" in out
    with EmbeddingCache.open(project.cache_path, mode="r") as cache:
        assert not cache.verify()


def test_cancel_while_waiting_then_close(qtbot, dialog, library, worker_pool):
    """Write-back waits for the background pool (the embedding job); Cancel and Close work."""
    gate = threading.Event()

    def embedding_job():
        yield "embedding"
        gate.wait(30)

    blocker = TaskWorker(embedding_job())
    worker_pool.start(blocker, background=True)
    try:
        dialog.tabs.setCurrentIndex(1)
        run(qtbot, dialog, dialog.preview_button.click)  # the interactive pool is free
        rewritten = []
        dialog.filesRewritten.connect(rewritten.append)
        dialog.start_write()
        assert dialog.is_busy
        assert dialog.status_label.text() == "Waiting for the embedding to finish…"
        assert not dialog.preview_button.isEnabled() and not dialog.export_button.isEnabled()
        dialog.cancel_button.click()
        assert dialog.status_label.text() == "Stopping…"
    finally:
        gate.set()
    qtbot.waitUntil(lambda: not dialog.is_busy, timeout=WAIT_MS)
    assert dialog.status_label.text().startswith("Stopped.")
    assert rewritten == [None]
    assert all(read_field(library / rel) == [] for rel in FILES)
    assert ex.latest_journal(dialog.project) is None
    assert not dialog.undo_button.isEnabled()
    qtbot.waitUntil(lambda: blocker.is_finished, timeout=WAIT_MS)

    # usable again; closing during a job cancels it and closes when it stops
    run(qtbot, dialog, dialog.preview_button.click)
    assert dialog.plan is not None
    gate.clear()
    blocker = TaskWorker(embedding_job())
    worker_pool.start(blocker, background=True)
    try:
        dialog.start_write()
        dialog.close()
        assert dialog.isVisible() and dialog.is_busy
    finally:
        gate.set()
    qtbot.waitUntil(lambda: not dialog.isVisible(), timeout=WAIT_MS)
    assert all(read_field(library / rel) == [] for rel in FILES)
    qtbot.waitUntil(lambda: blocker.is_finished, timeout=WAIT_MS)

"""DemoDialog and the start page's demo button, offscreen, over a real local .deb."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from PySide6.QtWidgets import QDialog

from tagger_gui.qt.demo_dialog import DemoDialog
from tagger_gui.qt.start_page import StartPage
from tests.test_demo import KEPT, PACKAGE, VERSION, downloads_with, make_deb

pytestmark = pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb")

TIMEOUT_MS = 60_000  # a loaded 2-core machine; the build itself takes about a second


@pytest.fixture(scope="module")
def deb(tmp_path_factory) -> Path:
    return make_deb(tmp_path_factory.mktemp("deb"))


@pytest.fixture
def make_dialog(qtbot, worker_pool, tmp_path):
    def make(deb_file: Path, dest: Path | None = None) -> DemoDialog:
        downloads = downloads_with(deb_file, tmp_path / "debs")
        dialog = DemoDialog(
            worker_pool, packages=[PACKAGE], dest=dest or tmp_path / "demo", downloads=downloads
        )
        qtbot.addWidget(dialog)
        dialog.show()
        return dialog

    return make


def wait_for_plan(qtbot, dialog: DemoDialog) -> None:
    qtbot.waitUntil(
        lambda: dialog.plan is not None or dialog.error_label.isVisible(), timeout=TIMEOUT_MS
    )


def test_start_page_demo_button_asks_for_the_demo(qtbot):
    page = StartPage()
    qtbot.addWidget(page)
    with qtbot.waitSignal(page.demo_requested, timeout=1000):
        page.demo_button.click()
    assert page.demo_button.text() == "Try a demo library…"


def test_the_plan_is_shown_then_the_build_runs_in_the_pool(qtbot, make_dialog, deb, tmp_path):
    dialog = make_dialog(deb)
    assert not dialog.download_button.isEnabled()  # until the plan is read
    wait_for_plan(qtbot, dialog)
    assert dialog.download_button.isEnabled()
    table = dialog.table
    assert table.rowCount() == 1
    assert [table.item(0, c).text() for c in range(2)] == [PACKAGE, VERSION]
    assert "(downloaded)" in table.item(0, 2).text()
    assert "GPL-2+" in table.item(0, 3).text()
    assert dialog.dest_edit.text() == str(tmp_path / "demo")
    assert "To download: 0 MB" in dialog.summary_label.text()

    with qtbot.waitSignal(dialog.library_ready, timeout=TIMEOUT_MS) as ready:
        dialog.download_button.click()
        assert dialog.is_building and dialog.progress_bar.isVisible()
    assert ready.args == [str(tmp_path / "demo")]
    qtbot.waitUntil(lambda: not dialog.is_building, timeout=TIMEOUT_MS)
    assert dialog.result() == QDialog.DialogCode.Accepted
    assert f"{KEPT} tracks ready" in dialog.status_label.text()
    assert len(list((tmp_path / "demo" / "SuperTux Soundtrack").glob("*.ogg"))) == KEPT

    # a second dialog finds it complete and opens it without downloading
    again = DemoDialog(dialog.pool, packages=[PACKAGE], dest=tmp_path / "demo")
    qtbot.addWidget(again)
    wait_for_plan(qtbot, again)
    assert (
        again.download_button.text() == "Open" and "already complete" in again.summary_label.text()
    )
    with qtbot.waitSignal(again.library_ready, timeout=1000) as ready:
        again.download_button.click()
    assert ready.args == [str(tmp_path / "demo")]


def test_a_build_error_is_shown_and_the_dialog_stays_usable(qtbot, make_dialog, tmp_path):
    empty = make_deb(tmp_path / "empty", music=False)
    dialog = make_dialog(empty)
    wait_for_plan(qtbot, dialog)
    with qtbot.assertNotEmitted(dialog.library_ready):
        dialog.download_button.click()
        qtbot.waitUntil(dialog.error_label.isVisible, timeout=TIMEOUT_MS)
        qtbot.waitUntil(lambda: dialog.download_button.isEnabled(), timeout=TIMEOUT_MS)
    assert "supertux-data 0.6.3-2: no music found" in dialog.error_label.text()
    assert dialog.isVisible() and dialog.change_button.isEnabled()


def test_a_bad_destination_is_said_then_another_one_works(qtbot, make_dialog, deb, tmp_path):
    not_a_folder = tmp_path / "notes.txt"
    not_a_folder.write_text("x")
    dialog = make_dialog(deb, dest=not_a_folder)
    wait_for_plan(qtbot, dialog)
    assert dialog.plan is None and not dialog.download_button.isEnabled()
    assert "notes.txt: exists and is not a folder" in dialog.error_label.text()

    # a non-empty folder gets a tagger-demo folder inside (as "Change…" does)
    music = tmp_path / "Music"
    (music / "mine").mkdir(parents=True)
    dialog.set_destination(music / "tagger-demo")
    wait_for_plan(qtbot, dialog)
    assert dialog.plan is not None and dialog.download_button.isEnabled()
    assert not dialog.error_label.isVisible()
    assert dialog.dest_edit.text() == str(music / "tagger-demo")


def test_cancel_stops_the_build_and_download_resumes(qtbot, make_dialog, deb, tmp_path):
    dialog = make_dialog(deb)
    wait_for_plan(qtbot, dialog)
    with qtbot.assertNotEmitted(dialog.library_ready):
        dialog.download_button.click()
        dialog.cancel_button.click()  # honoured at the build's first step
        qtbot.waitUntil(lambda: not dialog.is_building, timeout=TIMEOUT_MS)
    assert dialog.isVisible()
    assert "Stopped" in dialog.status_label.text()
    wait_for_plan(qtbot, dialog)
    qtbot.waitUntil(lambda: dialog.download_button.isEnabled(), timeout=TIMEOUT_MS)
    with qtbot.waitSignal(dialog.library_ready, timeout=TIMEOUT_MS):
        dialog.download_button.click()
    qtbot.waitUntil(lambda: not dialog.is_building, timeout=TIMEOUT_MS)


def test_cancel_when_idle_closes(qtbot, make_dialog, deb):
    dialog = make_dialog(deb)
    wait_for_plan(qtbot, dialog)
    dialog.cancel_button.click()
    assert dialog.result() == QDialog.DialogCode.Rejected and not dialog.isVisible()


def test_only_the_newest_destinations_plan_is_shown(qtbot, make_dialog, deb, tmp_path, qapp):
    not_a_folder = tmp_path / "notes.txt"
    not_a_folder.write_text("x")
    dialog = make_dialog(deb)
    dialog.set_destination(not_a_folder)  # its error must not show: superseded at once
    dialog.set_destination(tmp_path / "other")
    wait_for_plan(qtbot, dialog)
    assert dialog.pool.wait_for_workers(TIMEOUT_MS)
    qapp.processEvents()  # deliver the superseded workers' signals too
    assert dialog.plan is not None and dialog.plan.dest == tmp_path / "other"
    assert not dialog.error_label.isVisible()
    assert dialog.dest_edit.text() == str(tmp_path / "other")


def test_the_start_page_button_builds_the_demo_and_opens_it(qtbot, deb, tmp_path):
    from tagger_gui.qt.main_window import MainWindow

    window = MainWindow(backends=["handcrafted"], workers=0, show_message=lambda t, m: None)
    qtbot.addWidget(window)
    shown: list[DemoDialog] = []
    downloads = downloads_with(deb, tmp_path / "debs")
    # the button's slot, with a local package instead of the network
    window.start_page.demo_requested.disconnect(window.show_demo_dialog)
    window.start_page.demo_requested.connect(
        lambda: shown.append(
            window.show_demo_dialog(packages=[PACKAGE], dest=tmp_path / "demo", downloads=downloads)
        )
    )
    try:
        window.start_page.demo_button.click()
        assert len(shown) == 1 and shown[0].isVisible()
        wait_for_plan(qtbot, shown[0])
        with qtbot.waitSignal(window.embedding_finished, timeout=120_000):
            shown[0].download_button.click()
        assert window.project is not None
        assert window.project.library_root == (tmp_path / "demo").resolve()
        assert len(window.project.tracks()) == KEPT
    finally:
        window.close()

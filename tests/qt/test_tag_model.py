"""TagListModel over a real project: hierarchy order, counts, predicted counts, refresh."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor

from tagger_gui.core.project import Project
from tagger_gui.core.tasks import run_task
from tagger_gui.qt.tag_model import (
    ColourRole,
    DepthRole,
    NameRole,
    NegativeCountRole,
    PositiveCountRole,
    PredictedCountRole,
    SkipCountRole,
    TagIdRole,
    TagListModel,
)

from ..conftest import write_audio

DISPLAY = Qt.ItemDataRole.DisplayRole


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Project]:
    """Six short real files, synced; tags jazz > bebop, rock (coloured, described)."""
    library = tmp_path / "music"
    for i in range(6):
        write_audio(library / f"track{i}.wav", 0.5, seed=i)
    project = Project.create(tmp_path / "project", library)
    run_task(project.sync_library())
    project.create_tag("rock", colour="#aa3300", description="guitars, drums")
    jazz = project.create_tag("jazz")
    project.create_tag("bebop", parent=jazz)
    yield project
    project.close()


def ids(project: Project, *names: str) -> list[int]:
    return [int(i) for i in project.track_ids_for_relpaths([f"track{n}.wav" for n in names])]


def rows(model: TagListModel, role=DISPLAY) -> list:
    return [model.index(r).data(role) for r in range(model.rowCount())]


def test_structure(qtmodeltester, project):
    qtmodeltester.check(TagListModel())
    model = TagListModel(project)
    qtmodeltester.check(model)
    model.set_predicted_counts({project.tag("jazz").id: 3})
    model.refresh(project)
    qtmodeltester.check(model)


def test_hierarchy_order_names_and_colours(project):
    model = TagListModel(project)
    assert rows(model, NameRole) == ["jazz", "bebop", "rock"]
    assert rows(model) == ["jazz", "└ bebop", "rock"]
    assert rows(model, DepthRole) == [0, 1, 0]
    assert rows(model, TagIdRole) == [project.tag(n).id for n in ("jazz", "bebop", "rock")]
    assert rows(model, ColourRole) == [None, None, "#aa3300"]
    assert model.index(2).data(Qt.ItemDataRole.DecorationRole) == QColor("#aa3300")
    assert model.index(0).data(Qt.ItemDataRole.DecorationRole) is None
    assert model.index(0).data(Qt.ItemDataRole.CheckStateRole) is None
    assert model.index(0).data(Qt.ItemDataRole.EditRole) == "jazz"
    assert model.row_of(project.tag("rock").id) == 2
    assert model.row_of(10_000) == -1
    assert model.tag(1).name == "bebop"


def test_counts_follow_labels_and_the_hierarchy(project, qtbot):
    project.set_labels("bebop", ids(project, 0, 1), "positive")
    project.set_labels("jazz", ids(project, 2), "negative")
    project.set_labels("rock", ids(project, 3, 4, 5), "positive")
    project.set_labels("rock", ids(project, 0), "negative")
    project.set_labels("rock", ids(project, 1), "skip")
    model = TagListModel(project)
    # a positive for bebop is a positive for jazz; a negative for jazz one for bebop
    assert rows(model, PositiveCountRole) == [2, 2, 3]
    assert rows(model, NegativeCountRole) == [1, 1, 1]
    assert rows(model, SkipCountRole) == [0, 0, 1]
    assert model.counts(project.tag("rock").id) == {"positive": 3, "negative": 1, "skip": 1}
    tip = model.index(2).data(Qt.ItemDataRole.ToolTipRole)
    assert "guitars, drums" in tip and "3 positive · 1 negative · 1 skipped" in tip

    # a new label: the same tags, so only the counts change (the selection survives)
    project.set_labels("jazz", ids(project, 3), "positive")
    with qtbot.assertNotEmitted(model.modelReset):
        with qtbot.waitSignal(
            model.dataChanged,
            timeout=1000,
            check_params_cb=lambda tl, br, roles: (
                (tl.row(), br.row()) == (0, 2) and PositiveCountRole in roles
            ),
        ):
            model.refresh(project)
    assert rows(model, PositiveCountRole) == [3, 2, 3]


def test_predicted_counts(project, qtbot):
    model = TagListModel(project)
    jazz, rock = project.tag("jazz").id, project.tag("rock").id
    assert rows(model, PredictedCountRole) == [None, None, None]
    with qtbot.waitSignal(
        model.dataChanged,
        timeout=1000,
        check_params_cb=lambda tl, br, roles: (
            set(roles) == {PredictedCountRole, Qt.ItemDataRole.ToolTipRole}
        ),
    ):
        model.set_predicted_counts({jazz: 40, rock: 7})
    assert rows(model, PredictedCountRole) == [40, None, 7]
    assert "40 predicted positive" in model.index(0).data(Qt.ItemDataRole.ToolTipRole)
    model.set_predicted_counts({rock: None})
    assert rows(model, PredictedCountRole) == [40, None, None]
    # kept across a refresh that resets (a new tag), dropped for deleted tags
    project.create_tag("ambient")
    project.delete_tag("jazz")
    with qtbot.waitSignal(model.modelReset, timeout=1000):
        model.refresh(project)
    assert rows(model, NameRole) == ["ambient", "bebop", "rock"]
    assert rows(model) == ["ambient", "bebop", "rock"]  # bebop's parent is gone
    assert rows(model, PredictedCountRole) == [None, None, None]


def test_refresh_after_rename_and_undo(project, qtbot):
    model = TagListModel(project)
    project.rename_tag("rock", "Rock")
    with qtbot.waitSignal(model.modelReset, timeout=1000):
        model.refresh(project)
    assert rows(model, NameRole) == ["jazz", "bebop", "Rock"]
    project.undo()
    model.refresh(project)
    assert rows(model, NameRole) == ["jazz", "bebop", "rock"]

"""TrackTableModel: structure (qtmodeltester), cells, signals, sorting and filters."""

from __future__ import annotations

import time

import numpy as np
import pytest
from PySide6.QtCore import QItemSelectionModel, QPersistentModelIndex, Qt
from PySide6.QtWidgets import QTableView

from tagger_gui.core.project.store import TrackTable
from tagger_gui.qt.track_model import (
    NEGATIVE,
    NO_LABEL,
    POSITIVE,
    SKIP,
    Column,
    LabelRole,
    ScoreRole,
    SortRole,
    TrackIdRole,
    TrackTableModel,
    fold_text,
    format_duration,
    search_texts,
)

DISPLAY = Qt.ItemDataRole.DisplayRole


def make_table(
    *,
    ids,
    relpath,
    title,
    artist,
    album,
    duration,
    missing=None,
) -> TrackTable:
    n = len(ids)
    return TrackTable(
        id=np.asarray(ids, dtype=np.int64),
        relpath=list(relpath),
        size=np.zeros(n, dtype=np.int64),
        mtime_ns=np.zeros(n, dtype=np.int64),
        duration=np.asarray(duration, dtype=np.float64),
        artist=list(artist),
        album=list(album),
        title=list(title),
        genre=[""] * n,
        missing=np.zeros(n, dtype=bool) if missing is None else np.asarray(missing, dtype=bool),
    )


@pytest.fixture
def table() -> TrackTable:
    """Five tracks: one without a title, one of unknown length, one missing."""
    return make_table(
        ids=[3, 7, 8, 12, 20],
        relpath=[
            "Jazz/So What.flac",
            "Björk/Jóga.mp3",
            "untitled/01 intro.ogg",
            "Jazz/Blue in Green.flac",
            "misc/noise.wav",
        ],
        title=["So What", "Jóga", "", "Blue in Green", "Noise"],
        artist=["Miles Davis", "Björk", "", "Miles Davis", "Nobody"],
        album=["Kind of Blue", "Homogenic", "", "Kind of Blue", "Tests"],
        duration=[562.4, 305.0, np.nan, 337.6, 3725.0],
        missing=[False, False, False, False, True],
    )


@pytest.fixture
def model(table, qtbot) -> TrackTableModel:
    return TrackTableModel(table)


def column_texts(model, column: int) -> list[str]:
    return [model.index(r, column).data() for r in range(model.rowCount())]


def test_structure_with_and_without_data(qtmodeltester, table):
    qtmodeltester.check(TrackTableModel())
    model = TrackTableModel(table)
    qtmodeltester.check(model)
    model.set_scores([3, 8, 20], [0.9, 0.25, 0.5])
    model.set_labels([3, 7, 12], [POSITIVE, NEGATIVE, SKIP])
    model.sort(Column.SCORE, Qt.SortOrder.DescendingOrder)
    qtmodeltester.check(model)


def test_cells_per_column(model):
    assert model.columnCount() == 7
    headers = [model.headerData(c, Qt.Orientation.Horizontal) for c in range(7)]
    assert headers == ["Title", "Artist", "Album", "Duration", "Score", "Label", "Path"]
    assert model.headerData(4, Qt.Orientation.Vertical) == 5  # row numbers
    assert model.headerData(0, Qt.Orientation.Horizontal, Qt.ItemDataRole.FontRole) is None
    # no title: the file name stands in
    assert column_texts(model, Column.TITLE) == [
        "So What",
        "Jóga",
        "01 intro.ogg",
        "Blue in Green",
        "Noise",
    ]
    assert column_texts(model, Column.ARTIST)[:2] == ["Miles Davis", "Björk"]
    assert column_texts(model, Column.ALBUM)[3] == "Kind of Blue"
    assert column_texts(model, Column.DURATION) == ["9:22", "5:05", "", "5:38", "1:02:05"]
    assert column_texts(model, Column.SCORE) == [""] * 5
    assert column_texts(model, Column.LABEL) == [""] * 5
    assert column_texts(model, Column.PATH)[1] == "Björk/Jóga.mp3"
    index = model.index(1, Column.TITLE)
    assert index.data(TrackIdRole) == 7
    assert index.data(ScoreRole) is None
    assert index.data(LabelRole) == NO_LABEL
    assert index.data(Qt.ItemDataRole.CheckStateRole) is None  # a role it does not handle
    # the missing file is greyed out and says why
    assert model.index(4, Column.ARTIST).data(Qt.ItemDataRole.ForegroundRole) is not None
    assert model.index(0, Column.ARTIST).data(Qt.ItemDataRole.ForegroundRole) is None
    assert "missing" in model.index(4, Column.TITLE).data(Qt.ItemDataRole.ToolTipRole)


def test_scores_and_labels_show_and_sort_values(model):
    model.set_scores(np.array([3, 8]), np.array([0.912, 0.0449]))
    model.set_labels(np.array([3, 7, 12]), np.array([POSITIVE, NEGATIVE, SKIP]))
    assert column_texts(model, Column.SCORE) == ["0.91", "", "0.04", "", ""]
    assert column_texts(model, Column.LABEL) == ["✓ positive", "✗ negative", "", "– skip", ""]
    assert model.index(0, Column.SCORE).data(ScoreRole) == pytest.approx(0.912)
    assert model.index(0, Column.SCORE).data(SortRole) == pytest.approx(0.912)
    assert model.index(1, Column.SCORE).data(SortRole) is None
    assert model.index(0, Column.DURATION).data(SortRole) == pytest.approx(562.4)
    assert model.index(2, Column.TITLE).data(SortRole) == "01 intro.ogg"
    assert model.index(1, Column.LABEL).data(LabelRole) == NEGATIVE
    positive = model.index(0, Column.LABEL).data(Qt.ItemDataRole.ForegroundRole)
    negative = model.index(1, Column.LABEL).data(Qt.ItemDataRole.ForegroundRole)
    assert positive is not None and negative is not None and positive != negative
    assert model.index(2, Column.LABEL).data(Qt.ItemDataRole.ForegroundRole) is None


def changed_ranges(seen) -> list[tuple[int, int, int]]:
    """(column, top row, bottom row) of each dataChanged in ``seen``."""
    return [(tl.column(), tl.row(), br.row()) for tl, br, _roles in seen]


def test_set_scores_announces_only_the_rows_that_changed(model, qtbot):
    seen = []
    model.dataChanged.connect(lambda tl, br, roles: seen.append((tl, br, list(roles))))

    def is_score_column(top_left, bottom_right, roles):
        return top_left.column() == bottom_right.column() == Column.SCORE and set(roles) == {
            DISPLAY,
            ScoreRole,
            SortRole,
        }

    with qtbot.waitSignal(model.dataChanged, timeout=1000, check_params_cb=is_score_column):
        # ids 7 and 12 are rows 1 and 3; 999 is not a track and is ignored
        model.set_scores([12, 999, 7], [0.5, 0.7, 0.25])
    assert changed_ranges(seen) == [(Column.SCORE, 1, 1), (Column.SCORE, 3, 3)]
    assert column_texts(model, Column.SCORE) == ["", "0.25", "", "0.50", ""]

    seen.clear()
    model.set_scores([3], [0.1], replace=True)  # a new ranking: the others lose theirs
    assert changed_ranges(seen) == [(Column.SCORE, 0, 1), (Column.SCORE, 3, 3)]
    assert column_texts(model, Column.SCORE) == ["0.10", "", "", "", ""]

    seen.clear()
    model.set_scores([3, 7], [0.1, np.nan])  # the same values: nothing to say
    assert seen == []

    model.clear_scores()
    assert changed_ranges(seen) == [(Column.SCORE, 0, 0)]
    assert set(seen[0][2]) == {DISPLAY, ScoreRole, SortRole}
    assert column_texts(model, Column.SCORE) == [""] * 5

    seen.clear()
    model.set_scores([999], [0.3])  # nothing known: nothing to say
    assert seen == []
    with pytest.raises(ValueError, match="2 track ids but 1 scores"):
        model.set_scores([3, 7], [0.5])


def test_set_labels_announces_only_the_rows_that_changed(model, qtbot):
    seen = []
    model.dataChanged.connect(lambda tl, br, roles: seen.append((tl, br, list(roles))))

    def is_label_column(top_left, bottom_right, roles):
        return top_left.column() == bottom_right.column() == Column.LABEL and {
            DISPLAY,
            LabelRole,
            SortRole,
        } <= set(roles)

    with qtbot.waitSignal(model.dataChanged, timeout=1000, check_params_cb=is_label_column):
        model.set_labels([3, 20], [POSITIVE, NEGATIVE])
    assert changed_ranges(seen) == [(Column.LABEL, 0, 0), (Column.LABEL, 4, 4)]
    assert [model.index(r, 0).data(LabelRole) for r in range(5)] == [
        POSITIVE,
        NO_LABEL,
        NO_LABEL,
        NO_LABEL,
        NEGATIVE,
    ]
    seen.clear()
    model.set_labels([7], [SKIP], replace=True)
    assert changed_ranges(seen) == [(Column.LABEL, 0, 1), (Column.LABEL, 4, 4)]
    assert column_texts(model, Column.LABEL) == ["", "– skip", "", "", ""]
    model.clear_labels()
    assert column_texts(model, Column.LABEL) == [""] * 5
    with pytest.raises(ValueError, match="unknown label code 5"):
        model.set_labels([3], [5])


def test_labels_read_again_touch_only_the_new_label_and_keep_the_sort(model, qtbot):
    """What the window does after each label: every label again, one of them new."""
    model.set_scores([3, 7, 8, 12, 20], [0.1, 0.5, 0.3, 0.9, 0.2])
    model.set_labels([3, 8], [POSITIVE, NEGATIVE])
    model.sort(Column.SCORE, Qt.SortOrder.DescendingOrder)  # 12, 7, 8, 20, 3
    seen, layouts, resets = [], [], []
    model.dataChanged.connect(lambda tl, br, roles: seen.append((tl, br, list(roles))))
    model.layoutChanged.connect(lambda *_: layouts.append(1))
    model.modelReset.connect(lambda: resets.append(1))
    model.set_labels([3, 8, 20], [POSITIVE, NEGATIVE, SKIP], replace=True)
    assert changed_ranges(seen) == [(Column.LABEL, 3, 3)]  # track 20 only
    assert layouts == [] and resets == []  # sorted by score: labels do not move rows
    assert model.index(3, Column.LABEL).data(LabelRole) == SKIP

    seen.clear()
    model.set_scores([12, 7], [0.05, 0.5])  # a refit's result: one re-sort
    assert changed_ranges(seen) == [(Column.SCORE, 0, 0)]
    assert layouts == [1] and resets == []
    assert [model.track_id(r) for r in range(5)] == [7, 8, 20, 3, 12]


def test_a_scattered_change_is_one_range_past_the_limit(table, qtbot):
    many = make_table(
        ids=np.arange(1, 201),
        relpath=[f"{i}.flac" for i in range(200)],
        title=[""] * 200,
        artist=[""] * 200,
        album=[""] * 200,
        duration=np.ones(200),
    )
    model = TrackTableModel(many)
    seen = []
    model.dataChanged.connect(lambda tl, br, roles: seen.append((tl, br, list(roles))))
    model.set_labels(np.arange(1, 201, 2), np.full(100, POSITIVE))  # every other row
    assert changed_ranges(seen) == [(Column.LABEL, 0, 198)]


def test_sort_by_score_puts_tracks_without_a_score_last(model):
    model.set_scores([3, 8, 20], [0.2, 0.9, 0.5])
    model.sort(Column.SCORE, Qt.SortOrder.DescendingOrder)
    assert [model.track_id(r) for r in range(5)] == [8, 20, 3, 7, 12]
    assert column_texts(model, Column.SCORE) == ["0.90", "0.50", "0.20", "", ""]
    model.sort(Column.SCORE, Qt.SortOrder.AscendingOrder)
    assert [model.track_id(r) for r in range(5)] == [3, 20, 8, 7, 12]
    assert model.row_of(8) == 2 and model.row_of(7) == 3 and model.row_of(4242) == -1
    # a new score re-sorts while sorted by score
    model.set_scores([12], [0.05])
    assert model.track_id(0) == 12
    model.sort(-1)
    assert [model.track_id(r) for r in range(5)] == [3, 7, 8, 12, 20]
    assert model.sort_column() == -1


def test_sort_text_duration_and_label_columns(model):
    model.sort(Column.TITLE)
    assert column_texts(model, Column.TITLE) == [
        "01 intro.ogg",
        "Blue in Green",
        "Jóga",
        "Noise",
        "So What",
    ]
    model.sort(Column.ARTIST, Qt.SortOrder.DescendingOrder)  # empty artist last
    assert column_texts(model, Column.ARTIST) == [
        "Nobody",
        "Miles Davis",
        "Miles Davis",
        "Björk",
        "",
    ]
    assert [model.track_id(r) for r in (1, 2)] == [3, 12]  # stable: ties keep id order
    model.sort(Column.DURATION)
    assert column_texts(model, Column.DURATION) == ["5:05", "5:38", "9:22", "1:02:05", ""]
    model.set_labels([3, 7, 12], [SKIP, POSITIVE, NEGATIVE])
    model.sort(Column.LABEL)
    assert [model.track_id(r) for r in range(3)] == [7, 12, 3]
    assert column_texts(model, Column.LABEL)[3:] == ["", ""]


def test_sort_keeps_persistent_indexes_on_their_track(model):
    model.set_scores([3, 7, 8, 12, 20], [0.1, 0.2, 0.3, 0.4, 0.5])
    held = QPersistentModelIndex(model.index(1, Column.ARTIST))  # track 7, Björk
    model.sort(Column.SCORE, Qt.SortOrder.DescendingOrder)
    assert held.row() == 3 and held.column() == Column.ARTIST
    assert held.data() == "Björk"


def test_set_tracks_resets_and_keeps_scores_of_remaining_tracks(model, qtbot):
    model.set_scores([3, 7], [0.8, 0.6])
    model.set_labels([7], [POSITIVE])
    model.sort(Column.SCORE, Qt.SortOrder.DescendingOrder)
    smaller = make_table(
        ids=[7, 30],
        relpath=["Björk/Jóga.mp3", "new/one.flac"],
        title=["Jóga", "One"],
        artist=["Björk", "Someone"],
        album=["Homogenic", ""],
        duration=[305.0, 60.0],
    )
    with qtbot.waitSignal(model.modelReset, timeout=1000):
        model.set_tracks(smaller)
    assert model.rowCount() == 2
    assert model.track_id(0) == 7  # still sorted by score
    assert model.index(0, Column.SCORE).data() == "0.60"
    assert model.index(0, Column.LABEL).data(LabelRole) == POSITIVE
    assert model.index(1, Column.SCORE).data(ScoreRole) is None


def test_format_duration_and_fold_text():
    assert format_duration(0.4) == "0:00"
    assert format_duration(59.6) == "1:00"
    assert format_duration(3600) == "1:00:00"
    assert format_duration(float("nan")) == ""
    assert fold_text("Björk JÓGA Straße") == "bjork joga strasse"


# -- filters ----------------------------------------------------------------------------------


def shown_ids(model) -> list[int]:
    return [model.index(r, 0).data(TrackIdRole) for r in range(model.rowCount())]


def test_structure_while_filtered(qtmodeltester, model):
    model.set_scores([3, 8, 20], [0.2, 0.9, 0.5])
    model.sort(Column.SCORE, Qt.SortOrder.DescendingOrder)
    model.set_search("miles")
    qtmodeltester.check(model)
    model.set_search("")
    model.set_min_score(0.3)
    qtmodeltester.check(model)
    model.set_label_filter(NO_LABEL)
    model.set_labels([8], [POSITIVE])  # filtered out by a new label
    qtmodeltester.check(model)
    assert shown_ids(model) == [20]


def test_structure_through_filter_changes(qtmodeltester, model):
    """The tester watches the layout changes themselves (persistent indexes, counts)."""
    model.set_scores([3, 8, 20], [0.2, 0.9, 0.5])
    qtmodeltester.check(model, force_py=True)
    model.sort(Column.SCORE, Qt.SortOrder.DescendingOrder)
    model.set_search("miles")
    model.set_search("")
    model.set_min_score(0.3)
    model.set_scores([7], [0.95])
    model.set_min_score(None)
    model.sort(-1)
    assert shown_ids(model) == [3, 7, 8, 12, 20]


def test_search_is_case_and_accent_insensitive(model):
    model.set_search("MILES")
    assert shown_ids(model) == [3, 12]
    model.set_search("bjork")  # artist Björk
    assert shown_ids(model) == [7]
    model.set_search("joga")  # title Jóga
    assert shown_ids(model) == [7]
    model.set_search("intro")  # only in the path
    assert shown_ids(model) == [8]
    model.set_search("blue davis")  # every word, in any field
    assert shown_ids(model) == [3, 12]
    model.set_search("green davis")
    assert shown_ids(model) == [12]
    model.set_search("zzz")
    assert shown_ids(model) == []
    model.set_search("  ")
    assert shown_ids(model) == [3, 7, 8, 12, 20]


def test_search_does_not_match_across_fields(model):
    # "Davis" ends the artist, "Kind" starts the album: not one word
    model.set_search("daviskind")
    assert shown_ids(model) == []


def test_sort_is_the_models_numeric_sort(model):
    model.set_scores([3, 8, 20], [0.2, 0.9, 0.5])
    model.sort(Column.SCORE, Qt.SortOrder.DescendingOrder)
    assert shown_ids(model) == [8, 20, 3, 7, 12]
    model.set_search("miles")
    assert shown_ids(model) == [3, 12]  # sorted and filtered
    model.sort(Column.SCORE, Qt.SortOrder.AscendingOrder)
    assert shown_ids(model) == [3, 12]
    model.set_search("")
    assert shown_ids(model) == [3, 20, 8, 7, 12]
    assert model.index(0, Column.SCORE).data() == "0.20"


def test_label_and_score_filters_follow_changes(model):
    model.set_labels([3, 7, 12], [POSITIVE, NEGATIVE, POSITIVE])
    model.set_label_filter(POSITIVE)
    assert shown_ids(model) == [3, 12]
    model.set_labels([20], [POSITIVE])  # the filter follows new labels
    assert shown_ids(model) == [3, 12, 20]
    model.set_label_filter(NO_LABEL)
    assert shown_ids(model) == [8]
    model.set_label_filter(None)
    assert len(shown_ids(model)) == 5
    with pytest.raises(ValueError, match="unknown label code"):
        model.set_label_filter(7)

    model.set_scores([3, 7, 8], [0.9, 0.4, 0.6])
    model.set_min_score(0.5)
    assert shown_ids(model) == [3, 8]  # unscored tracks are hidden too
    model.set_scores([7], [0.55])  # and new scores are taken into account
    assert shown_ids(model) == [3, 7, 8]
    model.set_label_filter(POSITIVE)
    assert shown_ids(model) == [3]
    model.set_min_score(None)
    model.set_label_filter(None)
    assert shown_ids(model) == [3, 7, 8, 12, 20]


def test_search_narrows_as_words_grow_and_widens_back(model):
    expected = {"b": [3, 7, 12, 20], "bl": [3, 12], "blue": [3, 12], "blue g": [12]}
    for text, ids in expected.items():
        model.set_search(text)
        assert shown_ids(model) == ids, text
    model.set_search("bl")  # a shorter word again
    assert shown_ids(model) == [3, 12]
    model.set_search("o")
    assert shown_ids(model) == [3, 7, 8, 12, 20]


def test_set_tracks_takes_search_texts_computed_elsewhere(model, table):
    texts = search_texts(table)
    assert texts[1] == "joga\x1fbjork\x1fhomogenic\x1fbjork/joga.mp3"
    model.set_search("homogenic")
    model.set_tracks(table, search_texts=texts)
    assert shown_ids(model) == [7]
    with pytest.raises(ValueError, match="4 search texts for 5 tracks"):
        model.set_tracks(table, search_texts=texts[:4])


def test_refilters_after_a_new_table(model):
    model.set_search("noise")
    assert shown_ids(model) == [20]
    model.set_tracks(
        make_table(
            ids=[20, 21],
            relpath=["misc/noise.wav", "misc/more noise.wav"],
            title=["Noise", ""],
            artist=["", ""],
            album=["", ""],
            duration=[1.0, 2.0],
        )
    )
    assert shown_ids(model) == [20, 21]


# -- 100,000 tracks ---------------------------------------------------------------------------


def test_hundred_thousand_tracks(qtmodeltester):
    """Construction, a few cells, a score sort and a search over 100,000 tracks.

    Timings are printed (``pytest -s``), not asserted: they depend on the machine.
    """
    n = 100_000
    rng = np.random.default_rng(0)
    table = make_table(
        ids=np.arange(1, n + 1),
        relpath=[f"Artist {i % 500}/Album {i % 3000}/{i:06d} song.flac" for i in range(n)],
        title=["" if i % 10 == 0 else f"Song {i}" for i in range(n)],
        artist=[f"Artist {i % 500}" for i in range(n)],
        album=[f"Album {i % 3000}" for i in range(n)],
        duration=rng.uniform(30, 600, n),
    )
    start = time.perf_counter()
    model = TrackTableModel(table)
    built = time.perf_counter() - start
    assert model.rowCount() == n
    assert model.index(0, Column.TITLE).data() == "000000 song.flac"
    assert model.index(12_345, Column.TITLE).data() == "Song 12345"
    assert model.index(n - 1, Column.ARTIST).data() == f"Artist {(n - 1) % 500}"
    assert model.index(n - 1, Column.TITLE).data(TrackIdRole) == n

    scores = rng.random(n)
    model.set_scores(table.id, scores)
    start = time.perf_counter()
    model.sort(Column.SCORE, Qt.SortOrder.DescendingOrder)
    assert model.rowCount() == n
    sorted_in = time.perf_counter() - start
    best = int(np.argmax(scores))
    assert model.index(0, Column.SCORE).data(TrackIdRole) == best + 1
    firsts = [model.index(r, Column.SCORE).data(ScoreRole) for r in range(100)]
    assert firsts == sorted(firsts, reverse=True)

    start = time.perf_counter()
    model.set_search("song 1234")
    searched = time.perf_counter() - start
    assert 0 < model.rowCount() < 200
    print(f"\n100k tracks: model {built * 1e3:.1f} ms, sort by score {sorted_in * 1e3:.0f} ms,")
    print(f"first search {searched * 1e3:.0f} ms")


def test_a_views_selection_follows_its_track_through_sorts_and_filters(model, qtbot):
    view = QTableView()
    qtbot.addWidget(view)
    view.setModel(model)
    view.horizontalHeader().setSortIndicator(-1, Qt.SortOrder.AscendingOrder)
    view.setSortingEnabled(True)  # sorts by the indicator: -1 keeps the table order
    assert shown_ids(model) == [3, 7, 8, 12, 20]
    model.set_scores([3, 7, 8, 12, 20], [0.1, 0.5, 0.3, 0.9, 0.2])
    view.selectionModel().setCurrentIndex(
        model.index(1, 0),  # track 7
        QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows,
    )
    view.sortByColumn(Column.SCORE, Qt.SortOrder.DescendingOrder)  # a header click
    assert shown_ids(model) == [12, 7, 8, 20, 3]
    assert view.currentIndex().data(TrackIdRole) == 7
    assert view.currentIndex().row() == 1
    model.set_search("björk")
    assert view.currentIndex().data(TrackIdRole) == 7
    assert view.verticalHeader().count() == 1  # the view saw the rows go
    model.set_scores([7], [0.05])  # re-sorted: the current row moves with its track
    model.set_search("")
    assert shown_ids(model) == [12, 8, 20, 3, 7]
    assert view.currentIndex().data(TrackIdRole) == 7
    assert [i.data(TrackIdRole) for i in view.selectionModel().selectedRows()] == [7]

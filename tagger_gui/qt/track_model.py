"""The library table: a thin Qt model over the project's :class:`TrackTable`.

:class:`TrackTableModel` reads the core's columns (numpy arrays and the
lists :meth:`Project.tracks` already built) and two arrays of its own, the
current tag's scores and labels. Nothing is built per row: ``data()`` indexes
those arrays, so 100,000 tracks cost what their columns cost.

Sorting happens in the source model (:meth:`TrackTableModel.sort`: a numpy
sort over the column, 15-30 ms for 100,000 scores, about 70 ms for titles)
rather than in :class:`QSortFilterProxyModel`, whose comparison sort would
call the Python ``data()`` twice per comparison (millions of calls for
100,000 rows, seconds of frozen UI). :class:`TrackFilterProxy` forwards
``sort()`` to the source and only filters; its filter is a numpy mask, so it
never formats a cell.

What remains: after a re-sort or a filter change, ``QSortFilterProxyModel``
maps its rows again and calls ``filterAcceptsRow`` once per row, a Python
call of 2-4 us, so 0.2-0.6 s for 100,000 rows on the 2-core development VM.
There is no batch form of that call. The proxy turns on dynamic filtering
(a refilter over each ``dataChanged`` range) only while a label or score
filter is set, so new scores and labels cost nothing there otherwise.
"""

from __future__ import annotations

import enum
import unicodedata
from collections.abc import Sequence

import numpy as np
from PySide6.QtCore import (
    QAbstractItemModel,
    QAbstractTableModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
)
from PySide6.QtGui import QColor

from tagger_gui.core.project.store import VALUE_CODES, TrackTable

__all__ = [
    "NEGATIVE",
    "NO_LABEL",
    "POSITIVE",
    "SKIP",
    "Column",
    "LabelRole",
    "ScoreRole",
    "SortRole",
    "TrackFilterProxy",
    "TrackIdRole",
    "TrackTableModel",
    "fold_text",
    "format_duration",
]

#: The track's id (int).
TrackIdRole = Qt.ItemDataRole.UserRole + 1
#: The current tag's score of the track (float), None when it has none.
ScoreRole = Qt.ItemDataRole.UserRole + 2
#: The track's label for the current tag (int code: :data:`POSITIVE`...).
LabelRole = Qt.ItemDataRole.UserRole + 3
#: A value that sorts as the column should (numbers for duration and score,
#: case-folded text for text columns); None for an empty cell.
SortRole = Qt.ItemDataRole.UserRole + 4

#: Label codes (the store's ``VALUE_CODES``), and the code of "no label".
POSITIVE: int = VALUE_CODES["positive"]
NEGATIVE: int = VALUE_CODES["negative"]
SKIP: int = VALUE_CODES["skip"]
NO_LABEL: int = 2

_LABEL_TEXT = {POSITIVE: "✓ positive", NEGATIVE: "✗ negative", SKIP: "– skip", NO_LABEL: ""}
_LABEL_COLOUR = {
    POSITIVE: QColor("#2e7d32"),
    NEGATIVE: QColor("#c62828"),
    SKIP: QColor("#757575"),
}
_MISSING_COLOUR = QColor("#9e9e9e")
# Sort rank of each label code: positives first, unlabelled last in both orders.
_LABEL_RANK = np.zeros(256, dtype=np.int8)
for _rank, _code in enumerate((POSITIVE, NEGATIVE, SKIP)):
    _LABEL_RANK[_code & 0xFF] = _rank

_RIGHT = Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter


class Column(enum.IntEnum):
    """The columns of :class:`TrackTableModel`, in order."""

    TITLE = 0
    ARTIST = 1
    ALBUM = 2
    DURATION = 3
    SCORE = 4
    LABEL = 5
    PATH = 6


_HEADERS = ("Title", "Artist", "Album", "Duration", "Score", "Label", "Path")
# Plain ints for data(), which runs for every visible cell and role.
_TITLE, _ARTIST, _ALBUM, _DURATION, _SCORE, _LABEL, _PATH = (int(c) for c in Column)
_DISPLAY = int(Qt.ItemDataRole.DisplayRole)
_FOREGROUND = int(Qt.ItemDataRole.ForegroundRole)
_ALIGNMENT = int(Qt.ItemDataRole.TextAlignmentRole)
_TOOLTIP = int(Qt.ItemDataRole.ToolTipRole)
_HANDLED_ROLES = frozenset(
    (_DISPLAY, _FOREGROUND, _ALIGNMENT, _TOOLTIP, TrackIdRole, ScoreRole, LabelRole, SortRole)
)


def format_duration(seconds: float) -> str:
    """``m:ss`` (``h:mm:ss`` from an hour on); empty for NaN.

    Parameters
    ----------
    seconds : float

    Returns
    -------
    str
    """
    if seconds != seconds:  # NaN: unknown duration
        return ""
    total = int(seconds + 0.5)
    minutes, secs = divmod(total, 60)
    if minutes >= 60:
        hours, minutes = divmod(minutes, 60)
        return f"{hours}:{minutes:02d}:{secs:02d}"
    return f"{minutes}:{secs:02d}"


def _file_name(relpath: str) -> str:
    return relpath.rpartition("/")[2]


def _empty_table() -> TrackTable:
    no_ints = np.zeros(0, dtype=np.int64)
    return TrackTable(
        id=no_ints,
        relpath=[],
        size=no_ints,
        mtime_ns=no_ints,
        duration=np.zeros(0, dtype=np.float64),
        artist=[],
        album=[],
        title=[],
        genre=[],
        missing=np.zeros(0, dtype=bool),
    )


class TrackTableModel(QAbstractTableModel):
    """The tracks of a project, with the current tag's scores and labels.

    Parameters
    ----------
    table : TrackTable, optional
        What :meth:`Project.tracks` returned (empty by default).
    parent : QObject, optional
    resort_on_change : bool, keyword-only
        When rows are sorted by score (or label), new scores (labels) sort
        them again, as a dynamic ``QSortFilterProxyModel`` would. Each re-sort
        is a layout change that a filter proxy above maps again (about 0.2 s
        for 100,000 rows); the app can turn it off (the attribute of the same
        name) and call :meth:`sort` itself when it suits it.

    Notes
    -----
    Rows follow the table (track id order) until :meth:`sort` reorders them;
    a view row maps to a table index through one permutation array.
    Scores and labels are arrays in table order: NaN for no score,
    :data:`NO_LABEL` for no label.
    """

    def __init__(
        self,
        table: TrackTable | None = None,
        parent: QObject | None = None,
        *,
        resort_on_change: bool = True,
    ):
        super().__init__(parent)
        self.resort_on_change = resort_on_change
        self._table = _empty_table()
        self._scores = np.zeros(0, dtype=np.float64)
        self._labels = np.zeros(0, dtype=np.int8)
        self._order: np.ndarray | None = None  # view row -> table index
        self._rank: np.ndarray | None = None  # table index -> view row
        self._sort_column = -1
        self._sort_order = Qt.SortOrder.AscendingOrder
        self._generation = 0
        if table is not None:
            self.set_tracks(table)

    # -- what the proxy and the app read ----------------------------------------------------

    @property
    def table(self) -> TrackTable:
        """The :class:`TrackTable` shown (table order, not view order)."""
        return self._table

    @property
    def scores(self) -> np.ndarray:
        """The current tag's scores in table order (NaN: none). Read only."""
        return self._scores

    @property
    def labels(self) -> np.ndarray:
        """The current tag's label codes in table order. Read only."""
        return self._labels

    @property
    def generation(self) -> int:
        """A counter that changes whenever tracks, scores or labels change."""
        return self._generation

    @property
    def order(self) -> np.ndarray | None:
        """View row -> table index, or None while rows are in table order."""
        return self._order

    def sort_column(self) -> int:
        """The column rows are sorted by (-1: table order)."""
        return self._sort_column

    def sort_order(self) -> Qt.SortOrder:
        """The order of :meth:`sort_column`."""
        return self._sort_order

    def track_id(self, row: int) -> int:
        """The id of the track shown in ``row``."""
        return int(self._table.id[self._table_index(row)])

    def row_of(self, track_id: int) -> int:
        """The row showing ``track_id``, -1 if it is not in the table."""
        i = int(self._table.rows_of([track_id])[0])
        if i < 0 or self._rank is None:
            return i
        return int(self._rank[i])

    def _table_index(self, row: int) -> int:
        return row if self._order is None else int(self._order[row])

    def _rows_of_indices(self, indices: np.ndarray) -> np.ndarray:
        return indices if self._rank is None else self._rank[indices]

    # -- changes ----------------------------------------------------------------------------

    def set_tracks(self, table: TrackTable) -> None:
        """Show ``table`` (a model reset).

        Scores and labels of tracks that are still in the table are kept, so
        a library sync does not blank the current tag's column; the sort
        column is applied again.

        Parameters
        ----------
        table : TrackTable
        """
        rows = table.rows_of(self._table.id) if len(self._table) else np.zeros(0, np.int64)
        kept = rows >= 0
        scores = np.full(len(table), np.nan)
        labels = np.full(len(table), NO_LABEL, dtype=np.int8)
        scores[rows[kept]] = self._scores[kept]
        labels[rows[kept]] = self._labels[kept]
        self.beginResetModel()
        self._table = table
        self._scores = scores
        self._labels = labels
        self._order = self._rank = None
        if self._sort_column >= 0:
            self._apply_order(self._sort_keys_order(self._sort_column, self._sort_order))
        self._generation += 1
        self.endResetModel()

    def set_scores(
        self,
        track_ids: Sequence[int] | np.ndarray,
        scores: Sequence[float] | np.ndarray,
        *,
        replace: bool = False,
    ) -> None:
        """Set the current tag's scores of some tracks.

        Emits one ``dataChanged`` over the Score column (roles Display, Score,
        Sort); when rows are sorted by score they are sorted again
        (unless ``resort_on_change`` is off).

        Parameters
        ----------
        track_ids : array of int
            Ids not in the table are ignored.
        scores : array of float
            One per id; NaN means no score.
        replace : bool, keyword-only
            Clear the scores of every other track (a new ranking).
        """
        ids = np.asarray(track_ids, dtype=np.int64)
        values = np.asarray(scores, dtype=np.float64)
        if ids.shape != values.shape:
            raise ValueError(f"{len(ids)} track ids but {len(values)} scores")
        indices = self._table.rows_of(ids)
        found = indices >= 0
        if replace:
            self._scores[:] = np.nan
        self._scores[indices[found]] = values[found]
        self._changed(Column.SCORE, indices[found], everything=replace)

    def clear_scores(self) -> None:
        """Remove every score (no tag, or a tag without a model yet)."""
        self._scores[:] = np.nan
        self._changed(Column.SCORE, np.zeros(0, np.int64), everything=True)

    def set_labels(
        self,
        track_ids: Sequence[int] | np.ndarray,
        values: Sequence[int] | np.ndarray,
        *,
        replace: bool = False,
    ) -> None:
        """Set the current tag's labels of some tracks.

        Emits one ``dataChanged`` over the Label column (roles Display,
        Foreground, Label, Sort).

        Parameters
        ----------
        track_ids : array of int
            Ids not in the table are ignored.
        values : array of int
            Label codes: :data:`POSITIVE`, :data:`NEGATIVE`, :data:`SKIP`,
            :data:`NO_LABEL` (``TagLabels.value`` can be passed as is).
        replace : bool, keyword-only
            Every other track becomes unlabelled (the labels of a new tag:
            ``set_labels(lab.track_id, lab.value, replace=True)``).
        """
        ids = np.asarray(track_ids, dtype=np.int64)
        codes = np.asarray(values, dtype=np.int8)
        if ids.shape != codes.shape:
            raise ValueError(f"{len(ids)} track ids but {len(codes)} labels")
        bad = ~np.isin(codes, (POSITIVE, NEGATIVE, SKIP, NO_LABEL))
        if bad.any():
            raise ValueError(f"unknown label code {int(codes[bad][0])}")
        indices = self._table.rows_of(ids)
        found = indices >= 0
        if replace:
            self._labels[:] = NO_LABEL
        self._labels[indices[found]] = codes[found]
        self._changed(Column.LABEL, indices[found], everything=replace)

    def clear_labels(self) -> None:
        """Every track unlabelled."""
        self._labels[:] = NO_LABEL
        self._changed(Column.LABEL, np.zeros(0, np.int64), everything=True)

    def _changed(self, column: Column, indices: np.ndarray, *, everything: bool) -> None:
        """One ``dataChanged`` over the rows of ``indices`` (table order) in ``column``."""
        self._generation += 1
        if len(self._table) == 0:
            return
        if everything:
            top, bottom = 0, len(self._table) - 1
        elif len(indices):
            rows = self._rows_of_indices(indices)
            top, bottom = int(rows.min()), int(rows.max())
        else:
            return
        if column == Column.SCORE:
            roles = [Qt.ItemDataRole.DisplayRole, ScoreRole, SortRole]
        else:
            roles = [Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.ForegroundRole, LabelRole]
            roles.append(SortRole)
        self.dataChanged.emit(self.index(top, column), self.index(bottom, column), roles)
        if self._sort_column == column and self.resort_on_change:
            self.sort(self._sort_column, self._sort_order)

    # -- sorting ----------------------------------------------------------------------------

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        """Sort rows by ``column`` (-1: back to table order); empty cells last.

        A stable numpy sort over the column's values (what :data:`SortRole`
        gives), wrapped in ``layoutAboutToBeChanged`` / ``layoutChanged``;
        persistent indexes (selection, current row) follow their tracks.

        Parameters
        ----------
        column : int
        order : Qt.SortOrder
        """
        if column >= len(_HEADERS):
            return
        self._sort_column = column
        self._sort_order = order
        self.layoutAboutToBeChanged.emit()
        persistent = self.persistentIndexList()
        old_indices = [self._table_index(p.row()) for p in persistent]
        self._apply_order(self._sort_keys_order(column, order) if column >= 0 else None)
        self._generation += 1
        self.changePersistentIndexList(
            persistent,
            [
                self.index(int(self._rows_of_indices(np.int64(i))), p.column())
                for i, p in zip(old_indices, persistent, strict=True)
            ],
        )
        self.layoutChanged.emit()

    def _apply_order(self, order: np.ndarray | None) -> None:
        self._order = order
        if order is None:
            self._rank = None
        else:
            self._rank = np.empty_like(order)
            self._rank[order] = np.arange(len(order), dtype=order.dtype)

    def _sort_keys_order(self, column: int, order: Qt.SortOrder) -> np.ndarray:
        """Table indices in the order of ``column`` (stable; empty values last)."""
        t = self._table
        descending = order == Qt.SortOrder.DescendingOrder
        n = len(t)
        if column in (Column.DURATION, Column.SCORE):
            values = t.duration if column == Column.DURATION else self._scores
            empty = np.isnan(values)
            key = np.where(empty, 0.0, -values if descending else values)
            return np.lexsort((key, empty))
        if column == Column.LABEL:
            empty = self._labels == NO_LABEL
            rank = _LABEL_RANK[self._labels.astype(np.uint8)]
            return np.lexsort((-rank if descending else rank, empty))
        if column == Column.TITLE:
            keys = [
                (a or _file_name(p)).casefold() for a, p in zip(t.title, t.relpath, strict=True)
            ]
        else:
            column_values = {Column.ARTIST: t.artist, Column.ALBUM: t.album, Column.PATH: t.relpath}
            keys = [s.casefold() for s in column_values[Column(column)]]
        ordered = sorted(range(n), key=keys.__getitem__, reverse=descending)
        filled = [i for i in ordered if keys[i]]
        if len(filled) < n:
            filled.extend(i for i in ordered if not keys[i])
        return np.array(filled, dtype=np.int64)

    # -- QAbstractTableModel ----------------------------------------------------------------

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._table)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(_HEADERS)

    def headerData(
        self,
        section: int,
        orientation: Qt.Orientation,
        role: int = Qt.ItemDataRole.DisplayRole,
    ):
        # Not super().headerData: rows are numbered here, and a call into the
        # base class from Python costs more than the answer.
        if role == _DISPLAY:
            if orientation == Qt.Orientation.Vertical:
                return section + 1
            return _HEADERS[section] if 0 <= section < len(_HEADERS) else None
        if role == _ALIGNMENT and orientation == Qt.Orientation.Horizontal:
            return _RIGHT if section in (_DURATION, _SCORE) else None
        return None

    def data(
        self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole
    ):
        # Called for every visible cell and every role a view asks for (font,
        # size hint, decoration...): leave early for roles not handled, and
        # compare plain ints (enum members cost an attribute lookup each).
        if role not in _HANDLED_ROLES or not index.isValid():
            return None
        row = index.row()
        column = index.column()
        t = self._table
        i = row if self._order is None else int(self._order[row])
        if role == _DISPLAY:
            if column == _TITLE:
                return t.title[i] or _file_name(t.relpath[i])
            if column == _ARTIST:
                return t.artist[i]
            if column == _ALBUM:
                return t.album[i]
            if column == _DURATION:
                return format_duration(float(t.duration[i]))
            if column == _SCORE:
                score = float(self._scores[i])
                return "" if score != score else f"{score:.2f}"
            if column == _LABEL:
                return _LABEL_TEXT[int(self._labels[i])]
            if column == _PATH:
                return t.relpath[i]
            return None
        if role == _FOREGROUND:
            if column == _LABEL:
                return _LABEL_COLOUR.get(int(self._labels[i]))
            return _MISSING_COLOUR if t.missing[i] else None
        if role == _ALIGNMENT:
            return _RIGHT if column == _DURATION or column == _SCORE else None
        if role == SortRole:
            return self._sort_value(i, column)
        if role == TrackIdRole:
            return int(t.id[i])
        if role == ScoreRole:
            score = float(self._scores[i])
            return None if score != score else score
        if role == LabelRole:
            return int(self._labels[i])
        # ToolTipRole
        if t.missing[i]:
            return f"{t.relpath[i]}\n(file missing at the last library scan)"
        return t.relpath[i] if column == _TITLE or column == _PATH else None

    def _sort_value(self, i: int, column: int) -> float | int | str | None:
        t = self._table
        if column == Column.DURATION or column == Column.SCORE:
            value = float(t.duration[i] if column == Column.DURATION else self._scores[i])
            return None if value != value else value
        if column == Column.LABEL:
            code = int(self._labels[i])
            return None if code == NO_LABEL else int(_LABEL_RANK[code & 0xFF])
        if column == Column.TITLE:
            text = t.title[i] or _file_name(t.relpath[i])
        elif column == Column.ARTIST:
            text = t.artist[i]
        elif column == Column.ALBUM:
            text = t.album[i]
        elif column == Column.PATH:
            text = t.relpath[i]
        else:
            return None
        return text.casefold() or None


def fold_text(text: str) -> str:
    """Case- and accent-insensitive form of ``text`` (what search compares).

    Parameters
    ----------
    text : str

    Returns
    -------
    str
        NFKD-decomposed, combining marks dropped, case-folded: ``"Björk"``
        becomes ``"bjork"``.
    """
    if text.isascii():
        return text.casefold()
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


class TrackFilterProxy(QSortFilterProxyModel):
    """Search and filters over a :class:`TrackTableModel`; sorting by the source.

    Parameters
    ----------
    parent : QObject, optional

    Notes
    -----
    - :meth:`set_search`: every word must occur (case- and accent-insensitive)
      in the title, artist, album or path of a track.
    - :meth:`set_label_filter`: only tracks with that label code
      (:data:`NO_LABEL` for unlabelled ones).
    - :meth:`set_min_score`: only tracks with a score of at least that.

    The filter is one boolean array in table order, computed with numpy when
    the filters or the source's data change (``TrackTableModel.generation``);
    ``filterAcceptsRow`` only indexes it. ``sort()`` is forwarded to the
    source model (a numpy sort), so this proxy keeps the source's order;
    over another source model it sorts as a plain proxy would, by
    :data:`SortRole`.
    """

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.setSortRole(SortRole)
        self.setSortCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self._words: tuple[str, ...] = ()
        self._label: int | None = None
        self._min_score: float | None = None
        self._haystack: list[str] | None = None  # folded "title artist album path" per track
        self._haystack_of: TrackTable | None = None
        self._source: TrackTableModel | None = None
        self._accept: list[bool] | None = None  # per source row; None: every row passes
        self._accept_generation = -1

    # -- filters ----------------------------------------------------------------------------

    def search(self) -> str:
        """The current search words, joined by spaces."""
        return " ".join(self._words)

    def set_search(self, text: str) -> None:
        """Show only tracks whose title, artist, album or path hold every word of ``text``.

        Parameters
        ----------
        text : str
            Case and accents are ignored; empty shows every track.
        """
        words = tuple(fold_text(text).split())
        if words != self._words:
            self._refilter(lambda: setattr(self, "_words", words))

    def label_filter(self) -> int | None:
        """The label code tracks must have, or None."""
        return self._label

    def set_label_filter(self, code: int | None) -> None:
        """Show only tracks with label ``code`` (None: any label or none).

        Parameters
        ----------
        code : int or None
            :data:`POSITIVE`, :data:`NEGATIVE`, :data:`SKIP` or :data:`NO_LABEL`.
        """
        if code is not None and code not in (POSITIVE, NEGATIVE, SKIP, NO_LABEL):
            raise ValueError(f"unknown label code {code}")
        if code != self._label:
            self._refilter(lambda: setattr(self, "_label", code))

    def min_score(self) -> float | None:
        """The lowest score shown, or None."""
        return self._min_score

    def set_min_score(self, value: float | None) -> None:
        """Show only tracks scored at least ``value`` (None: every track, scored or not).

        Parameters
        ----------
        value : float or None
        """
        value = None if value is None else float(value)
        if value != self._min_score:
            self._refilter(lambda: setattr(self, "_min_score", value))

    def _refilter(self, change) -> None:
        self.beginFilterChange()
        change()
        self._accept_generation = -1
        self.endFilterChange(QSortFilterProxyModel.Direction.Rows)
        self._update_dynamic()

    def _update_dynamic(self) -> None:
        # Search depends on text that only changes with a model reset, which
        # always refilters; refiltering on dataChanged (one Python call per
        # row in the changed range) is needed only for label and score filters.
        dynamic = self._source is None or self._label is not None or self._min_score is not None
        if dynamic != self.dynamicSortFilter():  # enabling it re-sorts: only on a change
            self.setDynamicSortFilter(dynamic)

    def setSourceModel(self, model: QAbstractItemModel | None) -> None:
        """Filter (and sort) ``model``; a :class:`TrackTableModel` is filtered with numpy."""
        # Set before the base class maps rows (it calls filterAcceptsRow).
        self._source = model if isinstance(model, TrackTableModel) else None
        self._accept_generation = -1
        self._update_dynamic()
        super().setSourceModel(model)

    def _update_accept(self, source: TrackTableModel) -> None:
        """The filter as a list of bools in source-row order (None: everything passes)."""
        mask = None
        if self._words:
            haystack = self._haystack_for(source.table)
            words = self._words
            mask = np.fromiter(
                (all(w in h for w in words) for h in haystack), dtype=bool, count=len(haystack)
            )
        if self._label is not None:
            m = source.labels == self._label
            mask = m if mask is None else mask & m
        if self._min_score is not None:
            with np.errstate(invalid="ignore"):
                m = source.scores >= self._min_score  # NaN (no score) fails
            mask = m if mask is None else mask & m
        if mask is not None and source.order is not None:
            mask = mask[source.order]
        # A list: indexing it from filterAcceptsRow is cheaper than numpy scalars.
        self._accept = None if mask is None else mask.tolist()
        self._accept_generation = source.generation

    def _haystack_for(self, table: TrackTable) -> list[str]:
        if self._haystack_of is not table:
            # Built on the first search only; "\x1f" keeps words from matching
            # across two fields.
            self._haystack = [
                fold_text(f"{t}\x1f{a}\x1f{b}\x1f{p}")
                for t, a, b, p in zip(
                    table.title, table.artist, table.album, table.relpath, strict=True
                )
            ]
            self._haystack_of = table
        return self._haystack

    def filterAcceptsRow(
        self,
        source_row: int,
        source_parent: QModelIndex | QPersistentModelIndex,
    ) -> bool:
        source = self._source
        if source is None:
            return True
        if self._accept_generation != source.generation:
            self._update_accept(source)
        return True if self._accept is None else self._accept[source_row]

    # -- sorting ----------------------------------------------------------------------------

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        """Sort by ``column`` in the source model (numpy: fast for 100,000 rows).

        Parameters
        ----------
        column : int
            -1 restores the table order.
        order : Qt.SortOrder
        """
        source = self._source
        if source is None:
            super().sort(column, order)
        else:
            source.sort(column, order)

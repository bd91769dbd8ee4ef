"""The library table: a thin Qt model over the project's :class:`TrackTable`.

:class:`TrackTableModel` reads the core's columns (numpy arrays and the
lists :meth:`Project.tracks` already built) and two arrays of its own, the
current tag's scores and labels. Nothing is built per row: ``data()`` indexes
those arrays, so 100,000 tracks cost what their columns cost.

Sorting and filtering happen in the model too, with numpy: the rows shown
are one array of table indices (the sort order with the filter mask
applied), so a sort or a search is a numpy computation and one layout change
that the view handles in C++. There is no ``QSortFilterProxyModel``: its
comparison sort calls the Python ``data()`` twice per comparison, and after
any layout change it maps every row again through a Python
``filterAcceptsRow`` call (0.2-0.6 s for 100,000 rows idle, several seconds
under load). Measured on the 2-core development VM, 100,000 tracks with a
view: a score sort about 40 ms, a search 20-50 ms (the first one also folds
the text, 30-50 ms, unless :func:`search_texts` came with the tracks).
"""

from __future__ import annotations

import enum
import unicodedata
from collections.abc import Sequence

import numpy as np
from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
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
    "TrackIdRole",
    "TrackTableModel",
    "fold_text",
    "format_duration",
    "search_texts",
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
    """The tracks of a project, with the current tag's scores and labels, sorted and filtered.

    Parameters
    ----------
    table : TrackTable, optional
        What :meth:`Project.tracks` returned (empty by default).
    parent : QObject, optional
    resort_on_change : bool, keyword-only
        When rows are sorted by score (or label), new scores (labels) sort
        them again, as a dynamic ``QSortFilterProxyModel`` would (one layout
        change per call). The app can turn it off (the attribute of the same
        name) and call :meth:`sort` itself when it suits it.

    Notes
    -----
    The rows shown are one array of table indices (:attr:`visible_indices`):
    the sort order (:meth:`sort`) with the filters applied
    (:meth:`set_search`, :meth:`set_label_filter`, :meth:`set_min_score`).
    Both are computed with numpy, and a change of either is one
    ``layoutAboutToBeChanged`` / ``layoutChanged`` pair in which persistent
    indexes (a view's selection and current row) follow their tracks, or
    become invalid when their track is filtered out.

    Scores and labels are arrays in table order: NaN for no score,
    :data:`NO_LABEL` for no label. Only the rows whose value changed are
    announced (``dataChanged``); while a label (score) filter is set, new
    labels (scores) filter the rows again.
    """

    #: dataChanged ranges emitted for a scattered change before falling back
    #: to one range from the first to the last changed row.
    MAX_CHANGED_RANGES = 32

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
        self._order: np.ndarray | None = None  # sort order (table indices), None: table order
        self._visible: np.ndarray | None = None  # view row -> table index; None: identity
        self._rank: np.ndarray | None = None  # table index -> view row (-1: hidden)
        self._sort_column = -1
        self._sort_order = Qt.SortOrder.AscendingOrder
        self._text_orders: dict[tuple[int, bool], np.ndarray] = {}  # text sorts of this table
        self._generation = 0
        # filters
        self._words: tuple[str, ...] = ()
        self._label: int | None = None
        self._min_score: float | None = None
        self._word_masks: dict[str, np.ndarray] = {}  # per search word, for this table
        self._haystack: list[str] | None = None  # folded "title artist album path" per track
        if table is not None:
            self.set_tracks(table)

    # -- what the app reads -----------------------------------------------------------------

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
    def visible_indices(self) -> np.ndarray:
        """Table index of each row shown, in view order (sorted and filtered). Read only."""
        if self._visible is None:
            return np.arange(len(self._table), dtype=np.int64)
        return self._visible

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
        """The row showing ``track_id``, -1 if it is not in the table or filtered out."""
        i = int(self._table.rows_of([track_id])[0])
        if i < 0 or self._rank is None:
            return i
        return int(self._rank[i])

    def _table_index(self, row: int) -> int:
        return row if self._visible is None else int(self._visible[row])

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
            self._words = words
            self._relayout()

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
            self._label = code
            self._relayout()

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
            self._min_score = value
            self._relayout()

    def _filter_mask(self) -> np.ndarray | None:
        """Tracks that pass every filter (table order); None: all of them."""
        mask = None
        for word in self._words:
            m = self._word_mask(word)
            mask = m if mask is None else mask & m
        if self._label is not None:
            m = self._labels == self._label
            mask = m if mask is None else mask & m
        if self._min_score is not None:
            with np.errstate(invalid="ignore"):
                m = self._scores >= self._min_score  # NaN (no score) fails
            mask = m if mask is None else mask & m
        return mask

    def _word_mask(self, word: str) -> np.ndarray:
        """Tracks whose folded text holds ``word``, remembered for the burst of keys."""
        mask = self._word_masks.get(word)
        if mask is None:
            if self._haystack is None:
                self._haystack = search_texts(self._table)
            # A word typed one key further only narrows the previous one's tracks.
            shorter = max((w for w in self._word_masks if w in word), key=len, default=None)
            if shorter is None:
                mask = np.array([word in h for h in self._haystack], dtype=bool)
            else:
                haystack = self._haystack
                mask = np.zeros(len(haystack), dtype=bool)
                candidates = np.flatnonzero(self._word_masks[shorter])
                mask[candidates] = [word in haystack[i] for i in candidates.tolist()]
            if len(self._word_masks) > 64:
                self._word_masks.clear()
            self._word_masks[word] = mask
        return mask

    # -- changes ----------------------------------------------------------------------------

    def set_tracks(self, table: TrackTable, *, search_texts: list[str] | None = None) -> None:
        """Show ``table`` (a model reset).

        Scores and labels of tracks that are still in the table are kept, so
        a library sync does not blank the current tag's column; the sort
        column and the filters are applied again.

        Parameters
        ----------
        table : TrackTable
        search_texts : list of str, optional, keyword-only
            :func:`search_texts` of ``table`` if it was computed elsewhere (a
            worker); otherwise the first search computes it.
        """
        if search_texts is not None and len(search_texts) != len(table):
            raise ValueError(f"{len(search_texts)} search texts for {len(table)} tracks")
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
        self._text_orders = {}
        self._word_masks = {}
        self._haystack = search_texts
        self._order = None
        if self._sort_column >= 0:
            self._order = self._sort_keys_order(self._sort_column, self._sort_order)
        self._set_visible(self._combine(self._order, self._filter_mask()))
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

        Emits ``dataChanged`` over the Score column of the rows whose score
        changed (roles Display, Score, Sort); when rows are sorted by score
        they are sorted again (unless ``resort_on_change`` is off), and a
        score filter is applied again, in one layout change.

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
        new = np.full(len(self._table), np.nan) if replace else self._scores.copy()
        new[indices[found]] = values[found]
        old = self._scores
        with np.errstate(invalid="ignore"):
            same = (new == old) | (np.isnan(new) & np.isnan(old))
        self._scores = new
        self._changed(Column.SCORE, np.flatnonzero(~same))

    def clear_scores(self) -> None:
        """Remove every score (no tag, or a tag without a model yet)."""
        self.set_scores([], [], replace=True)

    def set_labels(
        self,
        track_ids: Sequence[int] | np.ndarray,
        values: Sequence[int] | np.ndarray,
        *,
        replace: bool = False,
    ) -> None:
        """Set the current tag's labels of some tracks.

        Emits ``dataChanged`` over the Label column of the rows whose label
        changed (roles Display, Foreground, Label, Sort); a label sort or
        filter is applied again in one layout change.

        Parameters
        ----------
        track_ids : array of int
            Ids not in the table are ignored.
        values : array of int
            Label codes: :data:`POSITIVE`, :data:`NEGATIVE`, :data:`SKIP`,
            :data:`NO_LABEL` (``TagLabels.value`` can be passed as is).
        replace : bool, keyword-only
            Every other track becomes unlabelled (the labels of a tag read
            again: ``set_labels(lab.track_id, lab.value, replace=True)``);
            only the tracks whose label differs are announced.
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
        new = np.full(len(self._table), NO_LABEL, dtype=np.int8) if replace else self._labels.copy()
        new[indices[found]] = codes[found]
        changed = np.flatnonzero(new != self._labels)
        self._labels = new
        self._changed(Column.LABEL, changed)

    def clear_labels(self) -> None:
        """Every track unlabelled."""
        self.set_labels([], [], replace=True)

    def _changed(self, column: Column, indices: np.ndarray) -> None:
        """Announce new values of the tracks ``indices`` (table order) in ``column``.

        ``dataChanged`` over each run of consecutive visible rows (one range
        from the first to the last once there are more than
        :attr:`MAX_CHANGED_RANGES`), then one layout change if the sort or a
        filter depends on the column.
        """
        self._generation += 1
        if not len(indices):
            return
        rows = indices if self._rank is None else self._rank[indices]
        rows = np.sort(rows[rows >= 0])
        if len(rows):
            if column == Column.SCORE:
                roles = [Qt.ItemDataRole.DisplayRole, ScoreRole, SortRole]
            else:
                roles = [Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.ForegroundRole, LabelRole]
                roles.append(SortRole)
            breaks = np.flatnonzero(np.diff(rows) > 1)
            if len(breaks) >= self.MAX_CHANGED_RANGES:
                ranges = [(int(rows[0]), int(rows[-1]))]
            else:
                tops = np.concatenate(([rows[0]], rows[breaks + 1])).tolist()
                bottoms = np.concatenate((rows[breaks], [rows[-1]])).tolist()
                ranges = zip(tops, bottoms, strict=True)
            for top, bottom in ranges:
                self.dataChanged.emit(self.index(top, column), self.index(bottom, column), roles)
        resort = self._sort_column == column and self.resort_on_change
        if column == Column.SCORE:
            refilter = self._min_score is not None
        else:
            refilter = self._label is not None
        if resort:
            self._order = self._sort_keys_order(self._sort_column, self._sort_order)
        if resort or refilter:
            self._relayout()

    # -- sorting ----------------------------------------------------------------------------

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        """Sort rows by ``column`` (-1: back to table order); empty cells last.

        A stable numpy sort over the column's values (what :data:`SortRole`
        gives), then one layout change (see :meth:`_relayout`).

        Parameters
        ----------
        column : int
        order : Qt.SortOrder
        """
        if column >= len(_HEADERS):
            return
        self._sort_column = column
        self._sort_order = order
        self._order = self._sort_keys_order(column, order) if column >= 0 else None
        self._generation += 1
        self._relayout()

    # -- the rows shown ---------------------------------------------------------------------

    def _combine(self, order: np.ndarray | None, mask: np.ndarray | None) -> np.ndarray | None:
        if mask is None:
            return order
        if order is None:
            return np.flatnonzero(mask)
        return order[mask[order]]

    def _set_visible(self, visible: np.ndarray | None) -> None:
        self._visible = visible
        if visible is None:
            self._rank = None
        else:
            self._rank = np.full(len(self._table), -1, dtype=np.int64)
            self._rank[visible] = np.arange(len(visible), dtype=np.int64)

    def _relayout(self) -> None:
        """Show the rows of the current sort order and filters: one layout change.

        Persistent indexes move with their tracks; those of tracks filtered
        out become invalid.
        """
        self.layoutAboutToBeChanged.emit()
        persistent = self.persistentIndexList()
        old_indices = np.array([p.row() for p in persistent], dtype=np.int64)
        if self._visible is not None and len(old_indices):
            old_indices = self._visible[old_indices]
        self._set_visible(self._combine(self._order, self._filter_mask()))
        if persistent:
            new_rows = old_indices if self._rank is None else self._rank[old_indices]
            self.changePersistentIndexList(
                persistent,
                [
                    self.index(r, p.column()) if r >= 0 else QModelIndex()
                    for r, p in zip(new_rows.tolist(), persistent, strict=True)
                ],
            )
        self.layoutChanged.emit()

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
        # Text does not change until the next set_tracks: sort it once per order.
        cached = self._text_orders.get((column, descending))
        if cached is not None:
            return cached
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
        result = np.array(filled, dtype=np.int64)
        self._text_orders[(column, descending)] = result
        return result

    # -- QAbstractTableModel ----------------------------------------------------------------

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        if parent.isValid():
            return 0
        return len(self._table) if self._visible is None else len(self._visible)

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
        i = row if self._visible is None else int(self._visible[row])
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


def search_texts(table: TrackTable) -> list[str]:
    """The text a search looks in, one folded string per track (table order).

    Title, artist, album and path, :func:`fold_text`-ed and joined by
    ``"\\x1f"`` (so that a word never matches across two fields). Pure
    Python: it can run in a worker and go to :meth:`TrackTableModel.set_tracks`.

    Parameters
    ----------
    table : TrackTable

    Returns
    -------
    list of str
    """
    return [
        fold_text(f"{t}\x1f{a}\x1f{b}\x1f{p}")
        for t, a, b, p in zip(table.title, table.artist, table.album, table.relpath, strict=True)
    ]

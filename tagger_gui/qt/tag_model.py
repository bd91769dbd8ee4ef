"""The tags panel: a thin Qt list model over a project's tags and their counts.

Rows are the live tags in hierarchy order (each parent followed by its
children, siblings by name), so a plain list view shows the tree through
the indentation of the display text. Counts come from
:meth:`Project.label_counts` (hierarchy applied: a positive for "bebop"
counts for "jazz"); predicted counts come from outside (the few-shot engine)
through :meth:`TagListModel.set_predicted_counts`.
"""

from __future__ import annotations

from collections.abc import Mapping

from PySide6.QtCore import (
    QAbstractListModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QSize,
    Qt,
)
from PySide6.QtGui import QColor, QFont, QFontMetrics, QPalette
from PySide6.QtWidgets import QStyle, QStyledItemDelegate, QStyleOptionViewItem

from tagger_gui.core.project.store import Project, Tag

__all__ = [
    "ColourRole",
    "DepthRole",
    "NameRole",
    "NegativeCountRole",
    "PositiveCountRole",
    "PredictedCountRole",
    "SkipCountRole",
    "TagCountsDelegate",
    "TagIdRole",
    "TagListModel",
    "TagRole",
    "counts_text",
]

#: The tag's id (int).
TagIdRole = Qt.ItemDataRole.UserRole + 1
#: The tag's colour, ``"#rrggbb"``, or None.
ColourRole = Qt.ItemDataRole.UserRole + 2
#: Tracks labelled positive (hierarchy applied).
PositiveCountRole = Qt.ItemDataRole.UserRole + 3
#: Tracks labelled negative (hierarchy applied).
NegativeCountRole = Qt.ItemDataRole.UserRole + 4
#: Tracks the model predicts positive (int), None until set.
PredictedCountRole = Qt.ItemDataRole.UserRole + 5
#: Tracks labelled skip.
SkipCountRole = Qt.ItemDataRole.UserRole + 6
#: Depth in the hierarchy (0 for a top-level tag).
DepthRole = Qt.ItemDataRole.UserRole + 7
#: The tag's plain name (DisplayRole carries the indentation).
NameRole = Qt.ItemDataRole.UserRole + 8
#: The :class:`Tag` itself.
TagRole = Qt.ItemDataRole.UserRole + 9

_COUNT_ROLES = [
    Qt.ItemDataRole.ToolTipRole,
    PositiveCountRole,
    NegativeCountRole,
    SkipCountRole,
]
_NO_COUNTS = {"positive": 0, "negative": 0, "skip": 0}


def _tree_order(tags: list[Tag]) -> list[tuple[Tag, int]]:
    """``(tag, depth)`` depth first; siblings keep the given (name) order.

    A tag whose parent is not among ``tags`` is shown at the top level, and a
    loop (which the store refuses) cannot hang this: each tag is placed once.
    """
    ids = {t.id for t in tags}
    children: dict[int | None, list[Tag]] = {}
    for t in tags:
        parent = t.parent_id if t.parent_id in ids else None
        children.setdefault(parent, []).append(t)
    out: list[tuple[Tag, int]] = []
    placed: set[int] = set()
    stack = [(t, 0) for t in reversed(children.get(None, []))]
    while stack:
        tag, depth = stack.pop()
        if tag.id in placed:
            continue
        placed.add(tag.id)
        out.append((tag, depth))
        stack.extend((c, depth + 1) for c in reversed(children.get(tag.id, [])))
    # Tags only reachable through a loop: show them rather than lose them.
    out.extend((t, 0) for t in tags if t.id not in placed)
    return out


class TagListModel(QAbstractListModel):
    """The project's tags with their label counts, in hierarchy order.

    Parameters
    ----------
    project : Project, optional
        Read at once with :meth:`refresh`.
    parent : QObject, optional
    """

    def __init__(self, project: Project | None = None, parent: QObject | None = None):
        super().__init__(parent)
        self._rows: list[tuple[Tag, int]] = []
        self._counts: dict[int, dict[str, int]] = {}
        self._predicted: dict[int, int] = {}
        if project is not None:
            self.refresh(project)

    # -- reading ----------------------------------------------------------------------------

    def tag(self, row: int) -> Tag:
        """The :class:`Tag` shown in ``row``."""
        return self._rows[row][0]

    def tags(self) -> list[Tag]:
        """Every tag, in row order."""
        return [t for t, _ in self._rows]

    def row_of(self, tag_id: int) -> int:
        """The row of the tag ``tag_id``, -1 if there is none."""
        for row, (t, _) in enumerate(self._rows):
            if t.id == tag_id:
                return row
        return -1

    def counts(self, tag_id: int) -> dict[str, int]:
        """``{"positive": n, "negative": n, "skip": n}`` of a tag (zeros if unknown)."""
        return dict(self._counts.get(tag_id, _NO_COUNTS))

    # -- changes ----------------------------------------------------------------------------

    def refresh(self, project: Project) -> None:
        """Read the tags and their counts again.

        When the tags (ids, names, colours, hierarchy) are the same as shown,
        only the counts change: one ``dataChanged``, so the view keeps its
        selection after a label. Otherwise the model is reset.

        Parameters
        ----------
        project : Project
        """
        rows = _tree_order(project.tags())
        counts = project.label_counts()
        if rows == self._rows:
            self._counts = counts
            if rows:
                self.dataChanged.emit(self.index(0), self.index(len(rows) - 1), _COUNT_ROLES)
            return
        self.beginResetModel()
        self._rows = rows
        self._counts = counts
        live = {t.id for t, _ in rows}
        self._predicted = {k: v for k, v in self._predicted.items() if k in live}
        self.endResetModel()

    def set_predicted_counts(self, counts: Mapping[int, int]) -> None:
        """Set how many tracks the model predicts positive, per tag id.

        Tags not in ``counts`` keep their previous figure; a value of None
        removes it. Emits one ``dataChanged`` over every row.

        Parameters
        ----------
        counts : mapping of tag id to int or None
        """
        for tag_id, n in counts.items():
            if n is None:
                self._predicted.pop(int(tag_id), None)
            else:
                self._predicted[int(tag_id)] = int(n)
        if self._rows:
            self.dataChanged.emit(
                self.index(0),
                self.index(len(self._rows) - 1),
                [Qt.ItemDataRole.ToolTipRole, PredictedCountRole],
            )

    # -- QAbstractListModel -----------------------------------------------------------------

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._rows)

    def data(
        self,
        index: QModelIndex | QPersistentModelIndex,
        role: int = Qt.ItemDataRole.DisplayRole,
    ):
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        tag, depth = self._rows[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return tag.name if depth == 0 else "   " * (depth - 1) + "└ " + tag.name
        if role in (Qt.ItemDataRole.EditRole, NameRole):
            return tag.name
        if role == TagIdRole:
            return tag.id
        if role == ColourRole:
            return tag.colour
        if role == Qt.ItemDataRole.DecorationRole:
            return QColor(tag.colour) if tag.colour else None
        if role == PositiveCountRole:
            return self._counts.get(tag.id, _NO_COUNTS)["positive"]
        if role == NegativeCountRole:
            return self._counts.get(tag.id, _NO_COUNTS)["negative"]
        if role == SkipCountRole:
            return self._counts.get(tag.id, _NO_COUNTS)["skip"]
        if role == PredictedCountRole:
            return self._predicted.get(tag.id)
        if role == DepthRole:
            return depth
        if role == TagRole:
            return tag
        if role == Qt.ItemDataRole.ToolTipRole:
            return self._tooltip(tag)
        return None

    def _tooltip(self, tag: Tag) -> str:
        c = self._counts.get(tag.id, _NO_COUNTS)
        lines = [tag.name]
        if tag.description:
            lines.append(tag.description)
        lines.append(f"{c['positive']} positive · {c['negative']} negative · {c['skip']} skipped")
        predicted = self._predicted.get(tag.id)
        if predicted is not None:
            lines.append(f"{predicted} predicted positive")
        return "\n".join(lines)


class TagCountsDelegate(QStyledItemDelegate):
    """Draws a tag's counts in small type under its name: ``16 yes · 3 no · 42 predicted``."""

    def _small_font(self, option: QStyleOptionViewItem) -> QFont:
        font = QFont(option.font)
        font.setPointSizeF(max(6.0, font.pointSizeF() * 0.85))
        return font

    def initStyleOption(self, option: QStyleOptionViewItem, index: QModelIndex) -> None:
        super().initStyleOption(option, index)
        option.displayAlignment = Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex) -> QSize:
        size = super().sizeHint(option, index)
        return QSize(size.width(), size.height() + QFontMetrics(self._small_font(option)).height())

    def paint(self, painter, option: QStyleOptionViewItem, index: QModelIndex) -> None:
        super().paint(painter, option, index)
        text = counts_text(
            index.data(PositiveCountRole) or 0,
            index.data(NegativeCountRole) or 0,
            index.data(PredictedCountRole),
        )
        painter.save()
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        role = (
            QPalette.ColorRole.HighlightedText if selected else QPalette.ColorRole.PlaceholderText
        )
        painter.setPen(option.palette.color(role))
        painter.setFont(self._small_font(option))
        indent = 4 + 3 * QFontMetrics(option.font).horizontalAdvance(" ") * (
            index.data(DepthRole) or 0
        )
        rect = option.rect.adjusted(indent, 0, -4, -2)
        align = Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignBottom
        painter.drawText(rect, int(align), text)
        painter.restore()


def counts_text(positive: int, negative: int, predicted: int | None) -> str:
    """The short counts line of a tag, e.g. ``"16 yes · 3 no · 42 predicted"``."""
    parts = [f"{positive} yes", f"{negative} no"]
    if predicted is not None:
        parts.append(f"{predicted} predicted")
    return " · ".join(parts)

"""The labeling and review panel of one tag: a queue, the current track, live refits.

:class:`ReviewPanel` shows the review queue of the current tag (from the
ranking strategies top / uncertain / diverse / audit), the current track in
large type, and the quality readout of the last refit. It is keyboard-first:

====================  =============================================
Y / N / S             positive / negative / skip (the selection, if several)
J / K                 next / previous track of the queue
1 2 3 4               strategy top / uncertain / diverse / audit
Space                 play / pause (with the player)
Left / Right          seek 5 s back / forward (with the player)
Ctrl+Z / Ctrl+Shift+Z undo / redo
====================  =============================================

Each label is committed to the project store first, then the local label
vector is updated and a refit is requested through :class:`LatestOnly`
(debounced, the newest request wins): the refit runs in the worker pool,
never on the GUI thread, and its result updates the queue, the quality panel
(:class:`~tagger_gui.qt.quality_panel.QualityPanel`), the saved probe, and
(through :attr:`ReviewPanel.scoresChanged`) the rest of the app.

With a :class:`~tagger_gui.qt.now_playing.NowPlayingWidget`, the current
track is decoded in the pool and played from the part that scores highest
for the tag (:class:`~tagger_gui.core.fewshot.excerpt.TagExcerpts`, refitted
with each refit), so the expert hears why it was proposed.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import QEvent, QObject, QSettings, Qt, QTimer, Signal, Slot
from PySide6.QtGui import QFont, QKeyEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QScrollArea,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from tagger_gui.core.errors import TaggerError
from tagger_gui.core.fewshot.engine import LibraryFeatures, RefitResult, label_snapshot, refit_task
from tagger_gui.core.fewshot.excerpt import ExcerptFeatures, TagExcerpts
from tagger_gui.core.fewshot.ranking import STRATEGIES, Ranking, audit_order, rank_audit

from .now_playing import NowPlayingWidget
from .quality_panel import QualityPanel
from .worker import LatestOnly, WorkerPool, describe_error

__all__ = ["LibraryIndex", "ReasonRole", "ReviewPanel", "RowRole", "index_library"]

logger = logging.getLogger(__name__)

#: Queue items carry their library row (index into ``LibraryFeatures``) under this role.
RowRole = Qt.ItemDataRole.UserRole + 1
#: ... and the ranking's reason for proposing the track under this one.
ReasonRole = Qt.ItemDataRole.UserRole + 2

#: Engine label codes (see :func:`~tagger_gui.core.usecases.predicting.label_vector`).
_ENGINE_CODE = {"positive": 1, "negative": 0, "skip": -1}

#: Project state key (``<key>.<tag id>``) of a tag's review position.
POSITION_STATE = "review_position"
#: The position is saved this long after the last move.
_POSITION_DELAY_MS = 800

#: QSettings key: play each track as it becomes current.
AUTOPLAY_KEY = "review/autoplay"

#: Seconds the arrow keys seek.
SEEK_STEP = 5.0

_STRATEGY_KEYS = {
    Qt.Key.Key_1: 0,
    Qt.Key.Key_2: 1,
    Qt.Key.Key_3: 2,
    Qt.Key.Key_4: 3,
}


@dataclass(frozen=True)
class LibraryIndex:
    """Track id, title and artist of every row of a :class:`LibraryFeatures`."""

    ids: np.ndarray
    row_of: dict[int, int]
    titles: list[str]
    artists: list[str]

    @property
    def n(self) -> int:
        """Number of rows."""
        return len(self.ids)


def index_library(project, lib: LibraryFeatures) -> LibraryIndex:
    """What the panel shows of each library row; no Qt, so it runs in a worker."""
    ids = np.asarray(project.track_ids_for_relpaths(lib.relpaths), dtype=np.int64)
    tracks = project.tracks(include_missing=True)
    table_rows = tracks.rows_of(ids).tolist()
    titles = [
        (tracks.title[r] if r >= 0 else "") or lib.relpaths[i].rsplit("/", 1)[-1]
        for i, r in enumerate(table_rows)
    ]
    artists = [tracks.artist[r] if r >= 0 else "" for r in table_rows]
    row_of = {int(t): i for i, t in enumerate(ids.tolist()) if t >= 0}
    return LibraryIndex(ids, row_of, titles, artists)


class ReviewPanel(QWidget):
    """Label and review the tracks of one tag, with live refits in the worker pool.

    Parameters
    ----------
    project : tagger_gui.core.project.Project
        The open project; labels are written to it (one undo step each).
    lib : LibraryFeatures
        The project's embedded tracks in the probe space
        (:func:`~tagger_gui.core.usecases.predicting.project_features`).
    pool : WorkerPool
        Where refits (and track decoding for playback) run.
    parent : QWidget, optional
        The Qt parent.
    now_playing : NowPlayingWidget, optional
        The player shown above the queue; Space plays / pauses, arrows seek.
    index : LibraryIndex, optional
        :func:`index_library` of ``lib``, computed in a worker (it reads the
        track ids and titles of every row: 0.1-0.3 s at 100,000 tracks);
        computed here when not given.
    excerpt_features : ExcerptFeatures, optional
        Track-level patch-model vectors of ``lib.relpaths``
        (:func:`~tagger_gui.core.fewshot.excerpt.open_excerpt_features`):
        playback starts at each track's best part for the tag. Without them
        it starts at the beginning (the middle of long tracks).
    delay_ms : int, optional
        Debounce delay of the refit requests (a burst of labels refits once).

    Signals
    -------
    scoresChanged(object, object)
        ``(track_ids, scores)``: int64 and float32 arrays of equal length, the
        newest scores of the current tag for every embedded track.
    labelsChanged()
        Labels of the current tag changed (a label, a bulk label, undo/redo).
    currentTrackChanged(int)
        Track id of the queue's current track (-1 when the queue is empty).
    refitFinished(object)
        The :class:`~tagger_gui.core.fewshot.engine.RefitResult` just shown.
    errorOccurred(str)
        A plain-words message (a refit that failed, a label that was refused).
    """

    scoresChanged = Signal(object, object)
    labelsChanged = Signal()
    currentTrackChanged = Signal(int)
    refitFinished = Signal(object)
    errorOccurred = Signal(str)

    def __init__(
        self,
        project,
        lib: LibraryFeatures,
        pool: WorkerPool,
        *,
        parent: QWidget | None = None,
        now_playing: NowPlayingWidget | None = None,
        excerpt_features: ExcerptFeatures | None = None,
        index: LibraryIndex | None = None,
        delay_ms: int = 150,
    ) -> None:
        super().__init__(parent)
        self._project = project
        self._lib = lib
        self._pool = pool
        self.now_playing = now_playing
        self._excerpt_features = excerpt_features
        self._excerpts: TagExcerpts | None = None
        self._index_library(lib, index)
        self._tag: str | None = None
        self._result: RefitResult | None = None
        self._scores: np.ndarray | None = None
        self._strategy = STRATEGIES[0]
        self._loaded_path: str | None = None
        self._want_track: int | None = None  # a restored queue position, until shown
        # the position is written once the user rests on a track, not on every J/K
        self._position_timer = QTimer(self)
        self._position_timer.setSingleShot(True)
        self._position_timer.setInterval(_POSITION_DELAY_MS)
        self._position_timer.timeout.connect(self.save_position)

        self._live = LatestOnly(pool, delay_ms=delay_ms, parent=self)
        self._live.result.connect(self._on_result)
        self._live.error.connect(self._on_error)
        self._live.busy.connect(self._on_busy)
        self.quality_panel = QualityPanel(lib, pool, parent=self)
        self.quality_panel.thresholdChanged.connect(self.set_threshold)
        self.quality_panel.errorOccurred.connect(self._report)
        self._build()

    # -- layout ---------------------------------------------------------------------------

    def _build(self) -> None:
        self.strategy_box = QComboBox()
        for i, name in enumerate(STRATEGIES):
            self.strategy_box.addItem(f"{i + 1}  {name}", name)
        self.strategy_box.currentIndexChanged.connect(self._on_strategy_index)
        self.threshold_box = QDoubleSpinBox()
        self.threshold_box.setRange(0.01, 0.99)
        self.threshold_box.setSingleStep(0.05)
        self.threshold_box.setDecimals(2)
        self.threshold_box.setValue(0.5)
        self.threshold_box.setToolTip(
            "Tracks scoring above it are predicted to have the tag (also the slider below)"
        )
        self.threshold_box.valueChanged.connect(self._on_threshold)
        self.threshold_box.valueChanged.connect(self.quality_panel.set_threshold)
        self.status_label = QLabel()
        controls = QFormLayout()
        controls.addRow("Strategy", self.strategy_box)
        controls.addRow("Threshold", self.threshold_box)

        big = QFont(self.font())
        big.setPointSizeF(big.pointSizeF() * 1.6)
        big.setBold(True)
        self.title_label = QLabel()
        self.title_label.setFont(big)
        self.title_label.setWordWrap(True)
        self.artist_label = QLabel()
        self.score_label = QLabel()
        self.reason_label = QLabel()
        self.reason_label.setWordWrap(True)

        self.queue = QListWidget()
        self.queue.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.queue.currentRowChanged.connect(self._on_current_row)

        buttons = QHBoxLayout()
        for text, value in (("Yes (Y)", "positive"), ("No (N)", "negative"), ("Skip (S)", "skip")):
            button = QPushButton(text)
            button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
            button.clicked.connect(lambda _=False, v=value: self.label_selection(v))
            buttons.addWidget(button)

        self.autoplay_check = QCheckBox("Play each track from its best part")
        self.autoplay_check.setChecked(bool(QSettings().value(AUTOPLAY_KEY, True, type=bool)))
        self.autoplay_check.toggled.connect(lambda on: QSettings().setValue(AUTOPLAY_KEY, on))
        self.autoplay_check.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.keys_label = QLabel(
            "<small>Y yes · N no · S skip · J/K next/previous · Space play · ←/→ seek · "
            "1-4 strategy · Ctrl+Z undo</small>"
        )
        self.keys_label.setWordWrap(True)

        # the threshold is set with the quality panel's slider; the box stays for the API
        self.threshold_box.hide()
        controls.labelForField(self.threshold_box).hide()

        top = QWidget()
        layout = QVBoxLayout(top)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(controls)
        layout.addWidget(self.title_label)
        layout.addWidget(self.artist_label)
        if self.now_playing is not None:
            self.now_playing.title_label.hide()  # the panel's title says it, larger
            layout.addWidget(self.now_playing)
            layout.addWidget(self.autoplay_check)
        layout.addWidget(self.score_label)
        layout.addWidget(self.reason_label)
        layout.addLayout(buttons)
        layout.addWidget(self.keys_label)
        layout.addWidget(self.queue, 1)

        # the quality panel scrolls rather than squeezing its figures on a small screen
        quality = QScrollArea()
        quality.setWidget(self.quality_panel)
        quality.setWidgetResizable(True)
        quality.setFrameShape(QFrame.Shape.NoFrame)
        self.splitter = QSplitter(Qt.Orientation.Vertical)
        self.splitter.addWidget(top)
        self.splitter.addWidget(quality)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 2)
        self.splitter.setChildrenCollapsible(False)

        outer = QVBoxLayout(self)
        outer.addWidget(self.splitter, 1)
        outer.addWidget(self.status_label)

        # the list and the combo box would eat letter and number keys (keyboard search)
        for widget in (self.queue, self.strategy_box):
            widget.installEventFilter(self)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self._show_current()

    # -- public state -----------------------------------------------------------------------

    @property
    def tag(self) -> str | None:
        """The current tag's name, or None."""
        return self._tag

    @property
    def strategy(self) -> str:
        """The review strategy of the queue."""
        return self._strategy

    @property
    def threshold(self) -> float:
        """The decision threshold of the quality readout and the uncertain strategy."""
        return float(self.threshold_box.value())

    @property
    def is_busy(self) -> bool:
        """True while a refit is pending (debounced) or running."""
        return self._live.is_busy

    @property
    def result(self) -> RefitResult | None:
        """The refit shown now, or None."""
        return self._result

    def queue_rows(self) -> list[int]:
        """Library rows of the queue, in order."""
        return [int(self.queue.item(i).data(RowRole)) for i in range(self.queue.count())]

    def queue_track_ids(self) -> list[int]:
        """Track ids of the queue, in order."""
        return [int(self._ids[r]) for r in self.queue_rows()]

    def labels(self) -> np.ndarray:
        """A copy of the current tag's engine labels per library row (1, 0, -1)."""
        return self._y.copy()

    def quality_text(self) -> str:
        """The quality readout as plain text (what the quality display says)."""
        report = self.quality_panel.report
        lines = [self.quality_panel.headline_text()]
        if report is not None:
            lines += report.lines()
        return "\n".join(line for line in lines if line)

    def row_of_track(self, track_id: int) -> int:
        """Library row of a track id (-1 when the track is not embedded)."""
        return self._row_of.get(int(track_id), -1)

    def current_track_id(self) -> int:
        """Track id of the queue's current track, -1 if none."""
        row = self._current_row()
        return -1 if row is None else int(self._ids[row])

    @property
    def library(self) -> LibraryFeatures:
        """The embedded tracks the panel ranks."""
        return self._lib

    def _index_library(self, lib: LibraryFeatures, index: LibraryIndex | None = None) -> None:
        if index is None or index.n != len(lib.relpaths):
            index = index_library(self._project, lib)
        self._lib = lib
        self._ids = index.ids
        self._row_of = index.row_of
        self._titles = index.titles
        self._artists = index.artists
        self._y = np.full(len(lib.relpaths), -1, dtype=np.int8)
        self._skipped = np.zeros(len(lib.relpaths), dtype=bool)

    # -- slots ----------------------------------------------------------------------------

    def set_library(
        self,
        lib: LibraryFeatures,
        *,
        excerpt_features: ExcerptFeatures | None = None,
        index: LibraryIndex | None = None,
    ) -> None:
        """Rank ``lib`` from now on (more tracks embedded); keeps the tag and the current track.

        The refit in flight (on the old library) is dropped and a new one is
        requested; until it arrives the queue is the audit order of the new
        library.
        """
        keep = self.current_track_id()
        self._live.cancel()
        self._excerpt_features = excerpt_features
        self._excerpts = None
        self._index_library(lib, index)
        self.quality_panel.set_library(lib)
        self._result = None
        self._scores = None
        if self._tag is None:
            self._show_current()
            return
        self._reload_labels()
        self._fill_queue(keep_track=keep)
        self._request_refit()

    @Slot()
    def reload(self) -> None:
        """Read the current tag's labels again (changed elsewhere: undo in the window) and refit.

        The queue and the scores shown stay until the refit replaces them.
        """
        if self._tag is None:
            return
        if not self._project.has_tag(self._tag):  # an undo removed the tag itself
            self.set_tag(None)
            return
        self._reload_labels()
        self._fill_queue()
        self._request_refit()

    @Slot(str)
    def set_tag(self, name: str | None) -> None:
        """Review tag ``name``: load its labels and refit (None clears the panel).

        Parameters
        ----------
        name : str or None
            The tag's name.
        """
        if self._position_timer.isActive():  # the previous tag's position
            self.save_position()
        self._live.cancel()
        self._tag = name
        self._result = None
        self._scores = None
        if name is None:
            self._y[:] = -1
            self._skipped[:] = False
            self.queue.clear()
            self.quality_panel.clear("Choose or create a tag to review.")
            self._excerpts = None
            self._show_current()
            return
        self._restore_position()
        self._reload_labels()
        self._fill_queue()
        self._request_refit()

    @Slot(str)
    def set_strategy(self, strategy: str) -> None:
        """Show the queue of ``strategy`` (one of top, uncertain, diverse, audit)."""
        if strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {strategy!r} (known: {', '.join(STRATEGIES)})")
        self.strategy_box.setCurrentIndex(STRATEGIES.index(strategy))

    @Slot(float)
    def set_threshold(self, threshold: float) -> None:
        """Set the decision threshold; a refit re-assesses the quality at it."""
        self.threshold_box.setValue(float(threshold))

    @Slot(str)
    def label_selection(self, value: str) -> None:
        """Label the selected queue tracks (or the current one) ``value``, as one undo step.

        Parameters
        ----------
        value : {"positive", "negative", "skip"}
        """
        rows = sorted({int(it.data(RowRole)) for it in self.queue.selectedItems()})
        current = self._current_row()
        if len(rows) <= 1:
            rows = [] if current is None else [current]
        self.label_rows(rows, value)

    def label_track_ids(self, track_ids: Sequence[int], value: str) -> bool:
        """Label tracks by id (from the library table) for the current tag, as one undo step.

        Tracks not embedded yet are labeled too (the store takes them; the
        ranking sees them once they are embedded).
        """
        if self._tag is None or not len(track_ids):
            return False
        rows = [self._row_of[int(t)] for t in track_ids if int(t) in self._row_of]
        if len(rows) == len(track_ids):
            return self.label_rows(rows, value)
        try:
            self._project.set_labels(self._tag, [int(t) for t in track_ids], value)
        except TaggerError as exc:
            self._report(describe_error(exc))
            return False
        self.reload()
        self.labelsChanged.emit()
        return True

    def label_rows(self, rows: Sequence[int], value: str) -> bool:
        """Label library ``rows`` ``value`` for the current tag (one ``set_labels`` call).

        The store commits first; only then does the panel show the label
        (the rows leave the queue) and request a refit.

        Parameters
        ----------
        rows : sequence of int
            Rows of the library features.
        value : {"positive", "negative", "skip"}

        Returns
        -------
        bool
            False when there was nothing to label or the store refused.
        """
        if self._tag is None or not len(rows):
            return False
        rows = [r for r in rows if self._ids[r] >= 0]
        try:
            self._project.set_labels(self._tag, [int(self._ids[r]) for r in rows], value)
        except TaggerError as exc:
            self._report(describe_error(exc))
            return False
        # Own labels win over inherited ones (see Project.labels), so the local
        # update matches the store for positives and negatives; a skip is shown
        # as unlabeled to the engine and kept out of the queue.
        self._y[rows] = _ENGINE_CODE[value]
        self._skipped[rows] = value == "skip"
        self._drop_from_queue(set(rows))
        self.labelsChanged.emit()
        self._request_refit()
        return True

    @Slot()
    def undo(self) -> None:
        """Undo the project's last action, then reload the labels and refit."""
        self._undo_redo(self._project.undo)

    @Slot()
    def redo(self) -> None:
        """Redo the project's last undone action, then reload the labels and refit."""
        self._undo_redo(self._project.redo)

    @Slot()
    def next_track(self) -> None:
        """Make the next queue track current (J)."""
        self._step(1)

    @Slot()
    def previous_track(self) -> None:
        """Make the previous queue track current (K)."""
        self._step(-1)

    @Slot()
    def toggle_playback(self) -> None:
        """Play or pause the current track (Space); it is decoded in the pool first if needed."""
        if self.now_playing is None:
            return
        path = self._current_path()
        if path is None:
            return
        if self.now_playing.current_path() == path:
            self.now_playing.toggle()
        else:
            self._load_current(autoplay=True)

    @Slot(float)
    def seek_by(self, seconds: float) -> None:
        """Move the playhead ``seconds`` (negative: back) if the current track is loaded."""
        if self.now_playing is None or self.now_playing.loaded_path() != self._current_path():
            return
        self.now_playing.seek_by(float(seconds))

    def _load_current(self, *, autoplay: bool) -> None:
        """Show the current track in the player, starting at its best part for the tag."""
        row = self._current_row()
        if self.now_playing is None or row is None:
            return
        relpath = self._lib.relpaths[row]
        excerpts = self._excerpts
        choose = None if excerpts is None else (lambda d: excerpts(relpath, duration=d))
        self.now_playing.set_track(
            str(self._project.library_root / relpath),
            title=self._titles[row],
            autoplay=autoplay,
            excerpt=choose,
        )

    def shutdown(self) -> None:
        """Save the position, drop pending requests, cancel the refit in flight.

        Call it before the pool shuts down and the project closes.
        """
        if self._position_timer.isActive() and not self._project.closed:
            self.save_position()
        self._position_timer.stop()
        self._live.cancel()
        self.quality_panel.shutdown()
        if self.now_playing is not None:
            self.now_playing.shutdown()

    # -- keyboard -------------------------------------------------------------------------

    def keyPressEvent(self, event: QKeyEvent) -> None:
        """Handle the review keys; others go to the base class."""
        if not self._handle_key(event):
            super().keyPressEvent(event)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        """Take the review keys before the queue or the strategy box sees them."""
        if event.type() == QEvent.Type.KeyPress and self._handle_key(event):
            return True
        return super().eventFilter(watched, event)

    def _handle_key(self, event: QKeyEvent) -> bool:
        key = event.key()
        mods = event.modifiers() & ~Qt.KeyboardModifier.KeypadModifier
        ctrl = Qt.KeyboardModifier.ControlModifier
        shift = Qt.KeyboardModifier.ShiftModifier
        if key == Qt.Key.Key_Z and mods == ctrl:
            self.undo()
            return True
        if key == Qt.Key.Key_Z and mods == ctrl | shift:
            self.redo()
            return True
        if mods not in (Qt.KeyboardModifier.NoModifier, shift):
            return False
        if key == Qt.Key.Key_Y:
            self.label_selection("positive")
        elif key == Qt.Key.Key_N:
            self.label_selection("negative")
        elif key == Qt.Key.Key_S:
            self.label_selection("skip")
        elif key == Qt.Key.Key_J:
            self.next_track()
        elif key == Qt.Key.Key_K:
            self.previous_track()
        elif key == Qt.Key.Key_Space:
            self.toggle_playback()
        elif key in (Qt.Key.Key_Left, Qt.Key.Key_Right):
            self.seek_by(SEEK_STEP if key == Qt.Key.Key_Right else -SEEK_STEP)
        elif key in _STRATEGY_KEYS:
            self.strategy_box.setCurrentIndex(_STRATEGY_KEYS[key])
        else:
            return False
        return True

    # -- refits ---------------------------------------------------------------------------

    def _request_refit(self) -> None:
        if self._tag is None:
            return
        if not (self._y == 1).any():
            # a probe needs a positive; until then the queue is the audit order
            self._live.cancel()
            # no score yet: the start of the track (its middle when long)
            self._excerpts = TagExcerpts(self._excerpt_features, None, tag=self._tag)
            self.quality_panel.clear("Label a track that has the tag (Y) to start the ranking.")
            self._fill_queue()
            return
        y = self._y.copy()  # the request's inputs, captured now
        lib, tag, threshold, previous = self._lib, self._tag, self.threshold, self._scores
        self._live.submit(
            lambda: refit_task(lib, y, tag=tag, threshold=threshold, previous_scores=previous)
        )

    @Slot(object)
    def _on_result(self, result: RefitResult) -> None:
        if result.tag != self._tag:
            return  # a refit of the tag reviewed before
        self._result = result
        self._scores = result.scores
        if result.snapshot == label_snapshot(self._y):  # else a newer refit is on its way
            self.quality_panel.set_result(result.tag, result, self._y.copy())
            self._excerpts = TagExcerpts(
                self._excerpt_features, self._y, tag=result.tag, scores=result.scores
            )
        self._fill_queue()
        self._save_probe(result)
        known = self._ids >= 0
        self.scoresChanged.emit(self._ids[known], result.scores[known])
        self.refitFinished.emit(result)

    def _save_probe(self, result: RefitResult) -> None:
        if getattr(self._project, "readonly", False):
            return
        if result.snapshot != label_snapshot(self._y):
            return  # labels changed since: a newer refit is on its way and will be saved
        try:
            self._project.save_probe(
                result.tag,
                result.probe_bytes(self._lib.feature_id),
                {
                    "features": self._lib.feature_id,
                    "labels": self._project.label_snapshot(result.tag),
                    "threshold": self.threshold,
                    "predicted": None if result.quality is None else result.quality.n_above,
                },
            )
        except TaggerError as exc:
            self._report(describe_error(exc))

    @Slot(object)
    def _on_error(self, exc: BaseException) -> None:
        self._report(describe_error(exc))

    @Slot(bool)
    def _on_busy(self, busy: bool) -> None:
        self.status_label.setText("refitting..." if busy else "")

    def _report(self, message: str) -> None:
        self.status_label.setText(message)
        self.errorOccurred.emit(message)

    @Slot(int)
    def _on_strategy_index(self, index: int) -> None:
        self._strategy = str(self.strategy_box.itemData(index))
        self._want_track = None
        self._fill_queue()
        self._position_timer.start()

    @Slot(float)
    def _on_threshold(self, _value: float) -> None:
        self._request_refit()

    def _undo_redo(self, action) -> None:
        try:
            done = action()
        except TaggerError as exc:
            self._report(describe_error(exc))
            return
        if done is None or self._tag is None:
            return
        self.status_label.setText(done)
        self.reload()  # clears the panel if the undo removed the tag itself
        self.labelsChanged.emit()

    def _reload_labels(self) -> None:
        # what predict.label_vector computes, from the panel's own row map: the
        # cost follows the labels, not the library (it runs on the GUI thread)
        labels = self._project.labels(self._tag)
        y = np.full(len(self._ids), -1, dtype=np.int8)
        for track_id, value in zip(labels.track_id.tolist(), labels.value.tolist(), strict=True):
            row = self._row_of.get(track_id)
            if row is not None and value != 0:  # skips stay unlabeled
                y[row] = 1 if value == 1 else 0
        self._y = y
        self._skipped[:] = False
        rows = [self._row_of[t] for t in labels.skipped.tolist() if t in self._row_of]
        self._skipped[rows] = True
        self._skipped &= self._y == -1  # an inherited label outranks an own skip

    # -- queue ----------------------------------------------------------------------------

    def _ranking(self) -> Ranking:
        if self._result is not None and self._strategy in self._result.rankings:
            return self._result.rankings[self._strategy]
        labeled = (self._y != -1) | self._skipped
        ranking = rank_audit(audit_order(len(self._y), self._tag or ""), labeled, n=50)
        if self._strategy != "audit":
            reasons = [f"no probe yet (label a positive): {r}" for r in ranking.reasons]
            ranking = Ranking(ranking.strategy, ranking.rows, reasons)
        return ranking

    def _fill_queue(self, *, keep_track: int | None = None) -> None:
        if self._want_track is not None:  # a restored position waits for its track
            keep_track = self._want_track
        keep = self._current_row() if keep_track is None else self._row_of.get(keep_track)
        self.queue.blockSignals(True)
        self.queue.clear()
        if self._tag is not None:
            ranking = self._ranking()
            scores = self._scores
            for row, reason in zip(ranking.rows.tolist(), ranking.reasons, strict=True):
                if self._y[row] != -1 or self._skipped[row]:
                    continue  # labeled since this ranking was made
                # most reasons start with the score already; say it once
                score = (
                    "" if scores is None or reason.startswith("score") else f"{scores[row]:.2f}  "
                )
                item = QListWidgetItem(f"{score}{self._titles[row]}  ·  {reason}")
                item.setData(RowRole, row)
                item.setData(ReasonRole, reason)
                item.setToolTip(self._lib.relpaths[row])
                self.queue.addItem(item)
        rows = self.queue_rows()
        if keep in rows and self._want_track is not None:
            self._want_track = None  # found: from now on the user's moves count
        self.queue.setCurrentRow(rows.index(keep) if keep in rows else (0 if rows else -1))
        self.queue.blockSignals(False)
        self._show_current()

    def _drop_from_queue(self, rows: set[int]) -> None:
        first = None
        self.queue.blockSignals(True)
        for i in reversed(range(self.queue.count())):
            if int(self.queue.item(i).data(RowRole)) in rows:
                self.queue.takeItem(i)
                first = i
        self.queue.clearSelection()
        if first is not None and self.queue.count():
            self.queue.setCurrentRow(min(first, self.queue.count() - 1))
        self.queue.blockSignals(False)
        self._show_current()

    def _step(self, delta: int) -> None:
        count = self.queue.count()
        if not count:
            return
        row = self.queue.currentRow()
        self.queue.setCurrentRow(min(max(row + delta, 0), count - 1))

    def _current_row(self) -> int | None:
        item = self.queue.currentItem()
        return None if item is None else int(item.data(RowRole))

    def _current_path(self) -> str | None:
        row = self._current_row()
        if row is None:
            return None
        return str(self._project.library_root / self._lib.relpaths[row])

    @Slot(int)
    def _on_current_row(self, _index: int) -> None:
        self._want_track = None  # the user moved: that is the position now
        self._show_current()
        self._position_timer.start()

    # -- the review position, kept in the project ---------------------------------------

    def _position_key(self) -> str | None:
        if self._tag is None or not self._project.has_tag(self._tag):
            return None
        return f"{POSITION_STATE}.{self._project.tag(self._tag).id}"

    def _restore_position(self) -> None:
        self._want_track = None
        key = self._position_key()
        saved = self._project.get_state(key) if key is not None else None
        if not isinstance(saved, dict):
            return
        if saved.get("strategy") in STRATEGIES:
            self.strategy_box.blockSignals(True)
            self.strategy_box.setCurrentIndex(STRATEGIES.index(saved["strategy"]))
            self.strategy_box.blockSignals(False)
            self._strategy = saved["strategy"]
        relpath = saved.get("track")
        ids = self._project.track_ids_for_relpaths([relpath]) if relpath else [-1]
        if int(ids[0]) >= 0:
            self._want_track = int(ids[0])

    @Slot()
    def save_position(self) -> None:
        """Write the tag's strategy and current track to the project (reopening restores them)."""
        self._position_timer.stop()
        key = self._position_key()
        if key is None or getattr(self._project, "readonly", False):
            return
        row = self._current_row()
        value = {
            "strategy": self._strategy,
            "track": None if row is None else self._lib.relpaths[row],
        }
        if row is None and self._want_track is not None:
            return  # not shown yet: keep the saved position
        try:
            self._project.set_state(key, value)
        except TaggerError as exc:
            self._report(describe_error(exc))

    def _show_current(self) -> None:
        row = self._current_row()
        if row is None:
            self.title_label.setText("Nothing to review" if self._tag else "No tag chosen")
            self.artist_label.clear()
            self.score_label.clear()
            self.reason_label.clear()
            self.currentTrackChanged.emit(-1)
            return
        item = self.queue.currentItem()
        self.title_label.setText(self._titles[row])
        self.artist_label.setText(self._artists[row] or self._lib.relpaths[row])
        reason = str(item.data(ReasonRole))
        if self._scores is None:
            self.score_label.setText("no score yet")
        elif reason.startswith("score"):
            self.score_label.clear()  # the reason says it
        else:
            self.score_label.setText(f"score {self._scores[row]:.2f}")
        self.score_label.setVisible(bool(self.score_label.text()))
        self.reason_label.setText(reason)
        self.currentTrackChanged.emit(int(self._ids[row]))
        if self.now_playing is not None and self.now_playing.current_path() != self._current_path():
            self._load_current(autoplay=self.autoplay_check.isChecked())

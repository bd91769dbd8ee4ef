"""Joining the main window and the review panel for one open project.

The library's features are loaded in the interactive pool (never on the GUI
thread) as soon as some tracks are embedded: after the library is read (the
cache of an earlier run), again every so often while the embedding job runs
(the ranking covers what is embedded so far, so the user can label at once),
and when the job ends. The first load puts a
:class:`~tagger_gui.qt.review.ReviewPanel` in the window's review area; later
loads hand it the larger library (:meth:`ReviewPanel.set_library`).

The panel is wired both ways: the current tag drives it, its labels and
scores update the table and the tag counts (positives, negatives, predicted),
and the window's undo/redo make it re-read its labels.
"""

from __future__ import annotations

import logging
import time

from PySide6.QtCore import QObject

from tagger_gui.core.cache import EmbeddingCache
from tagger_gui.core.errors import TaggerError
from tagger_gui.qt.main_window import MainWindow, features_for
from tagger_gui.qt.worker import TaskWorker, describe_error

__all__ = ["ReviewSession", "features_for"]

logger = logging.getLogger(__name__)

#: While embedding, the features are loaded again at most this often (seconds) ...
RELOAD_INTERVAL_S = 20.0
#: ... and only when this share of new tracks (relative to the library loaded) is embedded.
RELOAD_GROWTH = 0.10


class ReviewSession(QObject):
    """Creates, feeds and wires the review panel of ``window``.

    Parameters
    ----------
    window : MainWindow
        The app's window.
    features : str, optional
        Feature choice (default :func:`features_for` the window's backends).
    with_player : bool, optional
        Give the panel a :class:`NowPlayingWidget` (default True).
    """

    def __init__(self, window: MainWindow, *, features: str | None = None, with_player=True):
        super().__init__(window)
        self.window = window
        self.features = features or features_for(window.backends)
        self.panel = None  # the ReviewPanel, once features are loaded
        self.with_player = bool(with_player)
        self._loader: TaskWorker | None = None
        self._reload_wanted = False  # a load was asked for while one ran
        self._loaded_at = 0.0  # monotonic time of the last load request
        self._loaded_done = 0  # embedding progress (files done) at that request
        window.library_synced.connect(self._on_synced)
        window.embedding_progress.connect(self._on_embed_progress)
        window.embedding_finished.connect(self._on_embedded)
        window.project_opened.connect(self._on_project_opened)
        window.project_closing.connect(self._drop_panel)
        window.project_closed.connect(self._drop_panel)
        window.current_tag_changed.connect(self._on_tag)
        window.project_changed.connect(self._on_project_changed)

    # -- loading the features -----------------------------------------------------------

    def _on_project_opened(self, project) -> None:
        self._loaded_done = 0
        self._show_saved_predictions(project)

    def _on_synced(self, _report) -> None:
        project = self.window.project
        if project is not None and project.cache_path.exists():
            self.load_features(quiet=True)  # what an earlier run embedded

    def _on_embed_progress(self, p) -> None:
        if p.stage != "embedding" or p.embedded == 0:
            return
        have = 0 if self.panel is None else len(self.panel.library.relpaths)
        grown = p.done - self._loaded_done
        if self.panel is not None and grown < max(1, RELOAD_GROWTH * have):
            return
        if time.monotonic() - self._loaded_at < RELOAD_INTERVAL_S and self.panel is not None:
            return
        self._loaded_done = p.done
        self.load_features(quiet=True)

    def _on_embedded(self, report) -> None:
        if report is None:  # cancelled or failed: what was embedded is still worth ranking
            if self.window.project is not None and self.window.project.cache_path.exists():
                self.load_features(quiet=True)
            return
        if report.embedded + report.unchanged == 0:
            return
        if report.embedded == 0 and self.panel is not None and self._loader is None:
            return  # nothing new since the load after the sync
        self.load_features(quiet=False)

    def load_features(self, *, quiet: bool = False) -> None:
        """Load the project's embedded tracks in the pool, then show or update the panel.

        Parameters
        ----------
        quiet : bool
            Do not show a message when nothing is embedded yet (a load while
            the embedding job has only begun).
        """
        project = self.window.project
        if project is None:
            return
        if self._loader is not None:
            self._reload_wanted = True
            return
        features = self.features

        def load():
            yield "loading features"
            # imported here (scikit-learn, scipy): the window shows before they load
            from tagger_gui.core.fewshot.excerpt import open_excerpt_features
            from tagger_gui.core.usecases.predicting import project_features

            try:
                lib = project_features(project, features=features)
            except TaggerError as exc:
                if not quiet:
                    raise
                logger.info("features not loaded yet: %s", exc)  # nothing embedded yet
                return None
            yield "loading excerpt features"
            try:
                with EmbeddingCache.open(project.cache_path, mode="r") as cache:
                    excerpt = open_excerpt_features(cache, lib.relpaths, features=features)
            except TaggerError as exc:  # playback then starts at the beginning
                logger.warning("no excerpt choice: %s", exc)
                excerpt = None
            yield "indexing the library"
            # imported here, not on the GUI thread (the player imports librosa)
            import tagger_gui.qt.now_playing  # noqa: F401
            from tagger_gui.qt.review import index_library

            return lib, excerpt, index_library(project, lib)

        worker = TaskWorker(load())
        worker.result.connect(lambda lib: self._on_features(project, lib))
        worker.error.connect(
            lambda exc: self.window.show_message("Cannot rank the library", describe_error(exc))
        )
        worker.finished.connect(lambda: self._load_ended(worker))
        self._loader = worker
        self._loaded_at = time.monotonic()
        self.window.pool.start(worker)

    def _load_ended(self, worker: TaskWorker) -> None:
        if worker is not self._loader:
            return  # a load of a project closed since
        self._loader = None
        if self._reload_wanted:
            self._reload_wanted = False
            self.load_features(quiet=True)

    def _on_features(self, project, loaded) -> None:
        if loaded is None or project is not self.window.project:  # nothing yet, or closed since
            return
        lib, excerpt, index = loaded
        if self.panel is not None:
            if lib.relpaths != self.panel.library.relpaths:
                self.panel.set_library(lib, excerpt_features=excerpt, index=index)
            return
        from tagger_gui.qt.now_playing import NowPlayingWidget
        from tagger_gui.qt.review import ReviewPanel

        now_playing = None
        if self.with_player:
            now_playing = NowPlayingWidget(self.window.pool)
            # no audio device is said once in the status bar; the rest keeps working
            now_playing.errorOccurred.connect(
                lambda text: self.window.statusBar().showMessage(text, 15_000)
            )
        panel = ReviewPanel(
            project,
            lib,
            self.window.pool,
            parent=self.window,
            now_playing=now_playing,
            excerpt_features=excerpt,
            index=index,
        )
        panel.labelsChanged.connect(self.window.refresh)
        panel.scoresChanged.connect(
            lambda ids, scores: self.window.track_model.set_scores(ids, scores, replace=True)
        )
        panel.refitFinished.connect(self._on_refit)
        panel.errorOccurred.connect(lambda text: self.window.show_message("Review", text))
        self.panel = panel
        self.window.labeler = panel.label_track_ids
        self.window.set_review_widget(panel)
        tag = self.window.current_tag
        panel.set_tag(tag.name if tag is not None else None)

    # -- wiring -------------------------------------------------------------------------

    def _on_refit(self, result) -> None:
        project = self.window.project
        if project is None or result.quality is None or not project.has_tag(result.tag):
            return
        tag_id = project.tag(result.tag).id
        self.window.tag_model.set_predicted_counts({tag_id: result.quality.n_above})

    def _show_saved_predictions(self, project) -> None:
        """Predicted counts of every tag from its saved probe (before any refit)."""
        counts = {}
        for tag in project.tags():
            saved = project.load_probe(tag.id)
            if saved is not None and saved.meta.get("predicted") is not None:
                counts[tag.id] = int(saved.meta["predicted"])
        self.window.tag_model.set_predicted_counts(counts)

    def _on_tag(self, tag) -> None:
        if self.panel is not None:
            self.panel.set_tag(tag.name if tag is not None else None)

    def _on_project_changed(self) -> None:
        # undo/redo, a new/renamed/deleted tag from the window: re-read the tag
        if self.panel is None:
            return
        tag = self.window.current_tag
        name = tag.name if tag is not None else None
        if name != self.panel.tag:
            self.panel.set_tag(name)
        else:
            self.panel.reload()

    def _drop_panel(self) -> None:
        if self._loader is not None:
            self._loader.cancel()
            self._loader = None
        self._reload_wanted = False
        self.window.labeler = None
        if self.panel is not None:
            self.panel.shutdown()
            self.panel.setParent(None)
            self.panel.deleteLater()
            self.panel = None

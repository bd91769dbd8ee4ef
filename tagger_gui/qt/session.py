"""Joining the main window and the review panel for one open project.

When the embeddings are up to date, the library's features are loaded in
the interactive pool (never on the GUI thread); then a
:class:`~tagger_gui.qt.review.ReviewPanel` is put in the window's review
area and wired both ways: the current tag drives the panel, its labels and
scores update the table and the tag counts, and the window's undo/redo make
the panel re-read its labels.
"""

from __future__ import annotations

from PySide6.QtCore import QObject

from tagger_gui.core.fewshot.features import DEFAULT_FEATURES
from tagger_gui.core.fewshot.predict import project_features
from tagger_gui.qt.main_window import MainWindow
from tagger_gui.qt.review import ReviewPanel
from tagger_gui.qt.worker import TaskWorker, describe_error


def features_for(backends: list[str]) -> str:
    """The feature choice for the embedded backends: the default when musicnn-msd is there."""
    return DEFAULT_FEATURES if "musicnn-msd" in backends else backends[0]


class ReviewSession(QObject):
    """Creates and wires the review panel of ``window`` after each embedding run."""

    def __init__(self, window: MainWindow, *, features: str | None = None):
        super().__init__(window)
        self.window = window
        self.features = features or features_for(window.backends)
        self.panel: ReviewPanel | None = None
        self._loader: TaskWorker | None = None
        window.embedding_finished.connect(self._on_embedded)
        window.project_closed.connect(self._drop_panel)
        window.current_tag_changed.connect(self._on_tag)
        window.project_changed.connect(self._on_project_changed)

    def _on_embedded(self, report) -> None:
        project = self.window.project
        if report is None or project is None or report.embedded + report.unchanged == 0:
            return

        def load():
            yield "loading features"
            return project_features(project, features=self.features)

        worker = TaskWorker(load())
        worker.result.connect(lambda lib: self._on_features(project, lib))
        worker.error.connect(
            lambda exc: self.window.show_message("Cannot rank the library", describe_error(exc))
        )
        self._loader = worker
        self.window.pool.start(worker)

    def _on_features(self, project, lib) -> None:
        if project is not self.window.project:  # another project was opened meanwhile
            return
        self._drop_panel()
        panel = ReviewPanel(project, lib, self.window.pool, parent=self.window)
        panel.labelsChanged.connect(self.window.refresh)
        panel.scoresChanged.connect(
            lambda ids, scores: self.window.track_model.set_scores(ids, scores, replace=True)
        )
        panel.errorOccurred.connect(lambda text: self.window.show_message("Review", text))
        self.panel = panel
        self.window.set_review_widget(panel)
        tag = self.window.current_tag
        panel.set_tag(tag.name if tag is not None else None)

    def _on_tag(self, tag) -> None:
        if self.panel is not None:
            self.panel.set_tag(tag.name if tag is not None else None)

    def _on_project_changed(self) -> None:
        # undo/redo or a new tag from the window: the panel re-reads the tag's labels
        if self.panel is not None:
            tag = self.window.current_tag
            self.panel.set_tag(tag.name if tag is not None else None)

    def _drop_panel(self) -> None:
        if self.panel is not None:
            self.panel.shutdown()
            self.panel.setParent(None)
            self.panel.deleteLater()
            self.panel = None

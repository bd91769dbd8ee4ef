"""A project's tags predicted over its whole library (for export and the app).

Bridges the project store (labels by track id; 1 positive, -1 negative,
0 skip) and the engine (rows of the feature matrix; 1, 0, -1 unlabeled).
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass

import numpy as np

from tagger_gui.core.cache import EmbeddingCache
from tagger_gui.core.errors import TaggerError
from tagger_gui.core.fewshot.engine import (
    DEFAULT_COMPONENTS,
    LibraryFeatures,
    open_library_features,
    refit_task,
)
from tagger_gui.core.fewshot.features import DEFAULT_FEATURES


@dataclass
class TagPrediction:
    """One tag's probe applied to every embedded track."""

    tag: str
    relpaths: list[str]
    scores: np.ndarray
    threshold: float
    feature: str
    probe_version: str
    n_positive: int
    n_negative: int

    def predicted(self) -> np.ndarray:
        return self.scores >= self.threshold


def project_features(
    project, *, features: str = DEFAULT_FEATURES, n_components: int | None = DEFAULT_COMPONENTS
) -> LibraryFeatures:
    """The project's embedded tracks in the probe space, grouped by album (else folder)."""
    if not project.cache_path.exists():
        raise TaggerError(
            f"{project.cache_path}: no embeddings yet; run `tagger embed {project.library_root}`"
        )
    from tagger_gui.core.fewshot.quality import default_groups  # scipy: not at app start

    tracks = project.tracks(include_missing=False)
    with EmbeddingCache.open(project.cache_path, mode="r") as cache:
        from tagger_gui.core.fewshot.features import FeatureSpec, resolve

        spec = FeatureSpec.parse(features)
        have = None
        for key, _, _ in resolve(cache, spec):
            got = set(cache.tracks(key).relpath)
            have = got if have is None else have & got
        keep = [i for i, r in enumerate(tracks.relpath) if r in have]
        relpaths = [tracks.relpath[i] for i in keep]
        if not relpaths:
            raise TaggerError("no track of the project is embedded yet; run `tagger embed`")
        groups = default_groups(
            relpaths, [tracks.album[i] for i in keep], [tracks.artist[i] for i in keep]
        )
        return open_library_features(
            cache, features=spec, groups=groups, relpaths=relpaths, n_components=n_components
        )


def label_vector(project, tag, lib: LibraryFeatures) -> np.ndarray:
    """The tag's effective labels (hierarchy applied) as engine codes per library row."""
    y = np.full(len(lib.relpaths), -1, dtype=np.int8)
    lab = project.labels(tag)
    # Only the labeled tracks are looked up (the review panel calls this on the
    # GUI thread at each tag change and undo: mapping all 100,000 library
    # paths to ids took 0.2-0.4 s there).
    index = lib.row_index()
    relpaths = project.relpaths_of_ids(lab.track_id)
    for relpath, value in zip(relpaths, lab.value.tolist(), strict=True):
        row = None if relpath is None else index.get(relpath)
        if row is not None and value != 0:  # skips stay unlabeled
            y[row] = 1 if value == 1 else 0
    return y


def predict_task(
    project,
    *,
    tags: Sequence[str] | None = None,
    features: str = DEFAULT_FEATURES,
    threshold: float = 0.5,
    n_components: int | None = DEFAULT_COMPONENTS,
    save_probes: bool = True,
) -> Generator[str, None, dict[str, TagPrediction]]:
    """Fit each tag with at least one positive and score the library.

    Yields the name of each tag as it starts. Tags without positives are
    left out of the result. With ``save_probes`` (and a writable project)
    each fitted probe is stored with its feature choice and label snapshot.
    """
    yield "loading features"
    lib = project_features(project, features=features, n_components=n_components)
    names = list(tags) if tags is not None else [t.name for t in project.tags()]
    out: dict[str, TagPrediction] = {}
    for name in names:
        yield name
        y = label_vector(project, name, lib)
        if not (y == 1).any():
            continue
        task = refit_task(lib, y, tag=name, strategies=(), with_quality=False)
        try:
            while True:
                next(task)
        except StopIteration as stop:
            result = stop.value
        snapshot = project.label_snapshot(name)
        if save_probes and not project.readonly:
            project.save_probe(
                name,
                result.probe_bytes(lib.feature_id),
                {"features": lib.feature_id, "labels": snapshot, "threshold": threshold},
            )
        out[name] = TagPrediction(
            name,
            lib.relpaths,
            result.scores,
            threshold,
            lib.feature_id,
            snapshot[:12],
            int((y == 1).sum()),
            int((y == 0).sum()),
        )
    return out

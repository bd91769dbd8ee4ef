"""Which embeddings a probe reads, and loading them from the cache.

A feature choice is written ``backend:output+output`` and several are joined
with commas, e.g. ``musicnn-msd:mean_pool+max_pool`` or
``musicnn-msd:mean_pool+max_pool,handcrafted``. A backend without outputs
means all of its outputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tagger_gui.core.cache import EmbeddingCache
from tagger_gui.core.errors import CacheError, TaggerError

#: The feature choice the evaluation in docs/results.md found best.
DEFAULT_FEATURES = "musicnn-msd:mean_pool+max_pool"


class FeatureSpecError(TaggerError):
    """A feature choice that cannot be parsed or is not in the cache."""


@dataclass(frozen=True)
class FeatureSpec:
    """An ordered choice of backend outputs, concatenated column-wise.

    ``parts`` is a tuple of ``(backend name, outputs)``; empty outputs mean
    every output the backend stores.
    """

    parts: tuple[tuple[str, tuple[str, ...]], ...]

    @classmethod
    def parse(cls, text: str) -> FeatureSpec:
        """Parse ``"backend:out+out,backend"``."""
        parts = []
        for chunk in text.split(","):
            chunk = chunk.strip()
            if not chunk:
                continue
            name, _, outs = chunk.partition(":")
            name = name.strip()
            outputs = tuple(o.strip() for o in outs.split("+") if o.strip())
            if not name:
                raise FeatureSpecError(f"feature choice {text!r}: a part has no backend name")
            parts.append((name, outputs))
        if not parts:
            raise FeatureSpecError(f"feature choice {text!r} names no backend")
        return cls(tuple(parts))

    def __str__(self) -> str:
        return ",".join(f"{n}:{'+'.join(o)}" if o else n for n, o in self.parts)

    @property
    def backends(self) -> list[str]:
        return [name for name, _ in self.parts]


def _backend_key(cache: EmbeddingCache, name: str) -> str:
    keys = [k for k in cache.backends() if k.split("@")[0] == name]
    if not keys:
        have = ", ".join(cache.backends()) or "none"
        raise FeatureSpecError(
            f"{cache.path}: no embeddings of {name} (it has: {have}); "
            f"run `tagger embed MUSIC_DIR --backend {name}`"
        )
    return keys[-1]


def resolve(cache: EmbeddingCache, spec: FeatureSpec) -> list[tuple[str, list[str], list[int]]]:
    """``(backend key, outputs, dims)`` per part, with defaults filled in."""
    out = []
    for name, outputs in spec.parts:
        key = _backend_key(cache, name)
        dims = cache.backend_info(key)["outputs"]
        chosen = list(outputs) or list(dims)
        unknown = [o for o in chosen if o not in dims]
        if unknown:
            raise FeatureSpecError(
                f"{key} has no output {unknown[0]!r} (it has: {', '.join(dims)})"
            )
        out.append((key, chosen, [int(dims[o]) for o in chosen]))
    return out


def feature_id(cache: EmbeddingCache, spec: FeatureSpec) -> str:
    """The spec with backend versions, e.g. ``musicnn-msd@1:mean_pool+max_pool``."""
    return ",".join(f"{key}:{'+'.join(outs)}" for key, outs, _ in resolve(cache, spec))


def load_features(
    cache: EmbeddingCache, spec: FeatureSpec | str, relpaths: Sequence[str] | None = None
) -> tuple[list[str], np.ndarray]:
    """Clip-level feature matrix for ``spec``.

    Parameters
    ----------
    cache : EmbeddingCache
    spec : FeatureSpec or str
    relpaths : list of str, optional
        Rows wanted, in this order. By default every track that every part
        has, in the first part's order.

    Returns
    -------
    relpaths : list of str
    X : ndarray, shape (n, dim), float32
        Several parts are concatenated column-wise. Rows missing from a
        part are an error when ``relpaths`` was given.
    """
    if isinstance(spec, str):
        spec = FeatureSpec.parse(spec)
    blocks = []
    for key, outputs, _ in resolve(cache, spec):
        paths, X = cache.load(key, outputs)
        blocks.append((key, {p: i for i, p in enumerate(paths)}, paths, X))
    if relpaths is None:
        common = set(blocks[0][1])
        for _, index, _, _ in blocks[1:]:
            common &= set(index)
        relpaths = [p for p in blocks[0][2] if p in common]
    relpaths = list(relpaths)
    dim = sum(X.shape[1] for *_, X in blocks)
    rows_of = []
    for key, index, _, _ in blocks:
        try:
            rows_of.append(
                np.fromiter((index[p] for p in relpaths), dtype=np.int64, count=len(relpaths))
            )
        except KeyError as exc:
            raise CacheError(f"{exc.args[0]!r} has no {key} embedding yet") from None
    if len(blocks) == 1:
        X, rows = blocks[0][3], rows_of[0]
        del blocks
        if len(rows) == len(X) and np.array_equal(rows, np.arange(len(X))):
            # the rows wanted are the cache's, in its order (a library embedded
            # in scan order): no copy, which at 100,000 tracks x 1,506 saves 600 MB
            return relpaths, X
        return relpaths, X[rows]
    out = np.empty((len(relpaths), dim), dtype=np.float32)
    col = 0
    for (_, _, _, X), rows in zip(blocks, rows_of, strict=True):
        out[:, col : col + X.shape[1]] = X[rows]
        col += X.shape[1]
    return relpaths, out

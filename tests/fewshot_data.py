"""Synthetic labeled embeddings for the few-shot tests: tags are directions, albums clusters."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tagger_gui.core.fewshot.datasets import LabeledSet


def synthetic_set(
    *,
    n_groups: int = 60,
    per_group: int = 5,
    n_tags: int = 4,
    dim: int = 32,
    signal: float = 1.5,
    seed: int = 0,
) -> tuple[LabeledSet, np.ndarray]:
    """A labeled set whose tags are learnable from ``X`` (album-level tags, like a corpus)."""
    rng = np.random.default_rng(seed)
    n = n_groups * per_group
    groups = np.repeat(np.arange(n_groups), per_group)
    group_tags = rng.random((n_groups, n_tags)) < 0.25
    group_tags[np.arange(n_groups), rng.integers(0, n_tags, n_groups)] = True
    Y = group_tags[groups]
    directions = rng.normal(size=(n_tags, dim))
    centres = rng.normal(scale=0.7, size=(n_groups, dim))
    X = centres[groups] + signal * Y @ directions + rng.normal(size=(n, dim))
    X = (X * 3 + 10).astype(np.float32)  # not standardised: the probe must do it
    relpaths = [f"album{g:03d}/clip{i}.flac" for i, g in enumerate(groups)]
    tags = [f"tag{j}" for j in range(n_tags)]
    return LabeledSet("synthetic", Path("."), relpaths, tags, Y, groups), X

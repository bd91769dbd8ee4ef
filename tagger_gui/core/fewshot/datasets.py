"""Labeled sets for evaluation: a ``path,tag[,group]`` CSV, or MagnaTagATune.

A :class:`LabeledSet` is a multi-label matrix over audio files with a group
per file (tracks of one group never sit on both sides of a split) and,
for datasets that come with one, a fixed train/valid/test split.
"""

from __future__ import annotations

import csv
import os
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tagger_gui.core.errors import TaggerError


class DatasetError(TaggerError):
    """A labeled set that cannot be read; the message names the file and line."""


@dataclass
class LabeledSet:
    """Files, their tags, groups and (optionally) a fixed split.

    Attributes
    ----------
    name : str
    root : Path
        Audio root; ``relpaths`` are relative to it, with forward slashes.
    relpaths : list of str
    tags : list of str
    Y : ndarray of bool, shape (n_files, n_tags)
    groups : ndarray of int, shape (n_files,)
    split : ndarray of str or None
        ``"train"``, ``"valid"`` or ``"test"`` per file for datasets with a
        standard split (MagnaTagATune); None means split at random by group.
    """

    name: str
    root: Path
    relpaths: list[str]
    tags: list[str]
    Y: np.ndarray
    groups: np.ndarray
    split: np.ndarray | None = None

    def subset(self, rows: np.ndarray) -> LabeledSet:
        """The files at ``rows``, in that order."""
        rows = np.asarray(rows)
        return LabeledSet(
            self.name,
            self.root,
            [self.relpaths[i] for i in rows],
            self.tags,
            self.Y[rows],
            self.groups[rows],
            None if self.split is None else self.split[rows],
        )

    def summary(self) -> str:
        counts = self.Y.sum(axis=0)
        lines = [
            f"{self.name}: {len(self.relpaths)} files, {len(np.unique(self.groups))} groups, "
            f"{len(self.tags)} tags"
        ]
        for tag, c in zip(self.tags, counts, strict=True):
            n_groups = len(np.unique(self.groups[self.Y[:, self.tags.index(tag)]]))
            lines.append(f"  {tag}: {int(c)} files in {n_groups} groups")
        return "\n".join(lines)


def _norm(relpath: str) -> str:
    return unicodedata.normalize("NFC", relpath.replace("\\", "/")).lstrip("./")


def read_tag_csv(
    path: str | os.PathLike, root: str | os.PathLike, *, min_groups: int = 3
) -> LabeledSet:
    """Read a ``path,tag[,group]`` CSV (header required) of audio files under ``root``.

    One row per (file, tag); a file may have several tags. ``group`` names
    the album/track a file belongs to; without it each file's folder is its
    group (clips of one track or album usually share a folder). Paths may be
    relative to ``root`` or absolute below it. Tags with fewer than
    ``min_groups`` groups are dropped (they cannot be split honestly).
    """
    path = Path(path)
    root = Path(root)
    try:
        fh = open(path, newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise DatasetError(f"{path}: cannot open ({exc.strerror})") from None
    files: dict[str, int] = {}
    group_of: dict[str, str] = {}
    pairs: list[tuple[int, str]] = []
    root_abs = os.path.abspath(root)
    with fh:
        reader = csv.reader(fh)
        try:
            header = [h.strip().lower() for h in next(reader)]
        except StopIteration:
            raise DatasetError(f"{path}: empty file") from None
        except UnicodeDecodeError as exc:
            raise DatasetError(
                f"{path}, line 1: not UTF-8 ({exc.reason}); save the file as UTF-8"
            ) from None
        except csv.Error as exc:
            raise DatasetError(f"{path}, line 1: {exc}") from None
        if header[:2] != ["path", "tag"] or (len(header) > 2 and header[2] != "group"):
            raise DatasetError(
                f"{path}, line 1: the header must be path,tag or path,tag,group "
                f"(found {','.join(header)})"
            )
        has_group = len(header) > 2
        try:
            for row in reader:
                line = reader.line_num
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue
                if len(row) != len(header):
                    raise DatasetError(
                        f"{path}, line {line}: {len(row)} columns, expected {len(header)}"
                    )
                raw, tag = row[0].strip(), row[1].strip()
                if not raw or not tag:
                    raise DatasetError(f"{path}, line {line}: empty path or tag")
                if os.path.isabs(raw):
                    rel = os.path.relpath(raw, root_abs)
                    if rel.startswith(".."):
                        raise DatasetError(f"{path}, line {line}: {raw} is outside {root}")
                    raw = rel
                rel = _norm(raw)
                index = files.setdefault(rel, len(files))
                group = row[2].strip() if has_group else rel.rpartition("/")[0]
                if group_of.setdefault(rel, group) != group:
                    raise DatasetError(
                        f"{path}, line {line}: {rel} is in group {group!r} here and "
                        f"{group_of[rel]!r} before"
                    )
                pairs.append((index, tag))
        except UnicodeDecodeError as exc:
            raise DatasetError(
                f"{path}, near line {reader.line_num + 1}: not UTF-8 ({exc.reason}); "
                "save the file as UTF-8"
            ) from None
        except csv.Error as exc:
            raise DatasetError(f"{path}, line {reader.line_num}: {exc}") from None
    if not pairs:
        raise DatasetError(f"{path}: no rows")
    relpaths = list(files)
    missing = [r for r in relpaths if not (root / r).exists()]
    if missing:
        raise DatasetError(f"{path}: {len(missing)} files are not under {root}, e.g. {missing[0]}")
    group_names = {g: i for i, g in enumerate(dict.fromkeys(group_of[r] for r in relpaths))}
    groups = np.array([group_names[group_of[r]] for r in relpaths], dtype=np.int64)
    all_tags = sorted({t for _, t in pairs})
    Y = np.zeros((len(relpaths), len(all_tags)), dtype=bool)
    col = {t: j for j, t in enumerate(all_tags)}
    for i, t in pairs:
        Y[i, col[t]] = True
    keep = [j for j in range(len(all_tags)) if len(np.unique(groups[Y[:, j]])) >= min_groups]
    return LabeledSet(path.stem, root, relpaths, [all_tags[j] for j in keep], Y[:, keep], groups)


# MagnaTagATune: annotations_final.csv is tab-separated, quoted, with clip_id,
# 188 binary tag columns and mp3_path ("f/artist-album-NN-title-START-END.mp3").
_MTT_SEGMENT = re.compile(r"-\d+-\d+\.mp3$")
MTT_SPLIT = {**dict.fromkeys("0123456789ab", "train"), "c": "valid", **dict.fromkeys("def", "test")}


def read_magnatagatune(root: str | os.PathLike, *, n_tags: int = 50) -> LabeledSet:
    """MagnaTagATune as distributed: ``annotations_final.csv`` and the mp3 folders.

    Keeps the ``n_tags`` most frequent tags and the usual split by folder
    (0-b train, c valid, d-f test). Clips of one song share a group (the
    file name without its segment times). Clips without any of the kept
    tags stay in (they are negatives for every tag), as in the usual setup.
    """
    root = Path(root)
    ann = root / "annotations_final.csv"
    if not ann.exists():
        raise DatasetError(
            f"{root}: no annotations_final.csv (expected MagnaTagATune as distributed: "
            "annotations_final.csv and the folders 0-9, a-f of mp3 clips)"
        )
    with open(ann, newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh, delimiter="\t")
        header = next(reader)
        if header[0] != "clip_id" or header[-1] != "mp3_path":
            raise DatasetError(f"{ann}, line 1: not a MagnaTagATune annotation header")
        tag_names = header[1:-1]
        rows = []
        paths = []
        for row in reader:
            if len(row) != len(header):
                raise DatasetError(f"{ann}, line {reader.line_num}: {len(row)} columns")
            if not row[-1]:
                continue  # a handful of clips have no audio file
            paths.append(row[-1])
            rows.append([v == "1" for v in row[1:-1]])
    Y_all = np.array(rows, dtype=bool)
    top = np.argsort(-Y_all.sum(axis=0), kind="stable")[:n_tags]
    top = np.sort(top)
    present = np.array([(root / p).exists() for p in paths])
    if not present.any():
        raise DatasetError(f"{root}: none of the mp3 files in annotations_final.csv exist")
    paths = [p for p, ok in zip(paths, present, strict=True) if ok]
    Y = Y_all[present][:, top]
    songs = [_MTT_SEGMENT.sub("", p.split("/", 1)[-1]) for p in paths]
    song_ids = {s: i for i, s in enumerate(dict.fromkeys(songs))}
    split = np.array([MTT_SPLIT.get(p[0], "train") for p in paths])
    return LabeledSet(
        "magnatagatune",
        root,
        paths,
        [tag_names[j] for j in top],
        Y,
        np.array([song_ids[s] for s in songs], dtype=np.int64),
        split,
    )

"""Labels in and out of CSV files (pure functions: no database).

Two layouts are read and written (see ``docs/export.md``):

* **long**: one row per track and tag, ``path,tag[,value]`` at least; our
  exports add the decision's source, the model's score, the prediction at the
  threshold, the feature, the probe version and the time.
* **wide**: one row per track, the first column the path and one column per
  tag, cells ``1`` / ``0`` / empty.

Files are UTF-8 (a byte-order mark is accepted), RFC 4180 quoting. Our
exports start with ``# key: value`` provenance comment lines and have a
``<file>.json`` sidecar with the same provenance.

Reading streams the file line by line (a 100 MB list is fine) and keeps the
rows it accepts in compact arrays, so memory grows with the number of labels
found (about 17 bytes each), not with the size of the file. An import is
checked completely before anything is returned: any error raises
:class:`~tagger_gui.core.errors.CsvFormatError` with the file and line.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
import os
import unicodedata
from array import array
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, overload

import numpy as np

from tagger_gui import __version__
from tagger_gui.core.errors import CsvFormatError
from tagger_gui.core.fileio import fsync_dir
from tagger_gui.core.project.pathmatch import PathMatcher

__all__ = [
    "FORMAT_VERSION",
    "LONG_COLUMNS",
    "VALUES",
    "ImportPlan",
    "LabelRows",
    "read_labels_csv",
    "read_provenance",
    "wide_cell",
    "write_long_csv",
    "write_wide_csv",
]

#: Version of the layout of our exports (in the header comment and sidecar).
FORMAT_VERSION = 1

#: The columns of our long export, in order.
LONG_COLUMNS = (
    "path",
    "tag",
    "decision",
    "source",
    "score",
    "predicted",
    "threshold",
    "feature",
    "probe_version",
    "time",
)

#: The label values, in the order of their codes in :class:`LabelRows`.
VALUES = ("positive", "negative", "skip")

_VALUE_WORDS = {
    "positive": 0,
    "1": 0,
    "yes": 0,
    "true": 0,
    "negative": 1,
    "0": 1,
    "no": 1,
    "false": 1,
    "skip": 2,
}
_VALUE_HELP = "positive/negative/skip, 1/0, yes/no or true/false"

#: Header names accepted for the path column.
PATH_COLUMN_NAMES = frozenset(
    {"path", "file", "filename", "file name", "filepath", "file path", "relpath", "location"}
)
#: Header names accepted for the value column of the long format.
VALUE_COLUMN_NAMES = ("value", "decision", "label")

#: At most this many unmatched rows are listed (all are counted).
MAX_UNMATCHED_LISTED = 10_000

# A line longer than this is not a line of a list of paths; reading it whole
# would defeat the bounded memory.
_MAX_LINE_BYTES = 1 << 20
_BLOCK_BYTES = 1 << 20
_UTF8_BOM = b"\xef\xbb\xbf"
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


# --- the result of reading ---------------------------------------------------


class LabelRows(Sequence[tuple[str, str, str, int]]):
    """The accepted rows of an import, as ``(relpath, tag, value, line_no)``.

    A read-only sequence backed by compact arrays (indexes into the
    library's ``relpaths`` and the file's tags, a value code, the line
    number), so a few million rows take tens of megabytes, not gigabytes.
    Items are built on access; compare with a list as you would a list.
    """

    def __init__(
        self,
        relpaths: Sequence[str],
        tags: Sequence[str],
        rel_idx: np.ndarray,
        tag_idx: np.ndarray,
        values: np.ndarray,
        lines: np.ndarray,
    ):
        self._relpaths = relpaths
        self._tags = tags
        self._rel = rel_idx
        self._tag = tag_idx
        self._val = values
        self._line = lines

    def __len__(self) -> int:
        return len(self._rel)

    @overload
    def __getitem__(self, i: int) -> tuple[str, str, str, int]: ...

    @overload
    def __getitem__(self, i: slice) -> list[tuple[str, str, str, int]]: ...

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        return (
            self._relpaths[int(self._rel[i])],
            self._tags[int(self._tag[i])],
            VALUES[int(self._val[i])],
            int(self._line[i]),
        )

    def __iter__(self) -> Iterator[tuple[str, str, str, int]]:
        relpaths, tags = self._relpaths, self._tags
        for r, t, v, n in zip(
            self._rel.tolist(),
            self._tag.tolist(),
            self._val.tolist(),
            self._line.tolist(),
            strict=True,
        ):
            yield relpaths[r], tags[t], VALUES[v], n

    def __eq__(self, other: object) -> bool:
        if isinstance(other, LabelRows | list | tuple):
            return len(self) == len(other) and all(
                a == tuple(b) for a, b in zip(self, other, strict=True)
            )
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        head = ", ".join(repr(r) for r in self[:3])
        more = ", ..." if len(self) > 3 else ""
        return f"LabelRows([{head}{more}], n={len(self)})"


@dataclass
class ImportPlan:
    """What :func:`read_labels_csv` found in a file; nothing is applied yet.

    Attributes
    ----------
    path : Path
        The file read.
    format : str
        ``"long"`` or ``"wide"``.
    rows : LabelRows
        The labels to import, ``(relpath, tag, value, line_no)`` with value in
        :data:`VALUES`, in file order, repeated rows removed.
    unmatched : list of (int, str, str)
        ``(line_no, path as written, reason)`` of rows whose path is no file
        of the library (at most :data:`MAX_UNMATCHED_LISTED` listed).
    unmatched_count : int
        How many rows did not match (all of them, listed or not).
    duplicates : int
        Rows that repeat an earlier row (same file, tag and value), dropped.
    no_value : int
        Rows (long) or cells (wide) left empty: no decision, nothing imported.
    tags : list of str
        The tags of the file (wide: every column; long: every tag seen).
    provenance : dict
        The ``# key: value`` comment lines before the header, if any.
    """

    path: Path
    format: str
    rows: LabelRows
    unmatched: list[tuple[int, str, str]] = field(default_factory=list)
    unmatched_count: int = 0
    duplicates: int = 0
    no_value: int = 0
    tags: list[str] = field(default_factory=list)
    provenance: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> str:
        """One line for a report: what would be imported and what would not."""
        parts = [f"{len(self.rows)} labels ({self.format} format, {len(self.tags)} tags)"]
        if self.unmatched_count:
            parts.append(f"{self.unmatched_count} rows match no file of the library")
        if self.duplicates:
            parts.append(f"{self.duplicates} repeated rows ignored")
        if self.no_value:
            parts.append(f"{self.no_value} empty values ignored")
        return "; ".join(parts)


# --- reading -----------------------------------------------------------------


def _not_utf8(path: Path, line_no: int, line: bytes, pos: int) -> CsvFormatError:
    bad = line[pos : pos + 1].hex()
    return CsvFormatError(
        path,
        line_no,
        f"not UTF-8 (byte 0x{bad} at byte {pos + 1} of the line); re-save the file as "
        'UTF-8 (in Excel: "CSV UTF-8"; in LibreOffice: character set "Unicode (UTF-8)")',
    )


class _Source:
    """The decoded lines of a binary file, with exact physical line numbers.

    :meth:`preamble` reads line by line up to the first line that is not a
    ``#`` comment or blank (the header, or the first row); :meth:`rest` then
    decodes blocks of about 1 MB cut at a newline (UTF-8 never has a newline
    byte inside a character), so an encoding error still names its line and
    the csv module gets the lines from a C-level iterator.
    """

    def __init__(self, fh: BinaryIO, path: Path):
        self._fh = fh
        self._path = path
        self.line_no = 0  # lines read so far
        self.comments: list[str] = []

    def preamble(self) -> str | None:
        """The first line that is neither a comment nor blank (None at the end)."""
        while True:
            raw = self._fh.readline(_MAX_LINE_BYTES)
            if not raw:
                return None
            self.line_no += 1
            if len(raw) == _MAX_LINE_BYTES and not raw.endswith(b"\n"):
                raise self._too_long(self.line_no)
            if self.line_no == 1:
                if raw.startswith(_UTF8_BOM):
                    raw = raw[len(_UTF8_BOM) :]
                elif raw.startswith(_UTF16_BOMS):
                    raise CsvFormatError(
                        self._path,
                        1,
                        "the file is UTF-16, not UTF-8: re-save it as "
                        '"CSV UTF-8" (Excel) or with encoding UTF-8',
                    )
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise _not_utf8(self._path, self.line_no, raw, exc.start) from None
            stripped = text.strip()
            if not stripped:
                continue
            if stripped.startswith("#"):
                self.comments.append(stripped)
                continue
            return text

    def _too_long(self, line_no: int) -> CsvFormatError:
        return CsvFormatError(
            self._path, line_no, "line longer than 1 MB: this is not a list of paths and tags"
        )

    def rest(self) -> Iterator[str]:
        """The remaining lines, each with its newline."""
        return itertools.chain.from_iterable(self._blocks())

    def _blocks(self) -> Iterator[io.StringIO]:
        line_no = self.line_no
        pending = b""
        while True:
            chunk = self._fh.read(_BLOCK_BYTES)
            data = pending + chunk if pending else chunk
            if not chunk:
                block, pending = data, b""
            else:
                cut = data.rfind(b"\n") + 1
                if cut == 0:
                    if len(data) > _MAX_LINE_BYTES:
                        raise self._too_long(line_no + 1)
                    pending = data
                    continue
                block, pending = data[:cut], data[cut:]
            if not block:
                return
            try:
                text = block.decode("utf-8")
            except UnicodeDecodeError as exc:
                before = block.rfind(b"\n", 0, exc.start) + 1
                line = block[before : block.find(b"\n", exc.start) + 1 or len(block)]
                bad_line = line_no + block.count(b"\n", 0, exc.start) + 1
                raise _not_utf8(self._path, bad_line, line, exc.start - before) from None
            line_no += block.count(b"\n")
            # newline="\n": split on \n only, translate nothing (as the csv module wants)
            yield io.StringIO(text, newline="\n")


def _parse_comments(comments: Iterable[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for line in comments:
        body = line.lstrip("#").strip()
        key, sep, value = body.partition(":")
        if not sep or not key.strip() or " " in key.strip():
            continue
        value = value.strip()
        try:
            out[key.strip()] = json.loads(value)
        except ValueError:
            out[key.strip()] = value
    return out


def read_provenance(path: str | os.PathLike) -> dict[str, Any]:
    """The ``# key: value`` comment lines at the top of a CSV file, as a dict.

    Parameters
    ----------
    path : str or path-like
        A CSV file (ours or anyone's; a file without comments gives ``{}``).

    Returns
    -------
    dict
        Values are JSON-decoded where they are JSON (our exports write JSON).
    """
    path = Path(path)
    with open(path, "rb") as fh:
        source = _Source(fh, path)
        source.preamble()
        return _parse_comments(source.comments)


def _guess_delimiter(first_line: str) -> str:
    if "," in first_line:
        return ","
    if "\t" in first_line:
        return "\t"
    if ";" in first_line:
        return ";"
    return ","


def _norm_tag(text: str) -> str:
    text = text.strip()
    if not unicodedata.is_normalized("NFC", text):
        text = unicodedata.normalize("NFC", text)
    return text


def _csv_error(path: Path, start: int, end: int, exc: csv.Error) -> CsvFormatError:
    msg = str(exc)
    if "field larger than field limit" in msg:
        reason = (
            "a quoted field is never closed (or is longer than "
            f"{csv.field_size_limit()} characters)"
        )
    elif "unexpected end of data" in msg:
        reason = "the file ends inside a quoted field (a quote is never closed)"
    elif "new-line character seen in unquoted field" in msg:
        reason = "lines end with a lone carriage return (old Mac format); re-save the file"
    elif "NUL" in msg:
        reason = "the line contains a NUL byte: this is not a text file"
    else:
        reason = f"unreadable quoting ({msg})"
    if start != end:
        reason += f"; the row starts on line {start}"
    return CsvFormatError(path, end, reason)


def read_labels_csv(
    path: str | os.PathLike,
    *,
    library_root: str | os.PathLike | None,
    relpaths: Sequence[str],
) -> ImportPlan:
    """Read labels from a CSV file and match its paths to the library.

    Parameters
    ----------
    path : str or path-like
        The CSV file: long (``path,tag[,value]``) or wide (``path,<tag>,...``)
        layout, detected from the header (see ``docs/export.md``).
    library_root : str or path-like or None
        The library folder, to resolve absolute paths.
    relpaths : sequence of str
        The library's files, relative to the root with ``/`` separators.

    Returns
    -------
    ImportPlan
        The rows to import, and the rows that match no file (with reasons).

    Raises
    ------
    CsvFormatError
        Anything that makes the file unusable, with the line number: missing
        or unknown columns, bytes that are not UTF-8, broken quoting, an
        unknown value word, an empty tag name, or the same file and tag given
        two different values.
    """
    path = Path(path)
    matcher = PathMatcher(relpaths, library_root=library_root)
    try:
        fh = open(path, "rb")
    except OSError as exc:
        raise CsvFormatError(path, None, f"cannot be read ({exc.strerror})") from None
    with fh:
        source = _Source(fh, path)
        first = source.preamble()
        if first is None:
            raise CsvFormatError(path, None, "the file has no rows")
        # The reader's line_num counts from the first line it is given.
        offset = source.line_no - 1
        reader = csv.reader(
            itertools.chain((first,), source.rest()),
            delimiter=_guess_delimiter(first),
            strict=True,
        )
        reading = _Reader(path, matcher, reader, offset)
        try:
            header = next(reader)
        except csv.Error as exc:
            raise _csv_error(path, offset + 1, offset + reader.line_num, exc) from None
        provenance = _parse_comments(source.comments)
        reading.read(header, provenance)
    return reading.finish(provenance)


class _Reader:
    """The state of one import while its rows stream past."""

    def __init__(self, path: Path, matcher: PathMatcher, reader, offset: int):
        self.path = path
        self.matcher = matcher
        self.reader = reader
        self.offset = offset  # physical line = offset + reader.line_num
        self.format = "long"
        self.tags: list[str] = []
        self.tag_index: dict[str, int] = {}
        self.rel = array("I")
        self.tag = array("I")
        self.val = array("b")
        self.line = array("q")
        self.unmatched: list[tuple[int, str, str]] = []
        self.unmatched_count = 0
        self.no_value = 0

    # -- header -------------------------------------------------------------

    def read(self, header: list[str], provenance: dict) -> None:
        header_line = self.offset + self.reader.line_num
        names = [h.strip().lower() for h in header]
        declared = provenance.get("format")
        is_header = bool(names) and (
            names[0] in PATH_COLUMN_NAMES
            or ("tag" in names and any(n in PATH_COLUMN_NAMES for n in names))
        )
        if not is_header:
            # No header: path,tag[,value] from the first row on.
            if len(header) not in (2, 3):
                raise CsvFormatError(
                    self.path,
                    header_line,
                    f"cannot tell the layout: found {len(header)} columns and no header. "
                    "Give a header row: path,tag,value (one row per label) or "
                    "path,<tag>,<tag>,... (one row per track)",
                )
            value_col = 2 if len(header) == 3 else None
            self._read_long(0, 1, value_col, len(header), first=header)
        elif declared != "wide" and "tag" in names:
            self._read_long_header(header, names, header_line)
        else:
            self._read_wide_header(header, names, header_line)

    def _read_long_header(self, header, names, header_line) -> None:
        path_col = next(i for i, n in enumerate(names) if n in PATH_COLUMN_NAMES)
        tag_col = names.index("tag")
        value_col = next((names.index(n) for n in VALUE_COLUMN_NAMES if n in names), None)
        known = set(LONG_COLUMNS) | set(VALUE_COLUMN_NAMES) | PATH_COLUMN_NAMES
        for i, n in enumerate(names):
            if n not in known:
                raise CsvFormatError(
                    self.path,
                    header_line,
                    f"unknown column {header[i]!r} (column {i + 1}); one row per label "
                    f"needs path,tag[,value] (known columns: {', '.join(LONG_COLUMNS)})",
                )
        if len(set(names)) != len(names):
            dup = next(n for n in names if names.count(n) > 1)
            raise CsvFormatError(self.path, header_line, f"column {dup!r} appears twice")
        self._read_long(path_col, tag_col, value_col, len(header))

    def _read_wide_header(self, header, names, header_line) -> None:
        self.format = "wide"
        if names[0] not in PATH_COLUMN_NAMES:
            raise CsvFormatError(
                self.path,
                header_line,
                f"the first column must be the path (found {header[0]!r})",
            )
        if len(header) < 2:
            raise CsvFormatError(
                self.path,
                header_line,
                "no tag column: expected path,tag[,value] or path,<tag>,<tag>,...",
            )
        for i, name in enumerate(header[1:], start=2):
            tag = _norm_tag(name)
            if not tag:
                raise CsvFormatError(self.path, header_line, f"column {i} has an empty tag name")
            if tag in self.tag_index:
                raise CsvFormatError(
                    self.path, header_line, f"tag {tag!r} has two columns ({i} and another)"
                )
            self.tag_index[tag] = len(self.tags)
            self.tags.append(tag)
        self._read_wide(len(header))

    # -- rows ---------------------------------------------------------------

    def _unmatched(self, line_no: int, raw: str, reason: str) -> None:
        self.unmatched_count += 1
        if len(self.unmatched) < MAX_UNMATCHED_LISTED:
            self.unmatched.append((line_no, raw, reason))

    def _value(self, word: str, line_no: int, where: str) -> int | None:
        code = _VALUE_WORDS.get(word)
        if code is None:
            low = word.strip().lower()
            if not low:
                return None
            code = _VALUE_WORDS.get(low)
            if code is None:
                raise CsvFormatError(
                    self.path, line_no, f"unknown value {word!r}{where} (use {_VALUE_HELP})"
                )
        return code

    def _bad_width(self, row: list[str], line_no: int, ncols: int) -> bool:
        """True for a blank line (skipped); raise for a row of the wrong width."""
        if not row or (len(row) == 1 and not row[0].strip()):
            return True
        raise CsvFormatError(self.path, line_no, f"expected {ncols} columns, found {len(row)}")

    def _new_tag(self, raw_tag: str, line_no: int) -> int:
        tag = _norm_tag(raw_tag)
        if not tag:
            raise CsvFormatError(self.path, line_no, "empty tag name")
        t = self.tag_index.get(tag)
        if t is None:
            t = self.tag_index[tag] = len(self.tags)
            self.tags.append(tag)
        self.tag_index[raw_tag] = t  # the spelling as written, for the next rows
        return t

    def _read_long(self, path_col, tag_col, value_col, ncols, first=None) -> None:
        # The per-row work is inlined: this loop runs millions of times.
        reader, offset = self.reader, self.offset
        rows = itertools.chain((first,), reader) if first is not None else reader
        prev = reader.line_num - (1 if first is not None else 0)
        tag_index, words, match = self.tag_index, _VALUE_WORDS, self.matcher.match
        rel_app, tag_app = self.rel.append, self.tag.append
        val_app, line_app = self.val.append, self.line.append
        try:
            for row in rows:
                line_no = offset + prev + 1
                prev = reader.line_num
                if len(row) != ncols and self._bad_width(row, line_no, ncols):
                    continue
                raw = row[path_col]
                if not raw or raw.isspace():
                    raise CsvFormatError(self.path, line_no, "empty path")
                t = tag_index.get(row[tag_col])
                if t is None:
                    t = self._new_tag(row[tag_col], line_no)
                if value_col is None:
                    code = 0
                else:
                    code = words.get(row[value_col])
                    if code is None:
                        code = self._value(row[value_col], line_no, "")
                        if code is None:
                            self.no_value += 1
                            continue
                idx, reason = match(raw)
                if idx is None:
                    self._unmatched(line_no, raw, reason)
                    continue
                rel_app(idx)
                tag_app(t)
                val_app(code)
                line_app(line_no)
        except csv.Error as exc:
            raise _csv_error(self.path, offset + prev + 1, offset + reader.line_num, exc) from None

    def _read_wide(self, ncols) -> None:
        reader, offset = self.reader, self.offset
        prev = reader.line_num
        words = _VALUE_WORDS
        tags = self.tags
        try:
            for row in reader:
                line_no = offset + prev + 1
                prev = reader.line_num
                if len(row) != ncols and self._bad_width(row, line_no, ncols):
                    continue
                raw = row[0]
                if not raw or raw.isspace():
                    raise CsvFormatError(self.path, line_no, "empty path")
                found = []
                for t, cell in enumerate(row[1:]):
                    if not cell:
                        self.no_value += 1
                        continue
                    code = words.get(cell)
                    if code is None:
                        code = self._value(cell, line_no, f" in column {tags[t]!r}")
                        if code is None:
                            self.no_value += 1
                            continue
                    found.append((t, code))
                idx, reason = self.matcher.match(raw)
                if idx is None:
                    self._unmatched(line_no, raw, reason)
                    continue
                for t, code in found:
                    self.rel.append(idx)
                    self.tag.append(t)
                    self.val.append(code)
                    self.line.append(line_no)
        except csv.Error as exc:
            raise _csv_error(self.path, offset + prev + 1, offset + reader.line_num, exc) from None

    # -- end ----------------------------------------------------------------

    def finish(self, provenance: dict) -> ImportPlan:
        rel = np.frombuffer(self.rel, dtype=np.uint32) if len(self.rel) else np.zeros(0, np.uint32)
        tag = np.frombuffer(self.tag, dtype=np.uint32) if len(self.tag) else np.zeros(0, np.uint32)
        val = np.frombuffer(self.val, dtype=np.int8) if len(self.val) else np.zeros(0, np.int8)
        line = np.frombuffer(self.line, dtype=np.int64) if len(self.line) else np.zeros(0, np.int64)
        keep, duplicates = self._dedupe(rel, tag, val, line)
        if keep is not None:
            rel, tag, val, line = rel[keep], tag[keep], val[keep], line[keep]
        else:
            rel, tag, val, line = rel.copy(), tag.copy(), val.copy(), line.copy()
        rows = LabelRows(self.matcher.relpaths, self.tags, rel, tag, val, line)
        return ImportPlan(
            path=self.path,
            format=self.format,
            rows=rows,
            unmatched=self.unmatched,
            unmatched_count=self.unmatched_count,
            duplicates=duplicates,
            no_value=self.no_value,
            tags=list(self.tags),
            provenance=provenance,
        )

    def _dedupe(self, rel, tag, val, line) -> tuple[np.ndarray | None, int]:
        """Drop repeated (file, tag) rows; raise if two of them disagree.

        Sorting the keys (rather than a dict of every label seen while
        reading) keeps memory at a few bytes per row.
        """
        n = len(rel)
        if n < 2:
            return None, 0
        key = tag.astype(np.int64) * max(len(self.matcher.relpaths), 1) + rel
        order = np.argsort(key, kind="stable")
        skey = key[order]
        del key
        first = np.empty(n, dtype=bool)
        first[0] = True
        np.not_equal(skey[1:], skey[:-1], out=first[1:])
        del skey
        if first.all():
            return None, 0
        run_start = np.flatnonzero(first)[np.cumsum(first) - 1]
        sval = val[order]
        conflict = sval != sval[run_start]
        if conflict.any():
            # Report the earliest line that contradicts an earlier one.
            bad = np.flatnonzero(conflict)
            later = order[bad]
            k = int(np.argmin(line[later]))
            i_later = int(later[k])
            i_first = int(order[run_start[bad[k]]])
            relpath = self.matcher.relpaths[int(rel[i_later])]
            raise CsvFormatError(
                self.path,
                int(line[i_later]),
                f"{relpath!r} / tag {self.tags[int(tag[i_later])]!r} is "
                f"{VALUES[int(val[i_later])]} here but {VALUES[int(val[i_first])]} "
                f"on line {int(line[i_first])}",
            )
        keep = np.ones(n, dtype=bool)
        keep[order[~first]] = False
        return keep, int(n - first.sum())


# --- writing -----------------------------------------------------------------


def _fmt_number(x: float | None) -> str:
    if x is None:
        return ""
    x = float(x)
    if math.isnan(x):
        return ""
    return format(x, ".6g")


def _fmt_time(t: Any) -> str:
    if t is None or t == "":
        return ""
    if isinstance(t, datetime):
        if t.tzinfo is None:
            return t.isoformat(timespec="seconds")
        return t.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    if isinstance(t, int | float):
        return _fmt_time(datetime.fromtimestamp(float(t), UTC))
    return str(t)


def _fmt_decision(d: Any) -> str:
    if d is None or d == "":
        return ""
    if d not in VALUES:
        raise ValueError(f"decision must be one of {VALUES} or empty, not {d!r}")
    return d


def _fmt_bool(b: Any) -> str:
    if b is None or b == "":
        return ""
    return "1" if b else "0"


def wide_cell(decision: str | None, predicted: bool | None = None) -> str:
    """The cell of the wide export for one track and tag.

    The human decision wins: ``positive`` gives ``1``, ``negative`` gives
    ``0``, ``skip`` gives empty. Without a decision, a prediction above the
    threshold gives ``1``; anything else (below the threshold, no model)
    gives empty: ``0`` is kept for tracks someone said are *not* the tag.

    Parameters
    ----------
    decision : str or None
        ``positive``, ``negative``, ``skip``, or None/empty.
    predicted : bool or None
        The model's prediction at the threshold, if any.

    Returns
    -------
    str
        ``"1"``, ``"0"`` or ``""``.
    """
    d = _fmt_decision(decision)
    if d == "positive":
        return "1"
    if d == "negative":
        return "0"
    if d == "skip":
        return ""
    return "1" if predicted else ""


def _provenance_lines(prov: Mapping[str, Any]) -> list[str]:
    return [
        f"# {key}: {json.dumps(value, ensure_ascii=False, default=str)}"
        for key, value in prov.items()
    ]


def _full_provenance(kind: str, provenance: Mapping[str, Any], extra: Mapping[str, Any]) -> dict:
    prov: dict[str, Any] = {
        "export": "tagger_gui labels",
        "format": kind,
        "format_version": FORMAT_VERSION,
        "tagger_version": __version__,
        "exported": _fmt_time(datetime.now(UTC)),
    }
    prov.update(extra)
    for key, value in provenance.items():
        if " " in str(key) or ":" in str(key) or not str(key):
            raise ValueError(f"provenance key {key!r}: use a word without spaces or colons")
        prov.setdefault(str(key), value if not isinstance(value, os.PathLike) else str(value))
    return prov


def _write_atomic(
    path: Path, header: Sequence[str], body: Iterable[Sequence[str]], prov: dict, comment: bool
) -> int:
    """Write the CSV and its sidecar through temporary files and os.replace."""
    path = Path(path)
    sidecar = path.with_name(path.name + ".json")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp_side = sidecar.with_name(f".{sidecar.name}.{os.getpid()}.tmp")
    n = 0
    try:
        with open(tmp, "w", encoding="utf-8", newline="") as fh:
            if comment:
                for line in _provenance_lines(prov):
                    fh.write(line + "\r\n")
            writer = csv.writer(fh, quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n")
            writer.writerow(header)
            for row in body:
                writer.writerow(row)
                n += 1
            fh.flush()
            os.fsync(fh.fileno())
        side = {"provenance": prov, "file": path.name, "rows": n, "columns": list(header)}
        with open(tmp_side, "w", encoding="utf-8", newline="\n") as fh:
            json.dump(side, fh, ensure_ascii=False, indent=2, default=str)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        os.replace(tmp_side, sidecar)
        fsync_dir(path.parent)
    finally:
        for t in (tmp, tmp_side):
            try:
                t.unlink()
            except FileNotFoundError:
                pass
    return n


def _check_cell(text: str, what: str) -> str:
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"{what} must be a non-empty string, not {text!r}")
    return text


def write_long_csv(
    path: str | os.PathLike,
    rows: Iterable[Mapping[str, Any] | Sequence[Any]],
    *,
    provenance: Mapping[str, Any],
    comment: bool = True,
) -> int:
    """Write labels and predictions, one row per track and tag.

    Parameters
    ----------
    path : str or path-like
        The CSV file to write (replaced atomically); ``<path>.json`` gets the
        provenance.
    rows : iterable of mapping or sequence
        Each a mapping with the keys of :data:`LONG_COLUMNS` (missing ones are
        empty), or a sequence in that order: path (relative to the library),
        tag, decision (``positive``/``negative``/``skip``/empty), source,
        score (float or None), predicted (bool or None), threshold, feature
        (``backend/output``), probe_version, time (ISO string, datetime or
        POSIX seconds; written as UTC ISO 8601).
    provenance : mapping
        What the export was made from (``library_root``, ``project``, ...);
        written as ``# key: value`` lines and in the sidecar, after our own
        keys (format, format_version, tagger_version, exported).
    comment : bool
        Write the provenance comment lines at the top (tools that cannot skip
        ``#`` lines can use the sidecar alone).

    Returns
    -------
    int
        The number of rows written.
    """
    ncols = len(LONG_COLUMNS)

    def body() -> Iterator[list[str]]:
        for row in rows:
            if isinstance(row, Mapping):
                unknown = set(row) - set(LONG_COLUMNS)
                if unknown:
                    raise ValueError(f"unknown columns {sorted(unknown)}")
                vals = [row.get(c) for c in LONG_COLUMNS]
            else:
                vals = list(row)
                if len(vals) > ncols:
                    raise ValueError(f"a row has {len(vals)} values; at most {ncols}")
                vals += [None] * (ncols - len(vals))
            p, tag, dec, src, score, pred, thr, feat, probe, t = vals
            yield [
                _check_cell(p, "path"),
                _check_cell(tag, "tag"),
                _fmt_decision(dec),
                "" if src is None else str(src),
                _fmt_number(score),
                _fmt_bool(pred),
                _fmt_number(thr),
                "" if feat is None else str(feat),
                "" if probe is None else str(probe),
                _fmt_time(t),
            ]

    prov = _full_provenance("long", provenance, {"columns": list(LONG_COLUMNS)})
    return _write_atomic(Path(path), LONG_COLUMNS, body(), prov, comment)


def write_wide_csv(
    path: str | os.PathLike,
    rows: Iterable[tuple[str, Mapping[str, Any]]],
    *,
    tags: Sequence[str],
    provenance: Mapping[str, Any],
    comment: bool = True,
) -> int:
    """Write one row per track and one column per tag.

    Parameters
    ----------
    path : str or path-like
        The CSV file to write (replaced atomically); ``<path>.json`` gets the
        provenance.
    rows : iterable of (str, mapping)
        ``(relpath, cells)`` where ``cells`` maps a tag to a decision string
        (``positive``/``negative``/``skip``), a ``(decision, predicted)``
        pair (see :func:`wide_cell`), a bool/int (1 or 0 as given), or None.
        Tags missing from ``cells`` are empty.
    tags : sequence of str
        The tag columns, in order.
    provenance : mapping
        As for :func:`write_long_csv`.
    comment : bool
        Write the provenance comment lines at the top.

    Returns
    -------
    int
        The number of rows written.

    Notes
    -----
    Cells: ``1`` positive (a person's, or else predicted at the threshold),
    ``0`` negative (a person's), empty unknown (no decision and not
    predicted, or skipped).
    """
    tags = [_check_cell(t, "tag") for t in tags]
    if len(set(tags)) != len(tags):
        raise ValueError("tags must be unique")
    tagset = set(tags)

    def cell(v: Any) -> str:
        if v is None or v == "":
            return ""
        if isinstance(v, str):
            return wide_cell(v)
        if isinstance(v, tuple):
            return wide_cell(*v)
        if isinstance(v, bool | int | np.integer | np.bool_):
            return "1" if v else "0"
        raise ValueError(f"cannot write {v!r} in a wide cell")

    def body() -> Iterator[list[str]]:
        for relpath, cells in rows:
            unknown = set(cells) - tagset
            if unknown:
                raise ValueError(f"{relpath}: tags not among the columns: {sorted(unknown)}")
            yield [_check_cell(relpath, "path")] + [cell(cells.get(t)) for t in tags]

    extra = {
        "values": "1 = positive (a person's, or else predicted at the threshold); "
        "0 = negative (a person's); empty = unknown",
    }
    prov = _full_provenance("wide", provenance, extra)
    return _write_atomic(Path(path), ["path", *tags], body(), prov, comment)

"""One exception hierarchy for the package (as librosa does)."""

from __future__ import annotations


class TaggerError(Exception):
    """Base class of every error raised on purpose by tagger_gui."""


class AudioError(TaggerError):
    """An audio file could not be used. The message names the file and the reason."""

    def __init__(self, path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class BackendError(TaggerError):
    """An embedding backend is unknown or cannot be loaded."""


class CheckpointError(BackendError):
    """A TensorFlow checkpoint could not be read."""


class CacheError(TaggerError):
    """The embedding cache is unreadable, of an unknown version, or inconsistent."""


class ProjectError(TaggerError):
    """A tagging project is missing, unreadable, of an unknown version, or misused."""


class ProjectLockedError(ProjectError):
    """Another process has the project open for writing."""


class CsvFormatError(TaggerError):
    """A CSV file cannot be imported. The message names the file and the line."""

    def __init__(self, path, line: int | None, reason: str):
        self.path = str(path)
        self.line = line
        self.reason = reason
        where = f"{self.path}, line {line}" if line is not None else self.path
        super().__init__(f"{where}: {reason}")


class WritebackError(TaggerError):
    """Tags cannot be written into audio files, or a write-back journal cannot be used."""

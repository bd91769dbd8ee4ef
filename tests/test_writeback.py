"""Write-back of tags into audio files: audio never touched, undo restores, skips are safe."""

from __future__ import annotations

import io
import json
import os
import struct
from pathlib import Path

import mutagen
import numpy as np
import pytest
import soundfile as sf
from mutagen.id3 import TIT2, TXXX
from mutagen.ogg import OggPage

from tagger_gui.core.errors import WritebackError
from tagger_gui.core.project import writeback as wb
from tagger_gui.core.project.writeback import (
    DEFAULT_FIELD,
    apply_writeback,
    apply_writeback_task,
    format_preview,
    plan_writeback,
    read_field,
    undo_writeback,
)

from .conftest import music_like, write_audio

TAGS = ["jazz", "sea shanty", "Björk-ish, 日本語 / lo-fi"]


# --- files ---------------------------------------------------------------------------


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def _full(kind: bytes, payload: bytes, flags: int = 0) -> bytes:
    return _box(kind, struct.pack(">I", flags) + payload)


def write_m4a(path: Path, seconds: float = 1.0) -> Path:
    """A minimal MP4 audio file: 16-bit PCM ('sowt') samples in one chunk.

    No encoder is needed (soundfile cannot write MP4, ffmpeg may be absent);
    moov comes before mdat, so a growing tag moves the audio and mutagen must
    update the chunk offset (stco), which the test checks.
    """
    pcm = (music_like(seconds, 44100, 2) * 32767).astype("<i2").tobytes()
    frame = 4 * 1024
    pcm = pcm[: len(pcm) // frame * frame]
    n = len(pcm) // frame
    matrix = struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)

    def moov(offset: int) -> bytes:
        dur = n * 1024
        mvhd = _full(
            b"mvhd",
            struct.pack(">4IIH", 0, 0, 44100, dur, 0x10000, 0x100)
            + b"\0" * 10
            + matrix
            + b"\0" * 24
            + struct.pack(">I", 2),
        )
        tkhd = _full(
            b"tkhd",
            struct.pack(">5I", 0, 0, 1, 0, dur)
            + b"\0" * 8
            + struct.pack(">4H", 0, 0, 0x100, 0)
            + matrix
            + struct.pack(">2I", 0, 0),
            flags=7,
        )
        mdhd = _full(b"mdhd", struct.pack(">4I2H", 0, 0, 44100, dur, 0x55C4, 0))
        hdlr = _full(b"hdlr", b"\0" * 4 + b"soun" + b"\0" * 12 + b"SoundHandler\0")
        entry = _box(
            b"sowt",
            b"\0" * 6
            + struct.pack(">H", 1)
            + b"\0" * 8
            + struct.pack(">4HI", 2, 16, 0, 0, 44100 << 16)
            + _box(b"free", b""),
        )
        stbl = _box(
            b"stbl",
            _full(b"stsd", struct.pack(">I", 1) + entry)
            + _full(b"stts", struct.pack(">3I", 1, n, 1024))
            + _full(b"stsc", struct.pack(">4I", 1, 1, n, 1))
            + _full(b"stsz", struct.pack(">2I", frame, n))
            + _full(b"stco", struct.pack(">2I", 1, offset)),
        )
        dinf = _box(b"dinf", _full(b"dref", struct.pack(">I", 1) + _full(b"url ", b"", flags=1)))
        minf = _box(b"minf", _full(b"smhd", b"\0" * 4) + dinf + stbl)
        trak = _box(b"trak", tkhd + _box(b"mdia", mdhd + hdlr + minf))
        return _box(b"moov", mvhd + trak)

    ftyp = _box(b"ftyp", b"M4A " + b"\0" * 4 + b"M4A isomiso2")
    offset = len(ftyp) + len(moov(0)) + 8
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(ftyp + moov(offset) + _box(b"mdat", pcm))
    return path


def make(path: Path, seed: int = 0) -> Path:
    if path.suffix == ".m4a":
        return write_m4a(path)
    if path.suffix == ".aiff":
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, music_like(2, 44100, 2, seed), 44100, format="AIFF", subtype="PCM_16")
        return path
    return write_audio(path, 2, seed=seed)


# --- the audio payload of each format, read independently of mutagen -----------------


def _chunks(data: bytes, start: int, big_endian: bool) -> dict[bytes, bytes]:
    out, pos = {}, start
    fmt = ">I" if big_endian else "<I"
    while pos + 8 <= len(data):
        kind = data[pos : pos + 4]
        (size,) = struct.unpack(fmt, data[pos + 4 : pos + 8])
        out[kind] = data[pos + 8 : pos + 8 + size]
        pos += 8 + size + (size & 1)
    return out


def _mp4_payload(data: bytes) -> bytes:
    def find(buf: bytes, path: list[bytes], base: int = 0) -> tuple[int, bytes]:
        pos = 0
        while pos < len(buf):
            size, kind = struct.unpack(">I4s", buf[pos : pos + 8])
            if kind == path[0]:
                body = buf[pos + 8 : pos + size]
                if len(path) == 1:
                    return base + pos + 8, body
                return find(body, path[1:], base + pos + 8)
            pos += size
        raise AssertionError(f"no {path[0]!r} box")

    stbl = [b"moov", b"trak", b"mdia", b"minf", b"stbl"]
    _, stco = find(data, [*stbl, b"stco"])
    _, stsz = find(data, [*stbl, b"stsz"])
    (offset,) = struct.unpack(">I", stco[8:12])
    size, count = struct.unpack(">2I", stsz[4:12])
    mdat_at, _ = find(data, [b"mdat"])
    assert offset == mdat_at, "the chunk offset no longer points at the audio"
    return data[offset : offset + size * count]


def audio_payload(path: Path) -> object:
    """The bytes (or packets) of the audio stream, whatever the tags around them."""
    data = path.read_bytes()
    ext = path.suffix
    if ext == ".mp3":
        start = 0
        if data[:3] == b"ID3":
            size = sum((b & 0x7F) << (7 * (3 - i)) for i, b in enumerate(data[6:10]))
            start = 10 + size + (10 if data[5] & 0x10 else 0)
        end = len(data) - 128 if data[-128:-125] == b"TAG" else len(data)
        return data[start:end]
    if ext == ".flac":
        assert data[:4] == b"fLaC"
        pos = 4
        while True:
            last, length = data[pos] & 0x80, int.from_bytes(data[pos + 1 : pos + 4], "big")
            pos += 4 + length
            if last:
                return data[pos:]
    if ext == ".wav":
        assert data[:4] == b"RIFF" and data[8:12] == b"WAVE"
        assert struct.unpack("<I", data[4:8])[0] == len(data) - 8
        chunks = _chunks(data, 12, big_endian=False)
        return chunks[b"fmt "], chunks[b"data"]
    if ext == ".aiff":
        assert data[:4] == b"FORM"
        assert struct.unpack(">I", data[4:8])[0] == len(data) - 8
        chunks = _chunks(data, 12, big_endian=True)
        return chunks[b"COMM"], chunks[b"SSND"]
    if ext in (".ogg", ".opus"):
        fh = io.BytesIO(data)
        pages = []
        while fh.tell() < len(data):
            pages.append(OggPage(fh))
        packets = OggPage.to_packets(pages, strict=False)
        headers = 3 if ext == ".ogg" else 2
        return packets[headers:], pages[-1].position, pages[-1].last
    if ext == ".m4a":
        return _mp4_payload(data)
    raise AssertionError(ext)


def decoded(path: Path) -> np.ndarray | None:
    if path.suffix == ".m4a":
        return None
    y, _ = sf.read(path, dtype="float32")
    return y


FORMATS = [".mp3", ".wav", ".aiff", ".flac", ".ogg", ".opus", ".m4a"]
# ID3 in front (mp3) or in a chunk (wav, aiff): undo removes it and the file is
# byte for byte the original again. Vorbis comments keep their new padding,
# and MP4 an empty metadata box.
BYTE_IDENTICAL_AFTER_UNDO = {".mp3", ".wav", ".aiff"}


@pytest.mark.parametrize("ext", FORMATS)
def test_audio_untouched_by_write_and_undo(tmp_path: Path, ext: str):
    root = tmp_path / "lib"
    path = make(root / f"Album/track{ext}")
    original = path.read_bytes()
    payload, pcm = audio_payload(path), decoded(path)

    plan = plan_writeback(root, {f"Album/track{ext}": TAGS})
    assert [c.action for c in plan] == ["write"]
    assert plan[0].old == [] and plan[0].new == TAGS
    report = apply_writeback(root, plan, journal_path=tmp_path / "j.jsonl")
    assert report.written == [f"Album/track{ext}"], report.results
    assert path.read_bytes() != original
    assert read_field(path) == TAGS
    assert audio_payload(path) == payload
    if pcm is not None:
        np.testing.assert_array_equal(decoded(path), pcm)
    st = path.stat()
    assert report.new_stats == {f"Album/track{ext}": (st.st_size, st.st_mtime_ns)}

    undo = undo_writeback(tmp_path / "j.jsonl")
    assert undo.written == [f"Album/track{ext}"], undo.results
    assert read_field(path) == []
    assert audio_payload(path) == payload
    if pcm is not None:
        np.testing.assert_array_equal(decoded(path), pcm)
    if ext in BYTE_IDENTICAL_AFTER_UNDO:
        assert path.read_bytes() == original


def test_each_format_uses_its_documented_field(tmp_path: Path):
    root = tmp_path / "lib"
    for ext in FORMATS:
        make(root / f"t{ext}")
    plan = plan_writeback(root, {f"t{ext}": ["a", "b"] for ext in FORMATS}, field="My Tags")
    assert {c.format: c.field for c in plan} == {
        "mp3": "TXXX:My Tags",
        "wav": "TXXX:My Tags",
        "aiff": "TXXX:My Tags",
        "flac": "MY TAGS",
        "ogg-vorbis": "MY TAGS",
        "ogg-opus": "MY TAGS",
        "mp4": "----:com.apple.iTunes:My Tags",
    }
    apply_writeback(root, plan, journal_path=tmp_path / "j")
    mp3 = mutagen.File(root / "t.mp3")
    assert mp3.tags.version == (2, 4, 0)
    assert mp3.tags.getall("TXXX:My Tags")[0].text == ["a", "b"]
    assert mutagen.File(root / "t.flac").tags["MY TAGS"] == ["a", "b"]
    opus = mutagen.File(root / "t.opus")
    assert [v for k, v in opus.tags if k.upper() == "MY TAGS"] == ["a", "b"]  # repeated field
    mp4 = mutagen.File(root / "t.m4a")
    assert [bytes(v) for v in mp4.tags["----:com.apple.iTunes:My Tags"]] == [b"a", b"b"]


def test_id3_v23_option_and_existing_tags_kept(tmp_path: Path):
    root = tmp_path / "lib"
    path = make(root / "t.mp3")
    tags = mutagen.File(path)
    tags.add_tags()
    tags.tags.add(TIT2(encoding=3, text=["A title"]))
    tags.tags.add(TXXX(encoding=3, desc=DEFAULT_FIELD, text=["old one"]))
    tags.save(v2_version=3)
    payload = audio_payload(path)

    plan = plan_writeback(root, {"t.mp3": ["jazz", "rock"]}, id3_version=3)
    assert plan[0].old == ["old one"]
    apply_writeback(root, plan, journal_path=tmp_path / "j")
    f = mutagen.File(path)
    assert f.tags.version == (2, 3, 0)
    assert f.tags.getall(f"TXXX:{DEFAULT_FIELD}")[0].text == ["jazz; rock"]
    assert f.tags["TIT2"].text == ["A title"]
    # planning again sees nothing to do (the v2.3 joined value counts as equal)
    assert plan_writeback(root, {"t.mp3": ["rock", "jazz"]}, id3_version=3)[0].action == "none"

    undo_writeback(tmp_path / "j")
    f = mutagen.File(path)
    assert f.tags.version == (2, 3, 0)
    assert read_field(path) == ["old one"]
    assert f.tags["TIT2"].text == ["A title"]
    assert audio_payload(path) == payload


def test_removing_the_field_and_undo_puts_it_back(tmp_path: Path):
    root = tmp_path / "lib"
    path = make(root / "t.flac")
    f = mutagen.File(path)
    f.tags["tagger_tags"] = ["x", "y"]  # another case: Vorbis names are case-insensitive
    f.save()
    plan = plan_writeback(root, {"t.flac": []})
    assert plan[0].old == ["x", "y"] and plan[0].action == "remove"
    assert "(removed)" in format_preview(plan)
    apply_writeback(root, plan, journal_path=tmp_path / "j")
    assert read_field(path) == []
    undo_writeback(tmp_path / "j")
    assert read_field(path) == ["x", "y"]


# --- dry run and preview -----------------------------------------------------------------


def test_dry_run_changes_nothing(tmp_path: Path):
    root = tmp_path / "lib"
    paths = [make(root / f"t{ext}") for ext in FORMATS]
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in paths}
    plan = plan_writeback(root, {p.name: TAGS for p in paths})
    text = format_preview(plan)
    assert all(c.action == "write" for c in plan)
    for p in paths:
        assert p.name in text
    assert "7 to write" in text and TAGS[2] in text
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in paths} == before
    assert sorted(x.name for x in root.iterdir()) == sorted(p.name for p in paths)


def test_unsupported_and_unreadable_files_are_skipped(tmp_path: Path):
    root = tmp_path / "lib"
    root.mkdir()
    (root / "fake.mp3").write_text("not audio at all\n")
    sf.write(root / "t.au", music_like(1, 8000, 1), 8000, format="AU")
    make(tmp_path / "outside.mp3")
    wanted = {"fake.mp3": ["x"], "t.au": ["x"], "gone.flac": ["x"], "../outside.mp3": ["x"]}
    plan = plan_writeback(root, wanted)
    reasons = {c.relpath: c.skip_reason for c in plan}
    assert reasons["../outside.mp3"] == "not a path inside the library folder"
    assert "tags cannot be read" in reasons["fake.mp3"]
    assert "unsupported format" in reasons["t.au"]
    assert "cannot be found" in reasons["gone.flac"]
    report = apply_writeback(root, plan, journal_path=tmp_path / "j")
    assert len(report.skipped) == 4 and not report.written
    assert (root / "fake.mp3").read_text() == "not audio at all\n"


def test_bad_arguments(tmp_path: Path):
    with pytest.raises(ValueError, match="'='"):
        plan_writeback(tmp_path, {}, field="A=B")
    with pytest.raises(ValueError, match="id3_version"):
        plan_writeback(tmp_path, {}, id3_version=2)
    with pytest.raises(TypeError, match="list of tags"):
        plan_writeback(tmp_path, {"a.mp3": "jazz"})
    with pytest.raises(ValueError, match="non-empty"):
        plan_writeback(tmp_path, {"a.mp3": ["jazz", " "]})


# --- skips: read-only, changed files ---------------------------------------------------------


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() == 0,
    reason="running as root: chmod does not stop root writing (the simulated test covers it)",
)
def test_read_only_file_is_skipped(tmp_path: Path):
    root = tmp_path / "lib"
    path = make(root / "t.mp3")
    path.chmod(0o444)
    before = path.read_bytes()
    plan = plan_writeback(root, {"t.mp3": TAGS})
    assert plan[0].skip_reason == "read-only file" and plan[0].old == []
    report = apply_writeback(root, plan, journal_path=tmp_path / "j")
    assert report.skipped == [("t.mp3", "read-only file")]
    assert path.read_bytes() == before


def test_read_only_file_is_skipped_simulated(tmp_path: Path, monkeypatch):
    """As root every file is writable, so the permission check is stood in for."""
    root = tmp_path / "lib"
    ro, rw = make(root / "ro.flac"), make(root / "rw.flac", seed=1)
    before = ro.read_bytes()
    real = wb._is_writable
    monkeypatch.setattr(wb, "_is_writable", lambda p: Path(p) != ro and real(p))
    plan = plan_writeback(root, {"ro.flac": TAGS, "rw.flac": TAGS})
    assert [c.action for c in plan] == ["skip", "write"]
    assert "SKIP   ro.flac: read-only file" in format_preview(plan)
    report = apply_writeback(root, plan, journal_path=tmp_path / "j")
    assert report.skipped == [("ro.flac", "read-only file")] and report.written == ["rw.flac"]
    assert ro.read_bytes() == before and read_field(rw) == TAGS

    # a file that became read-only between the preview and the write
    plan = plan_writeback(root, {"rw.flac": ["other"]})
    monkeypatch.setattr(wb, "_is_writable", lambda p: False)
    report = apply_writeback(root, plan, journal_path=tmp_path / "j2")
    assert report.skipped == [("rw.flac", "read-only file")]
    assert read_field(rw) == TAGS


def test_changed_since_analysed_is_skipped(tmp_path: Path):
    root = tmp_path / "lib"
    a, b = make(root / "a.ogg"), make(root / "b.ogg", seed=1)
    st_a, st_b = a.stat(), b.stat()
    expected = {
        "a.ogg": (st_a.st_size, st_a.st_mtime_ns),
        "b.ogg": (st_b.st_size, st_b.st_mtime_ns),
    }
    os.utime(b, ns=(st_b.st_atime_ns, st_b.st_mtime_ns + 1_000_000_000))
    make(root / "c.ogg", seed=2)  # never analysed
    plan = plan_writeback(root, {"a.ogg": TAGS, "b.ogg": TAGS, "c.ogg": TAGS}, expected=expected)
    assert [c.action for c in plan] == ["write", "skip", "skip"]
    assert "changed since it was analysed" in plan[1].skip_reason
    assert "not among the analysed" in plan[2].skip_reason


def test_file_changed_after_the_preview_is_skipped(tmp_path: Path):
    root = tmp_path / "lib"
    path = make(root / "a.mp3")
    plan = plan_writeback(root, {"a.mp3": TAGS})
    with open(path, "ab") as fh:  # another program writes to it meanwhile
        fh.write(b"\0" * 10)
    changed = path.read_bytes()
    report = apply_writeback(root, plan, journal_path=tmp_path / "j")
    assert report.skipped == [("a.mp3", "changed since the preview; plan again")]
    assert path.read_bytes() == changed


# --- failures, cancel, journal, undo ---------------------------------------------------------


def test_undo_after_a_partial_failure(tmp_path: Path, monkeypatch):
    root = tmp_path / "lib"
    paths = [make(root / f"{i}{ext}", seed=i) for i, ext in enumerate([".mp3", ".flac", ".opus"])]
    before = {p: p.read_bytes() for p in paths}
    payloads = {p: audio_payload(p) for p in paths}
    real_save = wb._VorbisFormat.save

    def failing_save(self, audio, path, id3_version):
        if Path(path).name.startswith(".1.flac"):  # the temporary copy of 1.flac
            raise OSError(28, "No space left on device")
        return real_save(self, audio, path, id3_version)

    monkeypatch.setattr(wb._VorbisFormat, "save", failing_save)
    plan = plan_writeback(root, {p.name: TAGS for p in paths})
    report = apply_writeback(root, plan, journal_path=tmp_path / "j")
    assert report.written == ["0.mp3", "2.opus"]
    assert report.failed == [("1.flac", "OSError: [Errno 28] No space left on device")]
    assert paths[1].read_bytes() == before[paths[1]]  # never half-written
    assert not [p for p in root.iterdir() if p.name.startswith(".")]  # no temporary left

    ops = [json.loads(line)["op"] for line in (tmp_path / "j").read_text().splitlines()[1:]]
    assert ops == ["write", "done", "write", "failed", "write", "done"]

    monkeypatch.undo()
    undo = undo_writeback(tmp_path / "j")
    assert undo.written == ["0.mp3", "2.opus"] and undo.unchanged == 1
    for p in paths:
        assert read_field(p) == []
        assert audio_payload(p) == payloads[p]
    assert paths[0].read_bytes() == before[paths[0]]
    # undoing again finds nothing left to do
    again = undo_writeback(tmp_path / "j")
    assert again.results == []


def test_cancel_between_files_and_undo(tmp_path: Path):
    root = tmp_path / "lib"
    paths = [make(root / f"{i}.wav", seed=i) for i in range(3)]
    before = {p: p.read_bytes() for p in paths}
    plan = plan_writeback(root, {p.name: TAGS for p in paths})
    task = apply_writeback_task(root, plan, journal_path=tmp_path / "j")
    progress = [next(task), next(task)]  # before file 0, before file 1
    assert [p.current for p in progress] == ["0.wav", "1.wav"]
    task.close()  # the user pressed Cancel
    assert read_field(paths[0]) == TAGS
    assert paths[1].read_bytes() == before[paths[1]]
    assert paths[2].read_bytes() == before[paths[2]]
    undo = undo_writeback(tmp_path / "j")
    assert undo.written == ["0.wav"]
    assert all(p.read_bytes() == before[p] for p in paths)


def test_undo_survives_a_torn_last_journal_line(tmp_path: Path):
    root = tmp_path / "lib"
    path = make(root / "a.mp3")
    before = path.read_bytes()
    apply_writeback(root, plan_writeback(root, {"a.mp3": TAGS}), journal_path=tmp_path / "j")
    with open(tmp_path / "j", "a") as fh:
        fh.write('{"op": "write", "relpath": "b.mp3", "ol')  # a crash mid-append
    assert undo_writeback(tmp_path / "j").written == ["a.mp3"]
    assert path.read_bytes() == before


def test_undo_leaves_a_field_changed_since_unless_forced(tmp_path: Path):
    root = tmp_path / "lib"
    path = make(root / "a.flac")
    apply_writeback(root, plan_writeback(root, {"a.flac": TAGS}), journal_path=tmp_path / "j")
    f = mutagen.File(path)
    f.tags[DEFAULT_FIELD] = ["edited by hand"]
    f.save()
    undo = undo_writeback(tmp_path / "j")
    assert undo.skipped and "changed since the write-back" in undo.skipped[0][1]
    assert read_field(path) == ["edited by hand"]
    assert undo_writeback(tmp_path / "j", force=True).written == ["a.flac"]
    assert read_field(path) == []


def test_journal_must_be_new_and_valid(tmp_path: Path):
    root = tmp_path / "lib"
    make(root / "a.mp3")
    (tmp_path / "j").write_text("x")
    with pytest.raises(WritebackError, match="exists"):
        apply_writeback(root, plan_writeback(root, {"a.mp3": TAGS}), journal_path=tmp_path / "j")
    with pytest.raises(WritebackError, match="not a tagger_gui"):
        undo_writeback(tmp_path / "j")
    (tmp_path / "k").write_text(
        json.dumps({"journal": "tagger_gui writeback journal", "version": 99}) + "\n"
    )
    with pytest.raises(WritebackError, match="version 99"):
        undo_writeback(tmp_path / "k")


def test_unicode_paths(tmp_path: Path):
    root = tmp_path / "Musique à moi"
    rels = ["Björk – Jóga 日本語.mp3", "Ünïcødé/曲 ♫.flac", "Ünïcødé/ça va.opus"]
    paths = [make(root / rel, seed=i) for i, rel in enumerate(rels)]
    payloads = [audio_payload(p) for p in paths]
    report = apply_writeback(
        root, plan_writeback(root, {r: TAGS for r in rels}), journal_path=tmp_path / "日志.jsonl"
    )
    assert report.written == rels
    assert [read_field(p) for p in paths] == [TAGS] * 3
    assert undo_writeback(tmp_path / "日志.jsonl").written == rels
    assert [audio_payload(p) for p in paths] == payloads
    assert [read_field(p) for p in paths] == [[]] * 3


def test_copy_and_replace_but_in_place_for_hard_links(tmp_path: Path):
    root = tmp_path / "lib"
    single = make(root / "single.flac")
    linked = make(root / "linked.flac", seed=1)
    other = tmp_path / "other-link.flac"
    os.link(linked, other)
    ino_single, ino_linked = single.stat().st_ino, linked.stat().st_ino
    single.chmod(0o640)
    apply_writeback(
        root,
        plan_writeback(root, {"single.flac": TAGS, "linked.flac": TAGS}),
        journal_path=tmp_path / "j",
    )
    # a new inode for the single file (written to a copy, then replaced) ...
    assert single.stat().st_ino != ino_single
    assert single.stat().st_mode & 0o777 == 0o640
    # ... but a hard-linked file is written in place so every link sees it
    assert linked.stat().st_ino == ino_linked
    assert read_field(other) == TAGS

"""Read TensorFlow 1.x "V2" checkpoint bundles with numpy only.

A V2 checkpoint written by ``tf.compat.v1.train.Saver`` is a *bundle*: for a
prefix ``P`` there is ``P.index`` and one or more ``P.data-NNNNN-of-MMMMM``
shards. The musicnn wheel stores its checkpoints with the folder itself as the
prefix, so the files are called ``<MODEL>/.index`` and
``<MODEL>/.data-00000-of-00001``.

``.index`` is an SSTable in the LevelDB table format:

* the last 48 bytes are the *footer*: the block handle (two varint64s: offset,
  size) of the meta-index block, the block handle of the index block, zero
  padding to 40 bytes, then the magic number ``0xdb4775248b80fb57`` as a
  little-endian fixed64;
* every block is followed by a 5-byte trailer: a compression byte (0 = none,
  the only kind TensorFlow's bundle writer produces) and the masked crc32c of
  the block contents plus that byte;
* a block is a run of prefix-compressed entries (varint32 ``shared``,
  ``non_shared``, ``value_length``, the ``non_shared`` key bytes, the value),
  followed by an array of uint32 restart offsets and their count;
* the index block maps the last key of each data block to that block's handle.

In the data blocks, the key ``""`` holds a ``BundleHeaderProto`` (number of
shards, endianness) and every other key is a variable name whose value is a
``BundleEntryProto``: dtype (field 1), shape (2), shard id (3), offset (4),
size (5), masked crc32c of the tensor bytes (6) and, for partitioned
variables, slices (7, not supported). The tensor is stored row-major in its
shard at ``[offset, offset + size)``.

The protobufs are decoded by hand from the wire format, so neither TensorFlow
nor ``protobuf`` is needed. Every block checksum and the crc32c of every
tensor that is returned are verified; the crc32c runs vectorised in numpy
(:func:`crc32c`), about 10 ms per megabyte.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tagger_gui.core.errors import CheckpointError

__all__ = [
    "TensorEntry",
    "crc32c",
    "is_optimizer_variable",
    "read_checkpoint",
    "read_index",
    "resolve_prefix",
]

_TABLE_MAGIC = 0xDB4775248B80FB57
_FOOTER_SIZE = 48
_BLOCK_TRAILER_SIZE = 5
_CRC_MASK_DELTA = 0xA282EAD8

# tensorflow DataType enum -> numpy dtype (little-endian). Only numeric types
# with a fixed-size, raw encoding are listed; DT_STRING (7) and others are not.
_DTYPES: dict[int, np.dtype] = {
    1: np.dtype("<f4"),  # DT_FLOAT
    2: np.dtype("<f8"),  # DT_DOUBLE
    3: np.dtype("<i4"),  # DT_INT32
    4: np.dtype("u1"),  # DT_UINT8
    5: np.dtype("<i2"),  # DT_INT16
    6: np.dtype("i1"),  # DT_INT8
    9: np.dtype("<i8"),  # DT_INT64
    10: np.dtype("?"),  # DT_BOOL
    17: np.dtype("<u2"),  # DT_UINT16
    19: np.dtype("<f2"),  # DT_HALF
    22: np.dtype("<u4"),  # DT_UINT32
    23: np.dtype("<u8"),  # DT_UINT64
}

# Variables created by optimizers: Adam/Momentum/RMSProp slots and Adam's
# beta powers. Matched on the last path component.
_OPTIMIZER_SUFFIXES = (
    "Adam",
    "Adam_1",
    "Momentum",
    "RMSProp",
    "RMSProp_1",
    "Adagrad",
    "Adadelta",
    "Adadelta_1",
    "Ftrl",
    "Ftrl_1",
)
_OPTIMIZER_NAMES = ("beta1_power", "beta2_power", "global_step")


# --------------------------------------------------------------------------
# crc32c (Castagnoli), vectorised with numpy
# --------------------------------------------------------------------------

_CRC_POLY = 0x82F63B78  # reflected Castagnoli polynomial


def _make_crc_table() -> np.ndarray:
    table = np.zeros(256, dtype=np.uint32)
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ _CRC_POLY if c & 1 else c >> 1
        table[i] = c
    return table


_CRC_TABLE = _make_crc_table()
_CRC_TABLE_LIST = [int(v) for v in _CRC_TABLE]
_CHUNK = 256  # bytes per lane in the vectorised crc (a power of two)
_VECTOR_MIN = 8 * _CHUNK  # below this a plain python loop is faster


def _crc_register_py(reg: int, data: bytes | memoryview) -> int:
    """Advance the raw crc register ``reg`` (no pre/post inversion) over ``data``."""
    table = _CRC_TABLE_LIST
    for b in bytes(data):
        reg = table[(reg ^ b) & 0xFF] ^ (reg >> 8)
    return reg


def _gf2_apply(cols: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Apply the GF(2) 32x32 matrix with columns ``cols`` to every uint32 of ``v``."""
    out = np.zeros_like(v)
    for j in range(32):
        out ^= np.where((v >> np.uint32(j)) & np.uint32(1), cols[j], np.uint32(0))
    return out


def _gf2_square(cols: np.ndarray) -> np.ndarray:
    """The matrix ``M @ M`` for ``M`` given by its columns."""
    return _gf2_apply(cols, cols)


def _zeros_operator(n_bytes: int) -> np.ndarray:
    """Columns of the linear map "advance the raw register over ``n_bytes`` zero bytes".

    ``n_bytes`` must be a power of two.
    """
    basis = np.left_shift(np.uint32(1), np.arange(32, dtype=np.uint32))
    # one zero byte: reg -> table[reg & 0xff] ^ (reg >> 8)
    cols = _CRC_TABLE[basis & np.uint32(0xFF)] ^ (basis >> np.uint32(8))
    k = 1
    while k < n_bytes:
        cols = _gf2_square(cols)
        k *= 2
    return cols


_ZEROS_OPS: list[np.ndarray] = []  # _ZEROS_OPS[i]: over _CHUNK * 2**i zero bytes


def _zeros_op(level: int) -> np.ndarray:
    while len(_ZEROS_OPS) <= level:
        if not _ZEROS_OPS:
            _ZEROS_OPS.append(_zeros_operator(_CHUNK))
        else:
            _ZEROS_OPS.append(_gf2_square(_ZEROS_OPS[-1]))
    return _ZEROS_OPS[level]


def _crc_register_np(reg: int, data: np.ndarray) -> int:
    """Raw register after ``data`` (uint8, length a multiple of ``_CHUNK``), from ``reg``.

    The data is cut into lanes of ``_CHUNK`` bytes whose registers are computed
    side by side (one table look-up per byte position, vectorised over
    lanes); the lane registers are then merged pairwise, using that the
    register is linear: ``R(r, A + B) = Z_len(B)(R(r, A)) ^ R(0, B)``, where
    ``Z_n`` (advance over ``n`` zero bytes) is a 32x32 GF(2) matrix.
    """
    lanes = data.reshape(-1, _CHUNK)
    n_lanes = lanes.shape[0]
    size = 1 << max(0, (n_lanes - 1).bit_length())
    # Lanes of zero bytes in front, computed from register 0, leave a
    # register of 0 and so do not change the result.
    pad = size - n_lanes
    columns = np.zeros((_CHUNK, size), dtype=np.uint8)
    columns[:, pad:] = lanes.T
    regs = np.zeros(size, dtype=np.uint32)
    regs[pad] = reg
    table = _CRC_TABLE
    eight = np.uint32(8)
    for j in range(_CHUNK):
        regs = table[(regs ^ columns[j]) & 0xFF] ^ (regs >> eight)
    level = 0
    while regs.shape[0] > 1:
        regs = _gf2_apply(_zeros_op(level), regs[0::2]) ^ regs[1::2]
        level += 1
    return int(regs[0])


def crc32c(data: bytes | bytearray | memoryview | np.ndarray) -> int:
    """CRC-32C (Castagnoli) of ``data``, as TensorFlow and LevelDB compute it.

    Parameters
    ----------
    data : bytes-like or numpy array
        The bytes to checksum (a numpy array is taken as its raw bytes).

    Returns
    -------
    int
        The unmasked checksum, in ``[0, 2**32)``.

    Notes
    -----
    Short inputs use a table-driven python loop; long inputs are split into
    256-byte lanes processed side by side in numpy and merged with GF(2)
    matrix algebra, which is 50-100x faster than the python loop.
    """
    buf = np.frombuffer(memoryview(data).cast("B"), dtype=np.uint8)
    n = buf.shape[0]
    reg = 0xFFFFFFFF
    if n >= _VECTOR_MIN:
        head = n - n % _CHUNK
        reg = _crc_register_np(reg, buf[:head])
        buf = buf[head:]
    reg = _crc_register_py(reg, buf.tobytes())
    return reg ^ 0xFFFFFFFF


def _unmask(masked: int) -> int:
    rot = (masked - _CRC_MASK_DELTA) & 0xFFFFFFFF
    return ((rot >> 17) | (rot << 15)) & 0xFFFFFFFF


def _mask(crc: int) -> int:
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + _CRC_MASK_DELTA) & 0xFFFFFFFF


# --------------------------------------------------------------------------
# protobuf wire format and SSTable
# --------------------------------------------------------------------------


class _Corrupt(Exception):
    """Internal: malformed bytes (turned into a CheckpointError with the file name)."""


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = 0
    shift = 0
    while True:
        if pos >= len(buf):
            raise _Corrupt("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise _Corrupt("varint longer than 10 bytes")


def _proto_fields(buf: bytes) -> list[tuple[int, int | bytes]]:
    """Decode one protobuf message into ``[(field_number, value)]``.

    Varints and fixed-size fields become ints, length-delimited fields bytes.
    """
    fields: list[tuple[int, int | bytes]] = []
    pos = 0
    n = len(buf)
    while pos < n:
        tag, pos = _varint(buf, pos)
        number, wire = tag >> 3, tag & 7
        if number == 0:
            raise _Corrupt("protobuf field number 0")
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            if pos + 8 > n:
                raise _Corrupt("truncated fixed64 field")
            value = int.from_bytes(buf[pos : pos + 8], "little")
            pos += 8
        elif wire == 2:
            length, pos = _varint(buf, pos)
            if pos + length > n:
                raise _Corrupt("truncated length-delimited field")
            value = buf[pos : pos + length]
            pos += length
        elif wire == 5:
            if pos + 4 > n:
                raise _Corrupt("truncated fixed32 field")
            value = int.from_bytes(buf[pos : pos + 4], "little")
            pos += 4
        else:
            raise _Corrupt(f"unsupported protobuf wire type {wire}")
        fields.append((number, value))
    return fields


def _signed64(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def _read_block(data: bytes, handle: tuple[int, int], what: str) -> bytes:
    offset, size = handle
    end = offset + size + _BLOCK_TRAILER_SIZE
    if offset < 0 or end > len(data):
        raise _Corrupt(
            f"{what} block [{offset}, {end}) lies beyond the end of the file ({len(data)} bytes)"
        )
    contents = data[offset : offset + size]
    kind = data[offset + size]
    (stored,) = struct.unpack_from("<I", data, offset + size + 1)
    if _mask(crc32c(data[offset : offset + size + 1])) != stored:
        raise _Corrupt(f"checksum mismatch in the {what} block at offset {offset}")
    if kind != 0:
        raise _Corrupt(
            f"{what} block uses compression type {kind}; only uncompressed tables are supported"
        )
    return contents


def _block_entries(block: bytes, what: str) -> list[tuple[bytes, bytes]]:
    if len(block) < 4:
        raise _Corrupt(f"{what} block too short")
    (n_restarts,) = struct.unpack_from("<I", block, len(block) - 4)
    limit = len(block) - 4 - 4 * n_restarts
    if limit < 0:
        raise _Corrupt(f"{what} block has an impossible restart count {n_restarts}")
    entries: list[tuple[bytes, bytes]] = []
    key = b""
    pos = 0
    while pos < limit:
        shared, pos = _varint(block, pos)
        non_shared, pos = _varint(block, pos)
        value_len, pos = _varint(block, pos)
        if shared > len(key) or pos + non_shared + value_len > limit:
            raise _Corrupt(f"malformed entry in the {what} block at byte {pos}")
        key = key[:shared] + block[pos : pos + non_shared]
        pos += non_shared
        entries.append((key, block[pos : pos + value_len]))
        pos += value_len
    return entries


def _handle(value: bytes) -> tuple[int, int]:
    offset, pos = _varint(value, 0)
    size, _ = _varint(value, pos)
    return offset, size


def _table_items(data: bytes) -> list[tuple[bytes, bytes]]:
    """All (key, value) pairs of an uncompressed LevelDB-format SSTable."""
    if len(data) < _FOOTER_SIZE:
        raise _Corrupt(f"file is {len(data)} bytes, shorter than the 48-byte table footer")
    footer = data[-_FOOTER_SIZE:]
    (magic,) = struct.unpack_from("<Q", footer, 40)
    if magic != _TABLE_MAGIC:
        raise _Corrupt("bad table magic number (file truncated or not a checkpoint index)")
    _meta_offset, pos = _varint(footer, 0)
    _meta_size, pos = _varint(footer, pos)
    index_offset, pos = _varint(footer, pos)
    index_size, pos = _varint(footer, pos)
    body = data[: len(data) - _FOOTER_SIZE]
    index = _read_block(body, (index_offset, index_size), "index")
    items: list[tuple[bytes, bytes]] = []
    for _last_key, handle in _block_entries(index, "index"):
        block = _read_block(body, _handle(handle), "data")
        items.extend(_block_entries(block, "data"))
    return items


# --------------------------------------------------------------------------
# Bundle
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class TensorEntry:
    """Where and how one tensor is stored in a checkpoint bundle.

    Attributes
    ----------
    name : str
        Variable name, e.g. ``"conv2d/kernel"``.
    dtype : numpy.dtype
        Stored element type.
    shape : tuple[int, ...]
        Tensor shape (TensorFlow order, e.g. conv kernels ``(kh, kw, in, out)``).
    shard : int
        Index of the ``.data`` shard holding the bytes.
    offset, size : int
        Byte range ``[offset, offset + size)`` in that shard.
    crc32c : int
        Unmasked crc32c of the tensor bytes.
    """

    name: str
    dtype: np.dtype
    shape: tuple[int, ...]
    shard: int
    offset: int
    size: int
    crc32c: int


def is_optimizer_variable(name: str) -> bool:
    """Whether ``name`` is an optimizer slot or counter rather than a model variable.

    Parameters
    ----------
    name : str
        Variable name from a checkpoint.

    Returns
    -------
    bool
        True for Adam/Momentum/... slots (``*/Adam``, ``*/Adam_1``, ...),
        ``beta1_power``, ``beta2_power`` and ``global_step``.
    """
    last = name.rsplit("/", 1)[-1]
    return last in _OPTIMIZER_SUFFIXES or last in _OPTIMIZER_NAMES


def resolve_prefix(prefix_or_dir: str | os.PathLike[str]) -> Path:
    """Turn a checkpoint prefix, a folder, or a ``.index`` path into the bundle prefix.

    Parameters
    ----------
    prefix_or_dir : str or path-like
        ``path/model.ckpt`` (prefix), ``path/model.ckpt.index``, or a folder
        that contains exactly one ``*.index`` file (for the musicnn wheel the
        folder *is* the prefix: its index file is called ``.index``).

    Returns
    -------
    pathlib.Path
        The prefix ``P``: the index file is ``P.index``, or, when ``P`` is a
        folder (the musicnn layout), ``P/.index``.

    Raises
    ------
    CheckpointError
        No index file found.
    """
    p = Path(prefix_or_dir)
    if p.name.endswith(".index") and p.is_file():
        if p.name == ".index":  # folder prefix (musicnn layout)
            return p.parent
        return p.with_name(p.name[: -len(".index")])
    if p.is_dir():
        if (p / ".index").is_file():
            return p
        candidates = sorted(p.glob("*.index"))
        if len(candidates) == 1:
            c = candidates[0]
            return c.with_name(c.name[: -len(".index")])
        if not candidates:
            raise CheckpointError(f"{p}: no checkpoint .index file in this folder")
        names = ", ".join(c.name for c in candidates)
        raise CheckpointError(f"{p}: several checkpoints in this folder ({names}); pass a prefix")
    if Path(str(p) + ".index").is_file():
        return p
    raise CheckpointError(f"{p}: no checkpoint here (expected {p}.index or a folder)")


def _bundle_file(prefix: Path, suffix: str) -> Path:
    """``prefix + suffix``, where a folder prefix means files named ``<folder>/<suffix>``."""
    if prefix.is_dir():
        return prefix / suffix
    return prefix.with_name(prefix.name + suffix)


def _index_path(prefix: Path) -> Path:
    return _bundle_file(prefix, ".index")


def _data_path(prefix: Path, shard: int, num_shards: int) -> Path:
    return _bundle_file(prefix, f".data-{shard:05d}-of-{num_shards:05d}")


def _parse_entry(name: str, value: bytes) -> TensorEntry:
    dtype_enum = 0
    shape: list[int] = []
    shard = offset = size = crc = 0
    for number, field in _proto_fields(value):
        if number == 1:
            dtype_enum = int(field)
        elif number == 2:
            if not isinstance(field, bytes):
                raise _Corrupt(f"{name}: shape is not a message")
            for dnum, dim in _proto_fields(field):
                if dnum == 2 and isinstance(dim, bytes):
                    size_val = 0
                    for snum, s in _proto_fields(dim):
                        if snum == 1:
                            size_val = _signed64(int(s))
                    shape.append(size_val)
                elif dnum == 3 and dim:
                    raise _Corrupt(f"{name}: tensor of unknown rank")
        elif number == 3:
            shard = int(field)
        elif number == 4:
            offset = _signed64(int(field))
        elif number == 5:
            size = _signed64(int(field))
        elif number == 6:
            crc = _unmask(int(field))
        elif number == 7:
            raise _Corrupt(f"{name}: partitioned (sliced) variables are not supported")
    if dtype_enum not in _DTYPES:
        raise _Corrupt(f"{name}: unsupported tensor dtype (TensorFlow DataType {dtype_enum})")
    dtype = _DTYPES[dtype_enum]
    if any(d < 0 for d in shape):
        raise _Corrupt(f"{name}: negative dimension in shape {tuple(shape)}")
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if size != expected:
        raise _Corrupt(
            f"{name}: stored size {size} bytes does not match shape {tuple(shape)} "
            f"of {dtype} ({expected} bytes)"
        )
    if offset < 0:
        raise _Corrupt(f"{name}: negative offset {offset}")
    return TensorEntry(name, dtype, tuple(shape), shard, offset, size, crc)


def _read_header_and_entries(index_file: Path) -> tuple[int, dict[str, TensorEntry]]:
    try:
        data = index_file.read_bytes()
    except OSError as exc:
        raise CheckpointError(f"{index_file}: cannot read ({exc.strerror or exc})") from exc
    try:
        items = _table_items(data)
        num_shards = 1
        entries: dict[str, TensorEntry] = {}
        seen_header = False
        for key, value in items:
            if key == b"":
                seen_header = True
                for number, field in _proto_fields(value):
                    if number == 1:
                        num_shards = int(field)
                    elif number == 2 and int(field) != 0:
                        raise _Corrupt("big-endian checkpoints are not supported")
                continue
            try:
                name = key.decode("utf-8")
            except UnicodeDecodeError:
                raise _Corrupt(f"variable name is not UTF-8: {key!r}") from None
            entries[name] = _parse_entry(name, value)
        if not seen_header:
            raise _Corrupt("no bundle header (empty key) in the index")
        if num_shards < 1:
            raise _Corrupt(f"invalid number of shards {num_shards}")
        for e in entries.values():
            if e.shard >= num_shards:
                raise _Corrupt(f"{e.name}: shard {e.shard} of {num_shards}")
    except _Corrupt as exc:
        raise CheckpointError(f"{index_file}: corrupt checkpoint index: {exc}") from None
    return num_shards, entries


def read_index(prefix_or_dir: str | os.PathLike[str]) -> dict[str, TensorEntry]:
    """List the tensors of a checkpoint bundle without reading their data.

    Parameters
    ----------
    prefix_or_dir : str or path-like
        Checkpoint prefix, ``.index`` file, or folder (see :func:`resolve_prefix`).

    Returns
    -------
    dict[str, TensorEntry]
        Variable name -> where its bytes are, in the index's (sorted) order.

    Raises
    ------
    CheckpointError
        The index is missing, truncated or corrupt (the message names the file).
    """
    prefix = resolve_prefix(prefix_or_dir)
    _, entries = _read_header_and_entries(_index_path(prefix))
    return entries


def read_checkpoint(
    prefix_or_dir: str | os.PathLike[str], *, skip_optimizer: bool = True
) -> dict[str, np.ndarray]:
    """Read every tensor of a TensorFlow V2 checkpoint bundle into numpy.

    Parameters
    ----------
    prefix_or_dir : str or path-like
        Checkpoint prefix (``path/model.ckpt``), its ``.index`` file, or a
        folder holding one checkpoint (for musicnn: ``musicnn/MSD_musicnn``).
    skip_optimizer : bool, keyword-only
        Leave out optimizer variables (see :func:`is_optimizer_variable`);
        they are about two thirds of a musicnn checkpoint and are not needed
        for inference. Their bytes are then neither read nor checked.

    Returns
    -------
    dict[str, numpy.ndarray]
        Variable name -> array of the stored shape. Floating-point tensors are
        returned as float32, integer and boolean ones in their own dtype.
        Arrays are writable and C-contiguous.

    Raises
    ------
    CheckpointError
        A file is missing, truncated or corrupt: bad table magic or block
        checksum in the ``.index``, a tensor whose byte range lies beyond the
        end of its ``.data`` shard, or a tensor whose crc32c does not match.
        The message names the file and the reason.
    """
    prefix = resolve_prefix(prefix_or_dir)
    num_shards, entries = _read_header_and_entries(_index_path(prefix))
    wanted = [e for e in entries.values() if not (skip_optimizer and is_optimizer_variable(e.name))]
    out: dict[str, np.ndarray] = {}
    by_shard: dict[int, list[TensorEntry]] = {}
    for e in wanted:
        by_shard.setdefault(e.shard, []).append(e)
    for shard, shard_entries in sorted(by_shard.items()):
        path = _data_path(prefix, shard, num_shards)
        try:
            f = path.open("rb")
        except OSError as exc:
            raise CheckpointError(f"{path}: cannot read ({exc.strerror or exc})") from exc
        with f:
            file_size = os.fstat(f.fileno()).st_size
            for e in sorted(shard_entries, key=lambda e: e.offset):
                if e.offset + e.size > file_size:
                    raise CheckpointError(
                        f"{path}: truncated or corrupt checkpoint data: tensor {e.name!r} "
                        f"needs bytes [{e.offset}, {e.offset + e.size}) but the file has "
                        f"{file_size} bytes"
                    )
                f.seek(e.offset)
                raw = f.read(e.size)
                if len(raw) != e.size:
                    raise CheckpointError(f"{path}: short read for tensor {e.name!r}")
                if crc32c(raw) != e.crc32c:
                    raise CheckpointError(
                        f"{path}: corrupt checkpoint data: crc32c mismatch for tensor "
                        f"{e.name!r} (bytes [{e.offset}, {e.offset + e.size}))"
                    )
                arr = np.frombuffer(raw, dtype=e.dtype).reshape(e.shape)
                if arr.dtype.kind == "f":
                    arr = arr.astype(np.float32)
                else:
                    arr = arr.astype(arr.dtype.newbyteorder("="))
                out[e.name] = np.ascontiguousarray(arr)
    # keep the index order (sorted by name)
    return {name: out[name] for name in entries if name in out}

"""Tests of our numpy reader for TensorFlow V2 checkpoint bundles."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from tagger_gui.core.embeddings import tf_checkpoint as tfc
from tagger_gui.core.embeddings import weights
from tagger_gui.core.errors import BackendError, CheckpointError

from .conftest import CHECKPOINT_SIZES


def _musicnn_dir() -> Path | None:
    try:
        return weights.weights_dir()
    except BackendError:
        return None


MUSICNN = _musicnn_dir()
needs_musicnn = pytest.mark.skipif(
    MUSICNN is None,
    reason="musicnn weights not installed (python -m tagger_gui.core.embeddings.weights)",
)

DATA = ".data-00000-of-00001"


# -- crc32c ---------------------------------------------------------------------------


def test_crc32c_known_values():
    assert tfc.crc32c(b"") == 0
    assert tfc.crc32c(b"123456789") == 0xE3069283  # the standard CRC-32C check value
    assert tfc.crc32c(bytes(32)) == 0x8A9136AA  # RFC 3720 B.4 test vectors
    assert tfc.crc32c(b"\xff" * 32) == 0x62A8AB43
    assert tfc.crc32c(bytes(range(32))) == 0x46DD794E


@pytest.mark.parametrize("n", [1, 255, 2047, 2048, 2049, 4096 + 17, 70_001, 300_000])
def test_crc32c_vectorised_matches_bytewise(n):
    data = np.random.default_rng(n).integers(0, 256, n, dtype=np.uint8).tobytes()
    expected = tfc._crc_register_py(0xFFFFFFFF, data) ^ 0xFFFFFFFF
    assert tfc.crc32c(data) == expected
    assert tfc.crc32c(np.frombuffer(data, dtype=np.uint8)) == expected


def test_crc_mask_roundtrip():
    for v in (0, 1, 0xE3069283, 0xFFFFFFFF):
        assert tfc._unmask(tfc._mask(v)) == v


def test_optimizer_variable_names():
    assert tfc.is_optimizer_variable("conv2d/kernel/Adam")
    assert tfc.is_optimizer_variable("conv2d/kernel/Adam_1")
    assert tfc.is_optimizer_variable("beta1_power")
    assert not tfc.is_optimizer_variable("conv2d/kernel")
    assert not tfc.is_optimizer_variable("batch_normalization_3/beta")


# -- the musicnn checkpoints ----------------------------------------------------------------


@needs_musicnn
@pytest.mark.parametrize(("model", "n_vars", "n_values"), CHECKPOINT_SIZES)
def test_read_musicnn_checkpoints(model, n_vars, n_values):
    weights = tfc.read_checkpoint(MUSICNN / model)
    assert len(weights) == n_vars
    assert sum(w.size for w in weights.values()) == n_values
    for name, w in weights.items():
        assert not tfc.is_optimizer_variable(name)
        assert w.dtype == np.float32
        assert w.flags.c_contiguous and w.flags.writeable
        assert np.isfinite(w).all(), name
    assert weights["batch_normalization/gamma"].shape == (1,)
    if "musicnn" in model:
        assert weights["conv2d/kernel"].shape == (7, 38, 1, 204)
        assert weights["conv2d_1/kernel"].shape == (7, 67, 1, 204)
        assert weights["conv2d_2/kernel"].shape == (128, 1, 1, 51)
        assert weights["conv2d_5/kernel"].shape == (7, 561, 1, 64)
        assert weights["dense/kernel"].shape == (1506, 200)
        assert weights["dense_1/kernel"].shape == (200, 50)
    else:
        assert weights["1CNN/kernel"].shape == (3, 3, 1, 128)
        assert weights["5CNN/kernel"].shape == (3, 3, 128, 128)
        assert weights["dense/kernel"].shape == (256, 50)
    # moving variances are variances
    for name, w in weights.items():
        if name.endswith("moving_variance"):
            assert (w >= 0).all()


@needs_musicnn
def test_read_with_optimizer_slots_and_prefix_forms():
    folder = MUSICNN / "MSD_vgg"
    everything = tfc.read_checkpoint(folder, skip_optimizer=False)
    model_only = tfc.read_checkpoint(str(folder / ".index"))
    assert len(everything) == 86  # 36 variables, 2 Adam slots each, 2 beta powers
    assert "beta1_power" in everything and "dense/kernel/Adam_1" in everything
    assert set(model_only) < set(everything)
    for name, w in model_only.items():
        np.testing.assert_array_equal(w, everything[name])
    assert everything["dense/kernel/Adam"].shape == (256, 50)
    index = tfc.read_index(folder)
    assert set(index) == set(everything)
    e = index["dense/kernel"]
    assert (e.shape, e.size, e.shard) == ((256, 50), 256 * 50 * 4, 0)


# -- corrupt and missing files ----------------------------------------------------------


@pytest.fixture
def vgg_copy(tmp_path: Path) -> Path:
    if MUSICNN is None:
        pytest.skip("musicnn weights not installed (python -m tagger_gui.core.embeddings.weights)")
    dst = tmp_path / "MSD_vgg"
    dst.mkdir()
    for name in (".index", DATA):
        shutil.copyfile(MUSICNN / "MSD_vgg" / name, dst / name)
    return dst


def _flip(path: Path, pos: int) -> None:
    data = bytearray(path.read_bytes())
    data[pos] ^= 0x40
    path.write_bytes(bytes(data))


def test_truncated_index(vgg_copy):
    index = vgg_copy / ".index"
    index.write_bytes(index.read_bytes()[:-100])
    with pytest.raises(
        CheckpointError, match=r"\.index: corrupt checkpoint index: bad table magic"
    ):
        tfc.read_checkpoint(vgg_copy)
    index.write_bytes(b"\0" * 10)
    with pytest.raises(CheckpointError, match=r"\.index: .*shorter than the 48-byte table footer"):
        tfc.read_checkpoint(vgg_copy)


def test_index_with_flipped_byte(vgg_copy):
    index = vgg_copy / ".index"
    _flip(index, 200)  # inside the data block (variable names and entries)
    with pytest.raises(CheckpointError, match=r"\.index: .*checksum mismatch") as info:
        tfc.read_checkpoint(vgg_copy)
    assert str(vgg_copy) in str(info.value)
    assert isinstance(info.value, BackendError)  # CheckpointError is a BackendError


def test_index_with_flipped_footer(vgg_copy):
    index = vgg_copy / ".index"
    _flip(index, index.stat().st_size - 1)  # the magic number
    with pytest.raises(CheckpointError, match="magic"):
        tfc.read_checkpoint(vgg_copy)


def test_truncated_data(vgg_copy):
    data = vgg_copy / DATA
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
    with pytest.raises(CheckpointError, match=rf"{DATA}: truncated or corrupt .*tensor '") as info:
        tfc.read_checkpoint(vgg_copy)
    assert "the file has" in str(info.value)


def test_data_with_flipped_byte(vgg_copy):
    entry = tfc.read_index(vgg_copy)["3CNN/kernel"]
    _flip(vgg_copy / DATA, entry.offset + entry.size // 2)
    with pytest.raises(CheckpointError, match=rf"{DATA}: .*crc32c mismatch .*'3CNN/kernel'"):
        tfc.read_checkpoint(vgg_copy)


def test_flipped_optimizer_slot_only_matters_when_read(vgg_copy):
    entry = tfc.read_index(vgg_copy)["3CNN/kernel/Adam"]
    _flip(vgg_copy / DATA, entry.offset + 5)
    assert len(tfc.read_checkpoint(vgg_copy)) == 36  # slot bytes are neither read nor checked
    with pytest.raises(CheckpointError, match=r"crc32c mismatch .*3CNN/kernel/Adam"):
        tfc.read_checkpoint(vgg_copy, skip_optimizer=False)


def test_missing_files(vgg_copy, tmp_path):
    (vgg_copy / DATA).unlink()
    with pytest.raises(CheckpointError, match=rf"{DATA}: cannot read"):
        tfc.read_checkpoint(vgg_copy)
    with pytest.raises(CheckpointError, match="no checkpoint"):
        tfc.read_checkpoint(tmp_path / "nowhere")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CheckpointError, match=r"no checkpoint \.index file"):
        tfc.read_checkpoint(empty)


def test_not_a_table(tmp_path):
    (tmp_path / "x.index").write_bytes(b"hello world" * 10)
    with pytest.raises(CheckpointError, match=r"x\.index: corrupt checkpoint index"):
        tfc.read_checkpoint(tmp_path / "x")

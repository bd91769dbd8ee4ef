"""PyTorch ports of the musicnn and VGG-like tagging models (inference only).

This module imports torch at import time; :mod:`tagger_gui.core.embeddings.musicnn`
imports it only when a model is built, so that feature extraction can run in
worker processes without torch.

The layers follow the wheel's TensorFlow graph (``musicnn/models.py``) op by
op; see ``docs/models.md``. Points that matter for an exact port:

* every convolution is followed by ReLU *then* BatchNorm (eps 1e-3), and the
  zero padding of the next layer is applied after that BatchNorm, so the
  BatchNorms cannot be folded into neighbouring convolutions exactly;
* TensorFlow's ``"same"`` padding for an even kernel ``k`` puts
  ``(k - 1) // 2`` frames before and ``k // 2`` after;
* the back end concatenates max and mean pooling *interleaved* per channel,
  and the VGG flattens ``pool5`` in TensorFlow's (H, W, C) order.

Weights come from :func:`tagger_gui.core.embeddings.tf_checkpoint.read_checkpoint`
and are copied unchanged (only transposed to PyTorch layouts).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tagger_gui.core.errors import CheckpointError

BN_EPS = 1e-3
#: output frames per front-end convolution call (speed only; see ConvBlock)
FRAME_BUDGET = 384
N_MELS = 96

__all__ = ["Musicnn", "Vgg", "build_model", "checkpoint_value_count"]


def _bn(num_features: int, dims: int) -> nn.Module:
    cls = nn.BatchNorm2d if dims == 2 else nn.BatchNorm1d
    return cls(num_features, eps=BN_EPS, momentum=None, affine=True, track_running_stats=True)


def _same_pad(k: int) -> tuple[int, int]:
    """TensorFlow "same" padding (before, after) for a stride-1 kernel of size ``k``."""
    return (k - 1) // 2, k // 2


class ConvBlock(nn.Module):
    """Convolution -> ReLU -> BatchNorm -> max pooling, with the max taken early.

    ``bn(relu(conv(x) + b))`` is, per channel, a monotonic function of the
    convolution output: non-decreasing when the BatchNorm scale
    ``gamma / sqrt(var + eps)`` is positive, non-increasing when it is
    negative. A max over a pooling window therefore commutes with it (a max
    for positive channels, a min for negative ones), and so does floating
    point rounding, which is monotonic too. This block computes the
    convolution *without* bias and with the kernels of negative channels
    negated (exactly: ``-w`` gives exactly ``-conv``), max-pools that raw
    output, and only then adds the bias, restores the sign, and applies ReLU
    and BatchNorm on the pooled (up to 96x smaller) tensor. The result is the
    same as the unfused order, with two fewer passes over the largest
    activations.

    Parameters
    ----------
    conv : torch.nn.Conv2d
        Convolution with ``bias=False`` (its own padding, if any).
    pool : callable
        Max pooling applied to the raw convolution output.
    frame_budget : int or None
        If set, the pooling must act along the frequency axis only; the
        convolution is then run on time slices of ``frame_budget // batch``
        output frames (at least 16), i.e. about ``frame_budget`` frames per
        call whatever the batch size (each output frame depends only on its
        own input window, so this is exact). This keeps the largest
        activation, 204 x 59 floats per frame, closer to the CPU caches and
        bounds memory for long inputs.
    """

    def __init__(self, conv: nn.Conv2d, pool, frame_budget: int | None = None):
        super().__init__()
        out_c = conv.out_channels
        self.conv = conv
        self.pool = pool
        if frame_budget is not None and conv.padding[0] != 0:
            raise ValueError("time slicing needs a convolution without time padding")
        self.frame_budget = frame_budget
        self.bias = nn.Parameter(torch.zeros(out_c), requires_grad=False)
        self.bn = _bn(out_c, 1)
        self.register_buffer("sign", torch.ones(out_c), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n_out = x.shape[2] - self.conv.kernel_size[0] + 1 + 2 * self.conv.padding[0]
        if self.frame_budget is None:
            step = n_out
        else:
            step = max(16, self.frame_budget // max(1, x.shape[0]))
        if n_out <= step:
            m = self.pool(self.conv(x))
        else:
            kh = self.conv.kernel_size[0]
            m = torch.cat(
                [
                    self.pool(self.conv(x[:, :, t : min(t + step, n_out) + kh - 1]))
                    for t in range(0, n_out, step)
                ],
                dim=2,
            )
        shape = (1, -1) + (1,) * (m.dim() - 2)
        m = (m + self.bias.view(shape)) * self.sign.view(shape)
        bn = self.bn  # frozen BatchNorm on a tensor of any rank
        return F.batch_norm(
            F.relu(m), bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, bn.eps
        )

    def set_tf_weights(
        self, kernel: torch.Tensor, bias: torch.Tensor, bn: dict[str, torch.Tensor]
    ) -> None:
        """Set the TF weights (``kernel`` already in torch OIHW layout)."""
        with torch.no_grad():
            for key, name in (
                ("gamma", "weight"),
                ("beta", "bias"),
                ("moving_mean", "running_mean"),
                ("moving_variance", "running_var"),
            ):
                getattr(self.bn, name).copy_(bn[key])
            sign = torch.where(bn["gamma"] < 0, -1.0, 1.0)
            self.sign.copy_(sign)
            self.conv.weight.copy_(kernel * sign.view(-1, 1, 1, 1))
            self.bias.copy_(bias * sign)


def _amax_freq(z: torch.Tensor) -> torch.Tensor:
    return z.amax(dim=3)


class _MaxPool2d:
    """Picklable ``max_pool2d`` with fixed size and stride (TF "valid" pooling)."""

    def __init__(self, size: tuple[int, int], stride: tuple[int, int]):
        self.size, self.stride = size, stride

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        return F.max_pool2d(z, self.size, self.stride)


class Musicnn(nn.Module):
    """musicnn (Pons & Serra 2019): musically motivated front end, dense mid end.

    Parameters
    ----------
    n_classes : int
        Number of tags (50).
    n_filt_midend : int
        Filters of each mid-end convolution (64).
    n_units_backend : int
        Units of the penultimate dense layer (200).

    Notes
    -----
    ``forward`` takes log-mel patches ``(B, T, 96)`` for any ``T >= 1`` and
    returns ``(mean_pool, max_pool, penultimate, taggram)`` of shapes
    ``(B, 753)``, ``(B, 753)``, ``(B, 200)``, ``(B, 50)``.
    """

    def __init__(
        self,
        n_classes: int = 50,
        n_filt_midend: int = 64,
        n_units_backend: int = 200,
        frame_budget: int | None = FRAME_BUDGET,
    ):
        super().__init__()
        n_timbral, n_temporal = 204, 51  # int(1.6 * 128), int(1.6 * 32)
        self.bn_input = _bn(1, 2)
        # timbral branch: kernels 7 x int(0.4 * 96) and 7 x int(0.7 * 96), valid,
        # on the input padded by 3 frames each side
        self.timbral = nn.ModuleList(
            [
                ConvBlock(nn.Conv2d(1, n_timbral, (7, w), bias=False), _amax_freq, frame_budget)
                for w in (int(0.4 * N_MELS), int(0.7 * N_MELS))
            ]
        )
        # temporal branch: kernels 128x1, 64x1, 32x1 with TF "same" padding
        self.temporal_lengths = (128, 64, 32)
        self.temporal = nn.ModuleList(
            [
                ConvBlock(nn.Conv2d(1, n_temporal, (k, 1), bias=False), _amax_freq, frame_budget)
                for k in self.temporal_lengths
            ]
        )
        n_front = 2 * n_timbral + 3 * n_temporal  # 561
        self.midend = nn.ModuleList(
            [
                nn.Conv1d(n_front, n_filt_midend, 7),
                nn.Conv1d(n_filt_midend, n_filt_midend, 7),
                nn.Conv1d(n_filt_midend, n_filt_midend, 7),
            ]
        )
        self.bn_midend = nn.ModuleList([_bn(n_filt_midend, 1) for _ in range(3)])
        n_concat = n_front + 3 * n_filt_midend  # 753
        self.bn_pool = _bn(2 * n_concat, 1)
        self.dense = nn.Linear(2 * n_concat, n_units_backend)
        self.bn_dense = _bn(n_units_backend, 1)
        self.output = nn.Linear(n_units_backend, n_classes)

    def forward(
        self, x: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.bn_input(x.unsqueeze(1))  # (B, 1, T, 96)
        front = []
        padded = F.pad(x, (0, 0, 3, 3))
        for block in self.timbral:
            front.append(block(padded))
        for k, block in zip(self.temporal_lengths, self.temporal, strict=True):
            front.append(block(F.pad(x, (0, 0, *_same_pad(k)))))
        front_t = torch.cat(front, dim=1)  # (B, 561, T)
        feats = [front_t]
        h = front_t
        for i, (conv, bn) in enumerate(zip(self.midend, self.bn_midend, strict=True)):
            out = bn(F.relu(conv(F.pad(h, (3, 3)))))
            h = out if i == 0 else out + h
            feats.append(h)
        z = torch.cat(feats, dim=1)  # (B, 753, T)
        max_pool = z.amax(dim=2)
        mean_pool = z.mean(dim=2)
        # TF flattens the (753, 2) [max, mean] array: channels interleaved
        pooled = torch.stack([max_pool, mean_pool], dim=2).flatten(1)
        penultimate = self.bn_dense(F.relu(self.dense(self.bn_pool(pooled))))
        taggram = torch.sigmoid(self.output(penultimate))
        return mean_pool, max_pool, penultimate, taggram

    def load_tf_weights(self, weights: Mapping[str, np.ndarray]) -> None:
        """Copy the checkpoint variables (TensorFlow names and layouts) into the module.

        Raises
        ------
        CheckpointError
            A variable is missing, has the wrong shape, or is left unused.
        """
        loader = _Loader(weights)
        loader.bn(self.bn_input, "batch_normalization")
        blocks = [*self.timbral, *self.temporal]
        for i, block in enumerate(blocks):
            loader.block(block, _suffix("conv2d", i), _suffix("batch_normalization", i + 1))
        n = len(blocks)
        for j, (conv, bn) in enumerate(zip(self.midend, self.bn_midend, strict=True)):
            loader.conv1d_from_full_width(conv, _suffix("conv2d", n + j))
            loader.bn(bn, _suffix("batch_normalization", n + 1 + j))
        loader.bn(self.bn_pool, _suffix("batch_normalization", n + 4))
        loader.dense(self.dense, "dense")
        loader.bn(self.bn_dense, _suffix("batch_normalization", n + 5))
        loader.dense(self.output, "dense_1")
        loader.finish()


class Vgg(nn.Module):
    """The VGG-like baseline of the musicnn package (5 x conv 3x3 + max pool, dense).

    Notes
    -----
    ``forward`` takes log-mel patches ``(B, 187, 96)`` and returns
    ``(pool5, taggram)`` of shapes ``(B, 256)`` (the (2, 1, 128) ``pool5``
    flattened in TensorFlow's H, W, C order) and ``(B, 50)``.
    """

    pools = (
        ((4, 1), (2, 2)),
        ((2, 2), (2, 2)),
        ((2, 2), (2, 2)),
        ((2, 2), (2, 2)),
        ((4, 4), (4, 4)),
    )

    def __init__(self, n_classes: int = 50, n_filters: int = 128):
        super().__init__()
        self.bn_input = _bn(1, 2)
        chans = [1] + [n_filters] * 5
        self.blocks = nn.ModuleList(
            [
                ConvBlock(
                    nn.Conv2d(chans[i], chans[i + 1], 3, padding=1, bias=False),
                    _MaxPool2d(*self.pools[i]),
                )
                for i in range(5)
            ]
        )
        self.output = nn.Linear(2 * 1 * n_filters, n_classes)
        # channels-last (NHWC) activations and kernels: oneDNN runs the
        # 128 -> 128 convolutions about twice as fast as with NCHW (same
        # arithmetic, measured in docs/models.md)
        self.to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.bn_input(x.unsqueeze(1)).contiguous(memory_format=torch.channels_last)
        for block in self.blocks:
            h = block(h)
        pool5 = h.permute(0, 2, 3, 1).flatten(1)  # TF (H, W, C) order
        return pool5, torch.sigmoid(self.output(pool5))

    def load_tf_weights(self, weights: Mapping[str, np.ndarray]) -> None:
        """Copy the checkpoint variables into the module (see :meth:`Musicnn.load_tf_weights`)."""
        loader = _Loader(weights)
        loader.bn(self.bn_input, "batch_normalization")
        for i, block in enumerate(self.blocks):
            loader.block(block, f"{i + 1}CNN", f"batch_normalization_{i + 1}")
        loader.dense(self.output, "dense")
        loader.finish()


def _suffix(base: str, i: int) -> str:
    return base if i == 0 else f"{base}_{i}"


class _Loader:
    """Copies TF variables into torch tensors, checking shapes and that all are used."""

    def __init__(self, weights: Mapping[str, np.ndarray]):
        self.weights = weights
        self.used: set[str] = set()

    def get(self, name: str, shape: tuple[int, ...]) -> torch.Tensor:
        if name not in self.weights:
            raise CheckpointError(f"checkpoint has no variable {name!r}")
        arr = np.asarray(self.weights[name], dtype=np.float32)
        if arr.shape != shape:
            raise CheckpointError(
                f"checkpoint variable {name!r} has shape {arr.shape}, expected {shape}"
            )
        self.used.add(name)
        return torch.from_numpy(np.ascontiguousarray(arr))

    def bn(self, bn: nn.Module, scope: str) -> None:
        n = (bn.num_features,)
        with torch.no_grad():
            bn.weight.copy_(self.get(f"{scope}/gamma", n))
            bn.bias.copy_(self.get(f"{scope}/beta", n))
            bn.running_mean.copy_(self.get(f"{scope}/moving_mean", n))
            bn.running_var.copy_(self.get(f"{scope}/moving_variance", n))

    def block(self, block: ConvBlock, conv_scope: str, bn_scope: str) -> None:
        out_c, in_c, kh, kw = block.conv.weight.shape
        kernel = self.get(f"{conv_scope}/kernel", (kh, kw, in_c, out_c))  # TF HWIO
        bias = self.get(f"{conv_scope}/bias", (out_c,))
        bn = {
            key: self.get(f"{bn_scope}/{key}", (out_c,))
            for key in ("gamma", "beta", "moving_mean", "moving_variance")
        }
        block.set_tf_weights(kernel.permute(3, 2, 0, 1), bias, bn)

    def conv1d_from_full_width(self, conv: nn.Conv1d, scope: str) -> None:
        # TF: a conv2d over a (T, C, 1) "image" whose kernel spans all C columns,
        # kernel (k, C, 1, out) == a conv1d over time with C input channels.
        out_c, in_c, k = conv.weight.shape
        w = self.get(f"{scope}/kernel", (k, in_c, 1, out_c))
        with torch.no_grad():
            conv.weight.copy_(w[:, :, 0, :].permute(2, 1, 0))
            conv.bias.copy_(self.get(f"{scope}/bias", (out_c,)))

    def dense(self, lin: nn.Linear, scope: str) -> None:
        out_f, in_f = lin.weight.shape
        with torch.no_grad():
            lin.weight.copy_(self.get(f"{scope}/kernel", (in_f, out_f)).T)
            lin.bias.copy_(self.get(f"{scope}/bias", (out_f,)))

    def finish(self) -> None:
        unused = sorted(set(self.weights) - self.used)
        if unused:
            raise CheckpointError(f"checkpoint variables not used by the model: {unused}")


def checkpoint_value_count(module: nn.Module) -> tuple[int, int]:
    """Number of checkpoint variables and values held by ``module``.

    Counts learnable parameters plus BatchNorm moving statistics (which are
    variables in the TensorFlow checkpoint, buffers in PyTorch), not
    PyTorch's ``num_batches_tracked`` counters.

    Returns
    -------
    tuple[int, int]
        ``(n_variables, n_values)``; musicnn: (64, 792079), vgg: (36, 607030).
    """
    tensors = list(module.parameters()) + [
        b for name, b in module.named_buffers() if name.endswith(("running_mean", "running_var"))
    ]
    return len(tensors), sum(t.numel() for t in tensors)


def build_model(kind: str, weights: Mapping[str, np.ndarray]) -> nn.Module:
    """Build a ``"musicnn"`` or ``"vgg"`` model in eval mode with the given TF weights.

    Parameters
    ----------
    kind : {"musicnn", "vgg"}
        Architecture.
    weights : mapping of str to numpy.ndarray
        Model variables from :func:`~tagger_gui.core.embeddings.tf_checkpoint.read_checkpoint`.

    Returns
    -------
    torch.nn.Module
        float32, on the CPU, ``eval()`` mode, gradients disabled.
    """
    model: Musicnn | Vgg = Musicnn() if kind == "musicnn" else Vgg()
    model.load_tf_weights(weights)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model

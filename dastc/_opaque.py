"""Eager kernels that compiled graphs call as they are (custom ops).

Inductor rewrites some of dastc's kernels into slower code: ``grid_sample``
becomes per-pixel scalar loads, and the gathers of the prototype backward and the
per-clip class tables of the clip mix become indirect loads and stores with a
bounds check per vector. Under ``torch.compile`` dastc calls those kernels
through the custom ops here instead, so the compiled graph runs the eager kernel
(``torch.library.custom_op``, with a fake implementation for the shapes). Each
public function here is the one entry point for its kernel: it calls the kernel
directly in eager code and through its custom op while ``torch.compile`` traces.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["class_counts", "gather_class_rows", "grid_sample", "lookup_columns"]

_MODES = {"bilinear": 0, "nearest": 1}


def _compiling() -> bool:
    """Whether the caller is being traced by ``torch.compile``."""
    return bool(torch.compiler.is_compiling())


# ---------------------------------------------------------------- grid_sample
_PADDINGS = {"zeros": 0, "border": 1}


def _grid_sample(x: Tensor, grid: Tensor, mode: str, padding: str) -> Tensor:
    return F.grid_sample(x, grid, mode=mode, padding_mode=padding, align_corners=False)


@torch.library.custom_op("dastc::grid_sample", mutates_args=())
def _grid_sample_op(x: Tensor, grid: Tensor, mode: str, padding: str) -> Tensor:
    return _grid_sample(x, grid, mode, padding)


@_grid_sample_op.register_fake
def _(x: Tensor, grid: Tensor, mode: str, padding: str) -> Tensor:
    return x.new_empty(x.shape[0], x.shape[1], grid.shape[1], grid.shape[2])


def _grid_sample_setup(ctx: Any, inputs: Sequence[Any], output: Tensor) -> None:
    x, grid, mode, padding = inputs
    ctx.save_for_backward(x, grid)
    ctx.mode = mode
    ctx.padding = padding


def _grid_sample_backward(
    ctx: Any, grad: Tensor
) -> tuple[Tensor | None, Tensor | None, None, None]:
    """``aten.grid_sampler_2d_backward`` (``align_corners=False``)."""
    x, grid = ctx.saved_tensors
    need = [bool(ctx.needs_input_grad[0]), bool(ctx.needs_input_grad[1])]
    gx, gg = torch.ops.aten.grid_sampler_2d_backward(
        grad, x, grid, _MODES[ctx.mode], _PADDINGS[ctx.padding], False, need
    )
    return (gx if need[0] else None), (gg if need[1] else None), None, None


_grid_sample_op.register_autograd(_grid_sample_backward, setup_context=_grid_sample_setup)


# ---------------------------------------------------------------- prototype backward
def _gather_class_rows(table: Tensor, index: Tensor, scale: Tensor | None) -> Tensor:
    frames, hw = index.shape
    channels = table.shape[0]
    expanded = table.unsqueeze(0).expand(frames, -1, -1)
    out = torch.gather(expanded, 2, index.unsqueeze(1).expand(frames, channels, hw))
    return out if scale is None else out.mul_(scale.unsqueeze(1))


@torch.library.custom_op("dastc::gather_class_rows", mutates_args=())
def _gather_class_rows_op(table: Tensor, index: Tensor, scale: Tensor | None) -> Tensor:
    return _gather_class_rows(table, index, scale)


@_gather_class_rows_op.register_fake
def _(table: Tensor, index: Tensor, scale: Tensor | None) -> Tensor:
    return table.new_empty(index.shape[0], table.shape[0], index.shape[1])


# ---------------------------------------------------------------- clip mix class tables
def _class_counts(columns: Tensor, width: int) -> Tensor:
    B, n = columns.shape
    counts = torch.zeros(B, width, dtype=torch.float32, device=columns.device)
    ones = torch.ones((), dtype=torch.float32, device=columns.device).expand(B, n)
    return counts.scatter_add_(1, columns, ones)


@torch.library.custom_op("dastc::class_counts", mutates_args=())
def _class_counts_op(columns: Tensor, width: int) -> Tensor:
    return _class_counts(columns, width)


@_class_counts_op.register_fake
def _(columns: Tensor, width: int) -> Tensor:
    return columns.new_empty(columns.shape[0], width, dtype=torch.float32)


@torch.library.custom_op("dastc::lookup_columns", mutates_args=())
def _lookup_columns_op(lookup: Tensor, columns: Tensor) -> Tensor:
    return lookup.gather(1, columns)


@_lookup_columns_op.register_fake
def _(lookup: Tensor, columns: Tensor) -> Tensor:
    return lookup.new_empty(columns.shape)


# ---------------------------------------------------------------- entry points
def grid_sample(x: Tensor, grid: Tensor, mode: str, padding: str = "zeros") -> Tensor:
    """``F.grid_sample(x, grid, mode, padding_mode=padding, align_corners=False)``.

    Args:
        x: float ``(N, C, H_in, W_in)``.
        grid: float ``(N, H, W, 2)`` normalised sampling coordinates.
        mode: ``"bilinear"`` or ``"nearest"``.
        padding: ``"zeros"`` or ``"border"``.

    Returns:
        float ``(N, C, H, W)``.
    """
    if not _compiling():
        return _grid_sample(x, grid, mode, padding)
    out: Tensor = _grid_sample_op(x, grid, mode, padding)
    return out


def gather_class_rows(table: Tensor, index: Tensor, scale: Tensor | None = None) -> Tensor:
    """``out[n, :, i] = table[:, index[n, i]] * scale[n, i]``: each pixel's column of a
    class table, times an optional per-pixel factor (applied in place, so that a
    compiled graph writes the features-sized result once).

    Args:
        table: float ``(C, K + 1)``.
        index: long ``(N, hw)`` in ``[0, K]``.
        scale: optional float ``(N, hw)``, the dtype of ``table``.

    Returns:
        float ``(N, C, hw)``.
    """
    if not _compiling():
        return _gather_class_rows(table, index, scale)
    out: Tensor = _gather_class_rows_op(table, index, scale)
    return out


def class_counts(columns: Tensor, width: int) -> Tensor:
    """float32 ``(B, width)``: how many entries of each row of ``columns`` hold each value.

    Args:
        columns: long ``(B, n)`` in ``[0, width)``.
        width: the number of columns of the table.

    Returns:
        float32 ``(B, width)`` counts.
    """
    if not _compiling():
        return _class_counts(columns, width)
    out: Tensor = _class_counts_op(columns, width)
    return out


def lookup_columns(lookup: Tensor, columns: Tensor) -> Tensor:
    """``lookup.gather(1, columns)``: each entry's value in its row's table.

    Args:
        lookup: ``(B, width)`` (any dtype).
        columns: long ``(B, n)`` in ``[0, width)``.

    Returns:
        ``(B, n)`` of ``lookup``'s dtype.
    """
    if not _compiling():
        return lookup.gather(1, columns)
    out: Tensor = _lookup_columns_op(lookup, columns)
    return out

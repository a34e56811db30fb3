"""Confusion matrix, per-class IoU and mIoU for semantic segmentation.

Rows of the confusion matrix are ground-truth classes, columns predicted
classes: ``cm[i, j]`` counts pixels labelled ``i`` and predicted ``j``.
Pixels labelled ``ignore_index`` never count. Per-class IoU is
``cm[k, k] / (sum_j cm[k, j] + sum_i cm[i, k] - cm[k, k])``; a class absent
from both prediction and label has IoU NaN and is left out of the mean.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor

from dastc import _validate as V

__all__ = [
    "ConfusionMatrix",
    "confusion_matrix",
    "iou_from_confusion",
    "mean_iou",
    "upsample_logits",
]

_LABEL_LAYOUTS = ("B T H W", "B H W")
_LOGIT_LAYOUTS = ("B T K H W", "B K H W")


def _check_align_corners(align_corners: object) -> bool:
    if not isinstance(align_corners, bool):
        raise TypeError(f"align_corners: expected a bool, got {align_corners!r}")
    return align_corners


def _upsample(logits: Tensor, size: tuple[int, int], align_corners: bool) -> Tensor:
    if tuple(logits.shape[-2:]) == size:
        return logits
    lead = logits.shape[:-2]
    flat = logits.reshape(-1, *logits.shape[-3:]) if logits.dim() == 5 else logits
    out = F.interpolate(flat, size=size, mode="bilinear", align_corners=align_corners)
    return out.reshape(*lead, *size)


def upsample_logits(
    logits: Tensor, size: tuple[int, int], *, align_corners: bool = False
) -> Tensor:
    """Resize logits bilinearly to ``size`` (a label's stored resolution) before the argmax.

    What the public evaluations do before scoring: mmseg's ``resize(seg_logit,
    size=ori_shape, mode='bilinear', align_corners=align_corners)`` in DAFormer /
    HRDA / MIC (``align_corners=False``) and ``nn.Upsample(size=(1024, 2048),
    mode='bilinear', align_corners=True)`` in DA-VSN / TPS (see the module
    docstring). Take the argmax afterwards: nearest-upsampling the argmax gives
    other predictions along class boundaries.

    Args:
        logits: float ``(B, T, K, h, w)`` or ``(B, K, h, w)``.
        size: ``(H, W)``, e.g. ``label.shape[-2:]``.
        align_corners: ``False`` (mmseg, DAFormer/MIC) or ``True`` (DA-VSN/TPS).

    Returns:
        float ``(B, T, K, H, W)`` or ``(B, K, H, W)``; ``logits`` itself when
        already at ``size``.

    Raises:
        ValueError: a bad rank or ``size``.
        TypeError: ``logits`` is not floating point, ``align_corners`` not a bool.

    Examples:
        >>> logits = torch.tensor([[[[0.0, 1.0]], [[1.0, 0.0]]]])  # (1, 2, 1, 2)
        >>> upsample_logits(logits, (1, 4)).argmax(1).tolist()
        [[[1, 1, 0, 0]]]
        >>> upsample_logits(logits, (1, 4))[0, 0, 0].tolist()
        [0.0, 0.25, 0.75, 1.0]
        >>> upsample_logits(logits, (1, 3), align_corners=True)[0, 0, 0].tolist()
        [0.0, 0.5, 1.0]
    """
    V.check_float(logits, "logits", _LOGIT_LAYOUTS)
    size_ = V.check_size_pair(size, "size")
    return _upsample(logits, size_, _check_align_corners(align_corners))


def _check_pair_shapes(pred: Tensor, target: Tensor) -> None:
    V.check_long(target, "target", _LABEL_LAYOUTS)
    V.check_long(pred, "pred", _LABEL_LAYOUTS)
    V.check_same_shape(target, "target", pred, "pred")
    V.check_same_device(("target", target), ("pred", pred))


def _check_pair_values(pred: Tensor, target: Tensor, num_classes: int, ignore_index: int) -> None:
    """The plain value checks (labels first, then predictions); raise on a bad value."""
    V.check_labels(target, "target", num_classes, ignore_index)
    # A prediction is a class id; it may not be ignore_index.
    if V.value_checks_enabled() and pred.numel() > 0:
        lo, hi = torch.aminmax(pred)  # one read pass; the error path finds the values
        if bool((lo >= 0) & (hi < num_classes)):
            return
        bad = (pred < 0) | (pred >= num_classes)
        raise ValueError(
            f"pred: expected class ids in [0, {num_classes}), "
            f"got {torch.unique(pred[bad])[:8].tolist()}"
        )


def _checked_confusion(pred: Tensor, target: Tensor, num_classes: int, ignore_index: int) -> Tensor:
    """:func:`_confusion` with the value checks of :func:`_check_pair_values`, at the cost of
    one read of ``pred``.

    With every prediction in ``[0, K)``, the bin ``target * (K + 1) + pred`` of a
    pixel that is not ignored lies in ``[0, K * (K + 1))`` exactly when its label
    lies in ``[0, K)`` (:func:`_bins`). So the labels are checked by the range of
    the bins, which the counting reads anyway (CPU ``bincount`` refuses negative
    values and sizes its output by the largest). A bad value sends the call to the
    plain checks, which raise the same messages as before.
    """
    if not V.value_checks_enabled() or pred.numel() == 0:
        return _confusion(pred, target, num_classes, ignore_index)
    K = num_classes
    lo, hi = torch.aminmax(pred)
    if bool((lo >= 0) & (hi < K)):
        idx = _bins(pred, target, K, ignore_index, clamp=True)
        if idx.device.type == "cpu":
            try:
                counts = torch.bincount(idx)
            except RuntimeError:  # a negative bin: a negative label
                counts = None
            if counts is not None and counts.numel() <= K * (K + 1):
                return _pad(counts, K)
        else:
            b_lo, b_hi = torch.aminmax(idx)
            if bool((b_lo >= 0) & (b_hi < K * (K + 1))):
                return _count(idx, K)
    _check_pair_values(pred, target, K, ignore_index)
    raise AssertionError("unreachable: a bad value passed the plain checks")  # pragma: no cover


def confusion_matrix(
    pred: Tensor, target: Tensor, num_classes: int, ignore_index: int = 255
) -> Tensor:
    """Confusion matrix of one batch of predictions, computed with one ``bincount``.

    Args:
        pred: ``torch.long`` predicted class ids, ``(B, T, H, W)`` or ``(B, H, W)``,
            values in ``[0, num_classes)``.
        target: ``torch.long`` labels of the same shape, values in
            ``[0, num_classes)`` or ``ignore_index``.
        num_classes: ``K``.
        ignore_index: label value whose pixels are not counted.

    Returns:
        ``torch.long`` tensor ``(K, K)`` on the device of ``target``;
        ``cm[i, j]`` = number of pixels with label ``i`` predicted ``j``.

    Raises:
        ValueError: shapes differ, or a value is out of range.
        TypeError: ``pred`` or ``target`` is not ``torch.long``.

    Examples:
        >>> pred = torch.tensor([[[0, 1], [1, 1]]])
        >>> target = torch.tensor([[[0, 1], [0, 255]]])
        >>> confusion_matrix(pred, target, num_classes=2)
        tensor([[1, 1],
                [0, 1]])
    """
    K = V.check_num_classes(num_classes)
    V.check_ignore_index(ignore_index, K)
    _check_pair_shapes(pred, target)
    return _checked_confusion(pred, target, K, ignore_index)


def _bins(pred: Tensor, target: Tensor, K: int, ignore_index: int, clamp: bool = False) -> Tensor:
    """long ``(N,)``: bin ``target * (K + 1) + pred`` per pixel, bin ``K`` where ignored.

    The bins of a ``(K, K + 1)`` matrix whose last column is unused by labelled
    pixels: ignored pixels go to bin ``K`` (row 0, last column), which no label in
    any row can reach with ``pred`` in ``[0, K)``, so no boolean indexing (a host
    sync) is needed, and a label outside ``[0, K)`` gives a bin outside
    ``[0, K * (K + 1))``. ``clamp`` first clamps the labels to ``[-1, K]``, which
    keeps that property and bounds the bins of any label value.
    """
    if clamp:
        idx = target.clamp(-1, K)
        idx *= K + 1
    else:
        idx = target * (K + 1)
    idx += pred
    idx.masked_fill_(target == ignore_index, K)
    return idx.reshape(-1)


def _pad(counts: Tensor, K: int) -> Tensor:
    """The ``(K, K)`` matrix from the counts of the bins ``0 .. < K * (K + 1)``."""
    n = K * (K + 1)
    if counts.numel() < n:
        counts = torch.cat([counts, counts.new_zeros(n - counts.numel())])
    return counts[:n].reshape(K, K + 1)[:, :K].contiguous()


def _count(idx: Tensor, K: int) -> Tensor:
    if idx.device.type == "cpu":
        return _pad(torch.bincount(idx, minlength=K * (K + 1)), K)
    # bincount on accelerators reads the max on the host; scatter does not
    counts = torch.zeros(K * (K + 1), dtype=torch.long, device=idx.device)
    counts.index_add_(0, idx, torch.ones_like(idx))
    return _pad(counts, K)


def _confusion(pred: Tensor, target: Tensor, num_classes: int, ignore_index: int) -> Tensor:
    return _count(_bins(pred, target, num_classes, ignore_index), num_classes)


def iou_from_confusion(cm: Tensor, exclude: Sequence[int] = ()) -> tuple[Tensor, Tensor]:
    """Per-class IoU and mIoU from a confusion matrix.

    Args:
        cm: ``(K, K)`` integer or float confusion matrix (rows = label).
        exclude: classes left out of the mean, not out of the matrix: their
            pixels still count as other classes' false positives and negatives,
            and their IoU is still reported. This is how the published
            SYNTHIA-Seq → Cityscapes-Seq scores are computed (12 classes
            trained and in the matrix, fence dropped from the mean: TPS and
            DA-VSN ``eval_video_UDA.py``), which differs from ignoring fence
            pixels altogether.

    Returns:
        ``(iou, miou)``: ``iou`` float64 ``(K,)`` with NaN for classes absent from
        both label and prediction, ``miou`` a float64 scalar tensor, the mean over
        the non-NaN classes not in ``exclude`` (NaN when there is none).

    Raises:
        ValueError: ``cm`` is not square ``(K, K)``; a class of ``exclude``
            outside ``[0, K)``.

    Examples:
        >>> iou, miou = iou_from_confusion(torch.tensor([[1, 1, 0], [0, 1, 0], [0, 0, 0]]))
        >>> iou
        tensor([0.5000, 0.5000,    nan], dtype=torch.float64)
        >>> miou
        tensor(0.5000, dtype=torch.float64)
    """
    V.check_rank(cm, "cm", ("K K",))
    if cm.shape[0] != cm.shape[1]:
        raise ValueError(f"cm: expected a square (K, K) matrix, got {V.describe(cm)}")
    K = cm.shape[0]
    bad = [k for k in exclude if isinstance(k, bool) or not 0 <= int(k) < K]
    if bad:
        raise ValueError(f"exclude: expected class ids in [0, {K}), got {list(exclude)}")
    m = cm.to(torch.float64)
    tp = m.diagonal()
    union = m.sum(0) + m.sum(1) - tp
    iou = torch.where(union > 0, tp / union.clamp_min(1e-300), float("nan"))
    if not exclude:
        return iou, torch.nanmean(iou)
    keep = torch.ones(K, dtype=torch.bool, device=iou.device)
    keep[list(exclude)] = False
    return iou, torch.nanmean(iou[keep])


def mean_iou(
    pred: Tensor,
    target: Tensor,
    num_classes: int,
    ignore_index: int = 255,
    exclude: Sequence[int] = (),
) -> tuple[Tensor, Tensor]:
    """Per-class IoU and mIoU of one batch: :func:`confusion_matrix` + :func:`iou_from_confusion`.

    Args:
        pred: ``torch.long`` ``(B, T, H, W)`` or ``(B, H, W)`` predicted class ids.
        target: ``torch.long`` labels of the same shape.
        num_classes: ``K``.
        ignore_index: label value that is not counted.
        exclude: classes left out of the mean (see :func:`iou_from_confusion`).

    Returns:
        ``(iou (K,) float64, miou () float64)``, as :func:`iou_from_confusion`.

    Examples:
        >>> target = torch.tensor([[[0, 0], [1, 1]]])
        >>> iou, miou = mean_iou(target.clone(), target, num_classes=3)
        >>> iou.tolist()[:2], float(miou)
        ([1.0, 1.0], 1.0)
    """
    return iou_from_confusion(confusion_matrix(pred, target, num_classes, ignore_index), exclude)


class ConfusionMatrix:
    """Accumulates a confusion matrix over many batches; reports per-class IoU and mIoU.

    The state is one ``(K, K)`` ``torch.long`` tensor, a sum over batches, so it
    reduces across processes with one ``all_reduce`` (:meth:`sync`).

    Args:
        num_classes: ``K``.
        ignore_index: label value that is not counted (default 255).
        device: where the matrix lives (default CPU; moved to the first batch's
            device on the first :meth:`update`).

    Examples:
        >>> cm = ConfusionMatrix(num_classes=2)
        >>> cm.update(torch.tensor([[[0, 1]]]), torch.tensor([[[0, 0]]]))
        >>> cm.update(torch.tensor([[[1, 1]]]), torch.tensor([[[1, 255]]]))
        >>> cm.matrix
        tensor([[1, 1],
                [0, 1]])
        >>> round(float(cm.compute()[1]), 4)
        0.5
    """

    def __init__(
        self,
        num_classes: int,
        ignore_index: int = 255,
        device: torch.device | str | None = None,
    ) -> None:
        self.num_classes = V.check_num_classes(num_classes)
        self.ignore_index = V.check_ignore_index(ignore_index, self.num_classes)
        self.matrix = torch.zeros(
            self.num_classes, self.num_classes, dtype=torch.long, device=device
        )
        self._placed = device is not None

    def reset(self) -> None:
        """Zero the accumulated counts."""
        self.matrix.zero_()

    def update(self, pred: Tensor, target: Tensor) -> None:
        """Add one batch.

        Args:
            pred: ``torch.long`` ``(B, T, H, W)`` or ``(B, H, W)`` predicted ids in ``[0, K)``.
            target: ``torch.long`` labels of the same shape, ``[0, K)`` or ``ignore_index``.

        Raises:
            ValueError: shapes differ or a value is out of range.
            TypeError: a dtype is not ``torch.long``.
        """
        _check_pair_shapes(pred, target)
        counts = _checked_confusion(pred, target, self.num_classes, self.ignore_index)
        if not self._placed:
            self.matrix = self.matrix.to(target.device)
            self._placed = True
        self.matrix += counts.to(self.matrix.device)

    def update_from_logits(
        self, logits: Tensor, target: Tensor, *, align_corners: bool = False
    ) -> None:
        """Add one batch of logits, scored at the resolution of ``target`` as published.

        The logits are upsampled bilinearly to ``target``'s ``(H, W)``
        (:func:`upsample_logits`), then the argmax is taken and counted, one
        frame at a time (the full-resolution logits of one frame are held at
        once, not the batch's).

        Args:
            logits: float ``(B, T, K, h, w)`` or ``(B, K, h, w)``, any ``(h, w)``.
            target: ``torch.long`` ``(B, T, H, W)`` or ``(B, H, W)`` labels,
                ``[0, K)`` or ``ignore_index``.
            align_corners: ``False`` (mmseg, DAFormer/MIC) or ``True`` (DA-VSN/TPS).

        Raises:
            ValueError: ranks or leading dimensions differ, ``K`` is not
                ``num_classes``, devices differ, a label is out of range.
            TypeError: a dtype is wrong, ``align_corners`` not a bool.

        Examples:
            >>> cm = ConfusionMatrix(num_classes=2)
            >>> logits = torch.tensor([[[[0.0, 1.0]], [[1.0, 0.0]]]])  # (1, 2, 1, 2)
            >>> cm.update_from_logits(logits, torch.tensor([[[1, 1, 0, 255]]]))
            >>> cm.matrix
            tensor([[1, 0],
                    [0, 2]])
        """
        V.check_float(logits, "logits", _LOGIT_LAYOUTS)
        V.check_long(target, "target", _LABEL_LAYOUTS)
        ac = _check_align_corners(align_corners)
        if target.dim() != logits.dim() - 1:
            raise ValueError(
                f"target: expected {logits.dim() - 1} dimensions (logits {tuple(logits.shape)} "
                f"without K), got {V.describe(target)}"
            )
        lead = logits.dim() - 3  # (B,) or (B, T)
        V.check_dims(logits, "logits", range(lead), target, "target", range(lead),
                     "the leading dimensions")  # fmt: skip
        if logits.shape[lead] != self.num_classes:
            raise ValueError(
                f"logits: expected K = num_classes = {self.num_classes} in dimension {lead}, "
                f"got {V.describe(logits)}"
            )
        V.check_same_device(("target", target), ("logits", logits))
        V.check_labels(target, "target", self.num_classes, self.ignore_index)
        size = (int(target.shape[-2]), int(target.shape[-1]))
        frames = logits.reshape(-1, *logits.shape[-3:])
        pred = torch.empty((frames.shape[0], *size), dtype=torch.long, device=target.device)
        for i in range(frames.shape[0]):
            pred[i] = _upsample(frames[i : i + 1], size, ac)[0].argmax(0)
        if not self._placed:
            self.matrix = self.matrix.to(target.device)
            self._placed = True
        counts = _confusion(pred, target.reshape(-1, *size), self.num_classes, self.ignore_index)
        self.matrix += counts.to(self.matrix.device)

    def compute(self, exclude: Sequence[int] = ()) -> tuple[Tensor, Tensor]:
        """``(iou (K,) float64 with NaN for absent classes, miou () float64)``; the
        classes ``exclude`` are left out of the mean (see :func:`iou_from_confusion`)."""
        return iou_from_confusion(self.matrix, exclude)

    def sync(self, group: Any = None) -> None:
        """Sum the matrix over the processes of ``group`` (no-op when not distributed)."""
        if dist.is_available() and dist.is_initialized() and dist.get_world_size(group) > 1:
            dist.all_reduce(self.matrix, op=dist.ReduceOp.SUM, group=group)

    def state_dict(self) -> dict[str, Any]:
        """The counts and configuration, loadable with ``torch.load(weights_only=True)``."""
        return {
            "num_classes": self.num_classes,
            "ignore_index": self.ignore_index,
            "matrix": self.matrix.clone(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore from :meth:`state_dict`; refuses a state for another class count.

        Raises:
            ValueError: ``state`` was saved for a different ``num_classes`` or
                ``ignore_index``, or its matrix has the wrong shape.
        """
        if state.get("num_classes") != self.num_classes:
            raise ValueError(
                f"state: expected num_classes={self.num_classes}, got {state.get('num_classes')!r}"
            )
        if state.get("ignore_index") != self.ignore_index:
            raise ValueError(
                f"state: expected ignore_index={self.ignore_index}, "
                f"got {state.get('ignore_index')!r}"
            )
        m = state["matrix"]
        if not isinstance(m, Tensor) or m.shape != self.matrix.shape:
            raise ValueError(
                f"state['matrix']: expected shape {tuple(self.matrix.shape)}, got {V.describe(m)}"
            )
        self.matrix = m.to(device=self.matrix.device, dtype=torch.long).clone()

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
from torch import Tensor

from dastc import _validate as V

__all__ = ["ConfusionMatrix", "confusion_matrix", "iou_from_confusion", "mean_iou"]

_LABEL_LAYOUTS = ("B T H W", "B H W")


def _check_pair(pred: Tensor, target: Tensor, num_classes: int, ignore_index: int) -> None:
    V.check_long(target, "target", _LABEL_LAYOUTS)
    V.check_long(pred, "pred", _LABEL_LAYOUTS)
    V.check_same_shape(target, "target", pred, "pred")
    V.check_same_device(("target", target), ("pred", pred))
    V.check_labels(target, "target", num_classes, ignore_index)
    # A prediction is a class id; it may not be ignore_index.
    if V.value_checks_enabled() and pred.numel() > 0:
        bad = (pred < 0) | (pred >= num_classes)
        if bool(bad.any()):
            raise ValueError(
                f"pred: expected class ids in [0, {num_classes}), "
                f"got {torch.unique(pred[bad])[:8].tolist()}"
            )


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
    _check_pair(pred, target, K, ignore_index)
    return _confusion(pred, target, K, ignore_index)


def _confusion(pred: Tensor, target: Tensor, num_classes: int, ignore_index: int) -> Tensor:
    K = num_classes
    valid = target != ignore_index
    # Ignored pixels go to an overflow bin K*K that is dropped, so no boolean
    # indexing (a host sync) is needed.
    idx = torch.where(valid, target * K + pred, K * K).reshape(-1)
    if idx.device.type == "cpu":
        counts = torch.bincount(idx, minlength=K * K + 1)
    else:  # bincount on accelerators reads the max on the host; scatter does not
        counts = torch.zeros(K * K + 1, dtype=torch.long, device=idx.device)
        counts.index_add_(0, idx, torch.ones_like(idx))
    return counts[: K * K].reshape(K, K)


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
        _check_pair(pred, target, self.num_classes, self.ignore_index)
        if not self._placed:
            self.matrix = self.matrix.to(target.device)
            self._placed = True
        self.matrix += _confusion(pred, target, self.num_classes, self.ignore_index).to(
            self.matrix.device
        )

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

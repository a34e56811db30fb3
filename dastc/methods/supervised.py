"""The supervised bounds: SourceOnly (lower) and Oracle (trained on target labels)."""

from __future__ import annotations

from typing import ClassVar

from torch import Tensor

from dastc.methods.base import Method

__all__ = ["Oracle", "SourceOnly"]


class SourceOnly(Method):
    """Cross-entropy on the labelled source clips; the target batch is not read.

    The EMA teacher still follows the student (:meth:`after_step`), so both can
    be evaluated like any method's.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> class Net(nn.Module):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.conv = nn.Conv2d(3, 4, 1)
        ...     def forward(self, clip, flow_prev=None):
        ...         return self.conv(clip.flatten(0, 1)).unflatten(0, clip.shape[:2])
        >>> method = SourceOnly(Net(), 4)
        >>> batch = {"clip": torch.rand(2, 1, 3, 8, 8),
        ...          "label": torch.randint(0, 4, (2, 1, 8, 8))}
        >>> sorted(method(batch, batch).logs)
        ['loss', 'src']
    """

    name: ClassVar[str] = "source_only"

    def loss(
        self, source: dict[str, Tensor], target: dict[str, Tensor], logs: dict[str, Tensor]
    ) -> Tensor:
        fs, _ = self._flows(source, target)
        loss = self._ce(self.net(source["clip"], fs), source["label"])
        logs["src"] = loss.detach()
        return loss


class Oracle(Method):
    """Cross-entropy on the *target* labels (the upper bound; needs ``target['label']``)."""

    name: ClassVar[str] = "oracle"
    needs_target_labels: ClassVar[bool] = True

    def loss(
        self, source: dict[str, Tensor], target: dict[str, Tensor], logs: dict[str, Tensor]
    ) -> Tensor:
        _, ft = self._flows(source, target)
        loss = self._ce(self.net(target["clip"], ft), target["label"])
        logs["tgt_sup"] = loss.detach()
        return loss

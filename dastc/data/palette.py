"""The Cityscapes benchmark's display colours, and those of the protocols built on its classes.

:data:`CITYSCAPES_PALETTE` holds the ``color`` of each of the 19 evaluation
classes in cityscapesScripts' ``helpers/labels.py`` (the colours of every
published Cityscapes figure and of the public DA-VSN/TPS/DAFormer
visualisations), in train-id order. The palettes of the other protocols take
each class's Cityscapes colour by name: :data:`VIPER_PALETTE` (VIPER →
Cityscapes-Seq, 15 classes), :data:`SYNTHIA_SEQ_PALETTE` (SYNTHIA-Seq →
Cityscapes-Seq, 12) and :data:`SYNTHIA_16_PALETTE` (SYNTHIA → Cityscapes, 16);
:func:`palette_for` builds one for any list of Cityscapes class names.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from dastc.data.labelmaps import (
    CITYSCAPES_CLASSES,
    SYNTHIA_16_CLASSES,
    SYNTHIA_SEQ_CLASSES,
    VIPER_CLASSES,
)

__all__ = [
    "CITYSCAPES_PALETTE",
    "SYNTHIA_16_PALETTE",
    "SYNTHIA_SEQ_PALETTE",
    "VIPER_PALETTE",
    "palette_for",
]

RGB = tuple[int, int, int]

CITYSCAPES_PALETTE: tuple[RGB, ...] = (
    (128, 64, 128),  # road
    (244, 35, 232),  # sidewalk
    (70, 70, 70),  # building
    (102, 102, 156),  # wall
    (190, 153, 153),  # fence
    (153, 153, 153),  # pole
    (250, 170, 30),  # traffic light
    (220, 220, 0),  # traffic sign
    (107, 142, 35),  # vegetation
    (152, 251, 152),  # terrain
    (70, 130, 180),  # sky
    (220, 20, 60),  # person
    (255, 0, 0),  # rider
    (0, 0, 142),  # car
    (0, 0, 70),  # truck
    (0, 60, 100),  # bus
    (0, 80, 100),  # train
    (0, 0, 230),  # motorcycle
    (119, 11, 32),  # bicycle
)
"""``(R, G, B)`` of the 19 :data:`~dastc.data.CITYSCAPES_CLASSES`, in train-id order
(cityscapesScripts ``helpers/labels.py``, column ``color``)."""

_BY_NAME: dict[str, RGB] = dict(zip(CITYSCAPES_CLASSES, CITYSCAPES_PALETTE, strict=True))


def _by_name(class_names: Sequence[str]) -> tuple[RGB, ...]:
    unknown = [c for c in class_names if c not in _BY_NAME]
    if unknown:
        raise ValueError(
            f"class_names: expected Cityscapes class names {list(CITYSCAPES_CLASSES)}, "
            f"got {unknown}"
        )
    return tuple(_BY_NAME[c] for c in class_names)


VIPER_PALETTE: tuple[RGB, ...] = _by_name(VIPER_CLASSES)
"""``(R, G, B)`` of the 15 :data:`~dastc.data.VIPER_CLASSES`: each class's Cityscapes colour."""

SYNTHIA_SEQ_PALETTE: tuple[RGB, ...] = _by_name(SYNTHIA_SEQ_CLASSES)
"""``(R, G, B)`` of the 12 :data:`~dastc.data.SYNTHIA_SEQ_CLASSES`: each class's Cityscapes
colour."""

SYNTHIA_16_PALETTE: tuple[RGB, ...] = _by_name(SYNTHIA_16_CLASSES)
"""``(R, G, B)`` of the 16 :data:`~dastc.data.SYNTHIA_16_CLASSES`: each class's Cityscapes
colour."""


def palette_for(class_names: Sequence[str]) -> Tensor:
    """The Cityscapes colours of ``class_names``, as a ``uint8`` ``(K, 3)`` tensor.

    Args:
        class_names: names of :data:`~dastc.data.CITYSCAPES_CLASSES`, in the
            protocol's train-id order (e.g. ``dataset.class_names``).

    Returns:
        ``uint8`` ``(K, 3)``: row ``k`` is the colour of ``class_names[k]``.

    Raises:
        TypeError: ``class_names`` is a string, not a sequence of names.
        ValueError: a name that is not a Cityscapes class, or no name at all.

    Examples:
        >>> from dastc.data import VIPER_CLASSES
        >>> palette_for(VIPER_CLASSES)[3].tolist()  # fence
        [190, 153, 153]
        >>> palette_for(["car", "road"]).tolist()
        [[0, 0, 142], [128, 64, 128]]
    """
    if isinstance(class_names, str) or not isinstance(class_names, Sequence):
        raise TypeError(
            f"class_names: expected a sequence of class names, got {type(class_names).__name__} "
            f"{class_names!r}"[:200]
        )
    if len(class_names) == 0:
        raise ValueError("class_names: expected at least one class name, got none")
    return torch.tensor(_by_name(class_names), dtype=torch.uint8)

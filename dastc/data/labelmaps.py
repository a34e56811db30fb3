"""Raw label id → train id lookup tables and class names of the real benchmarks.

Each dataset stores per-pixel *raw* class ids; a benchmark protocol keeps some
classes, renumbers them ``0 .. K-1`` (*train ids*) and sends every other known
id to the ignore value 255. A :class:`TrainIdMap` holds one such protocol as a
lookup table (numpy or torch) and refuses ids the dataset does not define.

Protocols (the video ones follow the public DA-VSN/TPS/DA-STC code), as
``map name: raw ids -> K classes``:

- ``VIPER_MAP`` ("viper"): VIPER ids 0-31 -> 15, :data:`VIPER_CLASSES`.
- ``SYNTHIA_SEQ_MAP`` ("synthia_seq"): SYNTHIA ids 0-22 -> 12,
  :data:`SYNTHIA_SEQ_CLASSES`; ``SYNTHIA_SEQ_11_MAP`` -> the 11 without fence.
- ``CITYSCAPES_MAP`` ("cityscapes"): Cityscapes labelIds 0-33 -> the standard 19,
  :data:`CITYSCAPES_CLASSES`; ``GTA5_MAP`` ("gta5") is the same for GTA5 labels.
- ``SYNTHIA_MAP`` ("synthia"): SYNTHIA-RAND-CITYSCAPES ids 0-22 -> the 19 Cityscapes
  train ids (terrain, truck and train have ids but no pixels); ``SYNTHIA_16_MAP``
  ("synthia-16") -> the 16 :data:`SYNTHIA_16_CLASSES`.
- ``CITYSCAPES_16_MAP`` / ``CITYSCAPES_13_MAP``: labelIds -> the SYNTHIA → Cityscapes
  classes :data:`SYNTHIA_16_CLASSES` / :data:`SYNTHIA_13_CLASSES`.
- ``CITYSCAPES_VIPER_MAP`` ("cityscapes-viper"): labelIds -> :data:`VIPER_CLASSES`;
  rider (25) counts as person, as in the public code.
- ``CITYSCAPES_SYNTHIA_SEQ_MAP`` ("cityscapes-synthia"): labelIds ->
  :data:`SYNTHIA_SEQ_CLASSES`; ``CITYSCAPES_SYNTHIA_SEQ_11_MAP`` -> the 11 without fence.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal, overload

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor

__all__ = [
    "IGNORE_INDEX",
    "TrainIdMap",
    "CITYSCAPES_CLASSES",
    "SYNTHIA_16_CLASSES",
    "SYNTHIA_13_CLASSES",
    "VIPER_CLASSES",
    "SYNTHIA_SEQ_CLASSES",
    "SYNTHIA_SEQ_11_CLASSES",
    "VIPER_MAP",
    "SYNTHIA_SEQ_MAP",
    "SYNTHIA_SEQ_11_MAP",
    "CITYSCAPES_MAP",
    "CITYSCAPES_16_MAP",
    "CITYSCAPES_13_MAP",
    "CITYSCAPES_VIPER_MAP",
    "CITYSCAPES_SYNTHIA_SEQ_MAP",
    "CITYSCAPES_SYNTHIA_SEQ_11_MAP",
    "GTA5_MAP",
    "SYNTHIA_MAP",
    "SYNTHIA_16_MAP",
    "MEAN_EXCLUDES",
    "EXTRA_MEANS",
    "TRAIN_ID_MAPS",
    "get_train_id_map",
]

IGNORE_INDEX = 255
"""Train id of every pixel outside the protocol's classes."""


@dataclass(frozen=True)
class TrainIdMap:
    """A raw-id → train-id lookup table for one dataset and one benchmark protocol.

    ``table[raw] = train id`` for the ``num_raw_ids`` ids the dataset defines
    (``0 .. num_raw_ids - 1``): the protocol's classes get ``0 .. K-1``, every
    other defined id gets ``255``. An id ``>= num_raw_ids`` (or negative) is
    not part of the dataset: an error with ``unknown="error"`` (the default),
    read as ``255`` with ``unknown="ignore"`` (what the public GTA5 readers do);
    :meth:`unknown_ids` lists such ids either way.

    Args:
        name: short identifier, e.g. ``"viper"``.
        class_names: the ``K`` class names, in train-id order.
        pairs: ``(raw id, train id)`` pairs; several raw ids may share a train id.
        num_raw_ids: how many raw ids the dataset defines.
        unknown: what :meth:`apply` does with an id outside ``[0, num_raw_ids)``:
            ``"error"`` (raise) or ``"ignore"`` (map it to 255).

    Raises:
        ValueError: a train id outside ``[0, K)``, a class without any raw id,
            a raw id outside ``[0, num_raw_ids)`` or listed twice, an ``unknown``
            other than ``"error"``/``"ignore"``.

    Examples:
        >>> import numpy as np
        >>> m = TrainIdMap("toy", ("road", "car"), ((3, 0), (7, 1)), num_raw_ids=8)
        >>> m.num_classes, m.table.tolist()
        (2, [255, 255, 255, 0, 255, 255, 255, 1])
        >>> m.apply(np.array([[3, 7], [0, 3]])).tolist()
        [[0, 1], [255, 0]]
    """

    name: str
    class_names: tuple[str, ...]
    pairs: tuple[tuple[int, int], ...]
    num_raw_ids: int
    unknown: Literal["error", "ignore"] = "error"
    _table: npt.NDArray[np.int64] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.unknown not in ("error", "ignore"):
            raise ValueError(f"unknown: expected 'error' or 'ignore', got {self.unknown!r}")
        k = len(self.class_names)
        if k < 1 or self.num_raw_ids < 1:
            raise ValueError(f"{self.name}: expected >= 1 class and >= 1 raw id")
        raw_ids = [r for r, _ in self.pairs]
        if len(set(raw_ids)) != len(raw_ids):
            raise ValueError(f"{self.name}: a raw id is listed twice in {self.pairs}")
        bad_raw = [r for r in raw_ids if not 0 <= r < self.num_raw_ids]
        bad_train = [t for _, t in self.pairs if not 0 <= t < k]
        if bad_raw or bad_train:
            raise ValueError(
                f"{self.name}: expected raw ids in [0, {self.num_raw_ids}) and train ids in "
                f"[0, {k}), got raw {bad_raw} train {bad_train}"
            )
        missing = sorted(set(range(k)) - {t for _, t in self.pairs})
        if missing:
            raise ValueError(f"{self.name}: train ids {missing} have no raw id")
        table = np.full(self.num_raw_ids, IGNORE_INDEX, dtype=np.int64)
        for raw, train in self.pairs:
            table[raw] = train
        table.setflags(write=False)
        object.__setattr__(self, "_table", table)

    @property
    def num_classes(self) -> int:
        """``K``, the number of train ids."""
        return len(self.class_names)

    @property
    def table(self) -> npt.NDArray[np.int64]:
        """Read-only ``int64`` lookup table of length ``num_raw_ids``."""
        return self._table

    def as_dict(self) -> dict[int, int]:
        """``{raw id: train id}`` for every raw id the dataset defines (255 = ignored)."""
        return {i: int(t) for i, t in enumerate(self._table)}

    def torch_table(self, device: torch.device | str | None = None) -> Tensor:
        """The lookup table as a ``torch.long`` tensor ``(num_raw_ids,)`` on ``device``."""
        return torch.as_tensor(self._table.copy(), device=device)

    def unknown_ids(self, raw: npt.NDArray[np.integer] | Tensor) -> list[int]:
        """Sorted ids in ``raw`` that the dataset does not define (empty when all are known)."""
        if isinstance(raw, Tensor):
            bad_t = raw[(raw < 0) | (raw >= self.num_raw_ids)]
            return [int(v) for v in torch.unique(bad_t).tolist()]
        arr = np.asarray(raw)
        if arr.size == 0 or (arr.min() >= 0 and arr.max() < self.num_raw_ids):
            return []
        return [int(v) for v in np.unique(arr[(arr < 0) | (arr >= self.num_raw_ids)])]

    @overload
    def apply(self, raw: npt.NDArray[np.integer], where: str = ...) -> npt.NDArray[np.int64]: ...

    @overload
    def apply(self, raw: Tensor, where: str = ...) -> Tensor: ...

    def apply(
        self, raw: npt.NDArray[np.integer] | Tensor, where: str = "raw"
    ) -> npt.NDArray[np.int64] | Tensor:
        """Map raw ids to train ids (``255`` for ids outside the protocol, and for
        unknown ids with ``unknown="ignore"``).

        Args:
            raw: integer array or tensor of raw ids, any shape.
            where: what ``raw`` is (a file path, an argument name), used in the error.

        Returns:
            ``int64`` array (numpy input) or ``torch.long`` tensor on ``raw``'s
            device (tensor input), same shape as ``raw``.

        Raises:
            TypeError: ``raw`` is not of an integer dtype.
            ValueError: ``raw`` holds an id the dataset does not define (with
                ``unknown="error"``); the message names ``where``, the ids and
                the expected range.
        """
        if isinstance(raw, Tensor):
            if raw.is_floating_point() or raw.is_complex() or raw.dtype == torch.bool:
                raise TypeError(f"{where}: expected integer raw ids, got {raw.dtype}")
        elif not np.issubdtype(np.asarray(raw).dtype, np.integer):
            raise TypeError(f"{where}: expected integer raw ids, got {np.asarray(raw).dtype}")
        if self.unknown == "ignore":
            if isinstance(raw, Tensor):
                r = raw.long()
                known = (r >= 0) & (r < self.num_raw_ids)
                return torch.where(
                    known,
                    self.torch_table(raw.device)[r.clamp(0, self.num_raw_ids - 1)],
                    IGNORE_INDEX,
                )
            a = np.asarray(raw).astype(np.int64)
            known_np = (a >= 0) & (a < self.num_raw_ids)
            return np.where(
                known_np, self._table[np.clip(a, 0, self.num_raw_ids - 1)], IGNORE_INDEX
            )
        unknown = self.unknown_ids(raw)
        if unknown:
            raise ValueError(
                f"{where}: expected {self.name} raw label ids in [0, {self.num_raw_ids}), "
                f"got unknown ids {unknown[:10]}"
            )
        if isinstance(raw, Tensor):
            return self.torch_table(raw.device)[raw.long()]
        return self._table[np.asarray(raw)]


def _pairs(mapping: Mapping[int, int]) -> tuple[tuple[int, int], ...]:
    return tuple(sorted(mapping.items()))


def _subset(base: TrainIdMap, name: str, keep: Iterable[str]) -> TrainIdMap:
    """The protocol of ``base`` restricted to the classes ``keep`` (renumbered in that order)."""
    keep = tuple(keep)
    new_id = {base.class_names.index(c): i for i, c in enumerate(keep)}
    pairs = tuple((r, new_id[t]) for r, t in base.pairs if t in new_id)
    return TrainIdMap(name, keep, pairs, base.num_raw_ids, base.unknown)


CITYSCAPES_CLASSES: tuple[str, ...] = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light",
    "traffic sign", "vegetation", "terrain", "sky", "person", "rider", "car",
    "truck", "bus", "train", "motorcycle", "bicycle",
)  # fmt: skip
"""The 19 Cityscapes evaluation classes, in train-id order."""

SYNTHIA_16_CLASSES: tuple[str, ...] = tuple(
    c for c in CITYSCAPES_CLASSES if c not in ("terrain", "truck", "train")
)
"""The 16 classes shared by SYNTHIA and Cityscapes (SYNTHIA → Cityscapes protocol)."""

SYNTHIA_13_CLASSES: tuple[str, ...] = tuple(
    c for c in SYNTHIA_16_CLASSES if c not in ("wall", "fence", "pole")
)
"""The 13-class SYNTHIA → Cityscapes protocol (16 classes without wall, fence, pole)."""

VIPER_CLASSES: tuple[str, ...] = (
    "road", "sidewalk", "building", "fence", "traffic light", "traffic sign",
    "vegetation", "terrain", "sky", "person", "car", "truck", "bus", "motorcycle",
    "bicycle",
)  # fmt: skip
"""The 15 classes of the VIPER → Cityscapes-Seq protocol, in train-id order."""

SYNTHIA_SEQ_CLASSES: tuple[str, ...] = (
    "road", "sidewalk", "building", "fence", "pole", "traffic light", "traffic sign",
    "vegetation", "sky", "person", "rider", "car",
)  # fmt: skip
"""The 12 classes of the SYNTHIA-Seq → Cityscapes-Seq protocol, in train-id order."""

SYNTHIA_SEQ_11_CLASSES: tuple[str, ...] = tuple(c for c in SYNTHIA_SEQ_CLASSES if c != "fence")
"""The 11 evaluation classes of SYNTHIA-Seq → Cityscapes-Seq (the 12 without fence)."""

# Cityscapes labelIds (cityscapesscripts labels.py): 0-33 are stored in
# *_gtFine_labelIds.png; license plate (-1) never is.
_CITYSCAPES_NUM_IDS = 34
_CITYSCAPES_19 = {
    7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9,
    23: 10, 24: 11, 25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18,
}  # fmt: skip
_CITYSCAPES_VIPER_15 = {
    7: 0, 8: 1, 11: 2, 13: 3, 19: 4, 20: 5, 21: 6, 22: 7, 23: 8, 24: 9, 25: 9,
    26: 10, 27: 11, 28: 12, 32: 13, 33: 14,
}  # fmt: skip
_CITYSCAPES_SYNTHIA_SEQ_12 = {
    7: 0, 8: 1, 11: 2, 13: 3, 17: 4, 19: 5, 20: 6, 21: 7, 23: 8, 24: 9, 25: 10, 26: 11,
}  # fmt: skip
# VIPER class ids 0-31 (0 unlabeled, 2 sky, 3 road, ... 24 car, ... 31 boat).
_VIPER_NUM_IDS = 32
_VIPER_15 = {
    3: 0, 4: 1, 9: 2, 11: 3, 13: 4, 14: 5, 7: 6, 8: 6, 6: 7, 2: 8, 20: 9, 24: 10,
    27: 11, 26: 12, 23: 13, 22: 14,
}  # fmt: skip
# SYNTHIA class ids 0-22 (SYNTHIA-Seq uses 0-15; 11 "bicycle" is the protocol's rider).
_SYNTHIA_NUM_IDS = 23
_SYNTHIA_SEQ_12 = {3: 0, 4: 1, 2: 2, 5: 3, 7: 4, 15: 5, 9: 6, 6: 7, 1: 8, 10: 9, 11: 10, 8: 11}
# SYNTHIA-RAND-CITYSCAPES ids -> the 19 Cityscapes train ids (the dataset's README;
# DAFormer's tools/convert_datasets/synthia.py): 16 terrain, 18 truck and 20 train
# are defined but no pixel holds them.
_SYNTHIA_19 = {
    3: 0, 4: 1, 2: 2, 21: 3, 5: 4, 7: 5, 15: 6, 9: 7, 6: 8, 16: 9, 1: 10, 10: 11,
    17: 12, 8: 13, 18: 14, 19: 15, 20: 16, 12: 17, 11: 18,
}  # fmt: skip

CITYSCAPES_MAP = TrainIdMap(
    "cityscapes", CITYSCAPES_CLASSES, _pairs(_CITYSCAPES_19), _CITYSCAPES_NUM_IDS
)
"""Cityscapes labelIds → the 19 standard train ids (cityscapesscripts ``trainId``)."""

CITYSCAPES_16_MAP = _subset(CITYSCAPES_MAP, "cityscapes-16", SYNTHIA_16_CLASSES)
"""Cityscapes labelIds → the 16 SYNTHIA → Cityscapes classes."""

CITYSCAPES_13_MAP = _subset(CITYSCAPES_MAP, "cityscapes-13", SYNTHIA_13_CLASSES)
"""Cityscapes labelIds → the 13 SYNTHIA → Cityscapes classes."""

CITYSCAPES_VIPER_MAP = TrainIdMap(
    "cityscapes-viper", VIPER_CLASSES, _pairs(_CITYSCAPES_VIPER_15), _CITYSCAPES_NUM_IDS
)
"""Cityscapes(-Seq) labelIds → the 15 VIPER-protocol classes (rider counts as person)."""

CITYSCAPES_SYNTHIA_SEQ_MAP = TrainIdMap(
    "cityscapes-synthia", SYNTHIA_SEQ_CLASSES, _pairs(_CITYSCAPES_SYNTHIA_SEQ_12),
    _CITYSCAPES_NUM_IDS,
)  # fmt: skip
"""Cityscapes(-Seq) labelIds → the 12 SYNTHIA-Seq-protocol classes."""

_SYNTHIA_ABSENT = ("terrain", "truck", "train")

MEAN_EXCLUDES: dict[str, tuple[str, ...]] = {
    "cityscapes-synthia": ("fence",),
    "synthia": _SYNTHIA_ABSENT,
}
"""Per protocol (a :class:`TrainIdMap` name: the target's, or the source's), the
classes that are in the model's output and kept in the confusion matrix but left
out of the published mIoU. Pass their indices as ``exclude`` to
:func:`dastc.metrics.iou_from_confusion`.

- ``"cityscapes-synthia"``: SYNTHIA-Seq → Cityscapes-Seq trains 12 classes and
  averages 11, without fence (TPS / DA-VSN ``eval_video_UDA.py``).
- ``"synthia"``: SYNTHIA → Cityscapes scores a 19-class model in the 19-class
  confusion matrix of Cityscapes ``val`` and averages the 16 classes SYNTHIA
  labels, without terrain, truck and train (DAFormer / HRDA / MIC: their
  evaluation computes the 19 IoUs; the 16-class mIoU is taken from them). A
  Cityscapes pixel of those three classes still counts against the class the
  model predicts there."""

EXTRA_MEANS: dict[str, dict[str, tuple[str, ...]]] = {
    "synthia": {"13": (*_SYNTHIA_ABSENT, "wall", "fence", "pole")},
}
"""Per protocol (as in :data:`MEAN_EXCLUDES`), further means the published tables
report from the same confusion matrix: ``{name: classes left out}``. SYNTHIA →
Cityscapes also gives the mean over the 13 :data:`SYNTHIA_13_CLASSES` (the 16
without wall, fence and pole: "mIoU*"), taken from the same 19 IoUs."""

CITYSCAPES_SYNTHIA_SEQ_11_MAP = _subset(
    CITYSCAPES_SYNTHIA_SEQ_MAP, "cityscapes-synthia-11", SYNTHIA_SEQ_11_CLASSES
)
"""Cityscapes(-Seq) labelIds → the 11 SYNTHIA-Seq evaluation classes (no fence)."""

GTA5_MAP = TrainIdMap(
    "gta5", CITYSCAPES_CLASSES, _pairs(_CITYSCAPES_19), _CITYSCAPES_NUM_IDS, unknown="ignore"
)
"""GTA5 labels (Cityscapes labelIds) → the 19 standard train ids; ids outside 0-33 are
read as ignore (255), as the public GTA5 readers do (DAFormer's
``tools/convert_datasets/gta.py`` starts from 255 and writes the 19 mapped ids)."""

SYNTHIA_MAP = TrainIdMap(
    "synthia", CITYSCAPES_CLASSES, _pairs(_SYNTHIA_19), _SYNTHIA_NUM_IDS, unknown="ignore"
)
"""SYNTHIA-RAND-CITYSCAPES class ids (label channel 0) → the 19 Cityscapes train ids,
as DAFormer's ``tools/convert_datasets/synthia.py`` converts them: the 16 classes
SYNTHIA labels, plus terrain (16), truck (18) and train (20), which no pixel holds.
Ids outside 0-22 are read as ignore (255), as that conversion does (it starts from
255 and writes the mapped ids)."""

SYNTHIA_16_MAP = _subset(SYNTHIA_MAP, "synthia-16", SYNTHIA_16_CLASSES)
"""SYNTHIA-RAND-CITYSCAPES class ids → the 16 :data:`SYNTHIA_16_CLASSES` (the same
ids as :data:`SYNTHIA_MAP`, renumbered; terrain, truck and train ignored)."""

VIPER_MAP = TrainIdMap("viper", VIPER_CLASSES, _pairs(_VIPER_15), _VIPER_NUM_IDS)
"""VIPER class ids → the 15 VIPER → Cityscapes-Seq train ids."""

SYNTHIA_SEQ_MAP = TrainIdMap(
    "synthia_seq", SYNTHIA_SEQ_CLASSES, _pairs(_SYNTHIA_SEQ_12), _SYNTHIA_NUM_IDS
)
"""SYNTHIA-Seq class ids → the 12 SYNTHIA-Seq → Cityscapes-Seq train ids."""

SYNTHIA_SEQ_11_MAP = _subset(SYNTHIA_SEQ_MAP, "synthia_seq-11", SYNTHIA_SEQ_11_CLASSES)
"""SYNTHIA-Seq class ids → the 11 evaluation classes (fence ignored)."""

TRAIN_ID_MAPS: dict[str, TrainIdMap] = {
    m.name: m
    for m in (
        VIPER_MAP,
        SYNTHIA_SEQ_MAP,
        SYNTHIA_SEQ_11_MAP,
        CITYSCAPES_MAP,
        CITYSCAPES_16_MAP,
        CITYSCAPES_13_MAP,
        CITYSCAPES_VIPER_MAP,
        CITYSCAPES_SYNTHIA_SEQ_MAP,
        CITYSCAPES_SYNTHIA_SEQ_11_MAP,
        GTA5_MAP,
        SYNTHIA_MAP,
        SYNTHIA_16_MAP,
    )
}
"""Every built-in map by name."""


def get_train_id_map(name: str) -> TrainIdMap:
    """Look up a built-in :class:`TrainIdMap` by name.

    Args:
        name: one of ``TRAIN_ID_MAPS`` (``"viper"``, ``"synthia_seq"``,
            ``"synthia_seq-11"``, ``"cityscapes"``, ``"cityscapes-16"``,
            ``"cityscapes-13"``, ``"cityscapes-viper"``, ``"cityscapes-synthia"``,
            ``"cityscapes-synthia-11"``, ``"gta5"``, ``"synthia"``, ``"synthia-16"``).

    Returns:
        The map.

    Raises:
        ValueError: unknown ``name``.

    Examples:
        >>> get_train_id_map("cityscapes-viper").num_classes
        15
    """
    try:
        return TRAIN_ID_MAPS[name]
    except KeyError:
        raise ValueError(f"name: expected one of {sorted(TRAIN_ID_MAPS)}, got {name!r}") from None

"""VIPER (Playing for Benchmarks) clips for VIPER → Cityscapes-Seq.

Layout (as the public DA-VSN/TPS/DA-STC code reads it)::

    ROOT/<split>/img/<seq>/<seq>_<frame5>.jpg     e.g. train/img/001/001_00010.jpg
    ROOT/<split>/cls/<seq>/<seq>_<frame5>.png     class ids 0-31 (8-bit)
    FLOW_ROOT/<seq>_<frame5><prev5>_int16_x10.npy  flow of frame into frame - 1,
                                                   e.g. 001_0001000009_int16_x10.npy

Frames are 1280 × 720. Labels map to the 15 classes of
:data:`~dastc.data.labelmaps.VIPER_CLASSES`; the ego vehicle (the car
component touching the bottom centre of the frame) is set to ignore.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from dastc.data._files import PathLike
from dastc.data._frames import LabelSize
from dastc.data._layout import (
    _Listing,
    _VideoFrames,
    _VideoLayout,
)
from dastc.data.labelmaps import VIPER_MAP

__all__ = ["VIPER", "remove_ego_vehicle", "connected_component"]

VIPER_CAR_ID = 24
"""VIPER's raw class id of car."""

_LAYOUT = _VideoLayout(
    dataset="VIPER",
    pattern=re.compile(r"(?P<seq>[^/]+)/(?P=seq)_(?P<frame>\d{5})\.(?P<ext>jpg|png)"),
    example="001/001_00010.jpg",
    image="{split}/img/{seq}/{seq}_{frame:05d}.{ext}",
    label="{split}/cls/{seq}/{seq}_{frame:05d}.png",
    labels_every_frame=True,
    flow="{seq}_{frame:05d}{other:05d}_int16_x10.npy",
    flow_hint="the public VIPER flows (DA-VSN / TPS) cover the frames of the public lists "
    "train.txt / val.txt (every 10th frame): pass names=read_list(LIST) "
    "(the example: --source-list LIST)",
)


def _run_ids(mask: npt.NDArray[np.bool_], axis: int) -> npt.NDArray[np.int32]:
    """Give each run of ``True`` along ``axis`` its own id ``>= 1`` (0 off the mask)."""
    starts = mask.copy()
    if axis == 1:
        starts[:, 1:] &= ~mask[:, :-1]
    else:
        starts[1:] &= ~mask[:-1]
    ids = np.cumsum(starts, axis=axis, dtype=np.int32)
    per_line = ids[:, -1:] if axis == 1 else ids[-1:]
    offsets = np.cumsum(per_line, axis=1 - axis, dtype=np.int32) - per_line  # earlier lines' runs
    out: npt.NDArray[np.int32] = np.where(mask, ids + offsets, 0).astype(np.int32)
    return out


def _band(has: npt.NDArray[np.bool_], i: int) -> tuple[int, int]:
    """The maximal run ``[lo, hi)`` of ``True`` in the 1-D ``has`` that contains index ``i``."""
    gaps = np.flatnonzero(~has)
    lo = int(gaps[gaps < i].max()) + 1 if (gaps < i).any() else 0
    hi = int(gaps[gaps > i].min()) if (gaps > i).any() else has.size
    return lo, hi


def connected_component(mask: npt.NDArray[np.bool_], row: int, col: int) -> npt.NDArray[np.bool_]:
    """The 8-connected component of ``mask`` containing pixel ``(row, col)``.

    A vectorised flood fill: each round grows the region by one pixel in all
    eight directions, then fills every horizontal and every vertical run of
    ``mask`` it touches, until nothing changes; the number of rounds grows
    with how often the component turns, not with its size. Only the band of
    consecutive non-empty rows (then columns) around the seed is processed.

    Args:
        mask: bool ``(H, W)``.
        row: seed row.
        col: seed column.

    Returns:
        bool ``(H, W)``: the component (all ``False`` when ``mask[row, col]`` is).

    Raises:
        ValueError: ``mask`` is not 2-D or the seed is outside it.

    Examples:
        >>> m = np.array([[1, 0, 0, 1], [0, 1, 0, 1], [0, 0, 0, 1]], bool)
        >>> connected_component(m, 2, 3).astype(int).tolist()
        [[0, 0, 0, 1], [0, 0, 0, 1], [0, 0, 0, 1]]
        >>> connected_component(m, 1, 1).astype(int).tolist()
        [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 0]]
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2:
        raise ValueError(f"mask: expected a 2-D (H, W) bool array, got shape {mask.shape}")
    h, w = mask.shape
    if not (0 <= row < h and 0 <= col < w):
        raise ValueError(f"row, col: expected a pixel inside {mask.shape}, got ({row}, {col})")
    result: npt.NDArray[np.bool_] = np.zeros(mask.shape, dtype=bool)
    if not mask[row, col]:
        return result
    # The component lies in the band of consecutive non-empty rows around the
    # seed, and within that in the band of consecutive non-empty columns.
    r0, r1 = _band(np.asarray(mask.any(axis=1), dtype=bool), row)
    c0, c1 = _band(np.asarray(mask[r0:r1].any(axis=0), dtype=bool), col)
    sub = np.ascontiguousarray(mask[r0:r1, c0:c1])
    region: npt.NDArray[np.bool_] = np.zeros(sub.shape, dtype=bool)
    region[row - r0, col - c0] = True
    row_runs, col_runs = _run_ids(sub, 1), _run_ids(sub, 0)
    count = 1
    while True:
        grown = region.copy()  # one 8-neighbour step (separable 3 x 3 dilation)
        grown[1:] |= region[:-1]
        grown[:-1] |= region[1:]
        wide: npt.NDArray[np.bool_] = grown.copy()
        wide[:, 1:] |= grown[:, :-1]
        wide[:, :-1] |= grown[:, 1:]
        wide &= sub
        for runs in (row_runs, col_runs):  # fill every run the region touches
            hit = np.zeros(int(runs.max()) + 1, dtype=bool)
            hit[runs[wide]] = True
            hit[0] = False
            wide = np.asarray(hit[runs], dtype=bool)
        new_count = int(wide.sum())
        if new_count == count:
            result[r0:r1, c0:c1] = wide
            return result
        region, count = wide, new_count


def remove_ego_vehicle(
    raw: npt.NDArray[np.int64], car_id: int = VIPER_CAR_ID, void_id: int = 0
) -> npt.NDArray[np.int64]:
    """Relabel the ego vehicle as void: the ``car_id`` component touching the bottom centre.

    The 8-connected component of ``raw == car_id`` that contains the pixel
    ``(H - 1, W // 2)`` is set to ``void_id``, as the public VIPER code does
    (OpenCV connected components, 8-connectivity). Nothing changes when that
    pixel is not a car.

    Args:
        raw: integer ``(H, W)`` raw VIPER class ids.
        car_id: the raw id of car (24 in VIPER).
        void_id: the id written over the ego vehicle (0, VIPER's "unlabeled").

    Returns:
        A new array like ``raw``.

    Examples:
        >>> raw = np.array([[24, 2, 2], [2, 2, 24], [2, 24, 24]])
        >>> remove_ego_vehicle(raw).tolist()
        [[24, 2, 2], [2, 2, 0], [2, 0, 0]]
    """
    h, w = raw.shape
    component = connected_component(raw == car_id, h - 1, w // 2)
    out: npt.NDArray[np.int64] = raw.copy()
    out[component] = void_id
    return out


class VIPER(_VideoFrames):
    """VIPER clips: ``clip_len`` consecutive frames ending at each labelled frame.

    Items are dicts: ``clip`` float32 ``(T, 3, H, W)`` in ``[0, 1]`` (oldest
    first), ``label`` long ``(T, H, W)`` with the 15 train ids of
    :data:`~dastc.data.labelmaps.VIPER_CLASSES` or 255 (every frame is
    labelled), ``name`` the last frame's name (``"001/001_00010.jpg"``), and
    with ``flow_root``, ``flow_prev`` float32 ``(T, 2, H, W)``: frame ``t``'s
    backward flow ``(dx, dy)`` into frame ``t - 1``, read from the public file
    ``<seq>_<t5><t-1 5>_int16_x10.npy`` (flat in ``flow_root``, e.g.
    ``001_0001000009_int16_x10.npy``), zeros for ``t = 0`` (see
    :class:`~dastc.data.ClipItem`; :func:`~dastc.data.flow_from_last`
    chains it into flows from the last frame). Flow files stored at another
    resolution are resized to the output, vectors rescaled.

    Args:
        root: the VIPER folder (holding ``<split>/img`` and ``<split>/cls``).
        split: ``"train"`` or ``"val"`` (a folder name under ``root``).
        clip_len: frames per clip ``T`` (the labelled frame and the
            ``T - 1`` before it).
        flow_root: folder of ``*_int16_x10.npy`` flows, or ``None`` for no flow.
        size: ``(H, W)`` to resize to (bilinear images and flow, nearest
            labels), or ``None`` to keep 1280 × 720.
        names: the labelled frames, as in the public split lists
            (``"001/001_00010.jpg"``); every frame must have its whole clip.
            ``None``: every frame of every sequence whose clip is complete
            (first frames of a sequence are skipped, see ``skipped``).
        remove_ego: relabel the ego vehicle as ignored (the public default).
        label_size: ``"resized"`` (labels resized to ``size``, nearest) or
            ``"stored"`` (labels keep their files' resolution, 1280 × 720, while the
            clip (and flow) is resized to ``size``: for scoring at the label's
            resolution, as the published evaluations do).

    Raises:
        FileNotFoundError: missing root/split folders, no complete clip, or (at
            read time) a missing image, label or flow file.
        ValueError: bad arguments, or (at read time) unreadable files, image
            and label sizes that differ (when ``size`` is ``None``), or raw
            ids outside VIPER's 0-31.

    Examples:
        >>> import tempfile, numpy as np
        >>> from PIL import Image
        >>> d = tempfile.TemporaryDirectory()
        >>> for sub in ("img", "cls"):
        ...     Path(d.name, "train", sub, "001").mkdir(parents=True)
        >>> for f in (9, 10):
        ...     Image.new("RGB", (32, 16)).save(f"{d.name}/train/img/001/001_{f:05d}.jpg")
        ...     Image.fromarray(np.full((16, 32), 3, np.uint8)).save(
        ...         f"{d.name}/train/cls/001/001_{f:05d}.png")
        >>> ds = VIPER(d.name, clip_len=2)
        >>> item = ds[0]
        >>> item["clip"].shape, item["label"].shape, item["name"], int(item["label"][0, 0, 0])
        (torch.Size([2, 3, 16, 32]), torch.Size([2, 16, 32]), '001/001_00010.jpg', 0)
        >>> d.cleanup()
    """

    def __init__(
        self,
        root: PathLike,
        split: str = "train",
        clip_len: int = 2,
        flow_root: PathLike | None = None,
        size: tuple[int, int] | None = None,
        *,
        names: Sequence[str] | PathLike | None = None,
        remove_ego: bool = True,
        label_size: LabelSize = "resized",
    ) -> None:
        root_p = Path(root)
        img_dir = root_p / split / "img"
        dirs = [
            (root_p, "the VIPER root, holding <split>/img and <split>/cls"),
            (img_dir, f"VIPER images {split}/img/<seq>/<seq>_<frame5>.jpg"),
            (root_p / split / "cls", f"VIPER labels {split}/cls/<seq>/<seq>_<frame5>.png"),
        ]

        def every_frame() -> list[str]:
            listing = _Listing()
            return [
                f"{seq.name}/{f}"
                for seq in sorted(p for p in img_dir.iterdir() if p.is_dir())
                for f in sorted(listing.names(seq))
                if _LAYOUT.pattern.fullmatch(f"{seq.name}/{f}")
            ]

        self._read_clips(
            _LAYOUT, root_p, names, every_frame, dirs=dirs, clip_len=clip_len, flow_root=flow_root,
            size=size, label_size=label_size, train_id_map=VIPER_MAP, fields={"split": split},
            where=img_dir,
            layout_hint="<seq>/<seq>_<frame5>.jpg with labels in cls/",
            fix_raw=remove_ego_vehicle if remove_ego else None,
        )  # fmt: skip
        self.split = split

"""SYNTHIA-Seq (SYNTHIA-SEQS-04-DAWN) clips for SYNTHIA-Seq → Cityscapes-Seq.

Layout (as the public DA-VSN/TPS/DA-STC code reads it)::

    ROOT/rgb/<frame6>.png        e.g. rgb/000001.png, 1280 x 760
    ROOT/label/<frame6>.png      16-bit PNG, class id in channel 0 (instance id in 1)
    FLOW_ROOT/<frame6>_int16_x10.npy   flow from <frame6> to the frame before it

The bottom 120 rows (the car's bonnet and image border) are cropped from
images and labels, giving 1280 × 640. Labels map to the 12 classes of
:data:`~dastc.data.labelmaps.SYNTHIA_SEQ_CLASSES` (protocol ``"12"``, used for
training) or the 11 evaluation classes without fence (protocol ``"11"``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from dastc.data._files import PathLike
from dastc.data._frames import LabelSize
from dastc.data._layout import (
    _check_choice,
    _Listing,
    _VideoFrames,
    _VideoLayout,
)
from dastc.data.labelmaps import SYNTHIA_SEQ_11_MAP, SYNTHIA_SEQ_MAP

__all__ = ["SynthiaSeq"]

SYNTHIA_SEQ_CROP_BOTTOM = 120
"""Rows cropped from the bottom of every SYNTHIA-Seq frame and label."""

_LAYOUT = _VideoLayout(
    dataset="SYNTHIA-Seq",
    pattern=re.compile(r"(?P<frame>\d{6})\.png"),
    example="000001.png",
    image="rgb/{frame:06d}.png",
    label="label/{frame:06d}.png",
    labels_every_frame=True,
    flow="{frame:06d}_int16_x10.npy",
)

_MAPS = {"12": SYNTHIA_SEQ_MAP, "11": SYNTHIA_SEQ_11_MAP}


class SynthiaSeq(_VideoFrames):
    """SYNTHIA-Seq clips: ``clip_len`` consecutive frames ending at each labelled frame.

    Items are dicts: ``clip`` float32 ``(T, 3, H, W)`` in ``[0, 1]`` (oldest
    first, bottom 120 rows cropped), ``label`` long ``(T, H, W)`` with train ids
    of the chosen protocol or 255 (every frame is labelled), ``name`` the last
    frame's name (``"000001.png"``), and with ``flow_root``, ``flow_prev``
    float32 ``(T, 2, H, W)``: frame ``t``'s backward flow ``(dx, dy)`` into
    frame ``t - 1``, read from the public file ``<t6>_int16_x10.npy``, zeros for
    ``t = 0`` (see :class:`~dastc.data.ClipItem`). A flow file the size of
    the uncropped frame is cropped like it; any other size is taken to cover
    the cropped frame; either is resized to the output, vectors rescaled.

    Args:
        root: the SYNTHIA-SEQS-04-DAWN folder (holding ``rgb/`` and ``label/``).
        clip_len: frames per clip ``T``.
        flow_root: folder of ``<frame6>_int16_x10.npy`` flows, or ``None``.
        size: ``(H, W)`` to resize to (bilinear images and flow, nearest
            labels), or ``None`` to keep 640 × 1280.
        protocol: ``"12"`` (the training classes) or ``"11"`` (fence ignored,
            the evaluation classes).
        names: the labelled frames (``"000001.png"``), as in the public split
            list; ``None``: every frame whose clip is complete.
        label_size: ``"resized"`` (labels resized to ``size``, nearest) or
            ``"stored"`` (labels keep their files' resolution, 1280 × 640 after the crop, while the
            clip (and flow) is resized to ``size``: for scoring at the label's
            resolution, as the published evaluations do).

    Raises:
        FileNotFoundError: missing folders, no complete clip, or (at read time)
            a missing image, label or flow file.
        ValueError: bad arguments, or (at read time) unreadable files, image
            and label sizes that differ (when ``size`` is ``None``), or raw ids
            outside SYNTHIA's 0-22.

    Examples:
        >>> import tempfile, numpy as np
        >>> from PIL import Image
        >>> d = tempfile.TemporaryDirectory()
        >>> for sub in ("rgb", "label"):
        ...     Path(d.name, sub).mkdir()
        >>> for f in (0, 1):
        ...     Image.new("RGB", (32, 136)).save(f"{d.name}/rgb/{f:06d}.png")
        ...     Image.new("RGB", (32, 136), (8, 0, 0)).save(f"{d.name}/label/{f:06d}.png")
        >>> item = SynthiaSeq(d.name, clip_len=2)[0]
        >>> item["clip"].shape, item["name"], int(item["label"][1, 0, 0])
        (torch.Size([2, 3, 16, 32]), '000001.png', 11)
        >>> d.cleanup()
    """

    def __init__(
        self,
        root: PathLike,
        clip_len: int = 2,
        flow_root: PathLike | None = None,
        size: tuple[int, int] | None = None,
        protocol: str = "12",
        *,
        names: Sequence[str] | PathLike | None = None,
        label_size: LabelSize = "resized",
    ) -> None:
        root_p = Path(root)
        train_id_map = _MAPS[_check_choice(protocol, "protocol", list(_MAPS))]
        dirs = [
            (root_p, "the SYNTHIA-Seq root, holding rgb/ and label/"),
            (root_p / "rgb", "SYNTHIA-Seq images rgb/<frame6>.png"),
            (root_p / "label", "SYNTHIA-Seq labels label/<frame6>.png"),
        ]

        def every_frame() -> list[str]:
            return sorted(
                f for f in _Listing().names(root_p / "rgb") if _LAYOUT.pattern.fullmatch(f)
            )

        self._read_clips(
            _LAYOUT, root_p, names, every_frame, dirs=dirs, clip_len=clip_len, flow_root=flow_root,
            size=size, label_size=label_size, train_id_map=train_id_map, fields={},
            where=root_p / "rgb",
            layout_hint="<frame6>.png with labels in label/",
            label_channel=0, crop_bottom=SYNTHIA_SEQ_CROP_BOTTOM,
        )  # fmt: skip
        self.protocol = protocol

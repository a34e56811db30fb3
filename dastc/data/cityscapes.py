"""Cityscapes-Seq clips (video target) and Cityscapes images (image target).

Layouts (Cityscapes' own, as the public DA-VSN/TPS/DA-STC code reads them)::

    ROOT/leftImg8bit_sequence/<split>/<city>/<city>_<seq>_<frame6>_leftImg8bit.png  (30 per snippet)
    ROOT/leftImg8bit/<split>/<city>/<city>_<seq>_<frame6>_leftImg8bit.png           (images)
    ROOT/gtFine/<split>/<city>/<city>_<seq>_<frame6>_gtFine_labelIds.png           (labelIds 0-33)
    FLOW_ROOT/<city>_<seq>_<frame6>_<other6>_int16_x10.npy   flow of frame into other

Each 30-frame snippet has one labelled frame (the 20th, ``..._000019``). Frames
are 2048 × 1024.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from dastc.data._files import PathLike
from dastc.data._frames import LabelSize, _check_label_size, _LabelledFrames
from dastc.data._layout import (
    _check_choice,
    _check_size,
    _image_samples,
    _Listing,
    _require_dir,
    _VideoFrames,
    _VideoLayout,
)
from dastc.data.labelmaps import (
    CITYSCAPES_13_MAP,
    CITYSCAPES_16_MAP,
    CITYSCAPES_MAP,
    CITYSCAPES_SYNTHIA_SEQ_11_MAP,
    CITYSCAPES_SYNTHIA_SEQ_MAP,
    CITYSCAPES_VIPER_MAP,
)

__all__ = ["CityscapesSeq", "Cityscapes"]

_NAME = re.compile(r"(?P<city>[^/]+)/(?P=city)_(?P<seq>\d{6})_(?P<frame>\d{6})_leftImg8bit\.png")
_LABEL_SUFFIX = "_gtFine_labelIds.png"

_LAYOUT = _VideoLayout(
    dataset="Cityscapes-Seq",
    pattern=_NAME,
    example="aachen/aachen_000000_000019_leftImg8bit.png",
    image="leftImg8bit_sequence/{split}/{city}/{city}_{seq}_{frame:06d}_leftImg8bit.png",
    label="gtFine/{split}/{city}/{city}_{seq}_{frame:06d}" + _LABEL_SUFFIX,
    labels_every_frame=False,
    flow="{city}_{seq}_{frame:06d}_{other:06d}_int16_x10.npy",
    flow_hint="the public Cityscapes-Seq val flows (DA-VSN / TPS) cover frame 19 -> 18 of "
    "each snippet only: read val with clip_len 2, or compute the flows of the earlier frames",
)

_SEQ_MAPS = {
    "viper": CITYSCAPES_VIPER_MAP,
    "synthia": CITYSCAPES_SYNTHIA_SEQ_MAP,
    "synthia-11": CITYSCAPES_SYNTHIA_SEQ_11_MAP,
}
_IMAGE_MAPS = {"19": CITYSCAPES_MAP, "16": CITYSCAPES_16_MAP, "13": CITYSCAPES_13_MAP}


def _labelled_names(gt_dir: Path) -> list[str]:
    """``<city>/<city>_<seq>_<frame6>_leftImg8bit.png`` for every labelIds file under ``gt_dir``."""
    listing = _Listing()
    return [
        f"{city.name}/{f[: -len(_LABEL_SUFFIX)]}_leftImg8bit.png"
        for city in sorted(p for p in gt_dir.iterdir() if p.is_dir())
        for f in sorted(listing.names(city))
        if f.endswith(_LABEL_SUFFIX)
    ]


class CityscapesSeq(_VideoFrames):
    """Cityscapes-Seq clips: the labelled frame of each snippet and the ``clip_len - 1`` before it.

    Items are dicts: ``clip`` float32 ``(T, 3, H, W)`` in ``[0, 1]`` (oldest
    first, read from ``leftImg8bit_sequence``), ``label`` long ``(T, H, W)``:
    train ids of the protocol or 255 for the labelled (last) frame and **all
    255** for the earlier, unlabelled frames; ``name`` the labelled frame
    (``"aachen/aachen_000000_000019_leftImg8bit.png"``), and with ``flow_root``,
    ``flow_prev`` float32 ``(T, 2, H, W)``: frame ``t``'s backward flow
    ``(dx, dy)`` into frame ``t - 1``, read from the public file
    ``<city>_<seq>_<t6>_<t-1 6>_int16_x10.npy`` (flat in ``flow_root``), zeros
    for ``t = 0`` (see :class:`~dastc.data.ClipItem`). Flow files stored at
    another resolution (e.g. 1024 × 512) are resized to the output, vectors
    rescaled.

    Args:
        root: the Cityscapes folder (holding ``leftImg8bit_sequence`` and ``gtFine``).
        split: ``"train"``, ``"val"`` (a folder name under both).
        clip_len: frames per clip ``T`` (at most 20: the labelled frame is the
            20th of its snippet).
        flow_root: folder of ``*_int16_x10.npy`` flows, or ``None``.
        size: ``(H, W)`` to resize to (bilinear images and flow, nearest
            labels), or ``None`` to keep 1024 × 2048.
        protocol: ``"viper"`` (15 classes, rider counts as person),
            ``"synthia"`` (12 classes) or ``"synthia-11"`` (the 12 without fence).
        names: the labelled frames to read; ``None``: every labelIds file of the split.
        label_size: ``"resized"`` (labels resized to ``size``, nearest) or
            ``"stored"`` (labels keep their files' resolution, 1024 × 2048, while the
            clip (and flow) is resized to ``size``: for scoring at the label's
            resolution, as the published evaluations do).

    Raises:
        FileNotFoundError: missing folders, no complete clip, or (at read time)
            a missing image or flow file.
        ValueError: bad arguments, or (at read time) unreadable files, image and
            label sizes that differ (when ``size`` is ``None``), or labelIds
            outside 0-33.

    Examples:
        >>> import tempfile, numpy as np
        >>> from PIL import Image
        >>> d = tempfile.TemporaryDirectory()
        >>> seq = Path(d.name, "leftImg8bit_sequence/val/ulm"); seq.mkdir(parents=True)
        >>> gt = Path(d.name, "gtFine/val/ulm"); gt.mkdir(parents=True)
        >>> for f in (18, 19):
        ...     Image.new("RGB", (32, 16)).save(seq / f"ulm_000001_{f:06d}_leftImg8bit.png")
        >>> Image.fromarray(np.full((16, 32), 26, np.uint8)).save(
        ...     gt / "ulm_000001_000019_gtFine_labelIds.png")
        >>> item = CityscapesSeq(d.name, "val", clip_len=2, protocol="viper")[0]
        >>> item["clip"].shape, item["label"][:, 0, 0].tolist()
        (torch.Size([2, 3, 16, 32]), [255, 10])
        >>> d.cleanup()
    """

    def __init__(
        self,
        root: PathLike,
        split: str = "train",
        clip_len: int = 2,
        flow_root: PathLike | None = None,
        size: tuple[int, int] | None = None,
        protocol: str = "viper",
        *,
        names: Sequence[str] | PathLike | None = None,
        label_size: LabelSize = "resized",
    ) -> None:
        root_p = Path(root)
        train_id_map = _SEQ_MAPS[_check_choice(protocol, "protocol", list(_SEQ_MAPS))]
        seq_dir = root_p / "leftImg8bit_sequence" / split
        gt_dir = root_p / "gtFine" / split
        dirs = [
            (root_p, "the Cityscapes root, holding leftImg8bit_sequence/ and gtFine/"),
            (seq_dir, "Cityscapes-Seq frames <city>/<city>_<seq>_<frame6>_leftImg8bit.png"),
            (gt_dir, "Cityscapes labels <city>/<city>_<seq>_<frame6>_gtFine_labelIds.png"),
        ]
        self._read_clips(
            _LAYOUT, root_p, names, lambda: _labelled_names(gt_dir), dirs=dirs, clip_len=clip_len,
            flow_root=flow_root, size=size, label_size=label_size, train_id_map=train_id_map,
            fields={"split": split}, where=gt_dir,
            layout_hint="<city>/*_gtFine_labelIds.png with their frames",
        )  # fmt: skip
        self.split = split
        self.protocol = protocol


class Cityscapes(_LabelledFrames):
    """Cityscapes images with fine labels, as clips of one frame.

    Items are dicts: ``clip`` float32 ``(1, 3, H, W)`` in ``[0, 1]``, ``label``
    long ``(1, H, W)`` with train ids of the protocol or 255, ``name``
    (``"aachen/aachen_000000_000019_leftImg8bit.png"``).

    Args:
        root: the Cityscapes folder (holding ``leftImg8bit`` and ``gtFine``).
        split: ``"train"``, ``"val"`` or ``"test"`` (a folder name under both).
        size: ``(H, W)`` to resize to (bilinear images, nearest labels), or
            ``None`` to keep 1024 × 2048.
        protocol: ``"19"`` (the standard classes), ``"16"`` or ``"13"`` (the
            SYNTHIA → Cityscapes classes).
        label_size: ``"resized"`` (labels resized to ``size``, nearest) or
            ``"stored"`` (labels keep their files' resolution, 1024 × 2048, while
            the image is resized to ``size``: for scoring at the label's
            resolution, as the published evaluations do).

    Raises:
        FileNotFoundError: missing folders, no image, an image without its
            label file.
        ValueError: bad arguments, or (at read time) unreadable files, image and
            label sizes that differ (when ``size`` is ``None``), or labelIds
            outside 0-33.

    Examples:
        >>> import tempfile, numpy as np
        >>> from PIL import Image
        >>> d = tempfile.TemporaryDirectory()
        >>> img = Path(d.name, "leftImg8bit/val/ulm"); img.mkdir(parents=True)
        >>> gt = Path(d.name, "gtFine/val/ulm"); gt.mkdir(parents=True)
        >>> Image.new("RGB", (32, 16)).save(img / "ulm_000001_000019_leftImg8bit.png")
        >>> Image.fromarray(np.full((16, 32), 33, np.uint8)).save(
        ...     gt / "ulm_000001_000019_gtFine_labelIds.png")
        >>> item = Cityscapes(d.name, "val", protocol="16")[0]
        >>> item["clip"].shape, int(item["label"][0, 0, 0])
        (torch.Size([1, 3, 16, 32]), 15)
        >>> d.cleanup()
    """

    def __init__(
        self,
        root: PathLike,
        split: str = "train",
        size: tuple[int, int] | None = None,
        protocol: str = "19",
        *,
        label_size: LabelSize = "resized",
    ) -> None:
        root_p = Path(root)
        size_ = _check_size(size)
        label_size_ = _check_label_size(label_size)
        train_id_map = _IMAGE_MAPS[_check_choice(protocol, "protocol", list(_IMAGE_MAPS))]
        _require_dir(root_p, "the Cityscapes root, holding leftImg8bit/ and gtFine/")
        img_dir = root_p / "leftImg8bit" / split
        gt_dir = root_p / "gtFine" / split
        _require_dir(img_dir, "Cityscapes images <city>/<city>_<seq>_<frame6>_leftImg8bit.png")
        _require_dir(gt_dir, "Cityscapes labels <city>/<city>_<seq>_<frame6>_gtFine_labelIds.png")
        listing = _Listing()
        samples = _image_samples(
            (
                (f"{city.name}/{f}", city / f,
                 gt_dir / city.name / (f[: -len("_leftImg8bit.png")] + _LABEL_SUFFIX))
                for city in sorted(p for p in img_dir.iterdir() if p.is_dir())
                for f in sorted(listing.names(city))
                if f.endswith("_leftImg8bit.png")
            ),
            listing, img_dir, "<city>/*_leftImg8bit.png",
        )  # fmt: skip
        super().__init__(
            samples, train_id_map, size=size_, has_flow=False, dataset="Cityscapes",
            label_size=label_size_,
        )  # fmt: skip
        self.root = root_p
        self.split = split
        self.protocol = protocol

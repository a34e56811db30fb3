"""SYNTHIA-RAND-CITYSCAPES images for SYNTHIA → Cityscapes.

Layout (the public download, as DAFormer's ``tools/convert_datasets/synthia.py`` reads it)::

    ROOT/RGB/<id7>.png          e.g. RGB/0000000.png, 1280 x 760
    ROOT/GT/LABELS/<id7>.png    16-bit PNG, 3 channels, class id in channel 0

Class ids 0-22 map to the 19 Cityscapes train ids (protocol ``"19"``,
:data:`~dastc.data.labelmaps.SYNTHIA_MAP`: terrain, truck and train get no
pixel) or to the 16 :data:`~dastc.data.labelmaps.SYNTHIA_16_CLASSES` (protocol
``"16"``); ids outside 0-22 are read as ignore (255), as that conversion does,
and ``python -m dastc.data.check ROOT --dataset synthia`` counts them.
"""

from __future__ import annotations

from pathlib import Path

from dastc.data._files import PathLike
from dastc.data._frames import LabelSize, _check_label_size, _LabelledFrames
from dastc.data._layout import (
    _check_choice,
    _check_size,
    _image_samples,
    _Listing,
    _require_dir,
)
from dastc.data.labelmaps import SYNTHIA_16_MAP, SYNTHIA_MAP

__all__ = ["Synthia"]

_MAPS = {"19": SYNTHIA_MAP, "16": SYNTHIA_16_MAP}


class Synthia(_LabelledFrames):
    """SYNTHIA-RAND-CITYSCAPES images with labels, as clips of one frame.

    Items are dicts: ``clip`` float32 ``(1, 3, H, W)`` in ``[0, 1]``, ``label``
    long ``(1, H, W)`` with train ids of the protocol or 255, ``name``
    (``"0000000.png"``).

    The label files are 16-bit RGB PNGs; the class id is channel 0 (the channel
    DAFormer's conversion reads: the last of OpenCV's BGR order), decoded
    losslessly as for SYNTHIA-Seq (:func:`~dastc.data.read_label`).

    Args:
        root: the ``RAND_CITYSCAPES`` folder (holding ``RGB/`` and ``GT/LABELS/``).
        size: ``(H, W)`` to resize to (bilinear images, nearest labels), or
            ``None`` to keep the stored 760 × 1280.
        protocol: ``"19"`` (the 19 Cityscapes train ids; terrain, truck and
            train never occur; the published SYNTHIA → Cityscapes setting, scored
            over 16 and 13 classes, see :data:`~dastc.data.MEAN_EXCLUDES`) or
            ``"16"`` (the 16 classes SYNTHIA labels).
        label_size: ``"resized"`` (labels resized to ``size``, nearest) or
            ``"stored"`` (labels keep their files' resolution, 760 × 1280, while
            the image is resized to ``size``).

    Raises:
        FileNotFoundError: missing folders, no image, an image without its label.
        ValueError: bad ``size`` or ``protocol``, or (at read time) unreadable
            files, or image and label sizes that differ (when ``size`` is ``None``).

    Examples:
        >>> import tempfile, numpy as np
        >>> from PIL import Image
        >>> d = tempfile.TemporaryDirectory()
        >>> Path(d.name, "RGB").mkdir(); Path(d.name, "GT/LABELS").mkdir(parents=True)
        >>> Image.new("RGB", (32, 16)).save(f"{d.name}/RGB/0000000.png")
        >>> Image.new("RGB", (32, 16), (8, 0, 0)).save(f"{d.name}/GT/LABELS/0000000.png")
        >>> item = Synthia(d.name, size=(8, 16))[0]
        >>> item["clip"].shape, item["label"].shape, int(item["label"][0, 0, 0])
        (torch.Size([1, 3, 8, 16]), torch.Size([1, 8, 16]), 13)
        >>> int(Synthia(d.name, protocol="16")[0]["label"][0, 0, 0])
        12
        >>> d.cleanup()
    """

    def __init__(
        self,
        root: PathLike,
        size: tuple[int, int] | None = None,
        protocol: str = "19",
        *,
        label_size: LabelSize = "resized",
    ) -> None:
        root_p = Path(root)
        size_ = _check_size(size)
        label_size_ = _check_label_size(label_size)
        train_id_map = _MAPS[_check_choice(protocol, "protocol", list(_MAPS))]
        _require_dir(root_p, "the SYNTHIA-RAND-CITYSCAPES root, holding RGB/ and GT/LABELS/")
        img_dir, lab_dir = root_p / "RGB", root_p / "GT" / "LABELS"
        _require_dir(img_dir, "SYNTHIA images RGB/<id7>.png")
        _require_dir(lab_dir, "SYNTHIA labels GT/LABELS/<id7>.png (16-bit PNG)")
        listing = _Listing()
        samples = _image_samples(
            (
                (f, img_dir / f, lab_dir / f)
                for f in sorted(listing.names(img_dir))
                if f.lower().endswith(".png")
            ),
            listing, img_dir, "<id7>.png",
        )  # fmt: skip
        super().__init__(
            samples,
            train_id_map,
            size=size_,
            has_flow=False,
            label_channel=0,
            dataset="SYNTHIA",
            label_size=label_size_,
        )
        self.root = root_p
        self.protocol = protocol

"""GTA5 (Playing for Data) images for GTA5 → Cityscapes.

Layout::

    ROOT/images/<id5>.png     e.g. images/00001.png, 1914 x 1052
    ROOT/labels/<id5>.png     Cityscapes labelIds 0-33 (8-bit palette PNG)

Labels map to the 19 Cityscapes classes (:data:`~dastc.data.labelmaps.CITYSCAPES_CLASSES`);
ids outside 0-33 are read as ignore (255), as the public readers do, and
``python -m dastc.data.check ROOT --dataset gta5`` counts them.
"""

from __future__ import annotations

from pathlib import Path

from dastc.data._files import PathLike
from dastc.data._frames import LabelSize, _check_label_size, _LabelledFrames
from dastc.data._layout import _check_size, _image_samples, _Listing, _require_dir
from dastc.data.labelmaps import GTA5_MAP

__all__ = ["GTA5"]

_IMAGE_SUFFIXES = (".png", ".jpg")


class GTA5(_LabelledFrames):
    """GTA5 images with labels, as clips of one frame.

    Items are dicts: ``clip`` float32 ``(1, 3, H, W)`` in ``[0, 1]``, ``label``
    long ``(1, H, W)`` with the 19 Cityscapes train ids or 255, ``name``
    (``"00001.png"``).

    A few GTA5 images differ in size from their label file; with ``size`` set
    both are resized to it independently (as the public code does), with
    ``size=None`` such a pair raises ``ValueError`` when read.

    Args:
        root: the GTA5 folder (holding ``images/`` and ``labels/``).
        size: ``(H, W)`` to resize to (bilinear images, nearest labels), or
            ``None`` to keep the stored size.
        label_size: ``"resized"`` (labels resized to ``size``, nearest) or
            ``"stored"`` (labels keep their files' resolution while the image is
            resized to ``size``).

    Raises:
        FileNotFoundError: missing folders, no image, an image without its label.
        ValueError: bad ``size``, or (at read time) unreadable files, or image
            and label sizes that differ (when ``size`` is ``None``).

    Examples:
        >>> import tempfile, numpy as np
        >>> from PIL import Image
        >>> d = tempfile.TemporaryDirectory()
        >>> Path(d.name, "images").mkdir(); Path(d.name, "labels").mkdir()
        >>> Image.new("RGB", (32, 16)).save(f"{d.name}/images/00001.png")
        >>> Image.fromarray(np.full((16, 32), 7, np.uint8)).save(f"{d.name}/labels/00001.png")
        >>> item = GTA5(d.name, size=(8, 16))[0]
        >>> item["clip"].shape, item["label"].shape, int(item["label"][0, 0, 0])
        (torch.Size([1, 3, 8, 16]), torch.Size([1, 8, 16]), 0)
        >>> d.cleanup()
    """

    def __init__(
        self,
        root: PathLike,
        size: tuple[int, int] | None = None,
        *,
        label_size: LabelSize = "resized",
    ) -> None:
        root_p = Path(root)
        size_ = _check_size(size)
        label_size_ = _check_label_size(label_size)
        _require_dir(root_p, "the GTA5 root, holding images/ and labels/")
        img_dir, lab_dir = root_p / "images", root_p / "labels"
        _require_dir(img_dir, "GTA5 images images/<id5>.png")
        _require_dir(lab_dir, "GTA5 labels labels/<id5>.png")
        listing = _Listing()
        samples = _image_samples(
            (
                (f, img_dir / f, lab_dir / (Path(f).stem + ".png"))
                for f in sorted(listing.names(img_dir))
                if f.lower().endswith(_IMAGE_SUFFIXES)
            ),
            listing, img_dir, "<id5>.png",
        )  # fmt: skip
        super().__init__(
            samples, GTA5_MAP, size=size_, has_flow=False, dataset="GTA5", label_size=label_size_
        )
        self.root = root_p

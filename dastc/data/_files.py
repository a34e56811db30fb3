"""Reading the public dataset files: images, label maps, optical flow, split lists.

Images and label maps are read with pillow, imported only when a file is
read (``pip install "dastc[examples]"`` provides it). Label PNGs may be 8-bit
(``L``/``P``), 16-bit grey, or 16-bit RGB(A) as SYNTHIA stores them; the
16-bit colour case is decoded losslessly (pillow alone would keep only the
high byte of each sample). Optical flow is read from the public
``*_int16_x10.npy`` files: ``int16`` arrays ``(H, W, 2)`` holding
``round(10 * (dx, dy))``.

Every function raises ``FileNotFoundError`` for a missing file and
``ValueError`` for a file that cannot be decoded or does not hold what was
expected; both messages start with the path.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from PIL import Image as PILImage

__all__ = ["read_flow", "read_image", "read_label", "read_list"]

PathLike = str | os.PathLike[str]


def _pil() -> Any:
    try:
        from PIL import Image
    except ImportError as exc:  # pragma: no cover - exercised only without pillow
        raise ImportError(
            'dastc.data needs pillow to read images: pip install "dastc[examples]"'
        ) from exc
    return Image


def _require_file(path: Path, what: str) -> None:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file (expected {what})")


def _open(path: Path, what: str) -> PILImage.Image:
    _require_file(path, what)
    image = _pil()
    try:
        im = cast("PILImage.Image", image.open(path))
    except (OSError, SyntaxError, ValueError) as exc:
        raise ValueError(f"{path}: cannot read {what}: {exc}") from exc
    return im


def _decode(im: PILImage.Image, path: Path, what: str) -> npt.NDArray[Any]:
    try:
        return np.asarray(im)
    except (OSError, SyntaxError, ValueError) as exc:
        raise ValueError(f"{path}: cannot decode {what}: {exc}") from exc


def read_image(path: PathLike, what: str = "an RGB image") -> npt.NDArray[np.uint8]:
    """Read an image file as RGB.

    Args:
        path: the file (any format pillow reads: PNG, JPEG, ...).
        what: what the file should be, used in error messages.

    Returns:
        ``uint8`` array ``(H, W, 3)``.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file cannot be decoded (message starts with the path).

    Examples:
        >>> import tempfile, numpy as np
        >>> from PIL import Image
        >>> with tempfile.TemporaryDirectory() as d:
        ...     Image.new("RGB", (32, 16)).save(f"{d}/a.png")
        ...     read_image(f"{d}/a.png").shape
        (16, 32, 3)
    """
    p = Path(path)
    with _open(p, what) as im:
        try:
            rgb = im.convert("RGB")
        except (OSError, SyntaxError, ValueError) as exc:
            raise ValueError(f"{p}: cannot decode {what}: {exc}") from exc
        arr = _decode(rgb, p, what)
    return np.array(arr, dtype=np.uint8)  # a writable copy


# 16-bit PNG rawmodes pillow decodes to 8 bits (keeping the high byte), and the
# rawmode that keeps the low byte instead (its "little-endian" unpacker reads the
# second byte of each big-endian sample).
_LOW_BYTE_RAWMODE = {"RGB;16B": "RGB;16L", "RGBA;16B": "RGBA;16L"}


def _read_png16_colour(path: Path, what: str) -> npt.NDArray[np.int64] | None:
    """Full 16-bit samples of a 16-bit RGB(A) PNG (two pillow decodes), else ``None``."""
    with _open(path, what) as im:
        tile = list(im.tile)
        if len(tile) != 1 or tile[0][0] != "zip" or str(tile[0][3]) not in _LOW_BYTE_RAWMODE:
            return None
        high = _decode(im, path, what).astype(np.int64)
    with _open(path, what) as im:
        t = cast(Any, im.tile[0])
        low_mode = _LOW_BYTE_RAWMODE[str(t[3])]
        new = t._replace(args=low_mode) if hasattr(t, "_replace") else (t[0], t[1], t[2], low_mode)
        im.tile = [new]
        low = _decode(im, path, what).astype(np.int64)
    return high * 256 + low


def read_label(
    path: PathLike, channel: int | None = None, what: str = "a label image"
) -> npt.NDArray[np.int64]:
    """Read a label map of raw class ids.

    Single-channel files (8-bit ``L``/``P`` -- palette images give their
    indices --, 16-bit grey, 32-bit) are returned as stored. Multi-channel
    files (SYNTHIA's 16-bit RGB PNGs: class id in channel 0, instance id in
    channel 1) need ``channel``; 16-bit colour PNGs are decoded losslessly.

    Args:
        path: the file.
        channel: the channel holding the class id, for multi-channel files;
            ``None`` requires a single-channel file.
        what: what the file should be, used in error messages.

    Returns:
        ``int64`` array ``(H, W)`` of raw ids.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: unreadable file, a multi-channel file without ``channel``,
            or ``channel`` out of range (message starts with the path).

    Examples:
        >>> import tempfile, numpy as np
        >>> from PIL import Image
        >>> with tempfile.TemporaryDirectory() as d:
        ...     Image.fromarray(np.full((16, 32), 7, np.uint8)).save(f"{d}/l.png")
        ...     lab = read_label(f"{d}/l.png")
        >>> lab.shape, lab.dtype, int(lab[0, 0])
        ((16, 32), dtype('int64'), 7)
    """
    p = Path(path)
    arr: npt.NDArray[Any] | None = None
    if p.suffix.lower() == ".png":
        arr = _read_png16_colour(p, what)
    if arr is None:
        with _open(p, what) as im:
            arr = _decode(im, p, what)
    if arr.ndim == 2:
        return arr.astype(np.int64)
    if channel is None:
        raise ValueError(f"{p}: expected a single-channel {what}, got {arr.shape[2]} channels")
    if not 0 <= channel < arr.shape[2]:
        raise ValueError(
            f"{p}: expected class ids in channel {channel}, got {arr.shape[2]} channels"
        )
    return np.ascontiguousarray(arr[:, :, channel], dtype=np.int64)


def read_list(path: PathLike) -> list[str]:
    """Read a public split list: one frame name per line (``001/001_00010.jpg``).

    The DA-VSN / TPS lists (``Viper_list/train.txt``, ``SynthiaSeq_list/train.txt``,
    ...) name the labelled frames the public flows and labels cover; pass the
    result as a video reader's ``names``.

    Args:
        path: the list file.

    Returns:
        The names, in file order, stripped, blank lines left out.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file names no frame.

    Examples:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as d:
        ...     _ = Path(d, "train.txt").write_text("001/001_00010.jpg\\n001/001_00020.jpg\\n\\n")
        ...     read_list(Path(d, "train.txt"))
        ['001/001_00010.jpg', '001/001_00020.jpg']
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such file (expected a split list, one frame a line)")
    names = [line.strip() for line in p.read_text().splitlines() if line.strip()]
    if not names:
        raise ValueError(f"{p}: expected one frame name a line, got an empty list")
    return names


def read_flow(path: PathLike) -> npt.NDArray[np.float32]:
    """Read a public ``*_int16_x10.npy`` optical-flow file.

    The file holds ``int16`` ``(H, W, 2)`` = ``round(10 * (dx, dy))`` in pixels
    (FlowNet2, as the DA-VSN/TPS/DA-STC code stores it); this returns the flow
    in pixels, channel 0 = ``dx``, channel 1 = ``dy``.

    Args:
        path: the ``.npy`` file.

    Returns:
        ``float32`` array ``(H, W, 2)`` = stored values / 10.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: unreadable, not ``int16``, or not ``(H, W, 2)``.

    Examples:
        >>> import tempfile, numpy as np
        >>> with tempfile.TemporaryDirectory() as d:
        ...     np.save(f"{d}/f_int16_x10.npy", np.full((4, 6, 2), 25, np.int16))
        ...     flow = read_flow(f"{d}/f_int16_x10.npy")
        >>> flow.shape, float(flow[0, 0, 0])
        ((4, 6, 2), 2.5)
    """
    p = Path(path)
    _require_file(p, "an int16 (H, W, 2) flow .npy file")
    try:
        arr = np.load(p, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise ValueError(f"{p}: cannot read flow .npy: {exc}") from exc
    if (
        not isinstance(arr, np.ndarray)
        or arr.dtype != np.int16
        or arr.ndim != 3
        or (arr.shape[2] != 2)
    ):
        desc = f"{arr.dtype} {arr.shape}" if isinstance(arr, np.ndarray) else type(arr).__name__
        raise ValueError(f"{p}: expected an int16 (H, W, 2) flow array (flow x 10), got {desc}")
    flow: npt.NDArray[np.float32] = arr.astype(np.float32) / np.float32(10.0)
    return flow

"""File reading for the real-dataset readers, and the frame-sequence dataset they share.

Images and label maps are read with pillow, imported only when a file is
read (``pip install "dastc[examples]"`` provides it). Label PNGs may be 8-bit
(``L``/``P``), 16-bit grey, or 16-bit RGB(A) as SYNTHIA stores them; the
16-bit colour case is decoded losslessly (pillow alone would keep only the
high byte of each sample). Optical flow is read from the public
``*_int16_x10.npy`` files: ``int16`` arrays ``(H, W, 2)`` holding
``round(10 * (dx, dy))``.

Flows are returned at the output size of the clip: a flow file stored at
another resolution is resized bilinearly and its vectors are rescaled by the
same factors (``dx`` by the width ratio, ``dy`` by the height ratio).

Every reader raises ``FileNotFoundError`` for a missing file and
``ValueError`` for a file that cannot be decoded or does not hold what was
expected; both messages start with the path.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, cast

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset
from typing_extensions import NotRequired, TypedDict

from dastc.data.labelmaps import IGNORE_INDEX, TrainIdMap

if TYPE_CHECKING:
    from PIL import Image as PILImage

__all__ = [
    "ClipItem",
    "read_image",
    "read_label",
    "read_flow",
    "compose_flow",
    "flow_from_last",
]

PathLike = str | os.PathLike[str]
_Size = tuple[int, int]


class ClipItem(TypedDict):
    """One item of a real-dataset reader in :mod:`dastc.data`.

    * ``clip``: float32 ``(T, 3, H, W)`` in ``[0, 1]``, oldest frame first.
    * ``label``: long ``(T, H, W)``, train ids or 255.
    * ``name``: the labelled (last) frame's name.
    * ``flow_prev`` (video readers given a ``flow_root`` only): float32
      ``(T, 2, H, W)``, the backward flow ``(dx, dy)`` in pixels of each frame
      ``t`` into frame ``t - 1``: pixel ``(y, x)`` of frame ``t`` shows the scene
      point at ``(y + dy, x + dx)`` of frame ``t - 1``, so ``warp(x[t - 1],
      flow_prev[t])`` brings frame ``t - 1`` onto frame ``t``; zeros for ``t = 0``.
      This is what the public ``*_int16_x10.npy`` files hold, and the same field
      as :class:`~dastc.data.SyntheticDrivingClips`' ``flow_prev``. There is no
      ``flow`` (frame ``t`` into the last frame) field: it needs forward flow,
      which the public files do not hold; :func:`flow_from_last` chains
      ``flow_prev`` into the flow from the last frame to each frame.

    Image readers give ``T = 1``.
    """

    clip: Tensor
    label: Tensor
    name: str
    flow_prev: NotRequired[Tensor]


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


def _names(names: Sequence[str] | PathLike | None) -> list[str] | None:
    """A reader's ``names``: a sequence of frame names, or a list file to read them from."""
    if names is None:
        return None
    if isinstance(names, (str, os.PathLike)):
        return read_list(names)
    return list(names)


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


# --------------------------------------------------------------------------------------
# The frame-sequence dataset shared by every reader.


class _Frame(NamedTuple):
    image: Path
    label: Path | None  # None: an unlabelled frame (label all 255)


class _Sample(NamedTuple):
    name: str
    frames: tuple[_Frame, ...]
    flows: tuple[Path, ...]  # flow file of frame t -> t - 1, for t = 1 .. T-1; () without flows


class _Listing:
    """``exists`` answered from cached directory listings (one ``listdir`` per folder)."""

    def __init__(self) -> None:
        self._dirs: dict[Path, frozenset[str]] = {}

    def names(self, folder: Path) -> frozenset[str]:
        if folder not in self._dirs:
            try:
                self._dirs[folder] = frozenset(os.listdir(folder))
            except OSError:
                self._dirs[folder] = frozenset()
        return self._dirs[folder]

    def exists(self, path: Path) -> bool:
        return path.name in self.names(path.parent)


def _check_size(size: object) -> _Size | None:
    if size is None:
        return None
    if (
        isinstance(size, (tuple, list))
        and len(size) == 2
        and all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in size)
    ):
        return int(size[0]), int(size[1])
    raise ValueError(f"size: expected None or (H, W) with two ints > 0, got {size!r}")


def _check_clip_len(clip_len: object) -> int:
    if isinstance(clip_len, bool) or not isinstance(clip_len, int) or clip_len < 1:
        raise ValueError(f"clip_len: expected an int >= 1, got {clip_len!r}")
    return clip_len


def _check_choice(value: object, name: str, choices: Sequence[str]) -> str:
    if value not in choices:
        raise ValueError(f"{name}: expected one of {list(choices)}, got {value!r}")
    return cast(str, value)


def _require_dir(path: Path, what: str) -> None:
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such directory (expected {what})")


def _resize_flow(flow: Tensor, size: _Size) -> Tensor:
    """Bilinear resize of a ``(N, 2, h, w)`` flow to ``size``, rescaling the vectors."""
    h, w = flow.shape[-2:]
    if (h, w) == size:
        return flow
    out = F.interpolate(flow, size=size, mode="bilinear", align_corners=False)
    scale = torch.tensor([size[1] / w, size[0] / h], dtype=out.dtype).view(1, 2, 1, 1)
    return out * scale


def compose_flow(first: Tensor, second: Tensor) -> Tensor:
    """Chain two backward flows: ``a -> b`` then ``b -> c`` gives ``a -> c``.

    ``out(p) = first(p) + second(p + first(p))``, ``second`` sampled bilinearly
    (pixel centres at integer coordinates) with border values outside the frame.

    Args:
        first: float ``(..., 2, H, W)`` flow on frame a's grid pointing into frame b.
        second: float ``(..., 2, H, W)`` flow on frame b's grid pointing into frame c.

    Returns:
        float ``(..., 2, H, W)`` flow on frame a's grid pointing into frame c.

    Examples:
        >>> a = torch.ones(2, 4, 5)
        >>> compose_flow(a, 2 * a)[:, 0, 0].tolist()
        [3.0, 3.0]
    """
    h, w = first.shape[-2:]
    lead = first.shape[:-3]
    a = first.reshape(-1, 2, h, w)
    b = second.reshape(-1, 2, h, w)
    ys, xs = torch.meshgrid(
        torch.arange(h, dtype=a.dtype, device=a.device),
        torch.arange(w, dtype=a.dtype, device=a.device),
        indexing="ij",
    )
    gx = (xs + a[:, 0]) * (2.0 / max(w - 1, 1)) - 1.0
    gy = (ys + a[:, 1]) * (2.0 / max(h - 1, 1)) - 1.0
    grid = torch.stack([gx, gy], dim=-1)
    sampled = F.grid_sample(b, grid, mode="bilinear", padding_mode="border", align_corners=True)
    return (a + sampled).reshape(*lead, 2, h, w)


def flow_from_last(flow_prev: Tensor) -> Tensor:
    """Flow from the last frame of a clip to each of its frames, chained from per-frame flows.

    ``flow_prev[..., t, :, :, :]`` is the backward flow of frame ``t`` into frame
    ``t - 1`` (the item field ``"flow_prev"``; the public ``*_int16_x10.npy``
    files). This returns ``out`` with ``out[T-1] = 0``, ``out[T-2] = flow_prev[T-1]``
    and ``out[t] = compose_flow(out[t + 1], flow_prev[t + 1])``: the flow on the
    **last** frame's grid pointing into frame ``t``, so that
    ``warp(x[t], out[t])`` brings frame ``t`` (or its predictions) onto the last
    frame. Chaining accumulates the error of each step and cannot see through
    occlusions.

    Args:
        flow_prev: float ``(T, 2, H, W)`` or ``(B, T, 2, H, W)``.

    Returns:
        float tensor of the same shape.

    Raises:
        ValueError: ``flow_prev`` is not ``(..., T, 2, H, W)``.

    Examples:
        >>> fp = torch.zeros(3, 2, 4, 5)
        >>> fp[1:, 0] = 1.0  # every frame moved 1 px right of the one before
        >>> flow_from_last(fp)[:, 0, 0, 0].tolist()
        [2.0, 1.0, 0.0]
    """
    if not isinstance(flow_prev, Tensor) or flow_prev.dim() not in (4, 5):
        raise ValueError(
            "flow_prev: expected shape (T, 2, H, W) or (B, T, 2, H, W), "
            f"got {getattr(flow_prev, 'shape', type(flow_prev).__name__)}"
        )
    if flow_prev.shape[-3] != 2:
        raise ValueError(
            f"flow_prev: expected shape (T, 2, H, W) or (B, T, 2, H, W), got {flow_prev.shape}"
        )
    t = flow_prev.shape[-4]
    out = [torch.zeros_like(flow_prev[..., 0, :, :, :])]
    for k in range(t - 2, -1, -1):  # a chain: each step needs the one after it
        nxt = flow_prev[..., k + 1, :, :, :]
        out.append(nxt if k == t - 2 else compose_flow(out[-1], nxt))
    return torch.stack(out[::-1], dim=-4)


class _LabelledFrames(Dataset[ClipItem]):
    """Clips of ``T`` frames with per-frame labels, read from explicit file lists.

    Every reader in :mod:`dastc.data` builds its ``samples`` from the public layout
    and hands them here; reading, cropping, label mapping, resizing and flow
    assembly happen once, in this class.

    Attributes a video reader fills (empty otherwise): ``skipped``, labelled
    frames whose clip lacks frames; ``unlabelled``, frames without a label file
    (not clip ends; inside a clip their label is ignore, 255); ``no_flow``,
    labelled frames whose clip lacks flow files (left out, with a warning).
    """

    def __init__(
        self,
        samples: Sequence[_Sample],
        train_id_map: TrainIdMap,
        *,
        size: _Size | None,
        has_flow: bool,
        skipped: Sequence[str] = (),
        unlabelled: Sequence[str] = (),
        no_flow: Sequence[str] = (),
        label_channel: int | None = None,
        crop_bottom: int = 0,
        fix_raw: Callable[[npt.NDArray[np.int64]], npt.NDArray[np.int64]] | None = None,
        dataset: str = "dataset",
    ) -> None:
        self.samples: list[_Sample] = list(samples)
        self.train_id_map = train_id_map
        self.size = size
        self.has_flow = has_flow
        self.skipped: list[str] = list(skipped)
        self.unlabelled: list[str] = list(unlabelled)
        self.no_flow: list[str] = list(no_flow)
        self.label_channel = label_channel
        self.crop_bottom = crop_bottom
        self.fix_raw = fix_raw
        self.dataset = dataset

    # -- public attributes -------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        """The labelled frame of every item, in item order."""
        return [s.name for s in self.samples]

    @property
    def class_names(self) -> tuple[str, ...]:
        """The protocol's class names, in train-id order."""
        return self.train_id_map.class_names

    @property
    def num_classes(self) -> int:
        """``K``, the number of train ids."""
        return self.train_id_map.num_classes

    @property
    def ignore_index(self) -> int:
        """The label value of ignored pixels (255)."""
        return IGNORE_INDEX

    def __len__(self) -> int:
        return len(self.samples)

    # -- reading -------------------------------------------------------------------------
    def _crop(self, arr: npt.NDArray[Any], path: Path) -> npt.NDArray[Any]:
        if self.crop_bottom == 0:
            return arr
        if arr.shape[0] <= self.crop_bottom:
            raise ValueError(
                f"{path}: expected more than {self.crop_bottom} rows (the bottom "
                f"{self.crop_bottom} are cropped), got {arr.shape[0]}"
            )
        return arr[: arr.shape[0] - self.crop_bottom]

    def read_frame_image(self, path: Path) -> npt.NDArray[np.uint8]:
        """An image file as ``uint8`` ``(H, W, 3)``, cropped as the dataset defines."""
        return self._crop(read_image(path, f"a {self.dataset} image"), path)

    def read_raw_label(self, path: Path) -> npt.NDArray[np.int64]:
        """A label file's raw ids ``(H, W)``, cropped and fixed (ego vehicle) as defined."""
        raw = read_label(path, self.label_channel, f"a {self.dataset} label image")
        raw = self._crop(raw, path)
        return self.fix_raw(raw) if self.fix_raw is not None else raw

    def _flow(self, path: Path, raw_hw: _Size) -> Tensor:
        arr = read_flow(path)
        if self.crop_bottom and arr.shape[:2] == raw_hw:
            arr = arr[: arr.shape[0] - self.crop_bottom]
        return torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1)

    def _clip_flow_prev(self, paths: Sequence[Path], raw_hw: _Size, out: _Size) -> Tensor:
        """``(T, 2, H, W)``: frame t's flow into frame t - 1 (zeros for t = 0)."""
        flows = [torch.zeros(2, *out)]
        flows += [_resize_flow(self._flow(p, raw_hw).unsqueeze(0), out)[0] for p in paths]
        return torch.stack(flows)

    def __getitem__(self, index: int) -> ClipItem:
        sample = self.samples[index]
        images: list[npt.NDArray[np.uint8]] = []
        labels: list[npt.NDArray[np.int64] | None] = []
        raw_hw: _Size = (0, 0)
        for i, frame in enumerate(sample.frames):
            img = self.read_frame_image(frame.image)
            hw = (img.shape[0], img.shape[1])
            if i == 0:
                raw_hw = (hw[0] + self.crop_bottom, hw[1])
            elif hw != (images[0].shape[0], images[0].shape[1]) and self.size is None:
                raise ValueError(
                    f"{frame.image}: expected the size {images[0].shape[:2]} of "
                    f"{sample.frames[0].image} (frames of a clip share one size), got {hw}"
                )
            images.append(img)
            if frame.label is None:
                labels.append(None)
                continue
            raw = self.read_raw_label(frame.label)
            if self.size is None and raw.shape != hw:
                raise ValueError(
                    f"{frame.label}: expected a label of size {hw} (the size of "
                    f"{frame.image}), got {raw.shape}"
                )
            labels.append(self.train_id_map.apply(raw, where=str(frame.label)))

        out: _Size = (
            self.size if self.size is not None else (images[0].shape[0], images[0].shape[1])
        )
        clip = torch.empty(len(images), 3, *out)
        label = torch.full((len(images), *out), IGNORE_INDEX, dtype=torch.long)
        for t, (img, lab) in enumerate(zip(images, labels, strict=True)):
            x = torch.from_numpy(img).permute(2, 0, 1)  # uint8 (3, h, w)
            if x.shape[-2:] == out:
                clip[t].copy_(x).div_(255.0)
            else:
                xf = x.unsqueeze(0).float().div_(255.0)
                xf = F.interpolate(
                    xf, size=out, mode="bilinear", align_corners=False, antialias=True
                )
                clip[t] = xf[0].clamp_(0.0, 1.0)
            if lab is not None:
                y = torch.from_numpy(lab)
                if tuple(y.shape) != out:
                    y = F.interpolate(y[None, None].float(), size=out, mode="nearest")[0, 0].long()
                label[t] = y
        item: ClipItem = {"clip": clip, "label": label, "name": sample.name}
        if self.has_flow:
            item["flow_prev"] = self._clip_flow_prev(sample.flows, raw_hw, out)
        return item


@dataclass(frozen=True)
class _VideoLayout:
    """How a video dataset names its frames, labels and flows (``str.format`` templates).

    ``pattern`` parses a labelled frame's name; its groups (other than
    ``frame``) and the reader's fixed fields fill the templates. ``flow`` names
    the flow file of ``{frame}`` into the frame before it (``{other}``).
    """

    dataset: str
    pattern: re.Pattern[str]
    example: str
    image: str
    label: str
    labels_every_frame: bool
    flow: str
    flow_hint: str = ""  # which flows the public release has


class _Clips(NamedTuple):
    """What :func:`_video_samples` found (see the readers' attributes of the same names)."""

    samples: list[_Sample]
    skipped: list[str]  # labelled frames whose clip lacks frames
    unlabelled: list[str]  # frames without a label file: not clip ends; inside a clip, ignore
    no_flow: list[str]  # labelled frames whose clip lacks flow files (left out)


def _video_samples(
    layout: _VideoLayout,
    root: Path,
    names: Sequence[str],
    clip_len: int,
    flow_root: Path | None,
    fields: dict[str, str],
    strict: bool,
) -> _Clips:
    """Clips ending at each labelled frame in ``names``.

    A clip whose earlier frames are not all present is skipped (the start of a
    sequence) unless ``strict`` (names given by the user), where it is an
    error. The last frame of a clip must have its label: when ``strict`` a
    missing one is an error, otherwise the frame is not a clip end (it is
    listed in ``unlabelled``). An earlier frame without its label file is read
    as ignore (255) and listed in ``unlabelled`` (the public VIPER download has
    labels for the frames of its lists only). With ``flow_root``, a clip
    without all its flow files is an error when ``strict`` and left out
    (listed in ``no_flow``) otherwise.
    """
    listing = _Listing()
    samples: list[_Sample] = []
    skipped: list[str] = []
    unlabelled: list[str] = []
    no_flow: list[str] = []
    for name in names:
        m = layout.pattern.fullmatch(name)
        if m is None:
            raise ValueError(
                f"names: expected {layout.dataset} frame names like {layout.example!r}, "
                f"got {name!r}"
            )
        groups = {k: v for k, v in m.groupdict().items() if k != "frame"}
        last = int(m.group("frame"))
        numbers = range(last - clip_len + 1, last + 1)
        fmt = {**fields, **groups}
        frames = tuple(
            _Frame(
                root / layout.image.format(frame=f, **fmt),
                root / layout.label.format(frame=f, **fmt)
                if layout.labels_every_frame or f == last
                else None,
            )
            for f in numbers
        )
        last_label = frames[-1].label
        if not strict and last_label is not None and not listing.exists(last_label):
            if listing.exists(frames[-1].image):  # a frame without a label is no clip end
                unlabelled.append(str(frames[-1].image.relative_to(root)))
                continue
        missing = [fr.image for fr in frames if not listing.exists(fr.image)]
        if numbers.start < 0 or missing:
            if strict:
                what = (
                    f"{missing[0]}: no such file" if missing else f"{name}: frame {numbers.start}"
                )
                raise FileNotFoundError(
                    f"{what} (expected all {clip_len} frames of the clip ending at {name!r})"
                )
            skipped.append(name)
            continue
        if last_label is not None and not listing.exists(last_label):
            raise FileNotFoundError(
                f"{last_label}: no such file (expected the label of {frames[-1].image})"
            )
        earlier = []
        for fr in frames[:-1]:
            if fr.label is not None and not listing.exists(fr.label):
                fr = _Frame(fr.image, None)  # read as ignore (255)
                unlabelled.append(str(fr.image.relative_to(root)))
            earlier.append(fr)
        frames = (*earlier, frames[-1])
        flows: tuple[Path, ...] = ()
        if flow_root is not None:
            flows = tuple(
                flow_root / layout.flow.format(frame=f, other=f - 1, **fmt) for f in numbers[1:]
            )
            lacking = [p for p in flows if not listing.exists(p)]
            if lacking:
                if strict:
                    raise FileNotFoundError(
                        f"{lacking[0]}: no such file (a flow of the clip ending at {name!r}, "
                        f"clip_len {clip_len}){_hint(layout)}"
                    )
                no_flow.append(name)
                continue
        samples.append(_Sample(name, frames, flows))
    return _Clips(samples, skipped, sorted(set(unlabelled)), no_flow)


def _hint(layout: _VideoLayout) -> str:
    return f"; {layout.flow_hint}" if layout.flow_hint else ""


def _video_clips(
    layout: _VideoLayout,
    root: Path,
    names: Sequence[str],
    clip_len: int,
    flow_root: PathLike | None,
    fields: dict[str, str],
    *,
    strict: bool,
    where: Path,
    layout_hint: str,
) -> tuple[_Clips, Path | None]:
    """``(clips, flow_root)`` of a video reader: :func:`_video_samples`, raising
    :func:`_no_samples` (at ``where``, naming ``layout_hint``) when none is complete,
    and warning when clips were left out for lack of flow files."""
    flow_p = Path(flow_root) if flow_root is not None else None
    clips = _video_samples(layout, root, names, clip_len, flow_p, fields, strict)
    if clips.no_flow:
        total = len(clips.samples) + len(clips.no_flow)
        what = (
            f"{layout.dataset}: {len(clips.no_flow)} of {total} clips (clip_len {clip_len}) "
            f"lack flow files in {flow_p}, e.g. the clip ending at {clips.no_flow[0]!r}"
            f"{_hint(layout)}"
        )
        if not clips.samples:
            raise FileNotFoundError(f"{what}; no clip left")
        warnings.warn(f"{what}; reading the {len(clips.samples)} clips that have them",
                      stacklevel=3)  # fmt: skip
    if not clips.samples:
        raise _no_samples(where, layout_hint, clips.skipped)
    return clips, flow_p


def _no_samples(where: Path, layout_hint: str, skipped: Sequence[str]) -> FileNotFoundError:
    extra = (
        f"; {len(skipped)} labelled frames lack frames of their clip, e.g. {skipped[0]!r}"
        if skipped
        else ""
    )
    return FileNotFoundError(f"{where}: no complete samples found (expected {layout_hint}){extra}")

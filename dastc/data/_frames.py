"""The frame-sequence dataset every real-dataset reader builds: file lists in, clips out.

A reader turns its public layout into :class:`_Sample` records (the frames,
their labels, the flow files) and hands them to :class:`_LabelledFrames`, which
reads, crops, maps labels, resizes and assembles flows. Flows are returned at
the output size of the clip: a flow file stored at another resolution is
resized bilinearly and its vectors are rescaled by the same factors (``dx`` by
the width ratio, ``dy`` by the height ratio).

Labels are resized to the clip's output size (nearest) by default
(``label_size="resized"``). With ``label_size="stored"`` they keep the
resolution of their files (after the dataset's own crop) while the clip and
flows are resized: what the published evaluations score against (the logits
are upsampled to the label, see :func:`dastc.metrics.upsample_logits`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset
from typing_extensions import NotRequired, TypedDict

from dastc.data._files import read_flow, read_image, read_label
from dastc.data.labelmaps import IGNORE_INDEX, TrainIdMap
from dastc.flow import _resize_flow

__all__ = ["ClipItem"]

_Size = tuple[int, int]
LabelSize = Literal["resized", "stored"]
LABEL_SIZES: tuple[LabelSize, ...] = ("resized", "stored")


def _check_label_size(label_size: object) -> LabelSize:
    """The readers' ``label_size``: ``"resized"`` (to ``size``) or ``"stored"`` (the file's)."""
    if label_size == "resized" or label_size == "stored":
        return label_size
    raise ValueError(f"label_size: expected one of {list(LABEL_SIZES)}, got {label_size!r}")


class ClipItem(TypedDict):
    """One item of a real-dataset reader in :mod:`dastc.data`.

    * ``clip``: float32 ``(T, 3, H, W)`` in ``[0, 1]``, oldest frame first.
    * ``label``: long ``(T, H, W)``, train ids or 255; with a reader's
      ``label_size="stored"``, ``(T, H_label, W_label)``: the label files'
      own resolution, whatever the clip's ``size``.
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


class _Frame(NamedTuple):
    image: Path
    label: Path | None  # None: an unlabelled frame (label all 255)


class _Sample(NamedTuple):
    name: str
    frames: tuple[_Frame, ...]
    flows: tuple[Path, ...]  # flow file of frame t -> t - 1, for t = 1 .. T-1; () without flows


class _LabelledFrames(Dataset[ClipItem]):
    """Clips of ``T`` frames with per-frame labels, read from explicit file lists.

    Every reader in :mod:`dastc.data` builds its ``samples`` from the public layout
    and hands them here; reading, cropping, label mapping, resizing and flow
    assembly happen once, in this class.

    Attributes a video reader fills (empty otherwise): ``skipped``, labelled
    frames whose clip lacks frames; ``unlabelled``, frames without a label file
    (not clip ends; inside a clip their label is ignore, 255); ``no_flow``,
    labelled frames whose clip lacks flow files (left out, with a warning).

    ``label_size``: ``"resized"`` (labels resized to ``size``, nearest) or
    ``"stored"`` (labels at their files' resolution; the clip and flows are
    still resized to ``size``).
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
        label_size: LabelSize = "resized",
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
        self.label_size: LabelSize = _check_label_size(label_size)

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
        stored = self.label_size == "stored"
        images: list[npt.NDArray[np.uint8]] = []
        labels: list[npt.NDArray[np.int64] | None] = []
        raw_hw: _Size = (0, 0)
        label_hw: _Size | None = None  # "stored": the size of the clip's label files
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
            raw_label_hw = (raw.shape[0], raw.shape[1])
            if stored:
                if label_hw is not None and raw_label_hw != label_hw:
                    raise ValueError(
                        f"{frame.label}: expected the size {label_hw} of the clip's other "
                        f"label files (label_size='stored' keeps them), got {raw_label_hw}"
                    )
                label_hw = raw_label_hw
            elif self.size is None and raw_label_hw != hw:
                raise ValueError(
                    f"{frame.label}: expected a label of size {hw} (the size of "
                    f"{frame.image}), got {raw.shape}"
                )
            labels.append(self.train_id_map.apply(raw, where=str(frame.label)))

        out: _Size = (
            self.size if self.size is not None else (images[0].shape[0], images[0].shape[1])
        )
        lab_out: _Size = label_hw if label_hw is not None else out
        clip = torch.empty(len(images), 3, *out)
        label = torch.full((len(images), *lab_out), IGNORE_INDEX, dtype=torch.long)
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
                if tuple(y.shape) != lab_out:
                    y = F.interpolate(y[None, None].float(), size=out, mode="nearest")[0, 0].long()
                label[t] = y
        item: ClipItem = {"clip": clip, "label": label, "name": sample.name}
        if self.has_flow:
            item["flow_prev"] = self._clip_flow_prev(sample.flows, raw_hw, out)
        return item

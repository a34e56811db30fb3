"""How the readers find their samples: the public path templates, clip discovery and the
checks every reader's constructor makes."""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, cast

from dastc.data._files import PathLike, read_list
from dastc.data._frames import _check_label_size, _Frame, _LabelledFrames, _Sample, _Size
from dastc.data.labelmaps import TrainIdMap


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


def _names(names: Sequence[str] | PathLike | None) -> list[str] | None:
    """A reader's ``names``: a sequence of frame names, or a list file to read them from."""
    if names is None:
        return None
    if isinstance(names, (str, os.PathLike)):
        return read_list(names)
    return list(names)


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


def _image_samples(
    pairs: Iterable[tuple[str, Path, Path]], listing: _Listing, where: Path, layout_hint: str
) -> list[_Sample]:
    """One-frame samples of the image readers from ``(name, image, label)`` candidates:
    a missing label is an error naming the file; no sample at all is :func:`_no_samples`."""
    samples = []
    for name, image, label in pairs:
        if not listing.exists(label):
            raise FileNotFoundError(f"{label}: no such file (expected the label of {image})")
        samples.append(_Sample(name, (_Frame(image, label),), ()))
    if not samples:
        raise _no_samples(where, layout_hint, ())
    return samples


def _no_samples(where: Path, layout_hint: str, skipped: Sequence[str]) -> FileNotFoundError:
    extra = (
        f"; {len(skipped)} labelled frames lack frames of their clip, e.g. {skipped[0]!r}"
        if skipped
        else ""
    )
    return FileNotFoundError(f"{where}: no complete samples found (expected {layout_hint}){extra}")


class _VideoFrames(_LabelledFrames):
    """The video readers' one constructor path (VIPER, SYNTHIA-Seq, Cityscapes-Seq).

    A reader calls :meth:`_read_clips` with its layout, the folders it needs, a
    function listing its candidate clip ends (used when ``names`` is None) and its
    decoding options; the argument checks (before any disk access), the clips, the
    warnings, the errors and the attributes ``root``, ``clip_len`` and
    ``flow_root`` are the same for all.
    """

    root: Path
    clip_len: int
    flow_root: Path | None

    def _read_clips(
        self,
        layout: _VideoLayout,
        root: Path,
        names: Sequence[str] | PathLike | None,
        list_frames: Callable[[], Sequence[str]],
        *,
        dirs: Sequence[tuple[Path, str]],
        clip_len: object,
        flow_root: PathLike | None,
        size: object,
        label_size: object,
        train_id_map: TrainIdMap,
        fields: dict[str, str],
        where: Path,
        layout_hint: str,
        **decoding: Any,
    ) -> None:
        given = _names(names)
        n = _check_clip_len(clip_len)
        size_ = _check_size(size)
        label_size_ = _check_label_size(label_size)
        for path, what in dirs:
            _require_dir(path, what)
        found = list(list_frames()) if given is None else given
        clips, flow_p = _video_clips(
            layout, root, found, n, flow_root, fields,
            strict=given is not None, where=where, layout_hint=layout_hint,
        )  # fmt: skip
        _LabelledFrames.__init__(
            self,
            clips.samples,
            train_id_map,
            size=size_,
            has_flow=flow_p is not None,
            skipped=clips.skipped,
            unlabelled=clips.unlabelled,
            no_flow=clips.no_flow,
            dataset=layout.dataset,
            label_size=label_size_,
            **decoding,
        )
        self.root, self.clip_len, self.flow_root = root, n, flow_p

"""Check a benchmark download before training: ``python -m dastc.data.check ROOT --dataset NAME``.

Builds the dataset reader on ``ROOT`` and reads every file it would read (or
the first ``--limit`` samples): it reports the number of samples (and of
labelled frames skipped because frames of their clip are missing), the
image sizes, image/label size mismatches, raw label ids the dataset does not
define, unreadable or missing files, missing or malformed flow files, and the
share of pixels per class. The exit status is 0 when nothing is wrong, 1
otherwise::

    python -m dastc.data.check /data/VIPER --dataset viper --flow-root /data/viper_flow
    python -m dastc.data.check /data/cityscapes --dataset cityscapes_seq --split val \\
        --protocol synthia-11 --clip-len 2
    python -m dastc.data.check /data/RAND_CITYSCAPES --dataset synthia --limit 100
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from dastc.data._frames import _LabelledFrames
from dastc.data.cityscapes import Cityscapes, CityscapesSeq
from dastc.data.gta5 import GTA5
from dastc.data.labelmaps import IGNORE_INDEX
from dastc.data.synthia import Synthia
from dastc.data.synthia_seq import SynthiaSeq
from dastc.data.viper import VIPER

__all__ = [
    "DATASETS",
    "IMAGE_SOURCES",
    "IMAGE_TARGETS",
    "VIDEO_SOURCES",
    "VIDEO_TARGETS",
    "CheckReport",
    "build_dataset",
    "check_dataset",
    "main",
]

DATASETS = ("viper", "synthia_seq", "cityscapes_seq", "gta5", "synthia", "cityscapes")
"""Dataset names: the one registry that the check, the example's command line and the tests use."""

VIDEO_SOURCES = ("viper", "synthia_seq")
"""The labelled (synthetic) video datasets a video UDA run adapts from."""

VIDEO_TARGETS = ("cityscapes_seq",)
"""The real video datasets a video UDA run adapts to."""

IMAGE_SOURCES = ("gta5", "synthia")
"""The labelled (synthetic) image datasets an image UDA run adapts from."""

IMAGE_TARGETS = ("cityscapes",)
"""The real image datasets an image UDA run adapts to."""

_VIDEO = ("viper", "synthia_seq", "cityscapes_seq")
_HAS_SPLIT = ("viper", "cityscapes_seq", "cityscapes")
_HAS_PROTOCOL = ("synthia_seq", "cityscapes_seq", "cityscapes", "synthia")
_SHOW = 5  # examples listed per problem kind


def build_dataset(
    name: str,
    root: str | Path,
    *,
    split: str | None = None,
    flow_root: str | Path | None = None,
    clip_len: int | None = None,
    protocol: str | None = None,
    size: tuple[int, int] | None = None,
    names: Sequence[str] | str | Path | None = None,
) -> _LabelledFrames:
    """Build the reader ``name`` with the options that apply to it.

    Args:
        name: one of :data:`DATASETS`.
        root: the dataset folder.
        split: the split, for VIPER and Cityscapes(-Seq) (default ``"train"``).
        flow_root: flow folder, for the video datasets.
        clip_len: frames per clip, for the video datasets (default 2).
        protocol: the label protocol, for SYNTHIA(-Seq) and Cityscapes(-Seq).
        size: ``(H, W)`` to resize to (default: the stored size).
        names: for the video datasets, the labelled frames to read, or a public
            split list file naming them (see :func:`~dastc.data.read_list`).

    Returns:
        The dataset.

    Raises:
        ValueError: unknown ``name``, or an option the dataset does not take.
        FileNotFoundError: as the reader raises for a missing layout.
    """
    if name not in DATASETS:
        raise ValueError(f"dataset: expected one of {list(DATASETS)}, got {name!r}")
    for opt, value, allowed in (
        ("split", split, _HAS_SPLIT),
        ("flow_root", flow_root, _VIDEO),
        ("clip_len", clip_len, _VIDEO),
        ("protocol", protocol, _HAS_PROTOCOL),
        ("names", names, _VIDEO),
    ):
        if value is not None and name not in allowed:
            raise ValueError(f"{opt}: the {name} dataset takes no {opt}, got {value!r}")
    split_ = split if split is not None else "train"
    t = clip_len if clip_len is not None else 2
    if name == "viper":
        return VIPER(root, split_, t, flow_root, size=size, names=names)
    if name == "synthia_seq":
        return SynthiaSeq(root, t, flow_root, size=size, protocol=protocol or "12", names=names)
    if name == "cityscapes_seq":
        return CityscapesSeq(
            root, split_, t, flow_root, size=size, protocol=protocol or "viper", names=names
        )
    if name == "gta5":
        return GTA5(root, size=size)
    if name == "synthia":
        return Synthia(root, size=size, protocol=protocol or "19")
    return Cityscapes(root, split_, size=size, protocol=protocol or "19")


@dataclass
class CheckReport:
    """What :func:`check_dataset` found. ``ok`` is true when no problem was found."""

    dataset: str
    num_samples: int
    skipped: list[str]
    checked: int = 0
    images: int = 0
    labels: int = 0
    image_sizes: Counter[tuple[int, int]] = field(default_factory=Counter)
    missing: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    size_mismatches: list[str] = field(default_factory=list)
    unknown_ids: Counter[int] = field(default_factory=Counter)
    unknown_files: list[str] = field(default_factory=list)
    unknown_ignored: bool = False  # the reader reads unknown ids as ignore (GTA5, SYNTHIA)
    unlabelled: list[str] = field(default_factory=list)  # frames without a label file
    no_flow: list[str] = field(default_factory=list)  # clips left out: flow files missing
    flows_needed: int = 0
    flow_files: int = 0
    missing_flows: list[str] = field(default_factory=list)
    bad_flows: list[str] = field(default_factory=list)
    class_pixels: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """No missing, unreadable, mismatched, unknown-id or flow problem (unknown
        ids that the reader reads as ignore are reported, not a problem)."""
        return not (
            self.missing
            or self.unreadable
            or self.size_mismatches
            or (self.unknown_files and not self.unknown_ignored)
            or self.missing_flows
            or self.bad_flows
        )

    def format(self) -> str:
        """The report as text, one finding per line."""

        def listing(title: str, items: Sequence[str]) -> list[str]:
            lines = [f"{title}: {len(items)}"]
            lines += [f"  {s}" for s in items[:_SHOW]]
            if len(items) > _SHOW:
                lines.append(f"  ... and {len(items) - _SHOW} more")
            return lines

        out = [f"dataset: {self.dataset}", f"samples: {self.num_samples}"]
        if self.skipped:
            out.append(
                f"skipped labelled frames (frames of their clip missing): "
                f"{len(self.skipped)}, e.g. {self.skipped[0]}"
            )
        if self.unlabelled:
            out.append(
                f"frames without a label file (not clip ends; inside a clip read as ignore): "
                f"{len(self.unlabelled)}, e.g. {self.unlabelled[0]}"
            )
        if self.no_flow:
            out.append(
                f"clips left out for lack of flow files: {len(self.no_flow)}, "
                f"e.g. the clip ending at {self.no_flow[0]}"
            )
        out.append(
            f"checked: {self.checked} samples, {self.images} image files, {self.labels} label files"
        )
        sizes = ", ".join(f"{h}x{w} ({n})" for (h, w), n in self.image_sizes.most_common())
        out.append(f"image sizes (H x W): {sizes or 'none'}")
        out += listing("missing files", self.missing)
        out += listing("unreadable files", self.unreadable)
        out += listing("label/image size mismatches", self.size_mismatches)
        ids = ", ".join(f"{i} ({n} files)" for i, n in sorted(self.unknown_ids.items()))
        what = "ids read as ignore (255)" if self.unknown_ignored else "unknown label ids"
        out += listing(f"files with {what} [{ids or '-'}]", self.unknown_files)
        if self.flows_needed:
            out.append(f"flow files: {self.flows_needed} needed, {self.flow_files} read")
            out += listing("missing flows", self.missing_flows)
            out += listing("malformed flows", self.bad_flows)
        total = sum(self.class_pixels.values())
        if total:
            pix = self.class_pixels.items()
            shares = ", ".join(f"{k} {100.0 * v / total:.1f}%" for k, v in pix)
            out.append(f"pixels per class: {shares}")
        out.append("OK" if self.ok else "PROBLEMS FOUND")
        return "\n".join(out)


def _check_flow_file(path: Path, report: CheckReport) -> None:
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        report.bad_flows.append(f"{path}: cannot read ({exc})")
        return
    if arr.dtype != np.int16 or arr.ndim != 3 or arr.shape[2] != 2:
        report.bad_flows.append(f"{path}: expected int16 (H, W, 2), got {arr.dtype} {arr.shape}")


def check_dataset(dataset: _LabelledFrames, limit: int | None = None) -> CheckReport:
    """Read every file of the first ``limit`` samples of ``dataset`` and report problems.

    Args:
        dataset: a reader from :mod:`dastc.data` (VIPER, SynthiaSeq,
            CityscapesSeq, Cityscapes, GTA5, Synthia).
        limit: how many samples to check (``None``: all).

    Returns:
        A :class:`CheckReport`; ``report.format()`` is the text the CLI prints.
    """
    report = CheckReport(type(dataset).__name__, len(dataset), list(dataset.skipped))
    report.unknown_ignored = dataset.train_id_map.unknown == "ignore"
    report.unlabelled = list(dataset.unlabelled)
    report.no_flow = list(dataset.no_flow)
    table = dataset.train_id_map.table
    counts: npt.NDArray[np.int64] = np.zeros(256, dtype=np.int64)
    seen_images: dict[Path, tuple[int, int] | None] = {}
    seen: set[Path] = set()
    samples = dataset.samples if limit is None else dataset.samples[:limit]
    for sample in samples:
        report.checked += 1
        for frame in sample.frames:
            if frame.image not in seen_images:
                try:
                    img = dataset.read_frame_image(frame.image)
                    size = (img.shape[0], img.shape[1])
                    seen_images[frame.image] = size
                    report.image_sizes[size] += 1
                    report.images += 1
                except FileNotFoundError as exc:
                    seen_images[frame.image] = None
                    report.missing.append(str(exc))
                except ValueError as exc:
                    seen_images[frame.image] = None
                    report.unreadable.append(str(exc))
            if frame.label is None or frame.label in seen:
                continue
            seen.add(frame.label)
            report.labels += 1
            try:
                raw = dataset.read_raw_label(frame.label)
            except FileNotFoundError as exc:
                report.missing.append(str(exc))
                continue
            except ValueError as exc:
                report.unreadable.append(str(exc))
                continue
            hw = seen_images[frame.image]
            if hw is not None and raw.shape != hw:
                report.size_mismatches.append(
                    f"{frame.label}: {raw.shape} vs image {frame.image}: {hw}"
                )
            unknown = dataset.train_id_map.unknown_ids(raw)
            if unknown:
                report.unknown_ids.update(unknown)
                report.unknown_files.append(f"{frame.label}: ids {unknown[:10]}")
            # unknown ids count as ignored pixels
            known = (raw >= 0) & (raw < table.size)
            train = np.where(known, table[np.clip(raw, 0, table.size - 1)], IGNORE_INDEX)
            counts += np.bincount(train.ravel(), minlength=256)
        for path in sample.flows:
            if path in seen:
                continue
            seen.add(path)
            report.flows_needed += 1
            if not path.is_file():
                report.missing_flows.append(f"{path}: no such file (flow of {sample.name}'s clip)")
                continue
            report.flow_files += 1
            _check_flow_file(path, report)
    names = dataset.class_names
    report.class_pixels = {names[k]: int(counts[k]) for k in range(len(names))}
    report.class_pixels["ignored"] = int(counts[IGNORE_INDEX])
    return report


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status (0: no problem found)."""
    parser = argparse.ArgumentParser(
        prog="python -m dastc.data.check",
        description="Check a benchmark dataset folder against the layout dastc reads.",
    )
    parser.add_argument("root", help="the dataset folder")
    parser.add_argument("--dataset", required=True, choices=DATASETS)
    parser.add_argument("--split", default=None, help="split folder (viper, cityscapes*)")
    parser.add_argument("--flow-root", default=None, help="folder of *_int16_x10.npy flows")
    parser.add_argument("--clip-len", type=int, default=None, help="frames per clip (videos)")
    parser.add_argument("--protocol", default=None, help="label protocol (see the readers)")
    parser.add_argument("--limit", type=int, default=None, help="check only the first N samples")
    parser.add_argument(
        "--list", default=None, help="a public split list: the labelled frames to read (videos)"
    )
    args = parser.parse_args(argv)
    try:
        ds = build_dataset(
            args.dataset,
            args.root,
            split=args.split,
            flow_root=args.flow_root,
            clip_len=args.clip_len,
            protocol=args.protocol,
            names=args.list,
        )
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    report = check_dataset(ds, args.limit)
    print(report.format())
    return 0 if report.ok else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""Compute the optical-flow files of a dataset tree or a folder of frames.

::

    python -m dastc.data.flow ROOT --dataset viper|synthia_seq|cityscapes_seq|frames \\
        --out FLOW_ROOT [--split S] [--clip-len N] [--list FILE] [--method dis] \\
        [--workers N] [--no-progress]

For every clip the reader (:class:`~dastc.data.VIPER`,
:class:`~dastc.data.SynthiaSeq`, :class:`~dastc.data.CityscapesSeq`) would build
with these ``split`` / ``clip_len`` / ``names``, this writes the backward flow of
each frame into the frame before it, as the public ``*_int16_x10.npy`` files
hold it (``int16`` ``(H, W, 2)`` = ``round(10 * (dx, dy))``, at the images'
stored resolution) and under the public name, so that e.g. ``VIPER(ROOT,
flow_root=FLOW_ROOT)`` reads them. ``--dataset frames``: ROOT is a folder of
images sorted by name (or the ``--list`` of file names, in order), and the flow
of each frame into the previous one is ``FLOW_ROOT/<stem>_int16_x10.npy``.

Files that exist are skipped; each file is written atomically (a temporary file
renamed into place), so an interrupted run can be resumed. Flows come from
:func:`dastc.flow_estimation.estimate_flow` (``--method dis``: OpenCV DIS,
``pip install "dastc[flow]"``).
"""

from __future__ import annotations

import argparse
import importlib
import itertools
import multiprocessing
import os
import sys
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
import torch

from dastc.data._files import read_flow, read_image, read_list
from dastc.data._layout import _VideoFrames, _VideoLayout

__all__ = ["DATASETS", "FlowJob", "flow_jobs", "main", "write_flow", "write_flows"]

DATASETS = ("viper", "synthia_seq", "cityscapes_seq", "frames")
"""The ``--dataset`` choices."""

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".tif", ".tiff", ".webp")


class FlowJob(NamedTuple):
    """One flow file to write: the flow of ``image`` into ``previous``, at ``out``."""

    out: Path
    image: Path
    previous: Path


def _reader_jobs(
    dataset: str,
    root: Path,
    out: Path,
    split: str | None,
    clip_len: int,
    names: list[str] | None,
) -> list[FlowJob]:
    """The flows of the clips a reader (``flow_root=None``) builds, named by its layout."""
    from dastc.data import cityscapes, synthia_seq, viper

    layout: _VideoLayout
    fields: dict[str, str]
    if dataset == "viper":
        split_ = split or "train"
        ds: _VideoFrames = viper.VIPER(root, split_, clip_len, names=names)
        layout, fields = viper._LAYOUT, {"split": split_}
    elif dataset == "cityscapes_seq":
        split_ = split or "train"
        ds = cityscapes.CityscapesSeq(root, split_, clip_len, names=names)
        layout, fields = cityscapes._LAYOUT, {"split": split_}
    else:
        if split is not None:
            raise ValueError(f"--split: SYNTHIA-Seq has no splits, got {split!r}")
        ds = synthia_seq.SynthiaSeq(root, clip_len, names=names)
        layout, fields = synthia_seq._LAYOUT, {}
    jobs: dict[Path, FlowJob] = {}
    for sample in ds.samples:
        m = layout.pattern.fullmatch(sample.name)
        if m is None:  # pragma: no cover - the reader matched it already
            raise ValueError(f"{sample.name}: not a {layout.dataset} frame name")
        fmt = {**fields, **{k: v for k, v in m.groupdict().items() if k != "frame"}}
        last = int(m.group("frame"))
        first = last - len(sample.frames) + 1
        for t in range(1, len(sample.frames)):
            f = first + t
            path = out / layout.flow.format(frame=f, other=f - 1, **fmt)
            jobs.setdefault(path, FlowJob(path, sample.frames[t].image, sample.frames[t - 1].image))
    return list(jobs.values())


def _frames_jobs(root: Path, out: Path, names: list[str] | None) -> list[FlowJob]:
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such directory (expected a folder of frames)")
    if names is None:
        images = sorted(
            p for p in root.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
        )
    else:
        images = [root / n for n in names]
        for p in images:
            if not p.is_file():
                raise FileNotFoundError(f"{p}: no such file (a frame of the --list)")
    if len(images) < 2:
        raise FileNotFoundError(
            f"{root}: expected at least 2 frames ({', '.join(IMAGE_EXTENSIONS)}), "
            f"found {len(images)}"
        )
    stems = [p.stem for p in images]
    if len(set(stems)) != len(stems):
        dup = next(s for s in stems if stems.count(s) > 1)
        raise ValueError(f"{root}: two frames share the stem {dup!r} (flow names would clash)")
    return [
        FlowJob(out / f"{cur.stem}_int16_x10.npy", cur, prev)
        for prev, cur in itertools.pairwise(images)
    ]


def flow_jobs(
    root: str | os.PathLike[str],
    dataset: str,
    out: str | os.PathLike[str],
    *,
    split: str | None = None,
    clip_len: int = 2,
    names: Sequence[str] | str | os.PathLike[str] | None = None,
) -> list[FlowJob]:
    """The flow files ``python -m dastc.data.flow`` writes (existing ones included).

    Args:
        root: the dataset root (or the folder of frames for ``"frames"``).
        dataset: one of :data:`DATASETS`.
        out: the flow folder (``flow_root`` of the reader).
        split: the reader's split (VIPER, Cityscapes-Seq; default ``"train"``).
        clip_len: the reader's ``clip_len`` (``>= 2``: flows link frames).
        names: the reader's ``names`` (a list file or names); for ``"frames"``
            the frame file names in order.

    Returns:
        One :class:`FlowJob` per flow file, each once.
    """
    if dataset not in DATASETS:
        raise ValueError(f"dataset: expected one of {list(DATASETS)}, got {dataset!r}")
    if isinstance(clip_len, bool) or not isinstance(clip_len, int) or clip_len < 2:
        raise ValueError(
            f"clip_len: expected an int >= 2 (a flow links two frames), got {clip_len!r}"
        )
    names_ = read_list(names) if isinstance(names, (str, os.PathLike)) else names
    names_l = list(names_) if names_ is not None else None
    if dataset == "frames":
        return _frames_jobs(Path(root), Path(out), names_l)
    return _reader_jobs(dataset, Path(root), Path(out), split, clip_len, names_l)


def _to_tensor(img: npt.NDArray[np.uint8]) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).float().div_(255.0)


def write_flow(job: FlowJob, method: str = "dis") -> bool:
    """Estimate and write one flow file atomically; ``False`` if it exists already."""
    if job.out.exists():
        return False
    cur = read_image(job.image, "a frame")
    prev = read_image(job.previous, "a frame")
    if cur.shape != prev.shape:
        raise ValueError(
            f"{job.image}: expected the size {prev.shape[:2]} of {job.previous} "
            f"(the frame before it), got {cur.shape[:2]}"
        )
    from dastc.flow_estimation import estimate_flow

    flow = estimate_flow(_to_tensor(cur), _to_tensor(prev), method)  # (2, H, W)
    arr = np.clip(np.rint(flow.permute(1, 2, 0).numpy() * 10.0), -32768, 32767).astype(np.int16)
    job.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = job.out.with_name(f".{job.out.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            np.save(fh, arr, allow_pickle=False)
        os.replace(tmp, job.out)
    finally:
        if tmp.exists():
            tmp.unlink()
    return True


def _worker_init() -> None:
    torch.set_num_threads(1)
    try:
        import cv2

        cv2.setNumThreads(1)
    except ImportError:  # pragma: no cover
        pass


def _write_one(args: tuple[FlowJob, str]) -> bool:
    return write_flow(*args)


def write_flows(
    jobs: Sequence[FlowJob],
    method: str = "dis",
    *,
    workers: int = 1,
    progress: bool = True,
) -> tuple[int, int]:
    """Write the flow files of ``jobs`` that do not exist yet; ``(written, skipped)``.

    ``workers`` > 1 uses that many processes (one OpenCV thread each).
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers: expected an int >= 1, got {workers!r}")
    todo = [j for j in jobs if not j.out.exists()]
    skipped = len(jobs) - len(todo)
    results: Iterable[bool]
    pool = None
    if workers > 1 and len(todo) > 1:
        pool = ProcessPoolExecutor(
            min(workers, len(todo)),
            mp_context=multiprocessing.get_context("spawn"),  # fork can deadlock torch/OpenMP
            initializer=_worker_init,
        )
        results = pool.map(_write_one, [(j, method) for j in todo], chunksize=1)
    else:
        results = (write_flow(j, method) for j in todo)
    if progress:
        try:
            tqdm = importlib.import_module("tqdm").tqdm
            results = tqdm(results, total=len(todo), unit="flow", desc="flows")
        except ImportError:
            pass
    written = 0
    try:
        for done in results:
            written += int(done)
            skipped += int(not done)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    return written, skipped


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m dastc.data.flow",
        description="Write the public *_int16_x10.npy backward flows (each frame into the "
        "previous one) of a dataset's clips or a folder of frames.",
    )
    parser.add_argument("root", type=Path, help="dataset root, or a folder of frames")
    parser.add_argument("--dataset", required=True, choices=DATASETS)
    parser.add_argument("--out", required=True, type=Path, help="the flow folder (flow_root)")
    parser.add_argument("--split", default=None, help="VIPER / Cityscapes-Seq split (train)")
    parser.add_argument("--clip-len", type=int, default=2, help="the reader's clip_len (2)")
    parser.add_argument("--list", type=Path, default=None, help="the reader's names list file")
    parser.add_argument("--method", default="dis", choices=("dis",), help="flow backend")
    parser.add_argument("--workers", type=int, default=1, help="processes (1)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error(f"--workers: expected an int >= 1, got {args.workers}")
    if args.dataset == "frames" and args.split is not None:
        parser.error("--split: not used with --dataset frames")
    try:
        jobs = flow_jobs(
            args.root, args.dataset, args.out,
            split=args.split, clip_len=args.clip_len, names=args.list,
        )  # fmt: skip
    except (FileNotFoundError, ValueError) as exc:
        parser.error(str(exc))
    start = time.perf_counter()
    written, skipped = write_flows(
        jobs, args.method, workers=args.workers, progress=not args.no_progress
    )
    seconds = time.perf_counter() - start
    sample = jobs[0].out
    flow = read_flow(sample)  # the files read back as the readers read them
    image = read_image(jobs[0].image, "a frame")
    if flow.shape[:2] != image.shape[:2]:  # pragma: no cover - written at the image's size
        print(f"error: {sample}: flow {flow.shape} does not match {jobs[0].image}", file=sys.stderr)
        return 1
    print(
        f"{written} flows written, {skipped} existed, to {args.out} in {seconds:.1f} s; "
        f"read back {sample.name}: {flow.shape[1]}x{flow.shape[0]}, "
        f"|flow| max {float(np.abs(flow).max()):.1f} px"
    )
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""A stand-in for VIPER → Cityscapes-Seq at real sizes, in the public download layouts.

The real video benchmarks cannot be downloaded by a program (their licences need
a sign-up). This module renders dastc's built-in synthetic domain-shift data
(:class:`~dastc.data.SyntheticDrivingClips`: source domain for VIPER, the shifted
target domain for Cityscapes-Seq) into the folder layouts that
:class:`~dastc.data.VIPER` and :class:`~dastc.data.CityscapesSeq` read, with the
public flows and lists, so that a pipeline, the example and
``python -m dastc.data.check`` can be run end to end on files of the real sizes::

    python -m dastc.data.standin OUT [--sequences N] [--frames-per-sequence M]
        [--snippets K] [--source-size 720 1280] [--target-size 1024 2048]
        [--seed S] [--workers W] [--no-progress]

writes::

    OUT/VIPER/train/img/<seq>/<seq>_<frame5>.jpg     every frame 1 .. M of N sequences 001 ..
    OUT/VIPER/train/cls/<seq>/<seq>_<frame5>.png     VIPER class ids, every 10th frame only
    OUT/Viper_list/train.txt                         the listed frames, 001/001_00010.jpg
    OUT/viper_flow/<seq>_<f5><f-1 5>_int16_x10.npy   flow of each listed frame into f - 1
    OUT/cityscapes/leftImg8bit_sequence/{train,val}/<city>/<city>_<seq>_<frame6>_leftImg8bit.png
    OUT/cityscapes/gtFine/{train,val}/<city>/<city>_<seq>_000019_gtFine_labelIds.png
    OUT/cityscapes_flow/<city>_<seq>_000019_000018_int16_x10.npy
    OUT/README.txt, OUT/standin.json

**What the frames are.** The renderer draws a finite street around the camera's
start, which stays a plausible view for about 15 frames of forward motion, so a
long sequence is a chain of 30-frame *shots*, each one scene (a cut between
shots, like the cuts of a film). Frame ``i`` (0-based) of a shot is the scene at
time ``i - 19``: the shot's frame 19 is time 0, exactly frame 0 of the
corresponding :class:`~dastc.data.SyntheticDrivingClips` item, and the other
frames are its past and future on the same camera path.

* Cityscapes-Seq snippet ``k`` of split ``s`` is one shot: the scene of item ``k`` of
  ``SyntheticDrivingClips("target", s, seed=seed, size=target_size)``; its 20th frame
  ``..._000019`` is labelled. Snippets go to the real cities in turn
  (``aachen``, ``bochum``, ... for train; ``frankfurt``, ``lindau``, ``munster``
  for val), numbered ``000000``, ``000001``, ... within each city.
* VIPER sequence ``n`` (``001``, ``002``, ...) has frames ``00001 .. M``; frames
  ``30 j + 1 .. 30 j + 30`` are shot ``j``, the scene of item ``(n - 1) * 100000 + j``
  of ``SyntheticDrivingClips("source", "train", seed=seed, size=source_size)``.
  The listed frames ``10, 20, 30, ...`` are the shot's times ``-10, 0, +10``; a clip
  of up to 10 frames ending at a listed frame never crosses a cut.

Labels are the renderer's own (exact), mapped to the dataset's raw ids
(:data:`VIPER_IDS`, :data:`CITYSCAPES_IDS`): the readers map them back to the
right train ids; pole has no class in the VIPER protocol and is written as VIPER
``infrastructure`` (10) / Cityscapes ``pole`` (17), both read as ignore (255) there
(``CityscapesSeq(..., protocol="synthia")`` keeps it as pole). Flows are the
renderer's exact backward flows of the frame into the frame before it, stored as
the public files: ``int16`` ``(H, W, 2)`` = ``round(10 × (dx, dy))`` (so exact to
0.05 px; values beyond ±3276.7 px are clipped). Images are the rendered frames
(VIPER as JPEG, quality 90; Cityscapes as PNG); the target domain's sensor noise
is drawn per pair of frames, so Cityscapes images equal the
``SyntheticDrivingClips`` frames up to that noise.

VIPER's reader relabels the ego vehicle (the car component touching the bottom
centre of the frame) as ignored by default; a rendered car that happens to cover
that pixel is read as ignore too, as it would be in VIPER.

**Resuming.** Every file is written to a temporary name in its folder and then
renamed (``os.replace``), so a file under its final name is complete; a rerun
skips the files that exist and writes the rest, and, the output being
deterministic, gives the same tree as an uninterrupted run. Leftover temporary
files (``.<name>.<pid>.tmp``) of an interrupted run are removed. ``standin.json``
records the sizes and the seed; rerunning into the same ``OUT`` with other ones
is refused, while more ``--sequences``, ``--frames-per-sequence`` or
``--snippets`` extend the set.

Images are written with pillow (``pip install "dastc[examples]"``); a progress
bar is shown when ``tqdm`` is installed.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import torch

from dastc.data import _scene
from dastc.data._files import PathLike, _pil
from dastc.data.synthetic import SyntheticDrivingClips, _derive_seed

__all__ = [
    "CITYSCAPES_IDS",
    "SHOT_FRAMES",
    "StandinSummary",
    "VIPER_IDS",
    "main",
    "write_standin",
]

VIPER_IDS: tuple[int, ...] = (3, 4, 9, 8, 2, 10, 14, 20, 24)
"""VIPER raw class id written for each synthetic class (in the order of
``SyntheticDrivingClips.CLASSES``: road 3, sidewalk 4, building 9, vegetation 8,
sky 2, pole → infrastructure 10 (ignored by the 15-class protocol), sign →
trafficsign 14, person 20, car 24)."""

CITYSCAPES_IDS: tuple[int, ...] = (7, 8, 11, 21, 23, 17, 20, 24, 26)
"""Cityscapes labelId written for each synthetic class (road 7, sidewalk 8,
building 11, vegetation 21, sky 23, pole 17 (ignored by the VIPER protocol), sign →
traffic sign 20, person 24, car 26)."""

SHOT_FRAMES = 30
"""Frames of one shot (one rendered scene): a Cityscapes-Seq snippet, a VIPER sequence's part."""

SHOT_START = -19
"""Scene time of a shot's first frame: the shot's frame 19 is time 0."""

LIST_EVERY = 10
"""VIPER's public lists name every 10th frame (``001/001_00010.jpg``)."""

SEQUENCE_STRIDE = 100_000
"""VIPER sequence ``n``'s shot ``j`` renders synthetic item ``(n - 1) * SEQUENCE_STRIDE + j``."""

LABELLED_FRAME = 19
"""The labelled frame of a Cityscapes-Seq snippet."""

CITIES: dict[str, tuple[str, ...]] = {
    "train": (
        "aachen", "bochum", "bremen", "cologne", "darmstadt", "dusseldorf", "erfurt",
        "hamburg", "hanover", "jena", "krefeld", "monchengladbach", "strasbourg",
        "stuttgart", "tubingen", "ulm", "weimar", "zurich",
    ),
    "val": ("frankfurt", "lindau", "munster"),
}  # fmt: skip
"""The Cityscapes cities that snippets go to, in turn, per split."""

_FORMAT = 1
_JPEG_QUALITY = 90

_Kind = Literal["jpg", "png", "viper_label", "cityscapes_label", "flow"]


@dataclass(frozen=True)
class _Output:
    frame: int  # index into the job's window
    kind: _Kind
    path: Path


@dataclass(frozen=True)
class _Job:
    """One window of consecutive frames of one shot, and the files it writes."""

    domain: Literal["source", "target"]
    item_seed: int
    shot_len: int
    size: tuple[int, int]
    first: int  # index of the window's first frame in the shot
    count: int  # frames in the window
    outputs: tuple[_Output, ...]

    def missing(self) -> list[_Output]:
        return [o for o in self.outputs if not o.path.is_file()]


@dataclass
class StandinSummary:
    """What :func:`write_standin` did.

    Attributes:
        out: the output folder.
        files: files of the complete set.
        written: files written by this call.
        skipped: files that existed already (left untouched).
        frames: video frames of the complete set (VIPER and Cityscapes-Seq).
        seconds: wall-clock time of the call.
        paths: the roots to pass to the readers and the example.
    """

    out: Path
    files: int = 0
    written: int = 0
    skipped: int = 0
    frames: int = 0
    seconds: float = 0.0
    paths: dict[str, Path] = field(default_factory=dict)


def _check_int(value: object, name: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ValueError(f"{name}: expected an int in [{lo}, {hi}], got {value!r}")
    return value


def _check_size(value: object, name: str) -> tuple[int, int]:
    if (
        isinstance(value, (tuple, list))
        and len(value) == 2
        and all(isinstance(s, int) and not isinstance(s, bool) and 16 <= s <= 16384 for s in value)
    ):
        return int(value[0]), int(value[1])
    raise ValueError(f"{name}: expected (H, W), two ints in [16, 16384], got {value!r}")


def _windows(shot_len: int) -> Iterator[tuple[int, int]]:
    """``(first, count)`` of the windows a shot is rendered in: pairs ``(0, 1), (2, 3), ...``.

    Every labelled frame (VIPER: shot frames 9, 19, 29; Cityscapes: 19) is the
    second of its pair, so its flow into the frame before comes with it.
    """
    for first in range(0, shot_len, 2):
        yield first, min(2, shot_len - first)


def _viper_jobs(
    out: Path, sequences: int, frames: int, size: tuple[int, int], seed: int
) -> tuple[list[_Job], list[str]]:
    ds = SyntheticDrivingClips("source", "train", length=0, size=size, seed=seed)
    root, flows = out / "VIPER" / "train", out / "viper_flow"
    jobs: list[_Job] = []
    listed: list[str] = []
    for n in range(1, sequences + 1):
        seq = f"{n:03d}"
        for j, shot_first in enumerate(range(1, frames + 1, SHOT_FRAMES)):
            shot_len = min(SHOT_FRAMES, frames - shot_first + 1)
            item_seed = ds.item_seed((n - 1) * SEQUENCE_STRIDE + j)
            for first, count in _windows(shot_len):
                outputs = []
                for i in range(count):
                    f = shot_first + first + i
                    name = f"{seq}_{f:05d}"
                    outputs.append(_Output(i, "jpg", root / "img" / seq / f"{name}.jpg"))
                    if f % LIST_EVERY == 0:
                        listed.append(f"{seq}/{name}.jpg")
                        outputs.append(
                            _Output(i, "viper_label", root / "cls" / seq / f"{name}.png")
                        )
                        flow = flows / f"{name}{f - 1:05d}_int16_x10.npy"
                        outputs.append(_Output(i, "flow", flow))
                jobs.append(_Job("source", item_seed, shot_len, size, first, count, tuple(outputs)))
    return jobs, listed


def _cityscapes_jobs(
    out: Path, split: Literal["train", "val"], snippets: int, size: tuple[int, int], seed: int
) -> list[_Job]:
    ds = SyntheticDrivingClips("target", split, length=0, size=size, seed=seed)
    root, flows = out / "cityscapes", out / "cityscapes_flow"
    cities = CITIES[split]
    jobs: list[_Job] = []
    for k in range(snippets):
        city, seq = cities[k % len(cities)], f"{k // len(cities):06d}"
        item_seed = ds.item_seed(k)
        for first, count in _windows(SHOT_FRAMES):
            outputs = []
            for i in range(count):
                f = first + i
                stem = f"{city}_{seq}_{f:06d}"
                img = root / "leftImg8bit_sequence" / split / city / f"{stem}_leftImg8bit.png"
                outputs.append(_Output(i, "png", img))
                if f == LABELLED_FRAME:
                    label = root / "gtFine" / split / city / f"{stem}_gtFine_labelIds.png"
                    outputs.append(_Output(i, "cityscapes_label", label))
                    flow = flows / f"{stem}_{f - 1:06d}_int16_x10.npy"
                    outputs.append(_Output(i, "flow", flow))
            jobs.append(_Job("target", item_seed, SHOT_FRAMES, size, first, count, tuple(outputs)))
    return jobs


def _write_atomic(path: Path, write: Callable[[Path], object]) -> None:
    """Write ``path`` through a temporary file in its folder and ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _save_npy(arr: npt.NDArray[Any]) -> Callable[[Path], None]:
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:  # a file object: np.save would append .npy to a path
            np.save(fh, arr)

    return write


def _save_image(arr: npt.NDArray[np.uint8], fmt: str, **options: Any) -> Callable[[Path], None]:
    image = _pil()

    def write(tmp: Path) -> None:
        image.fromarray(arr).save(tmp, format=fmt, **options)

    return write


_ID_TABLES = {
    "viper_label": np.array(VIPER_IDS, dtype=np.uint8),
    "cityscapes_label": np.array(CITYSCAPES_IDS, dtype=np.uint8),
}


def _run_job(job: _Job) -> int:
    """Render ``job``'s window and write its missing files; returns how many it wrote."""
    todo = job.missing()
    if not todo:
        return 0
    shift = SyntheticDrivingClips(job.domain, "train", length=0).shift
    g = torch.Generator().manual_seed(job.item_seed)
    scene = _scene.sample_scene(g, job.shot_len, job.size, shift.layout, start=SHOT_START)
    noise = torch.Generator().manual_seed(_derive_seed(job.item_seed, 1 + job.first))
    frames = list(range(job.first, job.first + job.count))
    with torch.no_grad():
        item = _scene.render(scene, job.size, shift, noise, frames=frames)
    clip = (item["clip"] * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    label = item["label"].numpy()
    for o in todo:
        if o.kind == "jpg":
            write = _save_image(clip[o.frame], "JPEG", quality=_JPEG_QUALITY)
        elif o.kind == "png":
            write = _save_image(clip[o.frame], "PNG")
        elif o.kind == "flow":
            if o.frame == 0:  # never: labelled frames are the second of their window
                raise AssertionError(f"{o.path}: the frame before is not in the window")
            flow = item["flow_prev"][o.frame].permute(1, 2, 0).numpy()
            x10 = np.clip(np.rint(flow.astype(np.float64) * 10), -32768, 32767).astype(np.int16)
            write = _save_npy(x10)
        else:
            write = _save_image(_ID_TABLES[o.kind][label[o.frame]], "PNG")
        _write_atomic(o.path, write)
    return len(todo)


def _init_worker(threads: int) -> None:
    torch.set_num_threads(threads)


def _remove_stale_tmp(folders: set[Path]) -> None:
    for folder in folders:
        if not folder.is_dir():
            continue
        with os.scandir(folder) as it:
            for entry in it:
                if entry.name.startswith(".") and entry.name.endswith(".tmp") and entry.is_file():
                    os.unlink(entry.path)


def _bar(total: int, show: bool) -> Any:
    if not show:
        return None
    try:  # an optional extra (dastc[examples]), untyped: imported by name
        tqdm = importlib.import_module("tqdm").tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc="stand-in", unit="frame", dynamic_ncols=True, mininterval=1.0)


def _check_manifest(out: Path, manifest: dict[str, Any]) -> None:
    path = out / "standin.json"
    if path.is_file():
        old = json.loads(path.read_text())
        if old != manifest:
            raise ValueError(
                f"{path}: {out} holds a stand-in written with {old}, not {manifest}; "
                "rerun with the same sizes and seed, or write to another folder"
            )
        return
    _write_atomic(path, lambda tmp: tmp.write_text(json.dumps(manifest, indent=1) + "\n"))


def _readme(out: Path, summary: StandinSummary, options: dict[str, Any]) -> str:
    o = out.resolve()
    n_seq, n_frames = options["sequences"], options["frames_per_sequence"]
    return f"""dastc stand-in for VIPER -> Cityscapes-Seq (synthetic data, NOT the real datasets)

Written by `python -m dastc.data.standin` (dastc's SyntheticDrivingClips renderer:
the source domain as VIPER, the shifted target domain as Cityscapes-Seq), in the
public download layouts that dastc.data.VIPER and dastc.data.CityscapesSeq read,
at the sizes of the real datasets. Labels and flows are the renderer's exact ones.
See docs/guides/standin.md.

options: {json.dumps(options)}
files: {summary.files}, frames: {summary.frames}

  VIPER/train/img, VIPER/train/cls   {n_seq} sequences of {n_frames} frames, labels every 10th
  Viper_list/train.txt               the labelled frames (the public list)
  viper_flow/                        flows of the listed frames into the frame before
  cityscapes/leftImg8bit_sequence    {options["snippets"]} 30-frame snippets per split (train, val)
  cityscapes/gtFine                  labelIds of frame 19 of each snippet
  cityscapes_flow/                   flows of frame 19 into 18

Check:
  python -m dastc.data.check {o}/VIPER --dataset viper --split train \\
      --list {o}/Viper_list/train.txt --flow-root {o}/viper_flow
  python -m dastc.data.check {o}/cityscapes --dataset cityscapes_seq --split val \\
      --clip-len 2 --flow-root {o}/cityscapes_flow

Train:
  python examples/train_video_uda.py --source viper --source-root {o}/VIPER \\
      --source-list {o}/Viper_list/train.txt --source-flow-root {o}/viper_flow \\
      --target cityscapes_seq --target-root {o}/cityscapes \\
      --target-flow-root {o}/cityscapes_flow \\
      --size 512 1024 --batch 1 --iters 40000 --device cuda --out runs/standin_dastc
"""


def write_standin(
    out: PathLike,
    *,
    sequences: int = 2,
    frames_per_sequence: int = 300,
    snippets: int = 10,
    source_size: tuple[int, int] = (720, 1280),
    target_size: tuple[int, int] = (1024, 2048),
    seed: int = 0,
    workers: int = 1,
    progress: bool = True,
) -> StandinSummary:
    """Render the VIPER → Cityscapes-Seq stand-in into ``out`` (see the module docs).

    Files that exist are skipped, so an interrupted call is completed by calling
    again with the same arguments.

    Args:
        out: the output folder (created).
        sequences: VIPER sequences ``001 ..`` (``0 .. 999``).
        frames_per_sequence: frames of each VIPER sequence (``10 .. 99999``);
            every 10th is labelled and listed.
        snippets: Cityscapes-Seq snippets of 30 frames per split, train and val
            (``0 .. 999999``).
        source_size: ``(H, W)`` of the VIPER frames (real: 720 × 1280).
        target_size: ``(H, W)`` of the Cityscapes-Seq frames (real: 1024 × 2048).
        seed: base seed of the scenes (that of ``SyntheticDrivingClips``).
        workers: processes rendering at once (``1``: in this process).
        progress: show a progress bar (when ``tqdm`` is installed).

    Returns:
        A :class:`StandinSummary`: counts of written and skipped files and the roots.

    Raises:
        ValueError: an argument out of range, or ``out`` holding a stand-in of
            other sizes or another seed.
        ImportError: pillow is not installed.

    Examples:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as d:
        ...     s = write_standin(d, sequences=1, frames_per_sequence=10, snippets=0,
        ...                       source_size=(36, 64), progress=False)
        ...     s.written, s.frames, sorted(p.name for p in Path(d, "viper_flow").iterdir())
        (12, 10, ['001_0001000009_int16_x10.npy'])
    """
    out_p = Path(out)
    sequences = _check_int(sequences, "sequences", 0, 999)
    frames_per_sequence = _check_int(frames_per_sequence, "frames_per_sequence", 10, 99999)
    snippets = _check_int(snippets, "snippets", 0, 999999)
    source_size = _check_size(source_size, "source_size")
    target_size = _check_size(target_size, "target_size")
    workers = _check_int(workers, "workers", 1, 1024)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed: expected an int, got {seed!r}")
    _pil()  # fail early without pillow
    start = time.perf_counter()
    out_p.mkdir(parents=True, exist_ok=True)
    _check_manifest(
        out_p,
        {
            "format": _FORMAT,
            "source_size": list(source_size),
            "target_size": list(target_size),
            "seed": seed,
        },
    )

    jobs, listed = _viper_jobs(out_p, sequences, frames_per_sequence, source_size, seed)
    for split in ("train", "val"):
        jobs += _cityscapes_jobs(out_p, split, snippets, target_size, seed)
    # Folders that must exist even when empty (a split without snippets, no sequence).
    for folder in ("VIPER/train/img", "VIPER/train/cls", "viper_flow", "cityscapes_flow"):
        (out_p / folder).mkdir(parents=True, exist_ok=True)
    for split in ("train", "val"):
        for sub in ("leftImg8bit_sequence", "gtFine"):
            (out_p / "cityscapes" / sub / split).mkdir(parents=True, exist_ok=True)
    _remove_stale_tmp({o.path.parent for job in jobs for o in job.outputs})

    summary = StandinSummary(out=out_p)
    summary.files = sum(len(job.outputs) for job in jobs)
    summary.frames = sum(job.count for job in jobs)
    todo = []
    bar = _bar(summary.frames, progress)
    for job in jobs:
        if job.missing():
            todo.append(job)
        elif bar is not None:
            bar.update(job.count)
    try:
        if workers == 1 or len(todo) <= 1:
            for job in todo:
                summary.written += _run_job(job)
                if bar is not None:
                    bar.update(job.count)
        else:
            threads = max(1, torch.get_num_threads() // workers)
            with ProcessPoolExecutor(
                max_workers=workers,
                mp_context=get_context("spawn"),
                initializer=_init_worker,
                initargs=(threads,),
            ) as pool:
                for job, wrote in zip(todo, pool.map(_run_job, todo), strict=True):
                    summary.written += wrote
                    if bar is not None:
                        bar.update(job.count)
    finally:
        if bar is not None:
            bar.close()
    summary.skipped = summary.files - summary.written

    if sequences:
        lst = out_p / "Viper_list" / "train.txt"
        text = "".join(f"{name}\n" for name in listed)
        if not lst.is_file() or lst.read_text() != text:
            _write_atomic(lst, lambda tmp: tmp.write_text(text))
    summary.paths = {
        "source_root": out_p / "VIPER",
        "source_list": out_p / "Viper_list" / "train.txt",
        "source_flow_root": out_p / "viper_flow",
        "target_root": out_p / "cityscapes",
        "target_flow_root": out_p / "cityscapes_flow",
    }
    options = {
        "sequences": sequences,
        "frames_per_sequence": frames_per_sequence,
        "snippets": snippets,
        "source_size": list(source_size),
        "target_size": list(target_size),
        "seed": seed,
    }
    readme = _readme(out_p, summary, options)
    readme_p = out_p / "README.txt"
    if not readme_p.is_file() or readme_p.read_text() != readme:
        _write_atomic(readme_p, lambda tmp: tmp.write_text(readme))
    summary.seconds = time.perf_counter() - start
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point (``python -m dastc.data.standin``); returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m dastc.data.standin",
        description="Render a synthetic stand-in for VIPER -> Cityscapes-Seq in the public "
        "layouts, at real sizes (rerun to complete an interrupted run).",
    )
    parser.add_argument("out", help="output folder")
    parser.add_argument("--sequences", type=int, default=2, help="VIPER sequences (default 2)")
    parser.add_argument(
        "--frames-per-sequence", type=int, default=300,
        help="frames of each VIPER sequence, every 10th labelled (default 300)",
    )  # fmt: skip
    parser.add_argument(
        "--snippets", type=int, default=10,
        help="Cityscapes-Seq 30-frame snippets per split (default 10)",
    )  # fmt: skip
    parser.add_argument("--source-size", type=int, nargs=2, default=(720, 1280), metavar=("H", "W"))
    parser.add_argument(
        "--target-size", type=int, nargs=2, default=(1024, 2048), metavar=("H", "W")
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=1, help="rendering processes (default 1)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    try:
        s = write_standin(
            args.out,
            sequences=args.sequences,
            frames_per_sequence=args.frames_per_sequence,
            snippets=args.snippets,
            source_size=tuple(args.source_size),
            target_size=tuple(args.target_size),
            seed=args.seed,
            workers=args.workers,
            progress=not args.no_progress,
        )
    except (ValueError, TypeError, ImportError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(
        f"{s.out}: {s.written} files written, {s.skipped} already there "
        f"({s.frames} frames, {s.seconds:.1f} s); see {s.out / 'README.txt'}"
    )
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""Data for the UDA examples: datasets, batching with a resumable order, and colours.

The built-in synthetic clips are the default; the real benchmarks are read by
the readers in :mod:`dastc.data` when their roots are given.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch import Tensor
from torch.utils.data import Dataset

from dastc.data import CITYSCAPES_CLASSES, Shift, SyntheticDrivingClips, palette_for
from dastc.data.rare_class_sampling import RareClassSampler

Item = dict[str, Any]


@dataclass
class DataSpec:
    """Which data a run trains and evaluates on."""

    source: str = "synthetic"
    target: str = "synthetic"
    source_root: str | None = None
    target_root: str | None = None
    source_flow_root: str | None = None
    target_flow_root: str | None = None
    source_list: str | None = None  # a public split list of the source's labelled frames
    size: tuple[int, int] = (64, 128)
    clip_len: int = 2
    train_clips: int = 512
    val_clips: int = 64
    seed: int = 0
    shift: dict[str, float] | None = None
    # the synthetic clips' flow: "exact" (the renderer's) or estimated from the frames
    # ("dis": OpenCV's DIS, as a user without ground-truth flow would have it)
    flow: str = "exact"
    # evaluation: sliding-window inference on the val clips (None: whole clips at once);
    # the stride defaults to half the window (DAFormer's crop 1024, stride 512)
    eval_window: tuple[int, int] | None = None
    eval_stride: tuple[int, int] | None = None
    # training clips: the source read at source_size (None: size), then a random rescale
    # in crop_scale, a crop of crop and a flip with probability flip, drawn per clip;
    # the target too with crop_target (it is read at size)
    source_size: tuple[int, int] | None = None
    crop: tuple[int, int] | None = None
    crop_scale: tuple[float, float] = (1.0, 1.0)
    flip: float = 0.0
    crop_target: bool = False

    def __post_init__(self) -> None:
        self.crop_scale = (float(self.crop_scale[0]), float(self.crop_scale[1]))
        self.size = (int(self.size[0]), int(self.size[1]))
        for name in ("eval_window", "eval_stride", "source_size", "crop"):  # JSON lists
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, (int(value[0]), int(value[1])))
        if self.flow not in ("exact", "dis"):
            raise ValueError(f"flow: expected 'exact' or 'dis', got {self.flow!r}")
        if self.eval_stride is not None and self.eval_window is None:
            raise ValueError("eval_stride: only with eval_window (sliding-window evaluation)")
        if self.crop is None and self.source_size not in (None, self.size):
            raise ValueError(
                f"source_size: {self.source_size} differs from size {self.size}; give a crop "
                "so that source and target clips have the same size"
            )
        if self.crop is not None and not self.crop_target and self.crop != self.size:
            raise ValueError(
                f"crop: {self.crop} must equal size {self.size} (the target clips' size) "
                "unless the target is cropped too (crop_target)"
            )


class EstimatedFlow(Dataset[Item]):
    """The items of ``base`` with ``flow_prev`` estimated from the frames
    (``dastc.flow_estimation.estimate_flow``) instead of the renderer's exact flow; the
    other exact quantities (``flow`` to the last frame, ``valid``) are dropped."""

    def __init__(self, base: Dataset[Item], method: str) -> None:
        self.base, self.method = base, method

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, i: int) -> Item:
        from dastc.flow_estimation import estimate_flow

        item = {k: v for k, v in self.base[i].items() if k not in ("flow", "valid")}
        clip = item["clip"]
        flow = torch.zeros(clip.shape[0], 2, *clip.shape[-2:])
        if clip.shape[0] > 1:
            flow[1:] = estimate_flow(clip[1:], clip[:-1], self.method)
        item["flow_prev"] = flow
        return item


class CachedDataset(Dataset[Item]):
    """Keeps every item of a deterministic dataset in memory after its first use.

    The synthetic clips are rendered from their index alone, so caching changes
    nothing but speed: each clip is rendered once instead of once per epoch.
    """

    def __init__(self, base: Dataset[Item], max_items: int = 4096) -> None:
        self.base = base
        self.cache: dict[int, Item] = {}
        self.max_items = max_items

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def fill(self, workers: int = 2, desc: str = "render") -> None:
        """Render every item once, in ``workers`` single-threaded processes.

        Rendering is many small tensor ops: one thread per process is much faster
        than a multi-threaded loop (and does not fight the training loop's threads).
        """
        from torch.utils.data import DataLoader

        n = min(len(self), self.max_items)
        todo = [i for i in range(n) if i not in self.cache]
        if not todo:
            return
        loader: DataLoader[Item] = DataLoader(
            Subset(self.base, todo), batch_size=None, num_workers=workers
        )
        bar = _bar(len(todo), desc)
        for i, item in zip(todo, loader, strict=True):
            self.cache[i] = item
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()

    def __getitem__(self, index: int) -> Item:
        hit = self.cache.get(index)
        if hit is None:
            hit = self.base[index]
            if len(self.cache) < self.max_items:
                self.cache[index] = hit
        return hit


class Subset(Dataset[Item]):
    """The items ``indices`` of ``base``, in that order."""

    def __init__(self, base: Dataset[Item], indices: list[int]) -> None:
        self.base, self.indices = base, indices

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> Item:
        return self.base[self.indices[i]]


def _bar(total: int, desc: str) -> Any:
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc=desc, dynamic_ncols=True, mininterval=1.0, leave=False)


def _shift(spec: DataSpec) -> Shift | None:
    if not spec.shift:
        return None
    default = Shift.default()
    values = {**{f: getattr(default, f) for f in default.__dataclass_fields__}, **spec.shift}
    return Shift(**values)


class Datasets(NamedTuple):
    """What a run trains and scores on."""

    source: Dataset[Item]
    target: Dataset[Item]
    val: Dataset[Item]
    num_classes: int
    class_names: list[str]
    mean_excludes: list[int]  # trained and in the confusion matrix, not in the mIoU
    # further published means from the same confusion matrix: name -> classes left out
    # (SYNTHIA -> Cityscapes: "13", the 16 scored classes without wall, fence, pole)
    extra_means: dict[str, list[int]] = {}  # noqa: RUF012 (never mutated)


def build_datasets(spec: DataSpec) -> Datasets:
    """The source and target training sets, the target val set and how they are scored."""
    if spec.source == "synthetic" and spec.target == "synthetic":
        kw: dict[str, Any] = dict(clip_len=spec.clip_len, size=spec.size, seed=spec.seed)
        shift = _shift(spec)
        src = SyntheticDrivingClips(
            "source", "train", spec.train_clips, **{**kw, "size": spec.source_size or spec.size}
        )
        tgt = SyntheticDrivingClips("target", "train", spec.train_clips, shift=shift, **kw)
        val = SyntheticDrivingClips("target", "val", spec.val_clips, shift=shift, **kw)
        names = list(SyntheticDrivingClips.CLASSES)
        if spec.flow != "exact":
            src, tgt, val = (EstimatedFlow(d, spec.flow) for d in (src, tgt, val))  # type: ignore[assignment]
        cached = CachedDataset(src), CachedDataset(tgt), CachedDataset(val)
        return Datasets(*cached, len(names), names, [])
    return _real_datasets(spec)


# the target's label protocol (and the source's own) for each source: VIPER 15
# classes; SYNTHIA-Seq 12 classes trained, scored over 11 (fence left out of the mean);
# GTA5 the 19 Cityscapes classes; SYNTHIA the 19 too (terrain, truck, train unlabelled),
# scored over 16 and 13 (MEAN_EXCLUDES and EXTRA_MEANS of the "synthia" map)
_PROTOCOLS = {
    "viper": ("viper", None),
    "synthia_seq": ("synthia", "12"),
    "gta5": ("19", None),
    "synthia": ("19", "19"),
}


def _real_datasets(spec: DataSpec) -> Datasets:
    from dastc.data import EXTRA_MEANS, MEAN_EXCLUDES

    if spec.flow != "exact":
        raise SystemExit(
            f"--flow {spec.flow}: for the synthetic data; for real data write flow files "
            "with python -m dastc.data.flow and pass --source-flow-root/--target-flow-root"
        )
    from dastc.data.check import (
        IMAGE_SOURCES,
        IMAGE_TARGETS,
        VIDEO_SOURCES,
        VIDEO_TARGETS,
        build_dataset,
    )

    if spec.source_root is None or spec.target_root is None:
        raise SystemExit("--source-root and --target-root are required for real datasets")
    video = spec.source in VIDEO_SOURCES and spec.target in VIDEO_TARGETS
    image = spec.source in IMAGE_SOURCES and spec.target in IMAGE_TARGETS
    if not (video or image):
        raise SystemExit(
            f"real benchmarks: --source {'|'.join(VIDEO_SOURCES)} "
            f"--target {'|'.join(VIDEO_TARGETS)} (video) or --source "
            f"{'|'.join(IMAGE_SOURCES)} --target {'|'.join(IMAGE_TARGETS)} (images, "
            f"examples/train_image_uda.py) (got {spec.source} -> {spec.target})"
        )
    if image:
        given = {
            "--clip-len": spec.clip_len if spec.clip_len != 1 else None,
            "--source-flow-root": spec.source_flow_root,
            "--target-flow-root": spec.target_flow_root,
            "--source-list": spec.source_list,
        }
        bad = [k for k, v in given.items() if v is not None]
        if bad:
            raise SystemExit(f"{', '.join(bad)}: not for the image benchmarks (clips of 1 frame)")
    target_protocol, source_protocol = _PROTOCOLS[spec.source]
    src_kw: dict[str, Any] = dict(size=spec.source_size or spec.size, protocol=source_protocol)
    tgt_kw: dict[str, Any] = dict(size=spec.size, protocol=target_protocol)
    if video:
        src_kw.update(clip_len=spec.clip_len, flow_root=spec.source_flow_root,
                      names=spec.source_list)  # fmt: skip
        tgt_kw.update(clip_len=spec.clip_len, flow_root=spec.target_flow_root)
    src: Any = build_dataset(spec.source, spec.source_root, **src_kw)
    tgt = build_dataset(spec.target, spec.target_root, split="train", **tgt_kw)
    val = _val_at_label_resolution(spec, target_protocol)
    if src.class_names != tgt.class_names:
        raise SystemExit(f"source classes {src.class_names} != target {tgt.class_names}")
    names = list(tgt.class_names)
    maps = (tgt.train_id_map.name, src.train_id_map.name)
    excludes = [names.index(c) for m in maps for c in MEAN_EXCLUDES.get(m, ())]
    extra = {
        name: [names.index(c) for c in left_out]
        for m in maps
        for name, left_out in EXTRA_MEANS.get(m, {}).items()
    }
    return Datasets(src, tgt, val, tgt.num_classes, names, excludes, extra)


def _val_at_label_resolution(spec: DataSpec, protocol: str) -> Any:
    """The target val set as the published evaluations score it: clips (and flows) at
    ``spec.size``, labels at the resolution of their files (1024 x 2048 for Cityscapes);
    ``uda_eval.evaluate`` upsamples the logits to them before the confusion matrix."""
    from dastc.data import Cityscapes, CityscapesSeq

    assert spec.target_root is not None
    if spec.target == "cityscapes_seq":
        return CityscapesSeq(
            spec.target_root, "val", spec.clip_len, spec.target_flow_root, spec.size,
            protocol, label_size="stored",
        )  # fmt: skip
    if spec.target == "cityscapes":
        return Cityscapes(spec.target_root, "val", spec.size, protocol, label_size="stored")
    raise SystemExit(f"--target {spec.target}: no val reader at the labels' resolution")


def collate(items: Sequence[Item]) -> dict[str, Tensor]:
    """Stack the tensor fields of dataset items into a batch."""
    out: dict[str, Tensor] = {}
    for key, value in items[0].items():
        if isinstance(value, Tensor):
            out[key] = torch.stack([it[key] for it in items])
    return out


class EpochOrder:
    """Batch indices for iteration ``i``, a pure function of ``(seed, i)``.

    Each epoch is a fresh permutation drawn from ``seed + epoch``; a run resumed
    at iteration ``i`` therefore sees exactly the batches an uninterrupted run
    would. Under ``world`` processes, process ``rank`` takes every ``world``-th
    index of the global batch.
    """

    def __init__(self, n: int, batch: int, seed: int, rank: int = 0, world: int = 1) -> None:
        if n < batch * world:
            raise ValueError(
                f"dataset of {n} items is smaller than the global batch {batch * world}"
            )
        self.n, self.batch, self.seed, self.rank, self.world = n, batch, seed, rank, world
        self.per_epoch = n // (batch * world)
        self._perm_epoch = -1
        self._perm = torch.empty(0, dtype=torch.long)

    def indices(self, iteration: int) -> list[int]:
        epoch, pos = divmod(iteration, self.per_epoch)
        if epoch != self._perm_epoch:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._perm = torch.randperm(self.n, generator=g)
            self._perm_epoch = epoch
        gb = self.batch * self.world
        chunk = self._perm[pos * gb : (pos + 1) * gb]
        return chunk[self.rank :: self.world].tolist()


class RareClassOrder:
    """Source batch indices for iteration ``i`` drawn by rare class sampling (DAFormer's
    RCS): a class by its rarity, then a clip that holds it; a pure function of
    ``(seed, i)``, so a resumed run draws the same clips. Under ``world`` processes,
    process ``rank`` takes every ``world``-th draw of the global batch."""

    def __init__(
        self, sampler: RareClassSampler, batch: int, seed: int, rank: int = 0, world: int = 1
    ) -> None:
        self.sampler, self.batch, self.seed, self.rank, self.world = (
            sampler, batch, seed, rank, world,
        )  # fmt: skip

    def indices(self, iteration: int) -> list[int]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + iteration)
        idx, _ = self.sampler.sample(self.batch * self.world, g)
        return idx[self.rank :: self.world].tolist()  # type: ignore[no-any-return]


def rare_classes(
    ds: Dataset[Item], num_classes: int, below: float, max_clips: int = 64
) -> list[int]:
    """Classes whose pixel share in (up to ``max_clips`` evenly spaced) clips of ``ds``
    is below ``below``; the S→T mix pastes them whenever a source clip has them."""
    if below <= 0:
        return []
    n = len(ds)  # type: ignore[arg-type]
    idx = sorted({int(i * n / min(n, max_clips)) for i in range(min(n, max_clips))})
    counts = torch.zeros(num_classes + 1, dtype=torch.float64)
    for i in idx:
        y = ds[i]["label"].flatten()
        counts += torch.bincount(y.clamp(max=num_classes), minlength=num_classes + 1).double()
    share = counts[:num_classes] / counts[:num_classes].sum().clamp(min=1)
    return [k for k in range(num_classes) if 0 < share[k] < below]


def palette(num_classes: int, class_names: Sequence[str] | None = None) -> Tensor:
    """uint8 ``(K + 1, 3)`` colours; the last row (black) is for ignored pixels.

    The real benchmarks' classes (Cityscapes class names other than the synthetic
    clips' own list) get the Cityscapes benchmark colours
    (:func:`dastc.data.palette_for`); the synthetic clips' 9 classes their own
    palette; anything else fixed random colours.
    """
    names = list(class_names) if class_names is not None else None
    if names is not None and len(names) != num_classes:
        raise ValueError(f"class_names: expected {num_classes} names, got {len(names)}")
    real = (
        names is not None
        and names != list(SyntheticDrivingClips.CLASSES)
        and all(c in CITYSCAPES_CLASSES for c in names)
    )
    if real and names is not None:
        pal = palette_for(names)
    elif num_classes == SyntheticDrivingClips.NUM_CLASSES:
        pal = SyntheticDrivingClips.PALETTE
    else:
        g = torch.Generator().manual_seed(3)
        pal = (torch.rand(num_classes, 3, generator=g) * 255).to(torch.uint8)
    return torch.cat([pal, torch.zeros(1, 3, dtype=torch.uint8)])


def colorize(label: Tensor, num_classes: int, class_names: Sequence[str] | None = None) -> Tensor:
    """long ``(..., H, W)`` -> uint8 ``(..., H, W, 3)``; ignored pixels black
    (colours: :func:`palette`)."""
    ok = (label >= 0) & (label < num_classes)
    return palette(num_classes, class_names)[torch.where(ok, label, num_classes)]


def val_batches(
    ds: Dataset[Item], batch: int, rank: int = 0, world: int = 1
) -> Iterator[dict[str, Tensor]]:
    """The validation set once, in order; process ``rank`` of ``world`` takes its share."""
    n = len(ds)  # type: ignore[arg-type]
    mine = list(range(rank, n, world))
    for s in range(0, len(mine), batch):
        yield collate([ds[j] for j in mine[s : s + batch]])


def num_batches(n: int, batch: int) -> int:
    return math.ceil(n / batch)

"""Rare Class Sampling (RCS, DAFormer): draw source items that show rare classes more often.

DAFormer (Hoyer et al., CVPR 2022, ``lhoyer/DAFormer``, ``mmseg/datasets/uda_dataset.py``)
samples each source item in two steps: first a class ``c`` with a probability that
grows as the class's share of all labelled pixels shrinks, then an item uniformly
among those that show more than ``min_pixels`` pixels of ``c``. The class
probabilities are, over the classes that appear in the data (total count > 0)::

    freq[c] = total[c] / total.sum()
    prob    = softmax((1 - freq) / temperature)

This module splits that into three blocks usable with any ``DataLoader``:

* :func:`class_pixel_counts` reads every item's label once and returns the pixel
  count of each class in each item, ``(N, K)`` int64, optionally cached in a file.
* :func:`rare_class_probabilities` applies DAFormer's rule to such counts.
* :class:`RareClassSampler` is a ``torch.utils.data.Sampler`` drawing item indices
  the DAFormer way, vectorised, seeded per epoch.

Differences from DAFormer: a class that appears in the data but has no item with
more than ``min_pixels`` pixels of it is left out of the draw with a warning (the
remaining probabilities are renormalised) where DAFormer stops on an ``assert``;
the draw uses a ``torch.Generator`` instead of NumPy's global random state. DAFormer
also re-draws the random crop of a drawn item up to 10 times until it holds more than
half of ``min_pixels`` of the drawn class; a sampler cannot see the crop, so that retry
is the crop's business (dastc's example crops after sampling, without it).

Cache file format (``cache=`` of :func:`class_pixel_counts`), plain JSON readable
without dastc (``json.load``)::

    {"format": "dastc.class_pixel_counts", "version": 1, "num_items": N,
     "num_classes": K, "ignore_index": 255, "label_key": "label",
     "counts": [[c_00, ..., c_0(K-1)], ..., [c_(N-1)0, ..., c_(N-1)(K-1)]]}

``counts[i][k]`` is the number of pixels of class ``k`` in item ``i`` (over all
frames of a clip). DAFormer's ``sample_class_stats.json`` holds the same numbers
as ``[{"file": ..., "<k>": counts[i][k] for k with counts[i][k] > 0}, ...]``.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Sampler

from dastc._validate import check_num_classes, check_positive, describe

__all__ = ["class_pixel_counts", "rare_class_probabilities", "RareClassSampler"]

_FORMAT = "dastc.class_pixel_counts"
_VERSION = 1
_INT_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)


# --------------------------------------------------------------------------- validation


def _check_int(value: object, name: str, minimum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        expected = "an int" if minimum is None else f"an int >= {minimum}"
        raise TypeError(f"{name}: expected {expected}, got {describe(value)}")
    v = int(value)
    if minimum is not None and v < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {value!r}")
    return v


def _check_counts(counts: object, name: str = "counts") -> Tensor:
    """``counts`` as an int64 ``(N, K)`` tensor (same device), checked."""
    if not isinstance(counts, Tensor):
        raise TypeError(
            f"{name}: expected an integer tensor of shape (N, K) (pixels of each class "
            f"in each item), got {describe(counts)}"
        )
    if counts.dtype not in _INT_DTYPES:
        raise TypeError(
            f"{name}: expected an integer tensor of shape (N, K), got {describe(counts)}"
        )
    if counts.dim() != 2 or counts.shape[1] < 1:
        raise ValueError(
            f"{name}: expected shape (N, K) with K >= 1 classes, got {describe(counts)}"
        )
    counts = counts.long()
    if counts.numel() and int(counts.min()) < 0:
        raise ValueError(f"{name}: expected non-negative pixel counts, got {int(counts.min())}")
    return counts


def _check_temperature(temperature: object) -> float:
    return check_positive(temperature, "temperature")


def _logits(total: Tensor, temperature: float) -> Tensor:
    """DAFormer's ``(1 - freq) / temperature`` (float64) over every class (unseen ones too)."""
    t = total.to(torch.float64)
    return (1.0 - t / t.sum()) / temperature


# --------------------------------------------------------------------------- counts


class _Progress:
    """A tqdm bar when tqdm is installed, else a stderr line every few seconds."""

    def __init__(self, total: int, show: bool, desc: str) -> None:
        self.total, self.desc, self.done = total, desc, 0
        self.bar: Any = None
        self.plain = False
        self.last = time.monotonic()
        if not show:
            return
        try:  # an optional extra (dastc[examples]), untyped: imported by name
            tqdm = importlib.import_module("tqdm").tqdm
        except ImportError:
            self.plain = True
            return
        self.bar = tqdm(total=total, desc=desc, unit="item", dynamic_ncols=True, mininterval=1.0)

    def update(self) -> None:
        self.done += 1
        if self.bar is not None:
            self.bar.update(1)
        elif self.plain and time.monotonic() - self.last >= 5.0:
            self.last = time.monotonic()
            print(f"{self.desc}: {self.done}/{self.total} items", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        elif self.plain:
            print(f"{self.desc}: {self.done}/{self.total} items", file=sys.stderr, flush=True)


def _item_counts(
    item: object, index: int, num_classes: int, ignore_index: int, label_key: str
) -> Tensor:
    where = f"dataset[{index}]"
    if not isinstance(item, Mapping):
        raise TypeError(
            f"{where}: expected a mapping with a {label_key!r} entry (label_key), "
            f"got {describe(item)}"
        )
    if label_key not in item:
        raise ValueError(
            f"{where}: expected a {label_key!r} entry (label_key), got keys {sorted(item)[:20]}"
        )
    label = item[label_key]
    if isinstance(label, np.ndarray):
        label = torch.from_numpy(label)
    if not isinstance(label, Tensor) or label.dtype not in _INT_DTYPES:
        raise TypeError(
            f"{where}[{label_key!r}]: expected an integer label tensor of any shape, "
            f"got {describe(label)}"
        )
    flat = label.detach().reshape(-1).long().cpu()
    if flat.numel() == 0:
        return torch.zeros(num_classes, dtype=torch.long)
    lo, hi = torch.aminmax(flat)
    if int(lo) < 0 or int(hi) >= num_classes:
        flat = flat[flat != ignore_index]
        bad = (flat < 0) | (flat >= num_classes)
        if bool(bad.any()):
            values = torch.unique(flat[bad])[:8].tolist()
            raise ValueError(
                f"{where}[{label_key!r}]: expected class ids in [0, {num_classes}) or "
                f"ignore_index={ignore_index}, got {values} (label shape {tuple(label.shape)})"
            )
    return torch.bincount(flat, minlength=num_classes)


def _header(num_items: int, num_classes: int, ignore_index: int, label_key: str) -> dict[str, Any]:
    return {
        "format": _FORMAT,
        "version": _VERSION,
        "num_items": num_items,
        "num_classes": num_classes,
        "ignore_index": ignore_index,
        "label_key": label_key,
    }


def _read_cache(path: Path, header: dict[str, Any]) -> Tensor | None:
    """The cached counts, or ``None`` (with a warning when the file is unusable)."""
    if not path.exists():
        return None
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
        if not isinstance(data, dict) or data.get("format") != _FORMAT:
            raise ValueError(f"not a {_FORMAT} file")
        found = {k: data.get(k) for k in header}
        if found != header:
            warnings.warn(
                f"class_pixel_counts: cache {path} was written for {found}, not {header}; "
                "recomputing it",
                stacklevel=3,
            )
            return None
        rows = data["counts"]
        n, k = header["num_items"], header["num_classes"]
        if not isinstance(rows, list) or len(rows) != n:
            raise ValueError(f"expected {n} rows of counts")
        if not all(isinstance(r, list) and len(r) == k for r in rows):
            raise ValueError(f"expected {k} counts per row")
        if not all(isinstance(v, int) and not isinstance(v, bool) for r in rows for v in r):
            raise ValueError("expected integer counts")
        counts = torch.tensor(rows, dtype=torch.long).reshape(n, k)
        if counts.numel() and int(counts.min()) < 0:
            raise ValueError("expected non-negative counts")
        return counts
    except (OSError, ValueError, KeyError, TypeError, OverflowError, RuntimeError) as exc:
        warnings.warn(
            f"class_pixel_counts: cache {path} is unreadable ({exc}); recomputing it",
            stacklevel=3,
        )
        return None


def _write_cache(path: Path, header: dict[str, Any], counts: Tensor) -> None:
    """Write the cache through a temporary file in its folder and ``os.replace``."""
    head = json.dumps(header)[:-1]  # without the closing brace
    rows = ",\n".join(json.dumps(r) for r in counts.tolist())
    text = f'{head}, "counts": [\n{rows}\n]}}\n'
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        warnings.warn(f"class_pixel_counts: could not write the cache {path} ({exc})", stacklevel=3)
    finally:
        if tmp.exists():
            tmp.unlink()


def class_pixel_counts(
    dataset: Any,
    num_classes: int,
    *,
    ignore_index: int = 255,
    label_key: str = "label",
    cache: str | os.PathLike[str] | None = None,
    progress: bool = True,
) -> Tensor:
    """Pixel count of each class in each item of ``dataset``: RCS's statistics.

    Reads ``dataset[i][label_key]`` once for every ``i in range(len(dataset))``
    (a label of any shape and integer dtype, tensor or NumPy array: an image's
    ``(H, W)`` or a clip's ``(T, H, W)``, counted over all its frames) and counts
    each class with one ``bincount``. Pixels equal to ``ignore_index`` are not
    counted.

    With ``cache``, the counts are stored in (and later loaded from) a JSON file,
    format in the module docstring. The file is used only when its header matches
    (number of items, ``num_classes``, ``ignore_index``, ``label_key``, format
    version); otherwise, or when it is unreadable, a warning is issued and the
    counts are recomputed and rewritten. The file is written atomically (temporary
    file in the same folder, then ``os.replace``), so an interrupted run never
    leaves a truncated cache. The header cannot tell that the labels changed while
    the number of items stayed the same: delete the file then.

    Args:
        dataset: a map-style dataset (``__len__`` and ``__getitem__``) whose items
            are mappings with a ``label_key`` entry.
        num_classes: ``K``, the number of classes (``>= 1``).
        ignore_index: label value of unlabelled pixels (outside ``[0, K)``).
        label_key: the item entry holding the label.
        cache: a file to load the counts from / store them in, or ``None``.
        progress: show a progress bar (tqdm when installed, else a line on stderr
            every few seconds and at the end).

    Returns:
        int64 ``(N, K)`` with ``N = len(dataset)``: ``counts[i, k]`` is the number
        of pixels of class ``k`` in item ``i``.

    Raises:
        ValueError: a bad ``num_classes`` / ``ignore_index``, an item without
            ``label_key``, or a label value outside ``[0, K)`` that is not
            ``ignore_index`` (the message names the item index and the values).
        TypeError: an item that is not a mapping or a label that is not an
            integer tensor / array, or a bad argument type.

    Examples:
        >>> import torch
        >>> from dastc.data.rare_class_sampling import class_pixel_counts
        >>> ds = [{"label": torch.tensor([[0, 0, 2], [255, 2, 2]])},
        ...       {"label": torch.tensor([[[1, 1]], [[1, 255]]])}]  # a (T, H, W) clip
        >>> class_pixel_counts(ds, 3, progress=False)
        tensor([[2, 0, 3],
                [0, 3, 0]])
    """
    num_classes = check_num_classes(num_classes)
    ignore_index = _check_int(ignore_index, "ignore_index")
    if 0 <= ignore_index < num_classes:
        raise ValueError(
            f"ignore_index: expected a value outside [0, {num_classes}) (a real class id), "
            f"got {ignore_index}"
        )
    if not isinstance(label_key, str):
        raise TypeError(f"label_key: expected a str, got {describe(label_key)}")
    if cache is not None and not isinstance(cache, (str, os.PathLike)):
        raise TypeError(f"cache: expected a file path or None, got {describe(cache)}")
    if not hasattr(dataset, "__len__") or not hasattr(dataset, "__getitem__"):
        raise TypeError(
            f"dataset: expected a map-style dataset (__len__ and __getitem__), "
            f"got {describe(dataset)}"
        )
    n = len(dataset)
    header = _header(n, num_classes, ignore_index, label_key)
    path = None if cache is None else Path(os.fspath(cache))
    if path is not None:
        cached = _read_cache(path, header)
        if cached is not None:
            return cached
    counts = torch.zeros(n, num_classes, dtype=torch.long)
    bar = _Progress(n, bool(progress), "class pixel counts")
    try:
        for i in range(n):
            counts[i] = _item_counts(dataset[i], i, num_classes, ignore_index, label_key)
            bar.update()
    finally:
        bar.close()
    if path is not None:
        _write_cache(path, header, counts)
    return counts


# --------------------------------------------------------------------------- probabilities


def rare_class_probabilities(counts: Tensor, temperature: float = 0.01) -> Tensor:
    """DAFormer's rare-class sampling probability of each class.

    Over the classes with a total pixel count > 0 (``total = counts.sum(0)``)::

        freq = total / total.sum()
        prob = softmax((1 - freq) / temperature)

    Classes that never appear get probability exactly 0. A lower ``temperature``
    favours rare classes more (DAFormer's default 0.01 makes the rarest classes
    dominate); a higher one tends to uniform over the classes present. Computed in
    float64 (DAFormer computes in float32; the two agree to ~1e-5 relative).

    Args:
        counts: integer ``(N, K)``, pixels of each class in each item, e.g. from
            :func:`class_pixel_counts`; no negative entries.
        temperature: the softmax temperature, a finite float > 0.

    Returns:
        float64 ``(K,)`` on ``counts``' device, summing to 1.

    Raises:
        TypeError: ``counts`` is not an integer tensor, or ``temperature`` not a number.
        ValueError: ``counts`` is not ``(N, K)``, has negative entries or no pixel
            at all, or ``temperature`` is not finite and > 0.

    Examples:
        >>> import torch
        >>> from dastc.data.rare_class_sampling import rare_class_probabilities
        >>> counts = torch.tensor([[900, 100, 0], [900, 0, 0]])
        >>> rare_class_probabilities(counts, temperature=1.0)
        tensor([0.2901, 0.7099, 0.0000], dtype=torch.float64)
    """
    counts = _check_counts(counts)
    temperature = _check_temperature(temperature)
    total = counts.sum(0)
    seen = total > 0
    if not bool(seen.any()):
        raise ValueError(
            f"counts: expected at least one class with a pixel, got all zeros {describe(counts)}"
        )
    prob = torch.zeros(total.shape, dtype=torch.float64, device=total.device)
    prob[seen] = torch.softmax(_logits(total, temperature)[seen], dim=0)
    return prob


# --------------------------------------------------------------------------- sampler


class RareClassSampler(Sampler[int]):
    """Item indices drawn the DAFormer RCS way: a rare class first, then an item showing it.

    Each draw picks a class ``c`` among :attr:`classes` with :attr:`probabilities`
    (:func:`rare_class_probabilities`, renormalised over the drawable classes),
    then an item uniformly among those with ``counts[i, c] > min_pixels`` (strict,
    as in DAFormer). A class that appears in ``counts`` but has no such item is
    left out with a warning (DAFormer asserts there); if none is left,
    ``ValueError``.

    As a ``DataLoader`` sampler it yields :attr:`num_samples` indices per epoch,
    drawn with a ``torch.Generator`` seeded with ``seed + epoch``: call
    :meth:`set_epoch` at the start of every epoch (as with ``DistributedSampler``)
    to get a new order; the same seed and epoch give the same order. The sampler
    runs in the main process, so it is independent of ``num_workers``. For
    distributed training give each rank its own ``seed`` (e.g. ``seed + rank``)
    and ``num_samples`` (the per-rank epoch length).

    Args:
        counts: integer ``(N, K)``, pixels of each class in each item (from
            :func:`class_pixel_counts`); no negative entries.
        temperature: the softmax temperature (finite, > 0); DAFormer's 0.01.
        min_pixels: an item is eligible for class ``c`` when it has *more than*
            ``min_pixels`` pixels of ``c`` (int ``>= 0``); DAFormer's 3000.
        num_samples: indices per epoch (int ``>= 1``); ``None`` for ``N``.
        seed: base seed of the per-epoch generator (int).

    Attributes:
        classes: long ``(C,)``, the drawable class ids, ascending.
        probabilities: float64 ``(C,)``, their draw probabilities (sum 1).
        num_samples: indices yielded per epoch.
        num_items: ``N``; num_classes: ``K``; temperature, min_pixels, seed, epoch.

    Raises:
        TypeError / ValueError: a bad argument (the message names it), or no class
            with an eligible item.

    Examples:
        >>> import torch
        >>> from dastc.data.rare_class_sampling import RareClassSampler
        >>> counts = torch.tensor([[5000, 0, 4000], [6000, 3500, 0], [9000, 0, 0]])
        >>> sampler = RareClassSampler(counts, temperature=0.1, num_samples=6, seed=0)
        >>> sampler.classes.tolist(), sampler.eligible_items(0).tolist()
        ([0, 1, 2], [0, 1, 2])
        >>> order = list(sampler)
        >>> len(order), all(0 <= i < 3 for i in order)
        (6, True)
        >>> sampler.set_epoch(1)
        >>> sampler.state_dict()
        {'seed': 0, 'epoch': 1}
        >>> indices, classes = sampler.sample(4, torch.Generator().manual_seed(0))
        >>> indices.shape, classes.dtype
        (torch.Size([4]), torch.int64)
    """

    classes: Tensor
    probabilities: Tensor

    def __init__(
        self,
        counts: Tensor,
        *,
        temperature: float = 0.01,
        min_pixels: int = 3000,
        num_samples: int | None = None,
        seed: int = 0,
    ) -> None:
        counts = _check_counts(counts).cpu()
        self.temperature = _check_temperature(temperature)
        self.min_pixels = _check_int(min_pixels, "min_pixels", 0)
        self.seed = _check_int(seed, "seed")
        n, k = counts.shape
        if num_samples is None:
            num_samples = n
        self.num_samples = _check_int(num_samples, "num_samples", 1)
        self.num_items, self.num_classes = n, k
        self.epoch = 0

        total = counts.sum(0)
        seen = total > 0
        if not bool(seen.any()):
            raise ValueError(
                f"counts: expected at least one class with a pixel, got all zeros "
                f"{describe(counts)}"
            )
        eligible = counts > self.min_pixels  # (N, K); strict, as DAFormer
        lengths_all = eligible.sum(0)
        drawable = seen & (lengths_all > 0)
        dropped = (seen & ~drawable).nonzero().flatten().tolist()
        if dropped:
            warnings.warn(
                f"RareClassSampler: class(es) {dropped} appear in counts but no item has "
                f"more than min_pixels={self.min_pixels} pixels of them; they are left out "
                "of the draw (DAFormer would stop on an assert)",
                stacklevel=2,
            )
        if not bool(drawable.any()):
            raise ValueError(
                f"min_pixels: no class has an item with more than {self.min_pixels} pixels "
                f"of it (the largest count is {int(counts.max())}); lower min_pixels"
            )
        self.classes = drawable.nonzero().flatten()
        # softmax over the kept classes == DAFormer's probabilities renormalised over them
        # (and free of the underflow that renormalising tiny values would suffer).
        self.probabilities = torch.softmax(_logits(total, self.temperature)[self.classes], 0)
        # Padded (C, max_len) table of each drawable class's eligible items, ascending.
        rows, cols = eligible[:, self.classes].t().nonzero(as_tuple=True)
        self._lengths = lengths_all[self.classes]
        starts = torch.cumsum(self._lengths, 0) - self._lengths
        pos = torch.arange(rows.numel()) - starts[rows]
        self._table = torch.full((self.classes.numel(), int(self._lengths.max())), -1)
        self._table[rows, pos] = cols
        self._slot = torch.full((k,), -1, dtype=torch.long)
        self._slot[self.classes] = torch.arange(self.classes.numel())

    @classmethod
    def from_dataset(
        cls,
        dataset: Any,
        num_classes: int,
        *,
        cache: str | os.PathLike[str] | None = None,
        ignore_index: int = 255,
        label_key: str = "label",
        progress: bool = True,
        temperature: float = 0.01,
        min_pixels: int = 3000,
        num_samples: int | None = None,
        seed: int = 0,
    ) -> RareClassSampler:
        """A sampler over ``dataset``, its counts from :func:`class_pixel_counts`.

        ``cache``, ``ignore_index``, ``label_key`` and ``progress`` go to
        :func:`class_pixel_counts`, the rest to the constructor.

        Examples:
            >>> import torch
            >>> from dastc.data.rare_class_sampling import RareClassSampler
            >>> ds = [{"label": torch.full((8, 8), i % 2)} for i in range(4)]
            >>> s = RareClassSampler.from_dataset(ds, 2, min_pixels=10, progress=False)
            >>> s.classes.tolist(), len(s)
            ([0, 1], 4)
        """
        counts = class_pixel_counts(
            dataset,
            num_classes,
            ignore_index=ignore_index,
            label_key=label_key,
            cache=cache,
            progress=progress,
        )
        return cls(
            counts,
            temperature=temperature,
            min_pixels=min_pixels,
            num_samples=num_samples,
            seed=seed,
        )

    def eligible_items(self, class_id: int) -> Tensor:
        """Long ``(M,)``, ascending: the items an RCS draw of ``class_id`` picks from.

        Empty for a class that is not drawable (never seen, or left out because
        no item has more than ``min_pixels`` pixels of it).
        """
        c = _check_int(class_id, "class_id", 0)
        if c >= self.num_classes:
            raise ValueError(f"class_id: expected a value in [0, {self.num_classes}), got {c}")
        slot = int(self._slot[c])
        if slot < 0:
            return torch.zeros(0, dtype=torch.long)
        return self._table[slot, : int(self._lengths[slot])].clone()

    def sample(self, n: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """Draw ``n`` (item, class) pairs, vectorised.

        Args:
            n: number of draws (int ``>= 0``).
            generator: a CPU ``torch.Generator``; ``None`` uses torch's global RNG.

        Returns:
            ``(indices, classes)``, both long ``(n,)``: the drawn item indices and the
            class each draw was made for (``counts[indices, classes] > min_pixels``).
        """
        n = _check_int(n, "n", 0)
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(
                f"generator: expected a torch.Generator or None, got {describe(generator)}"
            )
        if n == 0:
            empty = torch.zeros(0, dtype=torch.long)
            return empty, empty.clone()
        which = torch.multinomial(self.probabilities, n, replacement=True, generator=generator)
        lengths = self._lengths[which]
        u = torch.rand(n, generator=generator, dtype=torch.float64)
        pos = torch.minimum((u * lengths).long(), lengths - 1)
        return self._table[which, pos], self.classes[which]

    def set_epoch(self, epoch: int) -> None:
        """Set the epoch; the next iteration draws with seed ``seed + epoch``."""
        self.epoch = _check_int(epoch, "epoch", 0)

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator()
        generator.manual_seed(self.seed + self.epoch)
        indices, _ = self.sample(self.num_samples, generator)
        yield from indices.tolist()

    def __len__(self) -> int:
        return self.num_samples

    def state_dict(self) -> dict[str, int]:
        """``{"seed": ..., "epoch": ...}``, to resume the same per-epoch orders."""
        return {"seed": self.seed, "epoch": self.epoch}

    def load_state_dict(self, state: Mapping[str, int]) -> None:
        """Restore :meth:`state_dict`'s ``seed`` and ``epoch``."""
        if not isinstance(state, Mapping) or not {"seed", "epoch"} <= set(state):
            raise ValueError(
                f"state: expected a mapping with 'seed' and 'epoch', got {describe(state)}"
            )
        seed = _check_int(state["seed"], "state['seed']")
        epoch = _check_int(state["epoch"], "state['epoch']", 0)
        self.seed, self.epoch = seed, epoch

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(items={self.num_items}, classes={self.classes.tolist()}, "
            f"temperature={self.temperature}, min_pixels={self.min_pixels}, "
            f"num_samples={self.num_samples}, seed={self.seed}, epoch={self.epoch})"
        )

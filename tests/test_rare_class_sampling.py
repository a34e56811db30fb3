"""Rare Class Sampling (dastc.data.rare_class_sampling) against DAFormer's reference code.

The ``daformer_*`` functions below are ports of DAFormer (lhoyer/DAFormer):
``get_rcs_class_probs`` and the eligible-file selection of ``UDADataset.__init__``
from ``mmseg/datasets/uda_dataset.py``, and ``save_class_stats`` from
``tools/convert_datasets/gta.py`` (which writes ``sample_class_stats.json`` and
``samples_with_class.json``), kept as close to the original as possible.
"""

from __future__ import annotations

import json
import math
import os
import os.path as osp
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from dastc.data.rare_class_sampling import (
    RareClassSampler,
    class_pixel_counts,
    rare_class_probabilities,
)

# --------------------------------------------------------------------------- DAFormer ports


def daformer_convert_stats(counts: torch.Tensor) -> list[dict[str | int, Any]]:
    """``convert_to_train_id``'s per-file stats: only classes with count > 0, then "file"."""
    out: list[dict[str | int, Any]] = []
    for i, row in enumerate(counts.tolist()):
        stats: dict[str | int, Any] = {}
        for v, n in enumerate(row):
            if n > 0:
                stats[v] = int(n)
        stats["file"] = f"data/gta/labels/{i:05d}_labelTrainIds.png"
        out.append(stats)
    return out


def daformer_save_class_stats(out_dir: str, sample_class_stats: list[dict[Any, Any]]) -> None:
    # lhoyer/DAFormer, tools/convert_datasets/gta.py, save_class_stats
    with open(osp.join(out_dir, "sample_class_stats.json"), "w") as of:
        json.dump(sample_class_stats, of, indent=2)

    sample_class_stats_dict = {}
    for stats in sample_class_stats:
        f = stats.pop("file")
        sample_class_stats_dict[f] = stats
    with open(osp.join(out_dir, "sample_class_stats_dict.json"), "w") as of:
        json.dump(sample_class_stats_dict, of, indent=2)

    samples_with_class: dict[Any, Any] = {}
    for file, stats in sample_class_stats_dict.items():
        for c, n in stats.items():
            if c not in samples_with_class:
                samples_with_class[c] = [(file, n)]
            else:
                samples_with_class[c].append((file, n))
    with open(osp.join(out_dir, "samples_with_class.json"), "w") as of:
        json.dump(samples_with_class, of, indent=2)


def daformer_get_rcs_class_probs(data_root: str, temperature: float) -> tuple[list[int], Any]:
    # lhoyer/DAFormer, mmseg/datasets/uda_dataset.py, get_rcs_class_probs
    with open(osp.join(data_root, "sample_class_stats.json")) as of:
        sample_class_stats = json.load(of)
    overall_class_stats: dict[int, int] = {}
    for s in sample_class_stats:
        s.pop("file")
        for c, n in s.items():
            c = int(c)
            if c not in overall_class_stats:
                overall_class_stats[c] = n
            else:
                overall_class_stats[c] += n
    overall_class_stats = {
        k: v for k, v in sorted(overall_class_stats.items(), key=lambda item: item[1])
    }
    freq = torch.tensor(list(overall_class_stats.values()))
    freq = freq / torch.sum(freq)
    freq = 1 - freq
    freq = torch.softmax(freq / temperature, dim=-1)

    return list(overall_class_stats.keys()), freq.numpy()


def daformer_samples_with_class(
    data_root: str, rcs_classes: list[int], rcs_min_pixels: int
) -> dict[int, list[str]]:
    # lhoyer/DAFormer, mmseg/datasets/uda_dataset.py, UDADataset.__init__ (RCS part)
    with open(osp.join(data_root, "samples_with_class.json")) as of:
        samples_with_class_and_n = json.load(of)
    samples_with_class_and_n = {
        int(k): v for k, v in samples_with_class_and_n.items() if int(k) in rcs_classes
    }
    samples_with_class: dict[int, list[str]] = {}
    for c in rcs_classes:
        samples_with_class[c] = []
        for file, pixels in samples_with_class_and_n[c]:
            if pixels > rcs_min_pixels:
                samples_with_class[c].append(file.split("/")[-1])
        assert len(samples_with_class[c]) > 0
    return samples_with_class


def write_daformer_stats(root: Path, counts: torch.Tensor) -> str:
    daformer_save_class_stats(str(root), daformer_convert_stats(counts))
    return str(root)


def file_index(name: str) -> int:
    return int(name.split("_")[0])


# --------------------------------------------------------------------------- count matrices


def random_counts(seed: int, n: int = 40, k: int = 19, high: int = 20000) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    counts = torch.randint(0, high, (n, k), generator=g)
    keep = torch.rand(n, k, generator=g) < 0.6  # many zeros, as in real label maps
    return counts * keep


def case_counts(name: str) -> torch.Tensor:
    c = random_counts(1)
    if name == "random":
        return c
    if name == "single_sample":  # class 3 appears in item 7 only
        c[:, 3] = 0
        c[7, 3] = 4242
        return c
    if name == "ties":  # classes 0, 1, 2 and 5, 6 have equal totals
        c[:, 1] = c[:, 0].flip(0)
        c[:, 2] = c[:, 0]
        c[:, 6] = c[:, 5]
        return c
    if name == "never_present":
        c[:, 4] = 0
        c[:, 18] = 0
        return c
    if name == "skewed":  # road-like class dominates: its probability underflows
        c = c // 100
        c[:, 0] = 10**9
        c[:, 1] = 10**7
        return c
    raise AssertionError(name)


CASES = ["random", "single_sample", "ties", "never_present", "skewed"]


# --------------------------------------------------------------------------- probabilities


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("temperature", [0.01, 0.1, 1.0, 0.001])
def test_probabilities_match_daformer(tmp_path: Path, case: str, temperature: float) -> None:
    counts = case_counts(case)
    root = write_daformer_stats(tmp_path, counts)
    classes, probs = daformer_get_rcs_class_probs(root, temperature)
    ours = rare_class_probabilities(counts, temperature)
    assert ours.dtype == torch.float64 and ours.shape == (counts.shape[1],)
    expected = torch.zeros(counts.shape[1], dtype=torch.float64)
    expected[torch.tensor(classes)] = torch.from_numpy(probs).double()
    # DAFormer computes in float32: its logits (1 - freq) / T carry ~6e-8 / T rounding.
    rtol = max(1e-5, 1e-6 / temperature)
    torch.testing.assert_close(ours, expected, rtol=rtol, atol=1e-30)
    absent = counts.sum(0) == 0
    assert torch.equal(ours[absent], torch.zeros(int(absent.sum()), dtype=torch.float64))
    assert set(classes) == set((~absent).nonzero().flatten().tolist())
    assert math.isclose(float(ours.sum()), 1.0, rel_tol=1e-12)


def test_probabilities_exact_rule_float64() -> None:
    counts = case_counts("never_present")
    total = counts.sum(0).double()
    seen = total > 0
    freq = total[seen] / total[seen].sum()
    logits = (1 - freq) / 0.05
    expected = torch.zeros_like(total)
    expected[seen] = torch.exp(logits - logits.max()) / torch.exp(logits - logits.max()).sum()
    torch.testing.assert_close(rare_class_probabilities(counts, 0.05), expected, rtol=1e-12, atol=0)


def test_skewed_common_classes_underflow() -> None:
    counts = case_counts("skewed")
    prob = rare_class_probabilities(counts, 0.01)
    assert 0.0 < float(prob[0]) < 1e-40  # ~exp(-99)
    prob = rare_class_probabilities(counts, 0.0005)
    assert float(prob[0]) == 0.0  # exp(-~1300) underflows even in float64
    assert math.isclose(float(prob.sum()), 1.0, rel_tol=1e-12)
    # the sampler still draws (the rare classes) without NaN
    s = RareClassSampler(counts, temperature=0.0005, min_pixels=0)
    assert torch.isfinite(s.probabilities).all()
    assert math.isclose(float(s.probabilities.sum()), 1.0, rel_tol=1e-12)


def test_rarer_class_more_likely() -> None:
    counts = torch.tensor([[100, 10, 1000, 0]])
    p = rare_class_probabilities(counts, 0.5)
    assert p[1] > p[0] > p[2] > p[3] == 0


# --------------------------------------------------------------------------- eligible items


@pytest.mark.parametrize("min_pixels", [0, 3000, 9000])
def test_eligible_items_match_daformer(tmp_path: Path, min_pixels: int) -> None:
    counts = random_counts(2, n=50, k=12)
    counts[:, 7] = 0  # never present: not an RCS class in either
    root = write_daformer_stats(tmp_path, counts)
    classes, probs = daformer_get_rcs_class_probs(root, 0.01)
    swc = daformer_samples_with_class(root, classes, min_pixels)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sampler = RareClassSampler(counts, min_pixels=min_pixels)
    assert sorted(classes) == sampler.classes.tolist()
    for c in range(counts.shape[1]):
        ours = sampler.eligible_items(c).tolist()
        theirs = sorted(file_index(f) for f in swc.get(c, []))
        assert ours == theirs, c
    expected = torch.from_numpy(probs).double()[np.argsort(classes)]
    torch.testing.assert_close(sampler.probabilities, expected, rtol=1e-4, atol=1e-30)


def test_class_without_eligible_item_is_dropped_with_warning(tmp_path: Path) -> None:
    counts = random_counts(3, n=30, k=10)
    counts[:, 5] = torch.where(counts[:, 5] > 0, 2999, 0)  # present, never > 3000
    counts[0, 5] = 3000  # == min_pixels: not eligible (strict >)
    root = write_daformer_stats(tmp_path, counts)
    classes, _ = daformer_get_rcs_class_probs(root, 0.01)
    assert 5 in classes
    with pytest.raises(AssertionError):  # DAFormer stops here
        daformer_samples_with_class(root, classes, 3000)
    with pytest.warns(UserWarning, match=r"class\(es\) \[5\].*min_pixels=3000"):
        sampler = RareClassSampler(counts, min_pixels=3000)
    assert 5 not in sampler.classes.tolist()
    assert sampler.eligible_items(5).numel() == 0
    kept = [c for c in classes if c != 5]
    swc = daformer_samples_with_class(root, kept, 3000)
    for c in kept:
        assert sampler.eligible_items(c).tolist() == sorted(file_index(f) for f in swc[c])
    # renormalised over the kept classes
    full = rare_class_probabilities(counts, 0.01)[sampler.classes]
    torch.testing.assert_close(sampler.probabilities, full / full.sum(), rtol=1e-10, atol=1e-300)
    _, cls = sampler.sample(5000, torch.Generator().manual_seed(0))
    assert not (cls == 5).any()


def test_no_class_left_raises() -> None:
    counts = torch.tensor([[10, 20], [30, 0]])
    with pytest.raises(ValueError, match="min_pixels"), pytest.warns(UserWarning):
        RareClassSampler(counts, min_pixels=3000)


# --------------------------------------------------------------------------- sampling


def test_sample_distribution() -> None:
    counts = random_counts(4, n=60, k=8, high=6000)
    counts[:, 6] = 0
    counts[:, 6][torch.tensor([3, 17, 42])] = 5000  # a rare class on 3 items
    min_pixels, n = 1000, 200_000
    sampler = RareClassSampler(counts, temperature=0.5, min_pixels=min_pixels)
    idx, cls = sampler.sample(n, torch.Generator().manual_seed(123))
    assert idx.dtype == cls.dtype == torch.long and idx.shape == cls.shape == (n,)
    assert bool((counts[idx, cls] > min_pixels).all())
    # class frequencies: within 5 standard errors of the probabilities
    p = sampler.probabilities
    slot = torch.searchsorted(sampler.classes, cls)
    assert torch.equal(sampler.classes[slot], cls)
    freq = torch.bincount(slot, minlength=p.numel()).double() / n
    se = torch.sqrt(p * (1 - p) / n)
    assert bool(((freq - p).abs() <= 5 * se + 1e-9).all()), (freq, p)
    # items within each class: uniform over its eligible items (5 sd per item)
    for c in sampler.classes.tolist():
        items = sampler.eligible_items(c)
        drawn = idx[cls == c]
        hist = torch.bincount(drawn, minlength=counts.shape[0]).double()
        assert hist.sum() == drawn.numel()
        assert float(hist.sum() - hist[items].sum()) == 0.0  # only eligible items
        m, q = drawn.numel(), 1.0 / items.numel()
        sd = math.sqrt(m * q * (1 - q))
        assert bool(((hist[items] - m * q).abs() <= 5 * sd + 1).all()), c
    assert set(idx[cls == 6].tolist()) == {3, 17, 42}
    # overall item frequencies: DAFormer's two-step mixture sum_c p_c 1[i in E_c] / |E_c|
    mix = torch.zeros(counts.shape[0], dtype=torch.float64)
    for j, c in enumerate(sampler.classes.tolist()):
        items = sampler.eligible_items(c)
        mix[items] += p[j] / items.numel()
    item_freq = torch.bincount(idx, minlength=counts.shape[0]).double() / n
    item_se = torch.sqrt(mix * (1 - mix) / n)
    assert bool(((item_freq - mix).abs() <= 5 * item_se + 1e-9).all())


def test_sample_reproducible_and_empty() -> None:
    sampler = RareClassSampler(random_counts(5), temperature=0.1)
    a = sampler.sample(100, torch.Generator().manual_seed(7))
    b = sampler.sample(100, torch.Generator().manual_seed(7))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    idx, cls = sampler.sample(0)
    assert idx.shape == cls.shape == (0,) and idx.dtype == torch.long
    torch.manual_seed(0)
    idx, _ = sampler.sample(10)  # global RNG
    assert idx.shape == (10,)


# --------------------------------------------------------------------------- class_pixel_counts


class Clips(Dataset[dict[str, Any]]):
    """Random clips (T, H, W) with ignored pixels; labels as tensors or NumPy arrays."""

    def __init__(
        self,
        n: int = 7,
        k: int = 5,
        seed: int = 0,
        bad: dict[int, int] | None = None,
        clip_len: int | None = None,
        numpy_labels: bool = True,
    ) -> None:
        self.numpy_labels = numpy_labels
        g = torch.Generator().manual_seed(seed)
        self.labels = []
        for i in range(n):
            t = 1 + i % 3 if clip_len is None else clip_len
            lab = torch.randint(0, k, (t, 6, 9), generator=g)
            lab[torch.rand(lab.shape, generator=g) < 0.2] = 255
            if bad and i in bad:
                lab[0, 1, 2] = bad[i]
            self.labels.append(lab)
        self.reads = 0

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, Any]:
        self.reads += 1
        lab = self.labels[i]
        label: Any = lab.numpy().astype(np.uint8) if i % 2 and self.numpy_labels else lab
        return {"clip": torch.zeros(1), "label": label, "index": i}


def reference_counts(ds: Clips, k: int) -> torch.Tensor:
    out = torch.zeros(len(ds), k, dtype=torch.long)
    for i in range(len(ds)):
        lab = ds.labels[i]
        for c in range(k):
            out[i, c] = int((lab == c).sum())
    return out


def test_class_pixel_counts_matches_reference() -> None:
    ds = Clips(n=7, k=5)
    counts = class_pixel_counts(ds, 5, progress=False)
    assert counts.dtype == torch.long and counts.shape == (7, 5)
    assert torch.equal(counts, reference_counts(ds, 5))
    # extra classes: zero columns
    assert torch.equal(class_pixel_counts(ds, 8, progress=False)[:, 5:], torch.zeros(7, 3).long())


def test_class_pixel_counts_negative_ignore_index() -> None:
    ds = [{"label": torch.tensor([[-1, 0, 1], [1, -1, -1]])}]
    counts = class_pixel_counts(ds, 2, ignore_index=-1, progress=False)
    assert counts.tolist() == [[1, 2]]


@pytest.mark.parametrize("value", [5, 254, -1])
def test_class_pixel_counts_out_of_range_names_item(value: int) -> None:
    ds = Clips(n=6, k=5, bad={4: value})
    with pytest.raises(ValueError, match=rf"dataset\[4\].*\[{value}\]"):
        class_pixel_counts(ds, 5, progress=False)


def test_class_pixel_counts_progress_fallback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import importlib

    real = importlib.import_module

    def no_tqdm(name: str, *a: Any) -> Any:
        if name == "tqdm":
            raise ImportError(name)
        return real(name, *a)

    monkeypatch.setattr(importlib, "import_module", no_tqdm)
    ds = Clips(n=3, k=5)
    class_pixel_counts(ds, 5, progress=True)
    assert "3/3 items" in capsys.readouterr().err


# --------------------------------------------------------------------------- cache


def only_cache_left(folder: Path, name: str) -> None:
    assert sorted(os.listdir(folder)) == [name]


def test_cache_is_written_then_loaded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ds = Clips(n=7, k=5)
    path = tmp_path / "counts.json"
    first = class_pixel_counts(ds, 5, cache=path, progress=False)
    only_cache_left(tmp_path, "counts.json")
    data = json.loads(path.read_text())  # plain JSON, readable without dastc
    assert data["format"] == "dastc.class_pixel_counts" and data["version"] == 1
    assert (data["num_items"], data["num_classes"]) == (7, 5)
    assert (data["ignore_index"], data["label_key"]) == (255, "label")
    assert data["counts"] == reference_counts(ds, 5).tolist()

    def boom(self: Clips, i: int) -> Any:
        raise AssertionError("the dataset must not be read when the cache matches")

    monkeypatch.setattr(Clips, "__getitem__", boom)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        second = class_pixel_counts(ds, 5, cache=str(path), progress=False)
    assert torch.equal(first, second) and second.dtype == torch.long


@pytest.mark.parametrize(
    "change",
    [
        {"k": 6},
        {"n": 8},
        {"ignore_index": 100},
        {"label_key": "label2"},
    ],
)
def test_cache_mismatch_warns_and_recomputes(tmp_path: Path, change: dict[str, Any]) -> None:
    ds = Clips(n=7, k=5)
    path = tmp_path / "c.json"
    class_pixel_counts(ds, 5, cache=path, progress=False)
    k = change.get("k", 5)
    ds2 = Clips(n=change.get("n", 7), k=5, seed=1)
    label_key = change.get("label_key", "label")
    if label_key != "label":
        ds2_items = [{label_key: ds2[i]["label"]} for i in range(len(ds2))]
        target: Any = ds2_items
    else:
        target = ds2
    ignore = change.get("ignore_index", 255)
    if ignore != 255:
        for lab in ds2.labels:
            lab[lab == 255] = ignore
    with pytest.warns(UserWarning, match="recomputing"):
        counts = class_pixel_counts(
            target, k, cache=path, ignore_index=ignore, label_key=label_key, progress=False
        )
    assert torch.equal(counts, reference_counts(ds2, k))
    data = json.loads(path.read_text())
    assert (data["num_items"], data["num_classes"]) == (len(ds2), k)
    assert data["counts"] == counts.tolist()
    only_cache_left(tmp_path, "c.json")


@pytest.mark.parametrize(
    "text",
    [
        '{"format": "dastc.class_pixel_counts", "version": 1, "num_it',  # truncated
        "",
        "[1, 2, 3]",
        "\x00\xff garbage",
    ],
)
def test_corrupt_cache_warns_and_recomputes(tmp_path: Path, text: str) -> None:
    ds = Clips(n=4, k=5)
    path = tmp_path / "c.json"
    path.write_text(text, encoding="utf-8", errors="surrogateescape")
    with pytest.warns(UserWarning, match="unreadable.*recomputing"):
        counts = class_pixel_counts(ds, 5, cache=path, progress=False)
    assert torch.equal(counts, reference_counts(ds, 5))
    assert json.loads(path.read_text())["counts"] == counts.tolist()
    only_cache_left(tmp_path, "c.json")


def test_cache_with_bad_counts_warns(tmp_path: Path) -> None:
    ds = Clips(n=2, k=5)
    path = tmp_path / "c.json"
    class_pixel_counts(ds, 5, cache=path, progress=False)
    data = json.loads(path.read_text())
    data["counts"][1] = data["counts"][1][:-1]  # a short row
    path.write_text(json.dumps(data))
    with pytest.warns(UserWarning, match="unreadable"):
        counts = class_pixel_counts(ds, 5, cache=path, progress=False)
    assert torch.equal(counts, reference_counts(ds, 5))


def test_interrupted_write_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ds = Clips(n=3, k=5)
    path = tmp_path / "c.json"

    def killed(src: Any, dst: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        class_pixel_counts(ds, 5, cache=path, progress=False)
    assert os.listdir(tmp_path) == []  # no cache, no temporary file
    monkeypatch.undo()
    # a dataset failing mid-way: nothing written either, an existing cache stays intact
    class_pixel_counts(ds, 5, cache=path, progress=False)
    before = path.read_text()
    broken = Clips(n=5, k=5, bad={3: 9})
    with pytest.warns(UserWarning, match="recomputing"), pytest.raises(ValueError):
        class_pixel_counts(broken, 5, cache=path, progress=False)
    assert path.read_text() == before
    only_cache_left(tmp_path, "c.json")


# --------------------------------------------------------------------------- as a Sampler


def test_sampler_in_dataloader_and_epochs() -> None:
    ds = Clips(n=9, k=5, seed=3, clip_len=2, numpy_labels=False)  # default collate
    sampler = RareClassSampler.from_dataset(
        ds, 5, min_pixels=3, temperature=0.2, num_samples=20, seed=11, progress=False
    )
    assert len(sampler) == 20
    loader = DataLoader(ds, sampler=sampler, batch_size=4)
    got = torch.cat([batch["index"] for batch in loader]).tolist()
    assert len(got) == 20 and got == list(sampler)
    assert list(sampler) == list(sampler)  # same seed + epoch, same order
    other = RareClassSampler(
        sampler_counts(ds), min_pixels=3, temperature=0.2, num_samples=20, seed=11
    )
    assert list(other) == got
    sampler.set_epoch(1)
    epoch1 = list(sampler)
    assert epoch1 != got
    state = sampler.state_dict()
    assert state == {"seed": 11, "epoch": 1}
    other.load_state_dict(state)
    assert list(other) == epoch1
    reseeded = RareClassSampler(
        sampler_counts(ds), seed=12, min_pixels=3, temperature=0.2, num_samples=20
    )
    assert list(reseeded) != got
    default = RareClassSampler(sampler_counts(ds), min_pixels=3)
    assert len(default) == len(list(default)) == 9


def sampler_counts(ds: Clips) -> torch.Tensor:
    return class_pixel_counts(ds, 5, progress=False)


def test_from_dataset_uses_cache(tmp_path: Path) -> None:
    ds = Clips(n=5, k=5)
    path = tmp_path / "rcs.json"
    a = RareClassSampler.from_dataset(ds, 5, cache=path, min_pixels=3, progress=False)
    reads = ds.reads
    b = RareClassSampler.from_dataset(ds, 5, cache=path, min_pixels=3, progress=False)
    assert ds.reads == reads
    assert torch.equal(a.classes, b.classes) and list(a) == list(b)


# --------------------------------------------------------------------------- bad arguments

GOOD = torch.tensor([[5000, 10], [4000, 4000]])


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"counts": [[1, 2]]}, TypeError, "counts"),
        ({"counts": GOOD.float()}, TypeError, r"counts.*\(N, K\)"),
        ({"counts": GOOD.bool()}, TypeError, "counts"),
        ({"counts": GOOD[0]}, ValueError, r"counts.*\(N, K\)"),
        ({"counts": GOOD[:, :0]}, ValueError, "counts"),
        ({"counts": -GOOD}, ValueError, "counts.*non-negative"),
        ({"counts": torch.zeros(3, 4, dtype=torch.long)}, ValueError, "counts.*all zeros"),
        ({"temperature": 0.0}, ValueError, "temperature"),
        ({"temperature": -1.0}, ValueError, "temperature"),
        ({"temperature": float("inf")}, ValueError, "temperature"),
        ({"temperature": float("nan")}, ValueError, "temperature"),
        ({"temperature": "0.01"}, TypeError, "temperature"),
        ({"min_pixels": -1}, ValueError, "min_pixels"),
        ({"min_pixels": 1.5}, TypeError, "min_pixels"),
        ({"min_pixels": True}, TypeError, "min_pixels"),
        ({"num_samples": 0}, ValueError, "num_samples"),
        ({"num_samples": 2.0}, TypeError, "num_samples"),
        ({"seed": 1.0}, TypeError, "seed"),
        ({"seed": None}, TypeError, "seed"),
    ],
)
def test_sampler_bad_arguments(kwargs: dict[str, Any], error: type, match: str) -> None:
    args = {"counts": GOOD, "min_pixels": 3000, **kwargs}
    with pytest.raises(error, match=match):
        RareClassSampler(**args)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"counts": GOOD.double()}, TypeError, "counts"),
        ({"counts": torch.zeros(2, 3, dtype=torch.long)}, ValueError, "counts"),
        ({"temperature": 0}, ValueError, "temperature"),
        ({"temperature": float("nan")}, ValueError, "temperature"),
        ({"temperature": None}, TypeError, "temperature"),
    ],
)
def test_probabilities_bad_arguments(kwargs: dict[str, Any], error: type, match: str) -> None:
    args = {"counts": GOOD, "temperature": 0.01, **kwargs}
    with pytest.raises(error, match=match):
        rare_class_probabilities(**args)


@pytest.mark.parametrize(
    ("dataset", "kwargs", "error", "match"),
    [
        (Clips(n=2), {"num_classes": 0}, ValueError, "num_classes"),
        (Clips(n=2), {"ignore_index": 3}, ValueError, "ignore_index"),
        (Clips(n=2), {"ignore_index": 2.5}, TypeError, "ignore_index"),
        (Clips(n=2), {"label_key": 0}, TypeError, "label_key"),
        (Clips(n=2), {"cache": 3}, TypeError, "cache"),
        (object(), {}, TypeError, "dataset"),
        ([torch.zeros(2, 2).long()], {}, TypeError, r"dataset\[0\].*mapping"),
        ([{"lab": torch.zeros(2).long()}], {}, ValueError, r"dataset\[0\].*'label'"),
        ([{"label": torch.zeros(2)}], {}, TypeError, r"dataset\[0\]\['label'\].*integer"),
    ],
)
def test_counts_bad_arguments(
    dataset: Any, kwargs: dict[str, Any], error: type, match: str
) -> None:
    args = {"num_classes": 5, "progress": False, **kwargs}
    with pytest.raises(error, match=match):
        class_pixel_counts(dataset, **args)


def test_method_bad_arguments() -> None:
    sampler = RareClassSampler(GOOD, min_pixels=3000)
    with pytest.raises(ValueError, match="n:"):
        sampler.sample(-1)
    with pytest.raises(TypeError, match="generator"):
        sampler.sample(3, generator=0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="epoch"):
        sampler.set_epoch(-1)
    with pytest.raises(ValueError, match="state"):
        sampler.load_state_dict({"seed": 1})
    with pytest.raises(TypeError, match="epoch"):
        sampler.load_state_dict({"seed": 1, "epoch": "2"})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="class_id"):
        sampler.eligible_items(2)

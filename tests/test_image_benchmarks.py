"""GTA5 → Cityscapes and SYNTHIA → Cityscapes: the SYNTHIA reader, the published
scoring, and the image example on trees laid out as the public downloads.

* SYNTHIA-RAND-CITYSCAPES: ``RGB/0000000.png`` and ``GT/LABELS/0000000.png`` (16-bit,
  3 channels, class id in channel 0).
* GTA5: ``images/00001.png`` and ``labels/00001.png``.
* Cityscapes: ``leftImg8bit/{train,val}/<city>/..._leftImg8bit.png`` and
  ``gtFine/.../..._gtFine_labelIds.png``.

Images are 64 × 128 (the real ones are 760 × 1280, 1052 × 1914, 1024 × 2048).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import EXAMPLES
from test_data_readers import pil_rgb, save_ids, save_rgb, write_png16
from test_labelmaps import daformer_synthia_convert

from dastc import ConfusionMatrix
from dastc.data import (
    CITYSCAPES_CLASSES,
    EXTRA_MEANS,
    MEAN_EXCLUDES,
    SYNTHIA_13_CLASSES,
    SYNTHIA_16_CLASSES,
    Synthia,
)
from dastc.data.check import build_dataset
from dastc.data.check import main as check_main

H, W = 64, 128


def synthia_label(rng: np.random.Generator, h: int = H, w: int = W) -> np.ndarray:
    """A SYNTHIA-RAND-CITYSCAPES label array ``(h, w, 3)`` uint16: class ids 0-22 in
    channel 0 (a few values above 22), instance-like values in channels 1 and 2."""
    lab = np.zeros((h, w, 3), np.uint16)
    lab[..., 0] = rng.integers(0, 23, (h, w))
    lab[0, :4, 0] = (23, 100, 300, 65535)  # not SYNTHIA ids: read as 255, as DAFormer does
    lab[..., 1] = rng.integers(0, 65536, (h, w))
    lab[..., 2] = rng.integers(0, 65536, (h, w))
    return lab


def synthia_tree(root: Path, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    raws = {}
    (root / "GT" / "LABELS").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        name = f"{i:07d}.png"
        save_rgb(root / "RGB" / name, rng, H, W)
        lab = synthia_label(rng)
        write_png16(root / "GT" / "LABELS" / name, lab)
        raws[name] = lab[..., 0]
    return raws


def gta5_tree(root: Path, n: int, rng: np.random.Generator) -> None:
    for i in range(1, n + 1):
        save_rgb(root / "images" / f"{i:05d}.png", rng, H, W)
        save_ids(root / "labels" / f"{i:05d}.png", rng.integers(0, 34, (H, W)), palette=True)


def cityscapes_tree(root: Path, rng: np.random.Generator) -> None:
    for split, cities in (("train", ("aachen", "bonn")), ("val", ("ulm", "zurich"))):
        for city in cities:
            for seq in ("000000", "000001"):
                stem = f"{city}_{seq}_000019"
                save_rgb(root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png", rng, H, W)
                labels = rng.integers(0, 34, (H, W))
                save_ids(root / "gtFine" / split / city / f"{stem}_gtFine_labelIds.png", labels)


# ---------------------------------------------------------------------------------------
# the SYNTHIA-RAND-CITYSCAPES reader


def _keep16(train19: np.ndarray) -> np.ndarray:
    keep = [0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13, 15, 17, 18]  # written out, not derived
    lut = np.full(256, 255, np.int64)
    lut[keep] = np.arange(16)
    return lut[train19]


def test_value_synthia_reader_against_daformer(tmp_path: Path) -> None:
    rng = np.random.default_rng(20)
    raws = synthia_tree(tmp_path, 2, rng)
    ds = Synthia(tmp_path)
    assert len(ds) == 2 and ds.names == ["0000000.png", "0000001.png"]
    assert ds.num_classes == 19 and ds.class_names == CITYSCAPES_CLASSES
    item = ds[1]
    assert item["name"] == "0000001.png" and "flow_prev" not in item
    assert item["clip"].shape == (1, 3, H, W) and item["clip"].dtype == torch.float32
    assert torch.equal(item["clip"][0], pil_rgb(tmp_path / "RGB" / "0000001.png"))
    want19 = daformer_synthia_convert(raws["0000001.png"]).astype(np.int64)
    assert item["label"].shape == (1, H, W) and item["label"].dtype == torch.long
    assert torch.equal(item["label"][0], torch.from_numpy(want19))
    assert (item["label"][0, 0, :4] == 255).all()
    lab16 = Synthia(tmp_path, protocol="16")[1]["label"][0]
    assert torch.equal(lab16, torch.from_numpy(_keep16(want19)))


def test_value_synthia_reader_resize(tmp_path: Path) -> None:
    rng = np.random.default_rng(21)
    raws = synthia_tree(tmp_path, 1, rng)
    item = Synthia(tmp_path, size=(16, 32))[0]
    assert item["clip"].shape == (1, 3, 16, 32) and item["label"].shape == (1, 16, 32)
    want = torch.from_numpy(daformer_synthia_convert(raws["0000000.png"]).astype(np.int64))
    nearest = F.interpolate(want[None, None].float(), size=(16, 32), mode="nearest")[0, 0].long()
    assert torch.equal(item["label"][0], nearest)


def test_synthia_check_cli_and_registry(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    synthia_tree(tmp_path, 2, np.random.default_rng(22))
    assert check_main([str(tmp_path), "--dataset", "synthia"]) == 0  # ids > 22: reported
    out = capsys.readouterr().out
    assert "samples: 2" in out and "image sizes (H x W): 64x128 (2)" in out
    assert "ids read as ignore (255) [23 (2 files), 100 (2 files)" in out
    assert out.strip().endswith("OK")
    assert build_dataset("synthia", tmp_path, protocol="16").num_classes == 16
    assert isinstance(build_dataset("synthia", tmp_path), Synthia)
    with pytest.raises(ValueError, match="split"):
        build_dataset("synthia", tmp_path, split="val")
    proc = subprocess.run(
        [sys.executable, "-m", "dastc.data.check", str(tmp_path), "--dataset", "synthia",
         "--protocol", "16", "--limit", "1"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "checked: 1 samples" in proc.stdout


def test_synthia_bad_args_and_layouts(tmp_path: Path) -> None:
    rng = np.random.default_rng(23)
    synthia_tree(tmp_path, 1, rng)
    with pytest.raises(ValueError, match="protocol"):
        Synthia(tmp_path, protocol="13")
    with pytest.raises(ValueError, match="size"):
        Synthia(tmp_path, size=(0, 4))  # type: ignore[arg-type]
    with pytest.raises(FileNotFoundError, match="RAND"):
        Synthia(tmp_path / "nope")
    save_rgb(tmp_path / "RGB" / "0000001.png", rng, H, W)  # an image without its label
    with pytest.raises(FileNotFoundError, match=r"GT/LABELS/0000001\.png"):
        Synthia(tmp_path)
    empty = tmp_path / "empty"
    (empty / "RGB").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="GT/LABELS"):
        Synthia(empty)
    (empty / "GT" / "LABELS").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="id7"):
        Synthia(empty)
    # an image and label of different sizes: an error without size, resized with it
    odd = tmp_path / "odd"
    save_rgb(odd / "RGB" / "0000000.png", rng, H, W)
    (odd / "GT" / "LABELS").mkdir(parents=True)
    write_png16(odd / "GT" / "LABELS" / "0000000.png", synthia_label(rng, 8, 16))
    with pytest.raises(ValueError, match="expected a label of size"):
        Synthia(odd)[0]
    assert Synthia(odd, size=(8, 16))[0]["label"].shape == (1, 8, 16)


# ---------------------------------------------------------------------------------------
# scoring: a port of the public evaluation
#
# mmseg's intersect_and_union / total_intersect_and_union / eval_metrics ("mIoU") as
# DAFormer ships them (lhoyer/DAFormer, mmseg/core/evaluation/metrics.py; the same file
# is in HRDA, MIC and DA-STC's image_udass/seg): the 19 per-class IoUs of Cityscapes val.
# The 16- and 13-class figures are means of those 19 IoUs over fixed index lists
# (YanchaoYang/FDA, evaluation_multi.py: mIoU16 = mIoUs[[0, ..., 8, 10, ..., 13, 15, 17,
# 18]], mIoU13 = mIoUs[[0, 1, 2, 6, 7, 8, 10, ..., 13, 15, 17, 18]]; DAFormer's README:
# "the evaluation script calculates the mIoU for all 19 Cityscapes classes ... report
# the mIoU for Synthia->Cityscapes only on these 16 classes"). The mean skips NaN as
# DAFormer's summary does (np.nanmean).


def mmseg_intersect_and_union(pred_label, label, num_classes, ignore_index):
    pred_label = torch.from_numpy(pred_label)
    label = torch.from_numpy(label)
    mask = label != ignore_index
    pred_label = pred_label[mask]
    label = label[mask]
    intersect = pred_label[pred_label == label]
    area_intersect = torch.histc(intersect.float(), bins=(num_classes), min=0, max=num_classes - 1)
    area_pred_label = torch.histc(
        pred_label.float(), bins=(num_classes), min=0, max=num_classes - 1
    )
    area_label = torch.histc(label.float(), bins=(num_classes), min=0, max=num_classes - 1)
    area_union = area_pred_label + area_label - area_intersect
    return area_intersect, area_union, area_pred_label, area_label


def mmseg_total_intersect_and_union(results, gt_seg_maps, num_classes, ignore_index):
    total_area_intersect = torch.zeros((num_classes,), dtype=torch.float64)
    total_area_union = torch.zeros((num_classes,), dtype=torch.float64)
    total_area_pred_label = torch.zeros((num_classes,), dtype=torch.float64)
    total_area_label = torch.zeros((num_classes,), dtype=torch.float64)
    for pred, gt in zip(results, gt_seg_maps, strict=True):
        a_i, a_u, a_p, a_l = mmseg_intersect_and_union(pred, gt, num_classes, ignore_index)
        total_area_intersect += a_i
        total_area_union += a_u
        total_area_pred_label += a_p
        total_area_label += a_l
    return total_area_intersect, total_area_union, total_area_pred_label, total_area_label


def mmseg_mean_iou_per_class(results, gt_seg_maps, num_classes, ignore_index) -> np.ndarray:
    inter, union, _, _ = mmseg_total_intersect_and_union(
        results, gt_seg_maps, num_classes, ignore_index
    )
    return (inter / union).numpy()  # eval_metrics' 'IoU' (NaN where the union is 0)


KEEP16 = [0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13, 15, 17, 18]
KEEP13 = [0, 1, 2, 6, 7, 8, 10, 11, 12, 13, 15, 17, 18]


def published(preds: list[np.ndarray], labels: list[np.ndarray]) -> tuple[np.ndarray, float, float]:
    iou = mmseg_mean_iou_per_class(preds, labels, 19, 255)
    with warnings.catch_warnings():  # np.nanmean of an all-NaN slice warns; NaN is compared
        warnings.simplefilter("ignore", RuntimeWarning)
        m16 = float(np.nanmean(iou[KEEP16]))
        m13 = float(np.nanmean(iou[KEEP13]))
    return iou, m16, m13


def dastc_scores(
    preds: list[np.ndarray], labels: list[np.ndarray]
) -> tuple[np.ndarray, float, float]:
    """dastc's figures as the example computes them: one 19-class ConfusionMatrix, the
    mean over 16 without MEAN_EXCLUDES["synthia"], over 13 without EXTRA_MEANS's "13"."""
    cm = ConfusionMatrix(19)
    for p, y in zip(preds, labels, strict=True):
        cm.update(torch.from_numpy(p).long()[None], torch.from_numpy(y).long()[None])
    ex16 = [CITYSCAPES_CLASSES.index(c) for c in MEAN_EXCLUDES["synthia"]]
    ex13 = [CITYSCAPES_CLASSES.index(c) for c in EXTRA_MEANS["synthia"]["13"]]
    iou, m16 = cm.compute(exclude=ex16)
    iou13, m13 = cm.compute(exclude=ex13)
    assert torch.equal(iou.isnan(), iou13.isnan())
    return iou.numpy(), float(m16), float(m13)


def _case(name: str) -> tuple[list[np.ndarray], list[np.ndarray]]:
    rng = np.random.default_rng(40 + CASES.index(name))
    shapes = [(12, 20), (7, 33), (16, 16)]
    preds = [rng.integers(0, 19, s) for s in shapes]
    labels = [rng.integers(0, 19, s) for s in shapes]
    if name == "random-with-ignore":
        for y in labels:
            y[rng.random(y.shape) < 0.2] = 255
    elif name == "class-only-in-labels":  # wall (kept in 16, not 13) and bus never predicted
        for p in preds:
            p[(p == 3) | (p == 15)] = 0
        labels[0][0, :5] = 3
    elif name == "class-only-in-predictions":  # bicycle and truck never labelled
        for y in labels:
            y[(y == 18) | (y == 14)] = 1
        preds[1][0, :6] = 18
    elif name == "excluded-class-everywhere":  # every label terrain or train, a few roads
        labels = [np.where(rng.random(s) < 0.5, 9, 16) for s in shapes]
        labels[2][0, 0] = 0
    elif name == "absent-everywhere":  # classes in neither: NaN IoU, skipped by both means
        preds = [np.where(p < 10, 0, 10) for p in preds]
        labels = [np.where(y < 10, 0, 2) for y in labels]
    elif name == "all-ignore":
        labels = [np.full(s, 255) for s in shapes]
    elif name == "perfect":
        preds = [y.copy() for y in labels]
    return preds, labels


CASES = [
    "random",
    "random-with-ignore",
    "class-only-in-labels",
    "class-only-in-predictions",
    "excluded-class-everywhere",
    "absent-everywhere",
    "all-ignore",
    "perfect",
]


@pytest.mark.parametrize("case", CASES)
def test_value_scoring_against_mmseg_port(case: str) -> None:
    preds, labels = _case(case)
    iou_ref, m16_ref, m13_ref = published(preds, labels)
    iou, m16, m13 = dastc_scores(preds, labels)
    np.testing.assert_allclose(iou, iou_ref, rtol=0, atol=1e-6, equal_nan=True)
    for got, want in ((m16, m16_ref), (m13, m13_ref)):
        assert (math.isnan(got) and math.isnan(want)) or abs(got - want) <= 1e-6, (got, want)
    if case == "class-only-in-labels":
        assert iou_ref[3] == 0 and not math.isnan(m16_ref) and m13_ref > m16_ref
    if case == "excluded-class-everywhere":
        assert m16_ref == 0.0  # the kept classes predicted on terrain/train pixels: IoU 0
    if case == "all-ignore":
        assert math.isnan(m16) and math.isnan(m13)


def test_value_ignoring_the_absent_classes_is_another_measure() -> None:
    """Reading Cityscapes with the 16-class map (terrain, truck, train -> 255) drops
    those pixels; the published scoring keeps them in the 19-class matrix, where a
    terrain pixel predicted as vegetation counts against vegetation."""
    y = np.array([[8, 8, 9, 9]])  # vegetation, vegetation, terrain, terrain
    p = np.array([[8, 8, 8, 8]])  # all predicted vegetation
    iou19, m16, _ = dastc_scores([p], [y])
    assert iou19[8] == pytest.approx(0.5) and m16 == pytest.approx(0.5)
    iou16 = mmseg_mean_iou_per_class([p], [np.where(y == 9, 255, y)], 19, 255)
    assert iou16[8] == 1.0  # the other measure


# ---------------------------------------------------------------------------------------
# the example on the public layouts

SHORT = ["--size", "32", "64", "--batch", "2", "--iters", "2", "--adapt-start", "1",
         "--eval-every", "100", "--log-every", "1", "--no-progress"]  # fmt: skip


def _run(argv: list[str]) -> dict[str, object]:
    pytest.importorskip("matplotlib")
    from train_image_uda import main

    return main(argv)


def test_example_gta5_to_cityscapes(tmp_path: Path) -> None:
    rng = np.random.default_rng(30)
    gta5_tree(tmp_path / "GTA5", 4, rng)
    cityscapes_tree(tmp_path / "cityscapes", rng)
    out = tmp_path / "run"
    res = _run(
        ["--source", "gta5", "--source-root", str(tmp_path / "GTA5"),
         "--target", "cityscapes", "--target-root", str(tmp_path / "cityscapes"),
         "--out", str(out), *SHORT]
    )  # fmt: skip
    on_disk = json.loads((out / "results.json").read_text())
    assert on_disk["scoring"] == {
        "classes_trained": 19,
        "mean_over": list(CITYSCAPES_CLASSES),
        "left_out_of_mean": [],
    }
    assert list(on_disk["per_class_iou"]) == list(CITYSCAPES_CLASSES)
    assert not any(k.startswith("scoring_") for k in on_disk)
    assert res["config"]["data"]["source"] == "gta5" and res["config"]["data"]["clip_len"] == 1
    assert math.isfinite(on_disk["miou"])


def test_example_synthia_to_cityscapes_scored_over_16_and_13(tmp_path: Path) -> None:
    rng = np.random.default_rng(31)
    synthia_tree(tmp_path / "RAND_CITYSCAPES", 4, rng)
    cityscapes_tree(tmp_path / "cityscapes", rng)
    out = tmp_path / "run"
    res = _run(
        ["--source", "synthia", "--source-root", str(tmp_path / "RAND_CITYSCAPES"),
         "--target", "cityscapes", "--target-root", str(tmp_path / "cityscapes"),
         "--out", str(out), *SHORT]
    )  # fmt: skip
    on_disk = json.loads((out / "results.json").read_text())
    assert on_disk == json.loads(json.dumps(res))
    assert on_disk["scoring"] == {
        "classes_trained": 19,
        "mean_over": list(SYNTHIA_16_CLASSES),
        "left_out_of_mean": ["terrain", "truck", "train"],
    }
    s13 = on_disk["scoring_13"]
    assert s13["mean_over"] == list(SYNTHIA_13_CLASSES)
    assert s13["left_out_of_mean"] == ["wall", "fence", "pole", "terrain", "truck", "train"]
    for key, per_class in (("miou", "per_class_iou"), ("miou_teacher", "per_class_iou_teacher")):
        iou = on_disk[per_class]
        assert list(iou) == list(CITYSCAPES_CLASSES)
        v16 = [iou[c] for c in SYNTHIA_16_CLASSES if iou[c] is not None]
        v13 = [iou[c] for c in SYNTHIA_13_CLASSES if iou[c] is not None]
        assert on_disk[key] == pytest.approx(sum(v16) / len(v16), abs=0.005)  # IoUs rounded
        assert s13[key] == pytest.approx(sum(v13) / len(v13), abs=0.005)  # IoUs rounded


def test_example_refuses_mixed_pairs_and_video_options(tmp_path: Path) -> None:
    rng = np.random.default_rng(32)
    gta5_tree(tmp_path / "GTA5", 2, rng)
    cityscapes_tree(tmp_path / "cityscapes", rng)
    base = ["--source", "gta5", "--source-root", str(tmp_path / "GTA5"),
            "--target-root", str(tmp_path / "cityscapes"),
            "--out", str(tmp_path / "r"), *SHORT]  # fmt: skip
    with pytest.raises(SystemExit, match="--clip-len"):
        _run([*base, "--target", "cityscapes", "--clip-len", "2"])
    with pytest.raises(SystemExit, match="real benchmarks"):
        _run([*base, "--target", "synthetic"])
    with pytest.raises(SystemExit):
        _run([*base, "--target", "cityscapes_seq"])  # not an image target


def test_example_synthetic_default_command(tmp_path: Path) -> None:
    """``python examples/train_image_uda.py --out DIR`` (here with a short budget)."""
    pytest.importorskip("matplotlib")
    out = tmp_path / "x"
    cmd = [sys.executable, str(EXAMPLES / "train_image_uda.py"), "--out", str(out),
           "--iters", "2", "--batch", "2", "--train-clips", "4", "--val-clips", "2",
           "--size", "32", "64", "--render-workers", "0", "--no-progress"]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = json.loads((out / "results.json").read_text())
    assert res["config"]["data"]["clip_len"] == 1 and res["config"]["data"]["source"] == "synthetic"
    assert "target mIoU" in proc.stdout

"""Evaluation as the published numbers are computed, against ports of the public code.

* The readers' ``label_size="stored"``: labels at their files' resolution while
  the clip (and flow) is resized.
* :func:`dastc.upsample_logits` / :meth:`dastc.ConfusionMatrix.update_from_logits`
  against ports of the two public evaluations: TPS ``eval_video_UDA.py``
  (``nn.Upsample(size=label size, mode='bilinear', align_corners=True)``, numpy
  argmax, ADVENT's ``fast_hist``) and mmseg's (DAFormer ``encoder_decoder.py``
  ``whole_inference``: ``resize(..., mode='bilinear', align_corners=False)``, argmax).
* :func:`dastc.sliding_window_logits` against a port of mmseg's ``slide_inference``.
* The example's evaluation on a small public-layout Cityscapes-Seq tree, labels
  stored at 32 x 64 while the run's ``--size`` is 16 x 32.
* The Cityscapes palette against cityscapesScripts' ``labels.py`` and the
  palettes hard-coded in TPS's evaluation.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from test_data_readers import (
    VIPER_15,
    bfs_component,
    ref_map,
    save_flow,
    save_ids,
    save_rgb,
    viper_raw,
    write_png16,
)
from torch import Tensor, nn

import dastc
from dastc.data import (
    CITYSCAPES_CLASSES,
    CITYSCAPES_PALETTE,
    GTA5,
    SYNTHIA_16_CLASSES,
    SYNTHIA_16_PALETTE,
    SYNTHIA_SEQ_CLASSES,
    SYNTHIA_SEQ_PALETTE,
    VIPER,
    VIPER_CLASSES,
    VIPER_PALETTE,
    Cityscapes,
    CityscapesSeq,
    Synthia,
    SynthiaSeq,
    palette_for,
)
from dastc.data.labelmaps import CITYSCAPES_VIPER_MAP

LH, LW = 32, 64  # labels (and frames) as stored
SIZE = (16, 32)  # the run's size


# ----------------------------------------------------------------------------- ports
# ADVENT advent/utils/func.py (used by TPS / DA-VSN eval_video_UDA.py)
def fast_hist(a: np.ndarray, b: np.ndarray, n: int) -> np.ndarray:
    k = (a >= 0) & (a < n)
    return np.bincount(n * a[k].astype(int) + b[k], minlength=n**2).reshape(n, n)


def tps_scoring(logits: Tensor, label: Tensor, num_classes: int) -> np.ndarray:
    """TPS tps/domain_adaptation/eval_video_UDA.py eval_video_single, one frame at a time:
    ``interp = nn.Upsample(size=(label.shape[1], label.shape[2]), mode='bilinear',
    align_corners=True)``; ``output = interp(pred_main).cpu().data[0].numpy()``;
    ``np.argmax(output.transpose(1, 2, 0), axis=2)``; ``fast_hist(label, output)``."""
    hist = np.zeros((num_classes, num_classes))
    for frame, lab in zip(logits.reshape(-1, *logits.shape[-3:]),
                          label.reshape(-1, *label.shape[-2:]), strict=True):  # fmt: skip
        interp = nn.Upsample(size=tuple(lab.shape), mode="bilinear", align_corners=True)
        output = interp(frame[None]).cpu().data[0].numpy()
        output = np.argmax(output.transpose(1, 2, 0), axis=2)
        hist += fast_hist(lab.numpy().flatten(), output.flatten(), num_classes)
    return hist


def mmseg_resize(input: Tensor, size: Any, mode: str, align_corners: bool | None) -> Tensor:
    """mmseg/ops/wrappers.py ``resize`` (the warning left out)."""
    return F.interpolate(input, size, None, mode, align_corners)


def mmseg_scoring(logits: Tensor, label: Tensor, num_classes: int) -> np.ndarray:
    """DAFormer mmseg/models/segmentors/encoder_decoder.py ``whole_inference`` (rescale to
    ``ori_shape`` with ``align_corners=self.align_corners``, False for the decode heads),
    ``inference`` (softmax) and ``simple_test`` (argmax); mmseg's ``intersect_and_union``
    counts (mask = label != ignore_index) as a confusion matrix."""
    hist = np.zeros((num_classes, num_classes))
    for frame, lab in zip(logits.reshape(-1, *logits.shape[-3:]),
                          label.reshape(-1, *label.shape[-2:]), strict=True):  # fmt: skip
        seg_logit = mmseg_resize(frame[None], tuple(lab.shape), "bilinear", False)
        seg_pred = F.softmax(seg_logit, dim=1).argmax(dim=1)[0].numpy()
        mask = lab.numpy() != 255
        np.add.at(hist, (lab.numpy()[mask], seg_pred[mask]), 1)
    return hist


def slide_inference(
    encode_decode: Any, img: Tensor, crop_size: tuple[int, int], stride: tuple[int, int],
    num_classes: int, align_corners: bool = False,
) -> Tensor:  # fmt: skip
    """mmseg ``EncoderDecoder.slide_inference`` (open-mmlab/mmsegmentation v0.16.0, as
    copied in lhoyer/DAFormer mmseg/models/segmentors/encoder_decoder.py), with
    ``rescale=False``; the leading dimensions generalised from ``(N,)`` to a clip's
    ``(B, T)`` and ``encode_decode``'s resize of the head's output to the crop kept."""
    h_stride, w_stride = stride
    h_crop, w_crop = crop_size
    *lead, _, h_img, w_img = img.size()
    h_grids = max(h_img - h_crop + h_stride - 1, 0) // h_stride + 1
    w_grids = max(w_img - w_crop + w_stride - 1, 0) // w_stride + 1
    preds = img.new_zeros((*lead, num_classes, h_img, w_img))
    count_mat = img.new_zeros((*lead, 1, h_img, w_img))
    for h_idx in range(h_grids):
        for w_idx in range(w_grids):
            y1 = h_idx * h_stride
            x1 = w_idx * w_stride
            y2 = min(y1 + h_crop, h_img)
            x2 = min(x1 + w_crop, w_img)
            y1 = max(y2 - h_crop, 0)
            x1 = max(x2 - w_crop, 0)
            crop_img = img[..., y1:y2, x1:x2]
            out = encode_decode(crop_img, (y1, y2, x1, x2))
            flat = mmseg_resize(out.flatten(0, len(lead) - 1), crop_img.shape[-2:], "bilinear",
                                align_corners)  # fmt: skip
            crop_seg_logit = flat.reshape(*lead, num_classes, y2 - y1, x2 - x1)
            preds += F.pad(
                crop_seg_logit,
                (int(x1), int(preds.shape[-1] - x2), int(y1), int(preds.shape[-2] - y2)),
            )
            count_mat[..., y1:y2, x1:x2] += 1
    assert (count_mat == 0).sum() == 0
    return preds / count_mat


class ToyVideoModel(nn.Module):
    """Frames through a conv, mixed over time, plus a term of the flow; optionally a
    stride-2 output (as a decoder at a lower resolution)."""

    def __init__(self, k: int, down: bool = False) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, k, 3, padding=1)
        self.flow = nn.Conv2d(2, k, 1)
        self.down = down

    def forward(self, clip: Tensor, flow: Tensor | None = None) -> Tensor:
        b, t = clip.shape[:2]
        y = self.conv(clip.flatten(0, 1))
        if flow is not None:
            y = y + self.flow(flow.flatten(0, 1))
        y = y.unflatten(0, (b, t))
        y = y + y.mean(1, keepdim=True)  # the frames mix
        if self.down:
            y = F.avg_pool2d(y.flatten(0, 1), 2, ceil_mode=True).unflatten(0, (b, t))
        return y


# ------------------------------------------------------------------------ stored labels
def _viper_tree(tmp_path: Path, label_hw: tuple[int, int] = (16, 32)) -> dict[str, Any]:
    rng = np.random.default_rng(21)
    root, flows = tmp_path / "VIPER", tmp_path / "viper_flow"
    raws = {}
    for f in (9, 10):
        save_rgb(root / "train/img/001" / f"001_{f:05d}.jpg", rng, 16, 32)
        raws[f] = viper_raw(rng)
        if label_hw != (16, 32):
            raws[f] = np.kron(raws[f], np.ones((label_hw[0] // 16, label_hw[1] // 32), int))
        save_ids(root / "train/cls/001" / f"001_{f:05d}.png", raws[f])
    save_flow(flows / "001_0001000009_int16_x10.npy", rng.integers(-30, 30, (16, 32, 2)))
    return {"root": root, "flows": flows, "raws": raws}


def _viper_ref(raw: np.ndarray) -> Tensor:
    raw = raw.copy()
    h, w = raw.shape
    raw[bfs_component(raw == 24, h - 1, w // 2)] = 0
    return torch.from_numpy(ref_map(raw, VIPER_15))


def test_viper_stored_labels_keep_the_file_size(tmp_path: Path) -> None:
    tree = _viper_tree(tmp_path)
    kw = dict(clip_len=2, flow_root=tree["flows"], size=(8, 16))
    stored = VIPER(tree["root"], **kw, label_size="stored")[0]
    resized = VIPER(tree["root"], **kw)[0]
    assert stored["clip"].shape == resized["clip"].shape == (2, 3, 8, 16)
    assert stored["flow_prev"].shape == (2, 2, 8, 16)
    assert torch.equal(stored["clip"], resized["clip"])
    assert torch.equal(stored["flow_prev"], resized["flow_prev"])
    assert stored["label"].shape == (2, 16, 32) and resized["label"].shape == (2, 8, 16)
    for t, f in enumerate((9, 10)):
        assert torch.equal(stored["label"][t], _viper_ref(tree["raws"][f]))
    # the default is unchanged: nearest-resized to size, as before
    assert torch.equal(resized["label"], stored["label"][:, ::2, ::2])


def test_stored_labels_larger_than_the_frames(tmp_path: Path) -> None:
    """Frames 16 x 32, labels stored at 32 x 64: the label keeps 32 x 64, with or without size."""
    tree = _viper_tree(tmp_path, label_hw=(32, 64))
    for size in (None, (8, 16)):
        item = VIPER(tree["root"], clip_len=2, size=size, label_size="stored")[0]
        assert item["label"].shape == (2, 32, 64)
        assert torch.equal(item["label"][1], _viper_ref(tree["raws"][10]))
    with pytest.raises(ValueError, match=r"expected a label of size \(16, 32\)"):
        VIPER(tree["root"], clip_len=2)[0]  # the default refuses the mismatch without size


def _cityscapes_tree(tmp_path: Path) -> dict[str, Any]:
    """Cityscapes-Seq val snippets (frames 18, 19, labels and 19 -> 18 flows) and
    leftImg8bit images, all stored at 32 x 64; a train split for the example."""
    rng = np.random.default_rng(22)
    root, flows = tmp_path / "cityscapes", tmp_path / "cs_flow"
    raws = {}
    for split, city in (("train", "aachen"), ("train", "bonn"), ("val", "ulm"), ("val", "zurich")):
        for f in (18, 19):
            name = f"{city}_000001_{f:06d}_leftImg8bit.png"
            save_rgb(root / "leftImg8bit_sequence" / split / city / name, rng, LH, LW)
        stem = f"{city}_000001_000019"
        save_rgb(root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png", rng, LH, LW)
        raws[city] = rng.integers(0, 34, (LH, LW))
        save_ids(root / "gtFine" / split / city / f"{stem}_gtFine_labelIds.png", raws[city])
        save_flow(flows / f"{stem}_000018_int16_x10.npy", rng.integers(-30, 30, (LH, LW, 2)))
    return {"root": root, "flows": flows, "raws": raws}


def test_cityscapes_stored_labels(tmp_path: Path) -> None:
    tree = _cityscapes_tree(tmp_path)
    ds = CityscapesSeq(tree["root"], "val", 2, tree["flows"], SIZE, "viper", label_size="stored")
    item = ds[0]
    assert item["clip"].shape == (2, 3, *SIZE) and item["flow_prev"].shape == (2, 2, *SIZE)
    assert item["label"].shape == (2, LH, LW)
    assert (item["label"][0] == 255).all()  # the unlabelled earlier frame: ignore, label size
    ref = torch.from_numpy(CITYSCAPES_VIPER_MAP.apply(tree["raws"]["ulm"]))
    assert torch.equal(item["label"][1], ref)
    img = Cityscapes(tree["root"], "val", SIZE, "19", label_size="stored")[1]
    assert img["clip"].shape == (1, 3, *SIZE) and img["label"].shape == (1, LH, LW)
    default = CityscapesSeq(tree["root"], "val", 2, tree["flows"], SIZE, "viper")[0]
    assert default["label"].shape == (2, *SIZE)


def test_image_readers_stored_labels(tmp_path: Path) -> None:
    rng = np.random.default_rng(23)
    gta = tmp_path / "gta5"
    save_rgb(gta / "images/00001.png", rng, 20, 36)  # GTA5: a few images differ from labels
    save_ids(gta / "labels/00001.png", rng.integers(0, 34, (LH, LW)))
    item = GTA5(gta, size=SIZE, label_size="stored")[0]
    assert item["clip"].shape == (1, 3, *SIZE) and item["label"].shape == (1, LH, LW)
    syn = tmp_path / "synthia"
    save_rgb(syn / "RGB/0000000.png", rng, LH, LW)
    lab = np.zeros((LH, LW, 3), np.uint16)
    lab[..., 0] = rng.integers(0, 23, (LH, LW))
    (syn / "GT/LABELS").mkdir(parents=True)
    write_png16(syn / "GT/LABELS/0000000.png", lab)
    item = Synthia(syn, size=SIZE, label_size="stored")[0]
    assert item["label"].shape == (1, LH, LW)


def test_synthia_seq_stored_labels_are_cropped_like_the_frames(tmp_path: Path) -> None:
    rng = np.random.default_rng(24)
    root = tmp_path / "SYNTHIA-SEQS-04-DAWN"
    (root / "label").mkdir(parents=True)
    for f in (0, 1):
        save_rgb(root / "rgb" / f"{f:06d}.png", rng, LH + 120, LW)
        lab = np.zeros((LH + 120, LW, 3), np.uint16)
        lab[..., 0] = rng.integers(0, 16, (LH + 120, LW))
        write_png16(root / "label" / f"{f:06d}.png", lab)
    item = SynthiaSeq(root, 2, size=SIZE, label_size="stored")[0]
    assert item["clip"].shape == (2, 3, *SIZE) and item["label"].shape == (2, LH, LW)


def test_stored_labels_of_one_clip_must_share_a_size(tmp_path: Path) -> None:
    tree = _viper_tree(tmp_path)
    save_ids(tree["root"] / "train/cls/001/001_00009.png", np.zeros((8, 16), int))
    ds = VIPER(tree["root"], clip_len=2, size=(8, 16), label_size="stored")
    with pytest.raises(ValueError, match=r"001_00010\.png: expected the size \(8, 16\)"):
        ds[0]


@pytest.mark.parametrize("reader", [VIPER, SynthiaSeq, CityscapesSeq, Cityscapes, GTA5, Synthia])
def test_bad_label_size_is_refused_before_the_disk(reader: Any) -> None:
    with pytest.raises(ValueError, match=r"^label_size: expected one of \['resized', 'stored'\]"):
        reader("/nonexistent/root", label_size="full")


# ----------------------------------------------------------------------------- upsampling
@pytest.mark.parametrize("lead", [(2, 3), (2,)])
def test_update_from_logits_against_tps(lead: tuple[int, ...]) -> None:
    """align_corners=True: the DA-VSN / TPS evaluation, frame by frame."""
    g = torch.Generator().manual_seed(5)
    K = 6
    logits = torch.randn(*lead, K, 7, 9, generator=g)
    label = torch.randint(0, K, (*lead, 23, 41), generator=g)
    label[torch.rand(label.shape, generator=g) < 0.2] = 255
    cm = dastc.ConfusionMatrix(K)
    cm.update_from_logits(logits, label, align_corners=True)
    assert np.array_equal(cm.matrix.numpy(), tps_scoring(logits, label, K))
    assert int(cm.matrix.sum()) == int((label != 255).sum())


def test_update_from_logits_against_mmseg() -> None:
    """align_corners=False (the default): DAFormer / MIC's mmseg whole_inference."""
    g = torch.Generator().manual_seed(6)
    K = 5
    logits = torch.randn(3, 1, K, 8, 16, generator=g)
    label = torch.randint(0, K, (3, 1, 32, 64), generator=g)
    label[:, :, :4] = 255
    cm = dastc.ConfusionMatrix(K)
    cm.update_from_logits(logits, label)
    assert np.array_equal(cm.matrix.numpy(), mmseg_scoring(logits, label, K))
    other = dastc.ConfusionMatrix(K)
    other.update_from_logits(logits, label, align_corners=True)
    assert not torch.equal(cm.matrix, other.matrix)  # the two benchmarks' resizes differ


def test_upsample_logits_is_the_public_resize() -> None:
    g = torch.Generator().manual_seed(7)
    logits = torch.randn(2, 3, 4, 5, 6, generator=g)
    for ac in (False, True):
        up = dastc.upsample_logits(logits, (20, 33), align_corners=ac)
        ref = mmseg_resize(logits.flatten(0, 1), (20, 33), "bilinear", ac).unflatten(0, (2, 3))
        assert torch.equal(up, ref)
    assert dastc.upsample_logits(logits, (5, 6)) is logits


def test_argmax_after_upsampling_is_not_nearest_of_the_argmax() -> None:
    logits = torch.tensor([[[[0.0, 1.0]], [[1.0, 0.0]]]])  # class 1 left, class 0 right
    label = torch.tensor([[[1, 1, 0, 0]]])
    cm = dastc.ConfusionMatrix(2)
    cm.update_from_logits(logits, label)
    assert torch.equal(cm.matrix, torch.tensor([[2, 0], [0, 2]]))
    up = dastc.upsample_logits(logits, (1, 4)).argmax(1)
    assert torch.equal(up, label)


def test_update_from_logits_at_the_same_size_is_update() -> None:
    g = torch.Generator().manual_seed(8)
    logits = torch.randn(2, 2, 4, 8, 8, generator=g)
    label = torch.randint(0, 4, (2, 2, 8, 8), generator=g)
    a, b = dastc.ConfusionMatrix(4), dastc.ConfusionMatrix(4)
    a.update_from_logits(logits, label)
    b.update(logits.argmax(2), label)
    assert torch.equal(a.matrix, b.matrix)


# ------------------------------------------------------------------------ sliding window
@pytest.mark.parametrize(
    ("hw", "window", "stride"),
    [
        ((20, 30), (16, 16), (8, 8)),  # windows that do not tile the clip evenly
        ((21, 33), (7, 11), (5, 4)),
        ((20, 30), (32, 40), (16, 16)),  # a window larger than the clip
        ((20, 30), (12, 40), (6, 8)),  # larger along one axis only
        ((20, 30), (20, 30), (10, 10)),  # one window, the whole clip
        ((10, 30), (6, 16), (8, 20)),  # strides above the window that still cover
    ],
)
@pytest.mark.parametrize("down", [False, True])
def test_sliding_window_against_slide_inference(
    hw: tuple[int, int], window: tuple[int, int], stride: tuple[int, int], down: bool
) -> None:
    torch.manual_seed(0)
    K = 4
    model = ToyVideoModel(K, down=down).eval()
    g = torch.Generator().manual_seed(9)
    clip = torch.rand(2, 3, 3, *hw, generator=g)
    flow = torch.randn(2, 3, 2, *hw, generator=g) * 3
    seen = []

    def forward(x: Tensor, f: Tensor | None) -> Tensor:
        seen.append((tuple(x.shape), None if f is None else tuple(f.shape)))
        return model(x, f)

    def encode_decode(x: Tensor, box: tuple[int, int, int, int]) -> Tensor:
        y1, y2, x1, x2 = box
        return model(x, flow[..., y1:y2, x1:x2])

    with torch.no_grad():
        got = dastc.sliding_window_logits(forward, clip, window, stride, K, flow)
        ref = slide_inference(encode_decode, clip, window, stride, K)
        no_flow = dastc.sliding_window_logits(model, clip, window, stride, K)
        ref_no_flow = slide_inference(lambda x, _: model(x, None), clip, window, stride, K)
    assert got.shape == (2, 3, K, *hw)
    torch.testing.assert_close(got, ref, rtol=0, atol=1e-6)
    torch.testing.assert_close(no_flow, ref_no_flow, rtol=0, atol=1e-6)
    assert all(xs[:3] == (2, 3, 3) and fs == (2, 3, 2, *xs[-2:]) for xs, fs in seen)
    assert all(xs[-2] <= window[0] and xs[-1] <= window[1] for xs, _ in seen)


def test_sliding_window_images_and_whole_clip() -> None:
    """Image batches ``(B, C, H, W)``; one window as large as the clip is the plain forward."""
    conv = nn.Conv2d(3, 5, 1)
    g = torch.Generator().manual_seed(10)
    img = torch.rand(2, 3, 13, 17, generator=g)
    with torch.no_grad():
        got = dastc.sliding_window_logits(lambda x, f: conv(x), img, (8, 8), (4, 6), 5)
        ref = slide_inference(lambda x, _: conv(x), img, (8, 8), (4, 6), 5)
        whole = dastc.sliding_window_logits(lambda x, f: conv(x), img, (13, 17), (1, 1), 5)
    torch.testing.assert_close(got, ref, rtol=0, atol=1e-6)
    torch.testing.assert_close(got, conv(img).detach(), rtol=0, atol=1e-5)  # 1x1 conv: exact
    assert torch.equal(whole, conv(img).detach())


def test_sliding_window_refuses_gaps() -> None:
    with pytest.raises(ValueError, match=r"^stride: windows of 4 every 8 leave rows 4\.\."):
        dastc.sliding_window_logits(lambda x, f: x, torch.rand(1, 3, 20, 20), (4, 4), (8, 2), 3)


# ------------------------------------------------------------------------ the example
def test_example_scores_at_the_label_resolution(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """VIPER -> Cityscapes-Seq with Cityscapes stored at 32 x 64 and --size 16 32: the final
    confusion matrices count every labelled pixel at 32 x 64, and the student's equals the
    TPS evaluation (logits upsampled with align_corners=True, then the argmax) of the
    saved student."""
    pytest.importorskip("matplotlib")
    from test_public_layouts import viper_public
    from train_video_uda import main
    from uda_config import Config, build_model

    cs = _cityscapes_tree(tmp_path)
    viper = viper_public(tmp_path, label_every_frame=False)
    matrices: list[Tensor] = []
    compute = dastc.ConfusionMatrix.compute

    def spy(self: dastc.ConfusionMatrix, exclude: Any = ()) -> Any:
        matrices.append(self.matrix.clone())
        return compute(self, exclude)

    monkeypatch.setattr(dastc.ConfusionMatrix, "compute", spy)
    out = tmp_path / "run"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = main(
            [
                "--source", "viper", "--source-root", str(viper["root"]),
                "--source-list", str(viper["list"]), "--source-flow-root", str(viper["flows"]),
                "--target", "cityscapes_seq", "--target-root", str(cs["root"]),
                "--target-flow-root", str(cs["flows"]),
                "--size", "16", "32", "--batch", "2", "--iters", "2", "--adapt-start", "1",
                "--eval-every", "100", "--no-progress", "--out", str(out),
            ]
        )  # fmt: skip
    assert res["iters"] == 2 and len(matrices) == 2  # the final student and teacher
    val = CityscapesSeq(cs["root"], "val", 2, cs["flows"], SIZE, "viper", label_size="stored")
    labels = torch.stack([val[i]["label"][-1] for i in range(len(val))])
    assert labels.shape == (2, LH, LW)
    for m in matrices:
        assert int(m.sum()) == int((labels != 255).sum())  # 32 x 64, not 16 x 32
    # the student's matrix, recomputed with the public (TPS) evaluation
    config = json.loads((out / "results.json").read_text())["config"]
    model = build_model(Config(**config), 15, init_weights=False)
    model.load_state_dict(torch.load(out / "student.pt", weights_only=True))
    model.eval()
    with torch.no_grad():
        logits = torch.stack(
            [model(val[i]["clip"][None], val[i]["flow_prev"][None])[0, -1] for i in range(2)]
        )
    assert logits.shape[-2:] == SIZE
    assert np.array_equal(matrices[0].numpy(), tps_scoring(logits, labels, 15))


def test_example_evaluate_with_a_sliding_window(tmp_path: Path) -> None:
    """uda_eval.evaluate(window=...): the logits of overlapping windows, then as published."""
    from uda_eval import evaluate, predict_last_frames, published_align_corners

    cs = _cityscapes_tree(tmp_path)
    val = CityscapesSeq(cs["root"], "val", 2, cs["flows"], SIZE, "viper", label_size="stored")
    assert published_align_corners(val) is True
    assert published_align_corners(Cityscapes(cs["root"], "val", SIZE, "19")) is False
    torch.manual_seed(0)
    model = ToyVideoModel(15)

    def flow_for(b: dict[str, Tensor]) -> Tensor | None:
        return b.get("flow_prev")

    cpu = torch.device("cpu")
    iou, _ = evaluate(model, val, 15, flow_for, cpu, 2, window=(12, 20), stride=(4, 6))
    with torch.no_grad():
        items = [val[i] for i in range(2)]
        clip = torch.stack([it["clip"] for it in items])
        flow = torch.stack([it["flow_prev"] for it in items])
        ref = slide_inference(
            lambda x, box: model(x, flow[..., box[0] : box[1], box[2] : box[3]]),
            clip, (12, 20), (4, 6), 15,
        )[:, -1]  # fmt: skip
    labels = torch.stack([it["label"][-1] for it in items])
    hist = tps_scoring(ref, labels, 15)
    ref_iou = np.diag(hist) / (hist.sum(1) + hist.sum(0) - np.diag(hist))
    assert np.allclose(iou.numpy(), ref_iou * 100, equal_nan=True)
    whole, _ = evaluate(model, val, 15, flow_for, cpu, 2)
    whole_w, _ = evaluate(model, val, 15, flow_for, cpu, 2, window=SIZE)
    assert torch.equal(whole, whole_w)  # one window covering the clip: the whole-clip logits
    batch, preds = predict_last_frames({"m": model}, val, flow_for, cpu, n=2)
    assert preds["m"].shape == (2, LH, LW) and batch["label"].shape == (2, 2, LH, LW)


# ------------------------------------------------------------------------------ palette
CITYSCAPESSCRIPTS = Path(__file__).parent / "data" / "cityscapesscripts_labels.json"

# cityscapesScripts 2.3.0 cityscapesscripts/helpers/labels.py, column ``color``, by name
# (the test data's table holds no colours; where the package is installed it is used)
LABELS_PY_COLORS = {
    "road": (128, 64, 128), "sidewalk": (244, 35, 232), "building": (70, 70, 70),
    "wall": (102, 102, 156), "fence": (190, 153, 153), "pole": (153, 153, 153),
    "traffic light": (250, 170, 30), "traffic sign": (220, 220, 0),
    "vegetation": (107, 142, 35), "terrain": (152, 251, 152), "sky": (70, 130, 180),
    "person": (220, 20, 60), "rider": (255, 0, 0), "car": (0, 0, 142), "truck": (0, 0, 70),
    "bus": (0, 60, 100), "train": (0, 80, 100), "motorcycle": (0, 0, 230),
    "bicycle": (119, 11, 32),
}  # fmt: skip

# TPS tps/domain_adaptation/eval_video_UDA.py, the palettes of its colour-coded predictions
TPS_VIPER = [128, 64, 128, 244, 35, 232, 70, 70, 70, 190, 153, 153, 250, 170, 30,
             220, 220, 0, 107, 142, 35, 152, 251, 152, 70, 130, 180, 220, 20, 60, 0, 0, 142,
             0, 0, 70, 0, 60, 100, 0, 0, 230, 119, 11, 32]  # fmt: skip
TPS_SYNTHIA_SEQ = [128, 64, 128, 244, 35, 232, 70, 70, 70, 190, 153, 153, 153, 153, 153,
                   250, 170, 30, 220, 220, 0, 107, 142, 35, 70, 130, 180, 220, 20, 60,
                   255, 0, 0, 0, 0, 142]  # fmt: skip


def _train_id_colors() -> dict[int, tuple[str, tuple[int, int, int]]]:
    """trainId -> (name, colour) of the 19 evaluation classes, names and train ids from the
    test data's labels.py table, colours from its ``color`` column when it has one, else
    from :data:`LABELS_PY_COLORS`; equal to the installed package's where there is one."""
    doc = json.loads(CITYSCAPESSCRIPTS.read_text())
    cols = doc["columns"]
    rows = [dict(zip(cols, row, strict=True)) for row in doc["labels"]]
    out = {}
    for r in rows:
        if 0 <= r["trainId"] < 19:
            color = tuple(r["color"]) if "color" in r else LABELS_PY_COLORS[r["name"]]
            out[r["trainId"]] = (r["name"], color)
    try:
        import cityscapesscripts.helpers.labels as labels_mod
    except ImportError:
        return out
    pkg = {lb.trainId: (lb.name, tuple(lb.color)) for lb in labels_mod.labels
           if 0 <= lb.trainId < 19}  # fmt: skip
    assert pkg == out
    return out


def test_cityscapes_palette_against_labels_py() -> None:
    table = _train_id_colors()
    assert sorted(table) == list(range(19))
    assert tuple(table[k][0] for k in range(19)) == CITYSCAPES_CLASSES
    assert CITYSCAPES_PALETTE == tuple(table[k][1] for k in range(19))
    assert palette_for(CITYSCAPES_CLASSES).tolist() == [list(c) for c in CITYSCAPES_PALETTE]
    assert palette_for(CITYSCAPES_CLASSES).dtype == torch.uint8


def test_protocol_palettes_by_class_name() -> None:
    by_name = {name: color for name, color in _train_id_colors().values()}
    for names, pal in ((VIPER_CLASSES, VIPER_PALETTE), (SYNTHIA_SEQ_CLASSES, SYNTHIA_SEQ_PALETTE),
                       (SYNTHIA_16_CLASSES, SYNTHIA_16_PALETTE)):  # fmt: skip
        assert pal == tuple(by_name[c] for c in names)
    assert [v for c in VIPER_PALETTE for v in c] == TPS_VIPER
    assert [v for c in SYNTHIA_SEQ_PALETTE for v in c] == TPS_SYNTHIA_SEQ


def test_example_palette() -> None:
    from uda_data import colorize, palette

    from dastc.data import SyntheticDrivingClips

    synthetic = palette(9)
    assert torch.equal(synthetic[:9], SyntheticDrivingClips.PALETTE)
    assert torch.equal(palette(9, list(SyntheticDrivingClips.CLASSES)), synthetic)
    viper = palette(15, list(VIPER_CLASSES))
    assert viper[:15].tolist() == [list(c) for c in VIPER_PALETTE] and viper[15].tolist() == [0] * 3
    label = torch.tensor([[0, 3, 255]])
    assert colorize(label, 15, list(VIPER_CLASSES)).tolist() == [
        [[128, 64, 128], [190, 153, 153], [0, 0, 0]]
    ]
    assert palette(9, [f"class{i}" for i in range(9)]).equal(synthetic)  # unnamed: as before

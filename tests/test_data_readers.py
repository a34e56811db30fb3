"""Readers of the real benchmarks, on tiny fixture trees in the public layouts."""

from __future__ import annotations

import struct
import subprocess
import sys
import zlib
from collections import deque
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from protocol_tables import (  # tables written independently of dastc
    CS_13,
    CS_16,
    CS_19,
    CS_SYNTHIA_11,
    CS_SYNTHIA_12,
    CS_VIPER,
    VIPER_15,
)
from protocol_tables import SYNTHIA_SEQ_11 as SYNTHIA_11
from protocol_tables import SYNTHIA_SEQ_12 as SYNTHIA_12
from torch.utils.data import DataLoader

from dastc.data import _files, flow_from_last
from dastc.data.check import check_dataset, main
from dastc.data.cityscapes import Cityscapes, CityscapesSeq
from dastc.data.gta5 import GTA5
from dastc.data.synthia_seq import SynthiaSeq
from dastc.data.viper import VIPER, connected_component, remove_ego_vehicle

H, W = 16, 32


# ---------------------------------------------------------------------------------------
# fixture writers (independent of dastc)


def ref_map(raw: np.ndarray, mapping: dict[int, int]) -> np.ndarray:
    out = np.full(raw.shape, 255, dtype=np.int64)
    for idx in np.ndindex(raw.shape):
        out[idx] = mapping.get(int(raw[idx]), 255)
    return out


def bfs_component(mask: np.ndarray, r: int, c: int) -> np.ndarray:
    out = np.zeros_like(mask)
    if not mask[r, c]:
        return out
    queue = deque([(r, c)])
    out[r, c] = True
    while queue:
        y, x = queue.popleft()
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                yy, xx = y + dy, x + dx
                if 0 <= yy < mask.shape[0] and 0 <= xx < mask.shape[1]:
                    if mask[yy, xx] and not out[yy, xx]:
                        out[yy, xx] = True
                        queue.append((yy, xx))
    return out


def paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else (b if pb <= pc else c)


def write_png16(path: Path, arr: np.ndarray) -> None:
    """A 16-bit grey/RGB/RGBA PNG (pillow cannot write 16-bit colour), all 5 filter types."""
    h, w, c = arr.shape
    raw = np.ascontiguousarray(arr.astype(">u2")).view(np.uint8).reshape(h, w * c * 2)
    bpp = 2 * c
    rows = []
    for y in range(h):
        ftype = y % 5
        line = raw[y].astype(int)
        prev = raw[y - 1].astype(int) if y else np.zeros_like(line)
        out = []
        for i in range(line.size):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            cc = prev[i - bpp] if i >= bpp else 0
            pred = [0, a, b, (a + b) // 2, paeth(a, b, cc)][ftype]
            out.append((line[i] - pred) % 256)
        rows.append(bytes([ftype]) + bytes(out))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    ctype = {1: 0, 3: 2, 4: 6}[c]
    ihdr = struct.pack(">IIBBBBB", w, h, 16, ctype, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"".join(rows)))
        + chunk(b"IEND", b"")
    )


def save_rgb(path: Path, rng: np.random.Generator, h: int = H, w: int = W) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)


def save_ids(path: Path, ids: np.ndarray, palette: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = ids.shape
    if palette:
        im = Image.frombytes("P", (w, h), ids.astype(np.uint8).tobytes())
        im.putpalette([v for i in range(256) for v in (i, 255 - i, i // 2)])
    else:
        im = Image.fromarray(ids.astype(np.uint8))
    im.save(path)


def save_flow(path: Path, flow_x10: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, flow_x10.astype(np.int16))


def viper_raw(rng: np.random.Generator) -> np.ndarray:
    raw = rng.integers(0, 32, (H, W))
    raw[H - 4 :, W // 2 - 5 : W // 2 + 5] = 24  # the ego vehicle, touching the bottom centre
    raw[0:3, 0:4] = 24  # another car, not touching it
    return raw


@pytest.fixture
def viper_tree(tmp_path: Path) -> dict[str, object]:
    rng = np.random.default_rng(1)
    root, flows = tmp_path / "VIPER", tmp_path / "viper_flow"
    raws = {}
    for f in (8, 9, 10, 11):
        save_rgb(root / "train/img/001" / f"001_{f:05d}.jpg", rng)
        raws[f] = viper_raw(rng)
        save_ids(root / "train/cls/001" / f"001_{f:05d}.png", raws[f])
    for f in (9, 10, 11):  # flow frame -> frame - 1, named as the public files
        save_flow(flows / f"001_{f:05d}{f - 1:05d}_int16_x10.npy", rng.integers(-30, 30, (H, W, 2)))
    return {"root": root, "flows": flows, "raws": raws}


@pytest.fixture
def synthia_tree(tmp_path: Path) -> dict[str, object]:
    rng = np.random.default_rng(2)
    root, flows = tmp_path / "SYNTHIA-SEQS-04-DAWN", tmp_path / "synthia_flow"
    raws = {}
    for f in (0, 1, 2):
        save_rgb(root / "rgb" / f"{f:06d}.png", rng, H + 120, W)
        lab = np.zeros((H + 120, W, 3), np.uint16)
        lab[..., 0] = rng.integers(0, 23, (H + 120, W))
        lab[..., 1] = rng.integers(0, 60000, (H + 120, W))  # instance ids use both bytes
        lab[..., 2] = rng.integers(0, 60000, (H + 120, W))
        (root / "label").mkdir(parents=True, exist_ok=True)
        write_png16(root / "label" / f"{f:06d}.png", lab)
        raws[f] = lab[:H, :, 0].astype(np.int64)
    save_flow(flows / "000001_int16_x10.npy", rng.integers(-30, 30, (H + 120, W, 2)))  # uncropped
    save_flow(flows / "000002_int16_x10.npy", rng.integers(-30, 30, (H, W, 2)))  # cropped
    return {"root": root, "flows": flows, "raws": raws}


@pytest.fixture
def cityscapes_tree(tmp_path: Path) -> dict[str, object]:
    rng = np.random.default_rng(3)
    root, flows = tmp_path / "cityscapes", tmp_path / "cs_flow"
    raws = {}
    for city, seq in (("ulm", "000001"), ("zurich", "000007")):
        for f in (17, 18, 19):
            stem = f"{city}_{seq}_{f:06d}"
            save_rgb(root / "leftImg8bit_sequence/val" / city / f"{stem}_leftImg8bit.png", rng)
            save_flow(flows / f"{stem}_{f - 1:06d}_int16_x10.npy", rng.integers(-30, 30, (H, W, 2)))
        stem = f"{city}_{seq}_000019"
        save_rgb(root / "leftImg8bit/val" / city / f"{stem}_leftImg8bit.png", rng)
        raws[city] = rng.integers(0, 34, (H, W))
        save_ids(root / "gtFine/val" / city / f"{stem}_gtFine_labelIds.png", raws[city])
        for extra in ("color", "instanceIds"):  # other gtFine files are ignored
            save_ids(root / "gtFine/val" / city / f"{stem}_gtFine_{extra}.png", raws[city])
    return {"root": root, "flows": flows, "raws": raws}


def pil_rgb(path: Path) -> torch.Tensor:
    arr = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(arr).permute(2, 0, 1)


def ref_sample(img: np.ndarray, x: float, y: float) -> np.ndarray:
    """Bilinear sample of (C, H, W) at (x, y), coordinates clamped to the border."""
    h, w = img.shape[1:]
    x, y = min(max(x, 0.0), w - 1.0), min(max(y, 0.0), h - 1.0)
    x0, y0 = int(np.floor(x)), int(np.floor(y))
    x1, y1 = min(x0 + 1, w - 1), min(y0 + 1, h - 1)
    ax, ay = x - x0, y - y0
    return (
        img[:, y0, x0] * (1 - ax) * (1 - ay)
        + img[:, y0, x1] * ax * (1 - ay)
        + img[:, y1, x0] * (1 - ax) * ay
        + img[:, y1, x1] * ax * ay
    )


def ref_compose(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    out = np.zeros_like(a)
    for y in range(a.shape[1]):
        for x in range(a.shape[2]):
            out[:, y, x] = a[:, y, x] + ref_sample(b, x + a[0, y, x], y + a[1, y, x])
    return out


# ---------------------------------------------------------------------------------------
# VIPER


def test_shape_viper(viper_tree):
    ds = VIPER(viper_tree["root"], "train", clip_len=2, flow_root=viper_tree["flows"])
    assert ds.names == ["001/001_00009.jpg", "001/001_00010.jpg", "001/001_00011.jpg"]
    assert ds.skipped == ["001/001_00008.jpg"]
    assert ds.num_classes == 15 and ds.ignore_index == 255 and len(ds) == 3
    item = ds[1]
    assert item["clip"].shape == (2, 3, H, W) and item["clip"].dtype == torch.float32
    assert 0.0 <= float(item["clip"].min()) and float(item["clip"].max()) <= 1.0
    assert item["label"].shape == (2, H, W) and item["label"].dtype == torch.long
    assert item["flow_prev"].shape == (2, 2, H, W) and item["flow_prev"].dtype == torch.float32
    assert "flow" not in item
    assert item["name"] == "001/001_00010.jpg"
    batch = next(iter(DataLoader(ds, batch_size=2)))
    assert batch["clip"].shape == (2, 2, 3, H, W) and batch["label"].shape == (2, 2, H, W)


def test_value_viper(viper_tree):
    root, raws = viper_tree["root"], viper_tree["raws"]
    ds = VIPER(root, clip_len=3, flow_root=viper_tree["flows"])
    item = ds[ds.names.index("001/001_00011.jpg")]
    for t, f in enumerate((9, 10, 11)):
        raw = raws[f].copy()
        raw[bfs_component(raw == 24, H - 1, W // 2)] = 0  # ego vehicle -> unlabeled
        assert torch.equal(item["label"][t], torch.from_numpy(ref_map(raw, VIPER_15)))
        assert torch.equal(item["clip"][t], pil_rgb(root / "train/img/001" / f"001_{f:05d}.jpg"))
    assert (item["label"][2, 0:3, 0:4] == 10).all()  # the other car is kept
    assert (item["label"][2, H - 4 :, W // 2 - 5 : W // 2 + 5] == 255).all()
    keep = VIPER(root, clip_len=1, remove_ego=False)[0]["label"][0]
    assert (keep[H - 4 :, W // 2 - 5 : W // 2 + 5] == 10).all()


def test_value_viper_flow(viper_tree):
    root, flows = viper_tree["root"], viper_tree["flows"]

    def load(a: int, b: int) -> torch.Tensor:
        arr = np.load(flows / f"001_{a:05d}{b:05d}_int16_x10.npy").transpose(2, 0, 1) / 10.0
        return torch.from_numpy(arr).float()

    item = VIPER(root, clip_len=2, flow_root=flows)[1]  # frames 9, 10
    assert (item["flow_prev"][0] == 0).all()
    assert torch.allclose(item["flow_prev"][1], load(10, 9))
    item = VIPER(root, clip_len=3, flow_root=flows, names=["001/001_00011.jpg"])[0]
    assert torch.allclose(item["flow_prev"][1], load(10, 9))
    assert torch.allclose(item["flow_prev"][2], load(11, 10))
    # Chained into flows from the last frame (on its grid) to each frame.
    last = flow_from_last(item["flow_prev"])
    chained = torch.from_numpy(ref_compose(load(11, 10).numpy(), load(10, 9).numpy())).float()
    assert torch.allclose(last[0], chained, atol=1e-4)
    assert torch.allclose(last[1], load(11, 10)) and (last[2] == 0).all()
    batched = flow_from_last(torch.stack([item["flow_prev"], item["flow_prev"].flip(-1)]))
    assert torch.allclose(batched[0], last)
    assert torch.allclose(batched[1], flow_from_last(item["flow_prev"].flip(-1)))


def test_flow_from_last_bad_input():
    with pytest.raises(ValueError, match="flow_prev"):
        flow_from_last(torch.zeros(3, 4, 5))
    with pytest.raises(ValueError, match="flow_prev"):
        flow_from_last(torch.zeros(2, 3, 3, 4, 5))


def test_value_resize(viper_tree):
    root = viper_tree["root"]
    flow = np.zeros((H, W, 2))
    flow[..., 0], flow[..., 1] = 20, -10  # dx = 2, dy = -1 pixels
    save_flow(viper_tree["flows"] / "001_0001000009_int16_x10.npy", flow)
    item = VIPER(root, clip_len=2, flow_root=viper_tree["flows"], size=(8, 12))[1]
    assert item["clip"].shape == (2, 3, 8, 12) and item["label"].shape == (2, 8, 12)
    img = pil_rgb(root / "train/img/001/001_00010.jpg")[None]
    ref = F.interpolate(img, size=(8, 12), mode="bilinear", align_corners=False, antialias=True)
    assert torch.allclose(item["clip"][1], ref[0].clamp(0, 1), atol=1e-6)
    full = VIPER(root, clip_len=2)[1]["label"][1]
    ref_lab = F.interpolate(full[None, None].float(), size=(8, 12), mode="nearest")[0, 0].long()
    assert torch.equal(item["label"][1], ref_lab)
    assert torch.allclose(item["flow_prev"][1, 0], torch.full((8, 12), 2.0 * 12 / W))
    assert torch.allclose(item["flow_prev"][1, 1], torch.full((8, 12), -1.0 * 8 / H))


def test_value_connected_component_against_bfs():
    rng = np.random.default_rng(0)
    for p in (0.2, 0.45, 0.6, 0.8):
        for _ in range(10):
            mask = rng.random((23, 31)) < p
            r, c = int(rng.integers(23)), int(rng.integers(31))
            assert np.array_equal(connected_component(mask, r, c), bfs_component(mask, r, c))


def test_value_remove_ego_vehicle_noop():
    raw = np.full((5, 6), 24)
    raw[4, 3] = 2  # bottom centre is not a car
    assert np.array_equal(remove_ego_vehicle(raw), raw)
    with pytest.raises(ValueError, match="mask"):
        connected_component(np.zeros(4, bool), 0, 0)


# ---------------------------------------------------------------------------------------
# SYNTHIA-Seq


@pytest.mark.parametrize(("protocol", "mapping"), [("12", SYNTHIA_12), ("11", SYNTHIA_11)])
def test_value_synthia_seq(synthia_tree, protocol, mapping):
    root, raws = synthia_tree["root"], synthia_tree["raws"]
    ds = SynthiaSeq(root, clip_len=2, protocol=protocol)
    assert ds.names == ["000001.png", "000002.png"] and ds.skipped == ["000000.png"]
    assert ds.num_classes == int(protocol)
    item = ds[1]
    assert item["clip"].shape == (2, 3, H, W)  # bottom 120 rows cropped
    for t, f in enumerate((1, 2)):
        assert torch.equal(item["label"][t], torch.from_numpy(ref_map(raws[f], mapping)))
        assert torch.equal(item["clip"][t], pil_rgb(root / "rgb" / f"{f:06d}.png")[:, :H])


def test_value_synthia_seq_flow(synthia_tree):
    root, flows = synthia_tree["root"], synthia_tree["flows"]
    f1 = np.load(flows / "000001_int16_x10.npy").transpose(2, 0, 1)[:, :H] / 10.0
    f2 = np.load(flows / "000002_int16_x10.npy").transpose(2, 0, 1) / 10.0
    item = SynthiaSeq(root, clip_len=2, flow_root=flows)[0]  # frames 0, 1: the uncropped file
    assert torch.allclose(item["flow_prev"][1], torch.from_numpy(f1).float())
    item = SynthiaSeq(root, clip_len=3, flow_root=flows)[0]  # frames 0, 1, 2
    assert torch.allclose(item["flow_prev"][1], torch.from_numpy(f1).float())
    assert torch.allclose(item["flow_prev"][2], torch.from_numpy(f2).float())
    assert (item["flow_prev"][0] == 0).all()


def test_value_read_label_png16(tmp_path):
    rng = np.random.default_rng(5)
    for c in (1, 3, 4):
        arr = rng.integers(0, 65536, (7, 9, c)).astype(np.uint16)
        write_png16(tmp_path / f"l{c}.png", arr)
        for ch in range(c):
            got = _files.read_label(tmp_path / f"l{c}.png", channel=ch)
            assert np.array_equal(got, arr[..., ch].astype(np.int64))
    with pytest.raises(ValueError, match=r"l3\.png.*single-channel"):
        _files.read_label(tmp_path / "l3.png")
    with pytest.raises(ValueError, match=r"l3\.png.*channel 5"):
        _files.read_label(tmp_path / "l3.png", channel=5)


# ---------------------------------------------------------------------------------------
# Cityscapes-Seq, Cityscapes, GTA5


@pytest.mark.parametrize(
    ("protocol", "mapping"),
    [("viper", CS_VIPER), ("synthia", CS_SYNTHIA_12), ("synthia-11", CS_SYNTHIA_11)],
)
def test_value_cityscapes_seq(cityscapes_tree, protocol, mapping):
    root, raws = cityscapes_tree["root"], cityscapes_tree["raws"]
    ds = CityscapesSeq(root, "val", clip_len=3, protocol=protocol)
    assert ds.names == [
        "ulm/ulm_000001_000019_leftImg8bit.png",
        "zurich/zurich_000007_000019_leftImg8bit.png",
    ]
    item = ds[1]
    assert item["clip"].shape == (3, 3, H, W)
    assert (item["label"][:2] == 255).all()  # only the last frame is labelled
    assert torch.equal(item["label"][2], torch.from_numpy(ref_map(raws["zurich"], mapping)))
    seq = root / "leftImg8bit_sequence/val/zurich"
    for t, f in enumerate((17, 18, 19)):
        assert torch.equal(item["clip"][t], pil_rgb(seq / f"zurich_000007_{f:06d}_leftImg8bit.png"))


def test_value_cityscapes_seq_flow(cityscapes_tree):
    root, flows = cityscapes_tree["root"], cityscapes_tree["flows"]

    def load(a: int, b: int) -> torch.Tensor:
        arr = np.load(flows / f"ulm_000001_{a:06d}_{b:06d}_int16_x10.npy").transpose(2, 0, 1)
        return torch.from_numpy(arr / 10.0).float()

    item = CityscapesSeq(root, "val", clip_len=3, flow_root=flows)[0]
    assert (item["flow_prev"][0] == 0).all()
    assert torch.allclose(item["flow_prev"][1], load(18, 17))
    assert torch.allclose(item["flow_prev"][2], load(19, 18))


@pytest.mark.parametrize(("protocol", "mapping"), [("19", CS_19), ("16", CS_16), ("13", CS_13)])
def test_value_cityscapes_images(cityscapes_tree, protocol, mapping):
    root, raws = cityscapes_tree["root"], cityscapes_tree["raws"]
    ds = Cityscapes(root, "val", protocol=protocol)
    assert len(ds) == 2 and ds.num_classes == int(protocol)
    item = ds[0]
    assert item["clip"].shape == (1, 3, H, W) and "flow_prev" not in item
    assert torch.equal(item["label"][0], torch.from_numpy(ref_map(raws["ulm"], mapping)))
    img = root / "leftImg8bit/val/ulm/ulm_000001_000019_leftImg8bit.png"
    assert torch.equal(item["clip"][0], pil_rgb(img))


def test_value_gta5(tmp_path):
    rng = np.random.default_rng(4)
    raw = rng.integers(0, 34, (H, W))
    save_rgb(tmp_path / "images/00001.png", rng)
    save_ids(tmp_path / "labels/00001.png", raw, palette=True)  # GTA5 labels are palette PNGs
    item = GTA5(tmp_path)[0]
    assert item["name"] == "00001.png" and item["clip"].shape == (1, 3, H, W)
    assert torch.equal(item["label"][0], torch.from_numpy(ref_map(raw, CS_19)))


def test_gta5_ids_above_33_read_as_ignore_and_counted_by_the_check(tmp_path, capsys):
    rng = np.random.default_rng(6)
    raw = rng.integers(0, 34, (H, W))
    raw[0, :5] = 40  # not a Cityscapes labelId: the public readers read it as 255
    raw[1, :3] = 200
    save_rgb(tmp_path / "images/00001.png", rng)
    save_ids(tmp_path / "labels/00001.png", raw, palette=True)
    label = GTA5(tmp_path)[0]["label"][0]
    want = ref_map(np.where(raw > 33, 0, raw), CS_19)  # labelId 0 is "unlabeled": 255
    assert torch.equal(label, torch.from_numpy(want))
    assert (label[0, :5] == 255).all() and (label[1, :3] == 255).all()
    assert main([str(tmp_path), "--dataset", "gta5"]) == 0  # reported, not a problem
    out = capsys.readouterr().out
    assert "files with ids read as ignore (255) [40 (1 files), 200 (1 files)]: 1" in out
    assert out.strip().endswith("OK")


# ---------------------------------------------------------------------------------------
# bad input and broken trees


def test_bad_args(viper_tree, synthia_tree, cityscapes_tree):
    root = viper_tree["root"]
    with pytest.raises(ValueError, match="clip_len"):
        VIPER(root, clip_len=0)
    with pytest.raises(ValueError, match="size"):
        VIPER(root, size=(0, 4))
    with pytest.raises(ValueError, match="protocol"):
        SynthiaSeq(synthia_tree["root"], protocol="16")
    with pytest.raises(ValueError, match="protocol"):
        CityscapesSeq(cityscapes_tree["root"], "val", protocol="19")
    with pytest.raises(ValueError, match="protocol"):
        Cityscapes(cityscapes_tree["root"], "val", protocol="viper")
    with pytest.raises(ValueError, match="names"):
        VIPER(root, names=["001_00010.jpg"])


def test_missing_paths(tmp_path, viper_tree, cityscapes_tree):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        VIPER(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match=r"val.img"):
        VIPER(viper_tree["root"], "val")
    with pytest.raises(FileNotFoundError, match=r"001_00007\.jpg"):
        VIPER(viper_tree["root"], clip_len=2, names=["001/001_00008.jpg"])
    with pytest.raises(FileNotFoundError, match="no complete samples"):
        VIPER(viper_tree["root"], clip_len=9)
    (viper_tree["root"] / "train/cls/001/001_00010.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"001_00010\.png"):  # a listed frame's label
        VIPER(viper_tree["root"], names=["001/001_00010.jpg"])
    with pytest.raises(FileNotFoundError, match="train"):
        Cityscapes(cityscapes_tree["root"], "train")
    with pytest.raises(FileNotFoundError, match="images"):
        GTA5(tmp_path)


def test_missing_flow(viper_tree):
    flows = viper_tree["flows"]
    ds = VIPER(viper_tree["root"], clip_len=2, flow_root=flows)
    (flows / "001_0001000009_int16_x10.npy").unlink()
    with pytest.raises(FileNotFoundError, match=r"001_0001000009_int16_x10\.npy"):
        ds[1]


def test_broken_files(tmp_path, cityscapes_tree):
    root = cityscapes_tree["root"]
    gt = root / "gtFine/val/ulm/ulm_000001_000019_gtFine_labelIds.png"
    ds = Cityscapes(root, "val")
    save_ids(gt, np.full((H, W), 40))  # an id Cityscapes does not define
    with pytest.raises(ValueError, match=r"gtFine_labelIds\.png.*\[40\]"):
        ds[0]
    save_ids(gt, np.zeros((H, W + 1)))
    with pytest.raises(ValueError, match=r"gtFine_labelIds\.png.*\(16, 32\)"):
        ds[0]
    assert Cityscapes(root, "val", size=(8, 8))[0]["label"].shape == (1, 8, 8)
    gt.write_bytes(b"\x89PNG\r\n\x1a\n not a png")
    with pytest.raises(ValueError, match=r"gtFine_labelIds\.png"):
        ds[0]
    good = tmp_path / "good.png"
    save_ids(good, np.zeros((64, 64)))
    gt.write_bytes(good.read_bytes()[:60])  # truncated
    with pytest.raises(ValueError, match=r"gtFine_labelIds\.png"):
        ds[0]
    np.save(tmp_path / "f_int16_x10.npy", np.zeros((4, 4, 2), np.float32))
    with pytest.raises(ValueError, match=r"f_int16_x10\.npy.*int16"):
        _files.read_flow(tmp_path / "f_int16_x10.npy")


def test_pillow_missing_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(ImportError, match=r"dastc\[examples\]"):
        _files._pil()


# ---------------------------------------------------------------------------------------
# the check CLI


def test_check_cli_ok(viper_tree, capsys):
    argv = [str(viper_tree["root"]), "--dataset", "viper", "--flow-root", str(viper_tree["flows"])]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "samples: 3" in out and "16x32 (4)" in out and out.strip().endswith("OK")
    assert "checked: 3 samples, 4 image files, 4 label files" in out
    assert "missing flows: 0" in out and "car" in out


def test_check_cli_problems(synthia_tree, capsys):
    root, flows = synthia_tree["root"], synthia_tree["flows"]
    bad = np.zeros((H + 120, W, 3), np.uint16)
    bad[..., 0] = 30  # SYNTHIA ids stop at 22
    write_png16(root / "label/000002.png", bad)
    (flows / "000001_int16_x10.npy").unlink()  # the clip ending at frame 1 is left out
    with pytest.warns(UserWarning, match="1 of 2 clips .* lack flow files"):
        assert main([str(root), "--dataset", "synthia_seq", "--flow-root", str(flows)]) == 1
    out = capsys.readouterr().out
    assert "000002.png: ids [30]" in out
    assert "clips left out for lack of flow files: 1, e.g. the clip ending at 000001.png" in out
    assert out.strip().endswith("PROBLEMS FOUND")
    report = check_dataset(SynthiaSeq(root, clip_len=1), limit=1)
    assert report.checked == 1 and report.ok
    assert main([str(root), "--dataset", "gta5"]) == 1  # wrong layout: an error, not a crash
    assert main([str(root), "--dataset", "synthia_seq", "--split", "val"]) == 1


def test_check_cli_subprocess(cityscapes_tree):
    cmd = [sys.executable, "-m", "dastc.data.check", str(cityscapes_tree["root"]),
           "--dataset", "cityscapes_seq", "--split", "val", "--protocol", "synthia-11"]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "samples: 2" in proc.stdout and "fence" not in proc.stdout

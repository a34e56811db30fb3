"""The video readers on trees laid out as the public downloads and lists have them.

* VIPER as DA-VSN's download recipe leaves it: images of every frame, labels and
  FlowNet2 flows (``<seq>_<t5><t-1 5>_int16_x10.npy``) only for the frames of
  the public list ``train.txt`` (every 10th frame, ``001/001_00010.jpg``); and
  the full label download, where every frame is labelled but flows still exist
  for the listed frames only.
* Cityscapes-Seq val with the public flows, which cover frame 19 -> 18 of each
  snippet only.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from test_data_readers import (
    VIPER_15,
    H,
    W,
    bfs_component,
    ref_map,
    save_flow,
    save_ids,
    save_rgb,
    viper_raw,
    write_png16,
)

from dastc.data import CityscapesSeq, read_list
from dastc.data.viper import VIPER

LISTED = (10, 20, 30)


def viper_public(tmp_path: Path, label_every_frame: bool) -> dict[str, object]:
    rng = np.random.default_rng(11)
    root, flows = tmp_path / "VIPER", tmp_path / "viper_flow"
    raws = {}
    for f in range(1, 31):
        save_rgb(root / "train/img/001" / f"001_{f:05d}.jpg", rng)
        if label_every_frame or f in LISTED:
            raws[f] = viper_raw(rng)
            save_ids(root / "train/cls/001" / f"001_{f:05d}.png", raws[f])
    for f in LISTED:
        save_flow(flows / f"001_{f:05d}{f - 1:05d}_int16_x10.npy", rng.integers(-30, 30, (H, W, 2)))
    lst = tmp_path / "Viper_list" / "train.txt"
    lst.parent.mkdir()
    lst.write_text("".join(f"001/001_{f:05d}.jpg\n" for f in LISTED))
    return {"root": root, "flows": flows, "list": lst, "raws": raws}


def _mapped(raw: np.ndarray) -> torch.Tensor:
    raw = raw.copy()
    raw[bfs_component(raw == 24, H - 1, W // 2)] = 0  # the ego vehicle -> unlabeled
    return torch.from_numpy(ref_map(raw, VIPER_15))


def test_viper_labels_of_listed_frames_only(tmp_path: Path) -> None:
    tree = viper_public(tmp_path, label_every_frame=False)
    want = [f"001/001_{f:05d}.jpg" for f in LISTED]
    # without a list: the labelled frames are the clip ends, and their flows exist
    ds = VIPER(tree["root"], flow_root=tree["flows"])
    assert ds.names == want and ds.no_flow == []
    assert len(ds.unlabelled) == 27 and "train/img/001/001_00009.jpg" in ds.unlabelled
    # with the public list, as a file or as names: the same clips
    for names in (tree["list"], str(tree["list"]), read_list(tree["list"])):
        assert VIPER(tree["root"], flow_root=tree["flows"], names=names).names == want
    item = ds[1]  # frames 19 and 20
    assert (item["label"][0] == 255).all()  # frame 19 has no label: read as ignore
    assert torch.equal(item["label"][1], _mapped(tree["raws"][20]))
    assert item["flow_prev"].shape == (2, 2, H, W) and item["flow_prev"][1].abs().sum() > 0


def test_viper_every_frame_labelled_flows_of_listed_frames_only(tmp_path: Path) -> None:
    tree = viper_public(tmp_path, label_every_frame=True)
    want = [f"001/001_{f:05d}.jpg" for f in LISTED]
    with pytest.warns(UserWarning, match=r"26 of 29 clips .* lack flow files.*public lists"):
        ds = VIPER(tree["root"], flow_root=tree["flows"])
    assert ds.names == want and len(ds.no_flow) == 26 and ds.skipped == ["001/001_00001.jpg"]
    item = ds[0]  # frames 9 and 10, both labelled
    assert torch.equal(item["label"][0], _mapped(tree["raws"][9]))
    listed = VIPER(tree["root"], flow_root=tree["flows"], names=tree["list"])
    assert listed.names == want and listed.no_flow == []


def test_viper_listed_frame_without_flow_fails_at_construction(tmp_path: Path) -> None:
    tree = viper_public(tmp_path, label_every_frame=False)
    (tree["flows"] / "001_0002000019_int16_x10.npy").unlink()
    with pytest.raises(FileNotFoundError, match=r"001_0002000019_int16_x10\.npy.*public lists"):
        VIPER(tree["root"], flow_root=tree["flows"], names=tree["list"])
    with pytest.raises(FileNotFoundError, match=r"001_00030\.png"):  # a listed frame's label
        (tree["root"] / "train/cls/001/001_00030.png").unlink()
        VIPER(tree["root"], names=tree["list"])


def cityscapes_val_public(tmp_path: Path) -> dict[str, Path]:
    rng = np.random.default_rng(12)
    root, flows = tmp_path / "cityscapes", tmp_path / "cs_flow"
    for city, seq in (("frankfurt", "000000"), ("lindau", "000001")):
        for f in range(10, 30):  # a 30-frame snippet, frame 19 labelled
            name = f"{city}_{seq}_{f:06d}_leftImg8bit.png"
            save_rgb(root / "leftImg8bit_sequence/val" / city / name, rng)
        stem = f"{city}_{seq}_000019"
        save_ids(
            root / "gtFine/val" / city / f"{stem}_gtFine_labelIds.png", rng.integers(0, 34, (H, W))
        )
        save_flow(flows / f"{stem}_000018_int16_x10.npy", rng.integers(-30, 30, (H, W, 2)))
    return {"root": root, "flows": flows}


def test_cityscapes_seq_val_flows_cover_19_to_18_only(tmp_path: Path) -> None:
    tree = cityscapes_val_public(tmp_path)
    ds = CityscapesSeq(tree["root"], "val", clip_len=2, flow_root=tree["flows"])
    assert len(ds) == 2 and ds[0]["flow_prev"].shape == (2, 2, H, W)
    with pytest.raises(FileNotFoundError, match=r"2 of 2 clips \(clip_len 3\).*19 -> 18"):
        CityscapesSeq(tree["root"], "val", clip_len=3, flow_root=tree["flows"])
    assert len(CityscapesSeq(tree["root"], "val", clip_len=3)) == 2  # without flow: fine


def cityscapes_seq_public(tmp_path: Path) -> dict[str, Path]:
    """Cityscapes-Seq snippets (frames 18, 19; labels of 19) with the public 19 -> 18 flows."""
    rng = np.random.default_rng(13)
    cs, cs_flows = tmp_path / "cityscapes", tmp_path / "cs_flow"
    for split, city in (("train", "aachen"), ("train", "bonn"), ("val", "ulm"), ("val", "zurich")):
        for f in (18, 19):
            name = f"{city}_000001_{f:06d}_leftImg8bit.png"
            save_rgb(cs / "leftImg8bit_sequence" / split / city / name, rng)
        stem = f"{city}_000001_000019"
        save_ids(
            cs / "gtFine" / split / city / f"{stem}_gtFine_labelIds.png",
            rng.integers(0, 34, (H, W)),
        )
        save_flow(cs_flows / f"{stem}_000018_int16_x10.npy", rng.integers(-30, 30, (H, W, 2)))
    return {"root": cs, "flows": cs_flows}


def synthia_seq_public(tmp_path: Path) -> dict[str, Path]:
    """SYNTHIA-SEQS-04-DAWN as linked in the guide: rgb/ and label/ (16-bit, id in channel 0),
    1280 x 760 scaled down (the bottom 120 rows cropped by the reader), flows per frame."""
    rng = np.random.default_rng(17)
    root, flows = tmp_path / "SYNTHIA-SEQS-04-DAWN", tmp_path / "synthia_flow"
    (root / "label").mkdir(parents=True)
    for f in range(4):
        save_rgb(root / "rgb" / f"{f:06d}.png", rng, H + 120, W)
        lab = np.zeros((H + 120, W, 3), np.uint16)
        lab[..., 0] = rng.integers(0, 16, (H + 120, W))
        lab[..., 1] = rng.integers(0, 60000, (H + 120, W))
        write_png16(root / "label" / f"{f:06d}.png", lab)
        if f:
            save_flow(flows / f"{f:06d}_int16_x10.npy", rng.integers(-30, 30, (H + 120, W, 2)))
    return {"root": root, "flows": flows}


@pytest.mark.parametrize("preset", ["default", "official"])
@pytest.mark.parametrize("source", ["viper", "synthia_seq"])
def test_example_trains_on_the_public_layouts(tmp_path: Path, source: str, preset: str) -> None:
    """The example on the public trees (VIPER with its list), default and --preset official."""
    pytest.importorskip("matplotlib")
    from train_video_uda import main

    from dastc.methods import PUBLIC_TAIL_CLASSES

    cs = cityscapes_seq_public(tmp_path)
    if source == "viper":
        viper = viper_public(tmp_path, label_every_frame=False)
        src = ["--source-root", str(viper["root"]), "--source-list", str(viper["list"]),
               "--source-flow-root", str(viper["flows"])]  # fmt: skip
    else:
        syn = synthia_seq_public(tmp_path)
        src = ["--source-root", str(syn["root"]), "--source-flow-root", str(syn["flows"])]
    res = main(
        [
            "--source", source, *src, "--preset", preset,
            "--target", "cityscapes_seq", "--target-root", str(cs["root"]),
            "--target-flow-root", str(cs["flows"]),
            "--size", "16", "32", "--batch", "2", "--iters", "3", "--adapt-start", "1",
            "--eval-every", "100", "--no-progress", "--out", str(tmp_path / "run"),
        ]
    )  # fmt: skip
    assert res["iters"] == 3
    assert len(res["per_class_iou"]) == (15 if source == "viper" else 12)
    config = res["config"]
    assert config["preset"] == preset
    if source == "viper":
        assert config["data"]["source_list"] == str(viper["list"])
    mc = config["method_config"]
    if preset == "official":
        assert tuple(mc["rare_classes"]) == PUBLIC_TAIL_CLASSES[source]
        assert (mc["mix_classes"], mc["align_kind"], mc["align_on"]) == (2, "mmd", "logits")
    else:
        assert (mc["mix_classes"], mc["align_kind"]) == (0, "infonce")
    log = (tmp_path / "run" / "log.txt").read_text()
    assert "align=" in log and "s2t=" in log  # the adapting steps ran

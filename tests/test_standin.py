"""The VIPER → Cityscapes-Seq stand-in (``dastc.data.standin``) at a small size.

The readers read it; the labels and flows they return are the renderer's (the
whole shot rendered as one clip, independently of the stand-in's windows); the
check passes; an interrupted run is completed by a rerun without rewriting
finished files; the example trains on it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("PIL")

from dastc.data import (
    CITYSCAPES_SYNTHIA_SEQ_MAP,
    CITYSCAPES_VIPER_MAP,
    VIPER_CLASSES,
    VIPER_MAP,
    CityscapesSeq,
    SyntheticDrivingClips,
    _scene,
    read_image,
    read_list,
    remove_ego_vehicle,
    standin,
)
from dastc.data.check import main as check_main

SRC, TGT = (72, 128), (64, 128)
SNIPPETS = 2
SIZES = {"source_size": SRC, "target_size": TGT}
LISTED = (10, 20, 30)


def write(out: Path, **kw: object) -> standin.StandinSummary:
    args: dict[str, object] = {
        "sequences": 1,
        "frames_per_sequence": 30,
        "snippets": SNIPPETS,
        **SIZES,
        "progress": False,
    }
    args.update(kw)
    return standin.write_standin(out, **args)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("standin")
    s = write(out)
    assert s.written == s.files and s.skipped == 0
    return out


def shot(domain: str, split: str, index: int, size: tuple[int, int]) -> dict[str, torch.Tensor]:
    """The whole 30-frame shot rendered as one clip (frame 19 at time 0)."""
    ds = SyntheticDrivingClips(domain, split, length=index + 1, size=size)  # type: ignore[arg-type]
    g = torch.Generator().manual_seed(ds.item_seed(index))
    scene = _scene.sample_scene(g, 30, size, ds.shift.layout, start=-19)
    return _scene.render(scene, size, ds.shift, g)


def test_class_maps_send_each_synthetic_class_to_its_class() -> None:
    names = {"sign": "traffic sign"}
    want = [
        VIPER_CLASSES.index(names.get(c, c)) if c != "pole" else 255
        for c in SyntheticDrivingClips.CLASSES
    ]
    assert VIPER_MAP.table[list(standin.VIPER_IDS)].tolist() == want
    assert CITYSCAPES_VIPER_MAP.table[list(standin.CITYSCAPES_IDS)].tolist() == want
    synthia = CITYSCAPES_SYNTHIA_SEQ_MAP
    got = [synthia.class_names[t] for t in synthia.table[list(standin.CITYSCAPES_IDS)]]
    assert got == [names.get(c, c) for c in SyntheticDrivingClips.CLASSES]


def test_layout_list_and_readme(tree: Path) -> None:
    assert read_list(tree / "Viper_list/train.txt") == [f"001/001_{f:05d}.jpg" for f in LISTED]
    assert len(list((tree / "VIPER/train/img/001").iterdir())) == 30
    assert sorted(p.name for p in (tree / "VIPER/train/cls/001").iterdir()) == [
        f"001_{f:05d}.png" for f in LISTED
    ]
    assert sorted(p.name for p in (tree / "viper_flow").iterdir()) == [
        f"001_{f:05d}{f - 1:05d}_int16_x10.npy" for f in LISTED
    ]
    for split, cities in (("train", ("aachen", "bochum")), ("val", ("frankfurt", "lindau"))):
        for city in cities:
            frames = sorted((tree / "cityscapes/leftImg8bit_sequence" / split / city).iterdir())
            assert [p.name for p in frames] == [
                f"{city}_000000_{f:06d}_leftImg8bit.png" for f in range(30)
            ]
            assert [p.name for p in (tree / "cityscapes/gtFine" / split / city).iterdir()] == [
                f"{city}_000000_000019_gtFine_labelIds.png"
            ]
            flow = tree / "cityscapes_flow" / f"{city}_000000_000019_000018_int16_x10.npy"
            assert flow.is_file()
    assert read_image(tree / "VIPER/train/img/001/001_00001.jpg").shape == (*SRC, 3)
    readme = (tree / "README.txt").read_text()
    o = tree.resolve()
    assert (
        f"--source viper --source-root {o}/VIPER \\\n"
        f"      --source-list {o}/Viper_list/train.txt --source-flow-root {o}/viper_flow \\\n"
        f"      --target cityscapes_seq --target-root {o}/cityscapes \\\n"
        f"      --target-flow-root {o}/cityscapes_flow"
    ) in readme
    assert not list(tree.rglob("*.tmp"))


def test_viper_reader_labels_and_flows_are_the_renderers(tree: Path) -> None:
    from dastc.data import VIPER

    ds = VIPER(tree / "VIPER", names=tree / "Viper_list/train.txt", flow_root=tree / "viper_flow")
    ref = shot("source", "train", 0, SRC)  # sequence 001, shot 0: frames 1 .. 30
    table = np.array(standin.VIPER_IDS)
    assert ds.names == [f"001/001_{f:05d}.jpg" for f in LISTED]
    for item, f in zip(ds, LISTED, strict=True):
        i = f - 1  # index in the shot
        raw = table[ref["label"][i].numpy()]
        want = torch.from_numpy(VIPER_MAP.apply(remove_ego_vehicle(raw)))
        assert torch.equal(item["label"][1], want)
        assert (item["label"][0] == 255).all()  # frame f - 1 has no label (the public recipe)
        err = (item["flow_prev"][1] - ref["flow_prev"][i]).abs().max()
        assert err <= 0.05 + 1e-4
        assert ref["flow_prev"][i].abs().max() > 0.5  # a real motion
        # JPEG of the rendered frame (the source domain has no sensor noise)
        assert (item["clip"][1] - ref["clip"][i]).abs().mean() < 0.04
    # without the ego-vehicle removal the raw labels come back exactly
    plain = VIPER(tree / "VIPER", names=tree / "Viper_list/train.txt", remove_ego=False)
    ref_ids = torch.from_numpy(VIPER_MAP.apply(table[ref["label"][19].numpy()]))
    assert torch.equal(plain[1]["label"][1], ref_ids)


@pytest.mark.parametrize("split", ["train", "val"])
def test_cityscapes_seq_reader_labels_and_flows_are_the_renderers(tree: Path, split: str) -> None:
    ds = CityscapesSeq(tree / "cityscapes", split, flow_root=tree / "cityscapes_flow")
    assert len(ds) == SNIPPETS
    table = np.array(standin.CITYSCAPES_IDS)
    for k, city in enumerate(standin.CITIES[split][:SNIPPETS]):
        item = ds[k]
        assert item["name"] == f"{city}/{city}_000000_000019_leftImg8bit.png"
        ref = shot("target", split, k, TGT)
        want = torch.from_numpy(CITYSCAPES_VIPER_MAP.apply(table[ref["label"][19].numpy()]))
        assert torch.equal(item["label"][1], want)
        # the labelled frame is frame 0 of the synthetic item
        synthetic = SyntheticDrivingClips("target", split, length=SNIPPETS, size=TGT)[k]
        assert torch.equal(ref["label"][19], synthetic["label"][0])
        err = (item["flow_prev"][1] - ref["flow_prev"][19]).abs().max()
        assert err <= 0.05 + 1e-4
        # PNG: lossless up to the target's sensor noise, drawn per window
        assert (item["clip"][1] - ref["clip"][19]).abs().mean() < 0.05
    synthia = CityscapesSeq(tree / "cityscapes", split, protocol="synthia")
    assert synthia[0]["label"].shape == (2, *TGT)


def test_the_check_passes(tree: Path) -> None:
    lst, flows = str(tree / "Viper_list/train.txt"), str(tree / "viper_flow")
    viper = [str(tree / "VIPER"), "--dataset", "viper", "--split", "train",
             "--list", lst, "--flow-root", flows]  # fmt: skip
    assert check_main(viper) == 0
    for split in ("train", "val"):
        cs = [str(tree / "cityscapes"), "--dataset", "cityscapes_seq", "--split", split,
              "--clip-len", "2", "--flow-root", str(tree / "cityscapes_flow")]  # fmt: skip
        assert check_main(cs) == 0
    run = subprocess.run(
        [sys.executable, "-m", "dastc.data.check", *viper], capture_output=True, text=True
    )
    assert run.returncode == 0, run.stdout + run.stderr


def _files(root: Path) -> dict[Path, tuple[int, bytes]]:
    """``{path: (mtime, bytes)}`` of every file but the README (which names the folder)."""
    return {
        p.relative_to(root): (p.stat().st_mtime_ns, p.read_bytes())
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != "README.txt"
    }


def test_an_interrupted_run_is_completed_without_rewriting(
    tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    real = standin._write_atomic
    calls = 0

    def stop_after_40(path: Path, write: object) -> None:
        nonlocal calls
        calls += 1
        if calls > 40:
            raise KeyboardInterrupt
        real(path, write)  # type: ignore[arg-type]

    monkeypatch.setattr(standin, "_write_atomic", stop_after_40)
    with pytest.raises(KeyboardInterrupt):
        write(out)
    monkeypatch.setattr(standin, "_write_atomic", real)
    partial = _files(out)
    assert 30 < len(partial) < 100
    (out / "VIPER/train/cls/001/.001_00030.png.4242.tmp").write_bytes(b"half")  # a killed writer
    s = write(out)
    assert s.written == s.files - (len(partial) - 1)  # all but the manifest's
    done = _files(out)
    assert {p: b for p, (_, b) in done.items()} == {p: b for p, (_, b) in _files(tree).items()}
    for p, (mtime, _) in partial.items():
        assert done[p][0] == mtime, p  # finished files were not rewritten
    # delete some files: a rerun writes exactly those
    gone = [
        Path("VIPER/train/cls/001/001_00020.png"),
        Path("viper_flow/001_0003000029_int16_x10.npy"),
        Path("VIPER/train/img/001/001_00007.jpg"),
        Path("cityscapes/leftImg8bit_sequence/val/lindau/lindau_000000_000025_leftImg8bit.png"),
        Path("cityscapes_flow/aachen_000000_000019_000018_int16_x10.npy"),
    ]
    for p in gone:
        (out / p).unlink()
    s = write(out)
    assert (s.written, s.skipped) == (len(gone), s.files - len(gone))
    again = _files(out)
    assert {p: b for p, (_, b) in again.items()} == {p: b for p, (_, b) in done.items()}
    changed = {p for p in again if again[p][0] != done[p][0]}
    assert changed == set(gone)


def test_other_sizes_into_the_same_folder_are_refused(tmp_path: Path) -> None:
    write(tmp_path, frames_per_sequence=10, snippets=0)
    with pytest.raises(ValueError, match=r"standin\.json.*same sizes and seed"):
        write(tmp_path, frames_per_sequence=10, snippets=0, seed=1)
    with pytest.raises(ValueError, match="frames_per_sequence"):
        write(tmp_path / "x", frames_per_sequence=5)


def test_cli_with_workers_writes_the_same_files(tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "cli"
    cmd = [sys.executable, "-m", "dastc.data.standin", str(out), "--sequences", "1",
           "--frames-per-sequence", "10", "--snippets", "1", "--source-size", *map(str, SRC),
           "--target-size", *map(str, TGT), "--workers", "2", "--no-progress"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "files written" in run.stdout
    mine, full = _files(out), _files(tree)
    # a shorter sequence and fewer snippets: the same files as the bigger set
    for p, (_, data) in mine.items():
        if p.name != "train.txt":
            assert full[p][1] == data, p
    assert read_list(out / "Viper_list/train.txt") == ["001/001_00010.jpg"]


def test_example_trains_on_the_standin(tree: Path, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from train_video_uda import main

    res = main(
        [
            "--source", "viper", "--source-root", str(tree / "VIPER"),
            "--source-list", str(tree / "Viper_list/train.txt"),
            "--source-flow-root", str(tree / "viper_flow"),
            "--target", "cityscapes_seq", "--target-root", str(tree / "cityscapes"),
            "--target-flow-root", str(tree / "cityscapes_flow"),
            "--size", "32", "64", "--batch", "2", "--iters", "2", "--adapt-start", "1",
            "--eval-every", "100", "--workers", "0", "--no-progress",
            "--out", str(tmp_path / "run"),
        ]
    )  # fmt: skip
    assert res["iters"] == 2
    assert len(res["per_class_iou"]) == 15

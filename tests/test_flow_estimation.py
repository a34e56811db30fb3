"""dastc.flow_estimation.estimate_flow and the flow command ``python -m dastc.data.flow``.

* The direction: on a translated image the estimate is the shift in dastc's backward
  convention, and ``warp(reference, flow)`` reproduces the frame.
* Accuracy against the exact ``flow_prev`` of the synthetic clips (source and the default
  target shift): end-point error and label warp agreement, DIS vs exact vs zero flow.
* The command on public-layout trees and a folder of frames: names, skip on rerun, the
  readers read the files; bad input.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from test_data_readers import H, W, save_rgb
from test_public_layouts import cityscapes_seq_public, synthia_seq_public, viper_public

from dastc.data import CityscapesSeq, SyntheticDrivingClips, SynthiaSeq, read_flow
from dastc.data.flow import flow_jobs, main, write_flows
from dastc.data.viper import VIPER
from dastc.flow import estimate_flow as reexported
from dastc.flow import flow_validity, warp
from dastc.flow_estimation import estimate_flow

pytest.importorskip("cv2")


def smooth_image(h: int = 64, w: int = 96, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = F.avg_pool2d(torch.rand(1, 3, h, w, generator=g), 5, 1, 2)
    return (x - x.min()) / (x.max() - x.min())


# -- direction ---------------------------------------------------------------------------
@pytest.mark.parametrize("dy,dx", [(1, 3), (-2, 1), (0, -4)])
def test_dis_translation_is_backward_flow(dy: int, dx: int) -> None:
    x = smooth_image()
    # ref(y, x) = x(y - dy, x - dx), so x(y, x) = ref(y + dy, x + dx): flow (dx, dy)
    ref = torch.roll(x, shifts=(dy, dx), dims=(-2, -1))
    flow = estimate_flow(x, ref)
    assert flow.shape == (1, 2, 64, 96) and flow.dtype == torch.float32
    inner = (slice(None), slice(8, -8), slice(8, -8))
    assert flow[0, 0][inner[1:]].mean().item() == pytest.approx(dx, abs=0.1)
    assert flow[0, 1][inner[1:]].mean().item() == pytest.approx(dy, abs=0.1)
    err = (warp(ref, flow) - x)[..., 8:-8, 8:-8].abs().mean()
    assert err < 0.1 * (ref - x)[..., 8:-8, 8:-8].abs().mean()
    assert reexported is estimate_flow


def test_unbatched_broadcast_and_callable() -> None:
    x = smooth_image()[0]
    ref = torch.roll(x, 2, dims=-1)
    one = estimate_flow(x, ref)
    assert one.shape == (2, 64, 96)
    two = estimate_flow(torch.stack([x, x]), ref)  # one reference for every frame
    assert two.shape == (2, 2, 64, 96) and torch.equal(two[0], one)
    seen = []

    def zero(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        seen.append((a.shape, b.shape))
        return torch.zeros(a.shape[0], 2, *a.shape[-2:], dtype=torch.float64)

    out = estimate_flow(x, ref, zero)
    assert out.dtype == torch.float32 and out.shape == (2, 64, 96) and not out.any()
    assert seen == [((1, 3, 64, 96), (1, 3, 64, 96))]
    assert estimate_flow(torch.zeros(0, 3, 8, 8), torch.zeros(0, 3, 8, 8)).shape == (0, 2, 8, 8)


def test_bad_input() -> None:
    x = torch.rand(2, 3, 16, 16)
    with pytest.raises(TypeError, match="frames"):
        estimate_flow(x.to(torch.uint8), x)
    with pytest.raises(ValueError, match="frames"):
        estimate_flow(torch.rand(2, 1, 16, 16), x)
    with pytest.raises(ValueError, match="frames"):
        estimate_flow(torch.rand(16, 16), x)
    with pytest.raises(ValueError, match=r"frames: expected values in \[0, 1\]"):
        estimate_flow(x * 255, x)
    with pytest.raises(ValueError, match="reference"):
        estimate_flow(x, torch.rand(3, 3, 16, 16))
    with pytest.raises(ValueError, match="reference"):
        estimate_flow(x, torch.rand(2, 3, 16, 8))
    with pytest.raises(TypeError, match="reference"):
        estimate_flow(x, [1, 2])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="method"):
        estimate_flow(x, x, "farneback")
    with pytest.raises(ValueError, match="method"):
        estimate_flow(x, x, lambda a, b: torch.zeros(2, 2, 16, 8))
    with pytest.raises(ValueError, match="weights"):
        estimate_flow(x, x, "dis", weights="raft.pth")
    with pytest.raises(ValueError, match="weights"):
        estimate_flow(x, x, "raft")


def test_raft_with_local_weights(tmp_path: Path) -> None:
    optical_flow = pytest.importorskip("torchvision.models.optical_flow")
    path = tmp_path / "raft_small.pth"
    torch.manual_seed(0)
    torch.save(optical_flow.raft_small(weights=None).state_dict(), path)
    x = smooth_image(60, 90)  # not a multiple of 8: padded
    flow = estimate_flow(x, torch.roll(x, 2, dims=-1), "raft", weights=path)
    assert flow.shape == (1, 2, 60, 90) and flow.dtype == torch.float32
    with pytest.raises(ValueError, match="weights"):
        estimate_flow(x, x, "raft_large", weights=path)


# -- accuracy against the exact flow of the synthetic clips ------------------------------
def flow_scores(domain: str, n: int = 8, size: tuple[int, int] = (64, 128)) -> dict[str, tuple]:
    ds = SyntheticDrivingClips(domain, "val", length=n, size=size)  # type: ignore[arg-type]
    items = [ds[i] for i in range(n)]
    cur = torch.stack([it["clip"][1] for it in items])  # type: ignore[index]
    prev = torch.stack([it["clip"][0] for it in items])  # type: ignore[index]
    exact = torch.stack([it["flow_prev"][1] for it in items])  # type: ignore[index]
    label = torch.stack([it["label"] for it in items])  # type: ignore[misc]
    valid = flow_validity(exact)
    out = {}
    for name, flow in (
        ("dis", estimate_flow(cur, prev)),
        ("exact", exact),
        ("zero", torch.zeros_like(exact)),
    ):
        epe = (flow - exact).norm(dim=1)[valid].mean().item()
        warped = warp(label[:, 0], flow, "nearest", fill=255)
        agree = (warped == label[:, 1])[valid].float().mean().item()
        out[name] = (epe, agree)
    return out


@pytest.mark.parametrize("domain", ["source", "target"])
def test_dis_accuracy_on_synthetic_clips(domain: str) -> None:
    s = flow_scores(domain)
    assert s["exact"][0] == 0.0
    assert s["dis"][0] < 0.6 * s["zero"][0]  # EPE: measured 1.5 vs 3.7 (source)
    assert s["dis"][0] < 2.0
    assert s["dis"][1] > s["zero"][1] + 0.03  # label agreement: 0.96 vs 0.89
    assert s["dis"][1] > s["exact"][1] - 0.02  # close to the exact flow's 0.955


# -- the flow command ---------------------------------------------------------------------
def mtimes(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}


def test_cli_viper_public(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tree = viper_public(tmp_path, label_every_frame=False)
    root, out, lst = tree["root"], tmp_path / "est", tree["list"]
    assert main([str(root), "--dataset", "viper", "--out", str(out), "--no-progress"]) == 0
    want = {f"001_{f:05d}{f - 1:05d}_int16_x10.npy" for f in (10, 20, 30)}
    assert {p.name for p in out.iterdir()} == want
    assert "3 flows written, 0 existed" in capsys.readouterr().out
    before = mtimes(out)
    assert main([str(root), "--dataset", "viper", "--out", str(out), "--list", str(lst),
                 "--no-progress"]) == 0  # fmt: skip
    assert mtimes(out) == before and "0 flows written, 3 existed" in capsys.readouterr().out
    arr = np.load(out / "001_0002000019_int16_x10.npy")
    assert arr.dtype == np.int16 and arr.shape == (H, W, 2)
    ds = VIPER(root, flow_root=out, names=lst)
    item = ds[1]
    assert item["flow_prev"].shape == (2, 2, H, W)
    assert torch.equal(item["flow_prev"][1].permute(1, 2, 0), torch.from_numpy(arr / 10).float())
    # clip_len 3: the flows of frames 9 -> 8 etc. are added, the others skipped
    assert main([str(root), "--dataset", "viper", "--out", str(out), "--clip-len", "3",
                 "--workers", "2", "--no-progress"]) == 0  # fmt: skip
    assert len(list(out.iterdir())) == 6 and all(mtimes(out)[k] == v for k, v in before.items())
    assert len(VIPER(root, clip_len=3, flow_root=out)) == 3


def test_cli_synthia_and_cityscapes(tmp_path: Path) -> None:
    syn = synthia_seq_public(tmp_path / "s")
    out = tmp_path / "syn_est"
    assert main([str(syn["root"]), "--dataset", "synthia_seq", "--out", str(out),
                 "--no-progress"]) == 0  # fmt: skip
    assert sorted(p.name for p in out.iterdir()) == [f"{f:06d}_int16_x10.npy" for f in (1, 2, 3)]
    assert read_flow(out / "000001_int16_x10.npy").shape == (H + 120, W, 2)  # stored size
    assert SynthiaSeq(syn["root"], flow_root=out)[0]["flow_prev"].shape == (2, 2, H, W)
    cs = cityscapes_seq_public(tmp_path / "c")
    out = tmp_path / "cs_est"
    assert main([str(cs["root"]), "--dataset", "cityscapes_seq", "--split", "val",
                 "--out", str(out), "--no-progress"]) == 0  # fmt: skip
    assert sorted(p.name for p in out.iterdir()) == [
        "ulm_000001_000019_000018_int16_x10.npy",
        "zurich_000001_000019_000018_int16_x10.npy",
    ]
    assert len(CityscapesSeq(cs["root"], "val", flow_root=out)) == 2


def test_cli_frames_folder(tmp_path: Path) -> None:
    frames, out = tmp_path / "video", tmp_path / "flows"
    x = smooth_image(48, 64)
    for i in range(4):
        img = torch.roll(x, 2 * i, dims=-1)[0].permute(1, 2, 0).mul(255).round().byte().numpy()
        frames.mkdir(exist_ok=True)
        from PIL import Image

        Image.fromarray(img).save(frames / f"frame_{i:03d}.png")
    (frames / "notes.txt").write_text("not a frame")
    cmd = [sys.executable, "-m", "dastc.data.flow", str(frames), "--dataset", "frames",
           "--out", str(out), "--workers", "2"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)}
    run = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    assert run.returncode == 0, run.stderr
    assert sorted(p.name for p in out.iterdir()) == [
        f"frame_{i:03d}_int16_x10.npy" for i in (1, 2, 3)
    ]
    flow = read_flow(out / "frame_002_int16_x10.npy")  # frame 2 = frame 1 moved 2 px right
    assert flow.shape == (48, 64, 2)
    assert np.median(flow[8:-8, 8:-8, 0]) == pytest.approx(-2.0, abs=0.2)
    assert np.median(flow[8:-8, 8:-8, 1]) == pytest.approx(0.0, abs=0.2)
    before = mtimes(out)
    run = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    assert run.returncode == 0 and "0 flows written, 3 existed" in run.stdout
    assert mtimes(out) == before


def test_cli_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = str(tmp_path / "out")
    with pytest.raises(SystemExit):
        main([str(tmp_path), "--dataset", "kitti", "--out", out])
    with pytest.raises(SystemExit):  # no --out
        main([str(tmp_path), "--dataset", "frames"])
    with pytest.raises(SystemExit):
        main([str(tmp_path / "nope"), "--dataset", "viper", "--out", out])
    assert "no such directory" in capsys.readouterr().err
    save_rgb(tmp_path / "only.png", np.random.default_rng(0))
    with pytest.raises(SystemExit):
        main([str(tmp_path), "--dataset", "frames", "--out", out])
    assert "at least 2 frames" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([str(tmp_path), "--dataset", "viper", "--out", out, "--clip-len", "1"])
    assert "clip_len" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([str(tmp_path), "--dataset", "frames", "--out", out, "--workers", "0"])
    with pytest.raises(ValueError, match="dataset"):
        flow_jobs(tmp_path, "kitti", out)
    with pytest.raises(ValueError, match="workers"):
        write_flows([], workers=0)


# -- the example trained with estimated flow -----------------------------------------------
def test_example_estimated_flow_replaces_the_exact_flow_prev() -> None:
    from uda_data import DataSpec, build_datasets

    exact = build_datasets(DataSpec(size=(32, 64), train_clips=3, val_clips=2, seed=1))
    dis = build_datasets(DataSpec(size=(32, 64), train_clips=3, val_clips=2, seed=1, flow="dis"))
    for a_ds, b_ds in [(exact.source, dis.source), (exact.target, dis.target)]:
        for i in range(3):
            a, b = a_ds[i], b_ds[i]
            assert torch.equal(a["clip"], b["clip"]) and torch.equal(a["label"], b["label"])
            assert "flow" not in b and "valid" not in b  # exact-only quantities are dropped
            assert torch.count_nonzero(b["flow_prev"][0]) == 0  # no previous frame
            want = estimate_flow(a["clip"][1:], a["clip"][:-1])
            assert torch.equal(b["flow_prev"][1:], want)
            assert not torch.equal(b["flow_prev"], a["flow_prev"])
    with pytest.raises(ValueError, match="flow: expected 'exact' or 'dis'"):
        DataSpec(flow="raft")


def test_example_trains_with_estimated_flow(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from train_video_uda import main as train_main

    res = train_main(
        ["--method", "dastc", "--size", "32", "64", "--train-clips", "4", "--val-clips", "2",
         "--iters", "2", "--adapt-start", "0", "--eval-every", "100", "--ckpt-every", "100",
         "--render-workers", "0", "--no-progress", "--flow", "dis", "--out", str(tmp_path)]
    )  # fmt: skip
    assert res["iters"] == 2
    assert json_flow(tmp_path) == "dis"


def json_flow(out: Path) -> str:
    import json

    cfg = json.loads((out / "results.json").read_text())["config"]
    return str(cfg["data"]["flow"])

"""examples/predict.py: the temporal path (clips (t - 1, t) with the flow) and the
frame-by-frame path, on synthetic target videos with exact flow, and its command line."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
import torch

pytest.importorskip("PIL")

import predict
from conftest import EXAMPLES
from tiny_segmenter import TinySegmenter

import dastc
from dastc.data import SyntheticDrivingClips

K = SyntheticDrivingClips.NUM_CLASSES
SIZE = (32, 64)
T = 5


def _video(index: int = 0, clip_len: int = T, size: tuple[int, int] = SIZE) -> dict:
    return SyntheticDrivingClips("target", "val", index + 1, clip_len=clip_len, size=size)[index]


def exact_flow(item: dict) -> predict.FlowFn:
    """A flow callable returning the renderer's exact ``flow_prev`` of each frame given."""
    clip, flow_prev = item["clip"], item["flow_prev"]

    def fn(frames: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        idx = []
        for f, r in zip(frames, reference, strict=True):
            t = next(t for t in range(1, clip.shape[0]) if torch.equal(clip[t], f))
            assert torch.equal(clip[t - 1], r), "reference is not the previous frame"
            idx.append(t)
        return flow_prev[idx]

    return fn


def _untrained(seed: int = 0) -> TinySegmenter:
    """An untrained tiny model whose fusion is not the identity (the property holds for any)."""
    torch.manual_seed(seed)
    model = TinySegmenter(K, widths=(8, 16, 32), deep_channels=24)
    with torch.no_grad():
        model.fuse.weight.normal_(0, 0.5)
    return model.eval()


@pytest.mark.parametrize("batch", [1, 3, 8])
def test_temporal_path_is_the_model_on_previous_current_clips(batch):
    item, model = _video(), _untrained()
    clip, flow_prev = item["clip"], item["flow_prev"]
    got = predict.video_logits(model, clip, exact_flow(item), temporal=True, batch=batch)
    with torch.no_grad():
        want = [model(clip[None, :1], torch.zeros(1, 1, 2, *SIZE))[0, 0]]
        for t in range(1, T):
            fp = torch.stack([torch.zeros_like(flow_prev[t]), flow_prev[t]])[None]
            want.append(model(clip[None, t - 1 : t + 1], fp)[0, 1])
    want_t = torch.stack(want)
    assert got.shape == (T, K, *SIZE)
    torch.testing.assert_close(got, want_t, atol=1e-5, rtol=1e-5)
    pred = predict.segment_video(model, clip, exact_flow(item), temporal=True, batch=batch)
    assert pred.dtype == torch.long and pred.shape == (T, *SIZE)
    assert torch.equal(pred, want_t.argmax(1))
    # the flow matters: the per-frame logits differ once the fusion is not the identity
    per_frame = predict.video_logits(model, clip, None, temporal=False)
    assert not torch.allclose(got[1:], per_frame[1:], atol=1e-3)


def test_frame_by_frame_path_is_the_per_frame_forward():
    item, model = _video(), _untrained()
    clip = item["clip"]

    def no_flow(frames, reference):  # pragma: no cover - must not be called
        raise AssertionError("the frame-by-frame path estimated flow")

    got = predict.video_logits(model, clip, no_flow, temporal=False, batch=2)
    with torch.no_grad():
        want = torch.cat([model(clip[t : t + 1]) for t in range(T)])
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    pred = predict.segment_video(model, clip, None, temporal=False)
    assert torch.equal(pred, want.argmax(1))


def test_chunks_with_the_previous_frame_equal_the_whole_video():
    item, model = _video(), _untrained()
    clip, fn = item["clip"], exact_flow(item)
    whole = predict.video_logits(model, clip, fn, temporal=True)
    tail = predict.video_logits(model, clip[3:], fn, temporal=True, prev=clip[2])
    torch.testing.assert_close(tail, whole[3:], atol=1e-5, rtol=1e-5)


def test_segment_video_resizes_to_the_model_size_and_back():
    item, model = _video(size=(48, 80)), _untrained()
    clip = item["clip"]
    small = torch.nn.functional.interpolate(clip, size=SIZE, mode="bilinear", align_corners=False)
    seen = []

    def flow(frames, reference):
        seen.append(tuple(frames.shape[-2:]))
        return torch.zeros(frames.shape[0], 2, *frames.shape[-2:])

    pred = predict.segment_video(model, clip, flow, temporal=True, size=SIZE)
    assert pred.shape == (T, 48, 80) and set(seen) == {SIZE}
    logits = predict.video_logits(model, small, flow, temporal=True)
    up = torch.nn.functional.interpolate(
        logits, size=(48, 80), mode="bilinear", align_corners=False
    )
    assert torch.equal(pred, up.argmax(1))


def test_temporal_consistency_of_the_labels_under_the_exact_flow():
    item = _video(clip_len=6, size=(64, 128))
    label, flow_prev = item["label"], item["flow_prev"]
    exact = float(predict.temporal_consistency(label, flow_prev))
    wrong = float(predict.temporal_consistency(label, -3 * flow_prev))
    assert exact > 0.9 and exact > wrong
    assert math.isnan(float(predict.temporal_consistency(label[:1], flow_prev[:1])))
    assert float(predict.temporal_consistency(label, torch.zeros_like(flow_prev))) < 1


# -- a briefly trained run of the example ------------------------------------------------

SMALL = ["--batch", "2", "--size", *map(str, SIZE), "--train-clips", "4", "--val-clips", "2",
         "--log-every", "1", "--adapt-start", "1"]  # fmt: skip
TINY = [*SMALL, "--iters", "3", "--eval-every", "2", "--no-progress"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    pytest.importorskip("matplotlib")
    from train_video_uda import main

    out = tmp_path_factory.mktemp("predict") / "run"
    main(["--out", str(out), "--method", "dastc", *TINY])
    return out


def test_consistency_and_miou_temporal_vs_frame_by_frame(run):
    model, cfg, k, _ = predict.load_run(run, "teacher", torch.device("cpu"))
    assert predict.run_is_temporal(cfg) and k == K
    ds = SyntheticDrivingClips("target", "val", 2, clip_len=4, size=SIZE)
    scores = {}
    for temporal in (True, False):
        cm, cons = dastc.ConfusionMatrix(K), []
        for item in ds:
            fn = exact_flow(item)
            pred = predict.segment_video(model, item["clip"], fn, temporal, size=cfg.data.size)
            cm.update(pred, item["label"])
            cons.append(float(predict.temporal_consistency(pred, item["flow_prev"])))
        scores[temporal] = (sum(cons) / len(cons), float(cm.compute()[1]))
    for consistency, miou in scores.values():
        assert 0 <= consistency <= 1 and 0 <= miou <= 1
    print("consistency, mIoU (temporal):", scores[True], "(frame by frame):", scores[False])


def test_run_temporal_flag_follows_the_config(run):
    _, cfg, _, _ = predict.load_run(run, "student", torch.device("cpu"))
    from dataclasses import replace

    assert predict.run_is_temporal(cfg)
    assert not predict.run_is_temporal(replace(cfg, method="image_dacs"))
    assert not predict.run_is_temporal(replace(cfg, data=replace(cfg.data, clip_len=1)))
    mcfg = replace(cfg.method_config, temporal=False)
    assert not predict.run_is_temporal(replace(cfg, method_config=mcfg))


@pytest.fixture(scope="module")
def png_frames(tmp_path_factory):
    from PIL import Image

    item = _video(size=(40, 72))  # another size than the run's: resized and back
    folder = tmp_path_factory.mktemp("frames")
    for t, frame in enumerate(item["clip"]):
        arr = (frame.permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()
        Image.fromarray(arr).save(folder / f"f{t:02d}.png")
    return folder


def _colour_ids(png, k, names):
    """Class ids of a ``*_seg.png`` (its colours mapped back through the palette)."""
    import numpy as np
    from PIL import Image
    from uda_data import palette

    col = torch.from_numpy(np.asarray(Image.open(png).convert("RGB")).copy())
    pal = palette(k, names)[:k]
    match = (col[:, :, None, :] == pal[None, None]).all(-1)  # (H, W, k)
    assert match.any(-1).all()
    return match.float().argmax(-1)


@pytest.mark.parametrize("temporal", [True, False])
def test_cli_on_a_folder_of_frames(run, png_frames, tmp_path, temporal):
    from PIL import Image

    seg = tmp_path / "seg"
    cmd = [sys.executable, str(EXAMPLES / "predict.py"), str(run), str(png_frames),
           "--out", str(seg), "--batch", "2"]  # fmt: skip
    if not temporal:
        cmd.append("--no-temporal")
    res = subprocess.run(cmd, check=True, capture_output=True, text=True)
    assert ("temporal fusion, dis flow" if temporal else "frame by frame") in res.stdout
    files = sorted(png_frames.iterdir())
    for f in files:
        assert Image.open(seg / f"{f.stem}_seg.png").size == (72, 40)
        assert (seg / f"{f.stem}_overlay.png").is_file()
    # the PNGs are segment_video's prediction (DIS flow, the run's size, chunks of 2)
    model, cfg, k, names = predict.load_run(run, "teacher", torch.device("cpu"))
    video = torch.stack([img for _, img in predict.frames(png_frames)])
    pred = predict.segment_video(model, video, "dis", temporal, size=cfg.data.size)
    for t, f in enumerate(files):
        assert torch.equal(_colour_ids(seg / f"{f.stem}_seg.png", k, names), pred[t])


def test_cli_out_video(run, png_frames, tmp_path):
    out = tmp_path / "seg.gif"
    cmd = [sys.executable, str(EXAMPLES / "predict.py"), str(run), str(png_frames),
           "--out", str(tmp_path / "seg"), "--out-video", str(out)]  # fmt: skip
    res = subprocess.run(cmd, capture_output=True, text=True)
    try:
        import imageio  # noqa: F401
    except ImportError:
        assert res.returncode != 0 and "needs imageio, which is not installed" in res.stderr
    else:
        assert res.returncode == 0, res.stderr
        assert out.is_file() and out.stat().st_size > 0

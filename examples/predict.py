"""Segment your own frames (a folder of images, or a video file) with a trained run.

    python examples/predict.py runs/dastc my_frames/ --out my_frames_seg/
    python examples/predict.py runs/dastc clip.mp4 --out clip_seg/     # needs imageio
    python examples/predict.py runs/dastc my_frames/ --out seg/ --out-video seg.gif

Writes, per frame, ``<name>_seg.png`` (colour-coded classes: the Cityscapes
benchmark colours for a run on a real benchmark, the synthetic palette for a
run on the synthetic clips) and ``<name>_overlay.png`` (the frame with the
colours blended in); ``--out-video FILE.mp4|.gif`` also writes the overlays as
a video (needs ``imageio``; ``.mp4`` also its ``pyav`` or ``ffmpeg`` plugin).
Frames are resized to the run's training size and back.

Temporal fusion: when the run's model was trained with it (a video method with
``temporal`` on and clips of two frames or more; the checkpoint's config says),
frame ``t`` is segmented as in training and evaluation: the backward flow of
frame ``t`` into frame ``t - 1`` is estimated (``--flow-method``, default
``dis``: OpenCV's DIS, see :func:`dastc.flow_estimation.estimate_flow`) and the
model runs on the 2-frame clip ``(t - 1, t)`` with ``flow_prev = [0, flow]``;
the prediction of frame ``t`` is kept. Frame 0 has no previous frame: it is the
1-frame clip ``(0,)`` with zero flow, the first frame of every training clip.
``--no-temporal`` segments each frame on its own (``model(frame)``).

From Python: :func:`segment_video` (and :func:`video_logits`) do the same on a
tensor of frames; :func:`temporal_consistency` scores a prediction.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

sys.path.insert(0, str(Path(__file__).resolve().parent))

from uda_config import Config, build_model
from uda_data import colorize

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp"}
VIDEO_SUFFIXES = {".mp4", ".gif"}

#: ``(frames (N, 3, H, W), reference (N, 3, H, W)) -> (N, 2, H, W)`` backward flow of
#: ``frames`` into ``reference`` (dastc's convention, :func:`dastc.flow.warp`)
FlowFn = Callable[[Tensor, Tensor], Tensor]


def load_run(
    run: Path, which: str, device: torch.device
) -> tuple[torch.nn.Module, Config, int, list[str]]:
    """The trained student (or EMA teacher) of a run folder, with its config."""
    ckpt_path = run / "checkpoint.pt" if run.is_dir() else run
    if not ckpt_path.is_file():
        raise SystemExit(
            f"{ckpt_path}: no checkpoint (expected a run folder from train_video_uda.py)"
        )
    st = torch.load(ckpt_path, map_location=device, weights_only=True)
    cfg = Config(**{k: v for k, v in st["config"].items()})
    k = int(st["num_classes"])
    model = build_model(cfg, k, init_weights=False).to(device)
    if which == "teacher":
        model.load_state_dict(
            {
                key[len("teacher.model.") :]: v
                for key, v in st["method"].items()
                if key.startswith("teacher.model.")
            }
        )
    else:
        model.load_state_dict(st["student"])
    model.eval()
    names = [f"class{i}" for i in range(k)]
    results = (run / "results.json") if run.is_dir() else None
    if results is not None and results.is_file():
        names = list(json.loads(results.read_text())["per_class_iou"])
    return model, cfg, k, names


def run_is_temporal(cfg: Config) -> bool:
    """Whether the run's model was trained (and evaluated) with the flow: the method's
    ``uses_temporal`` (a video method with ``method_config.temporal``) on clips of two
    frames or more (``method.flow_for`` gives no flow to 1-frame clips)."""
    from dastc.methods import METHODS

    method = METHODS[cfg.method]
    return bool(method.temporal_model and cfg.method_config.temporal and cfg.data.clip_len > 1)


def flow_function(method: str | FlowFn, weights: str | None = None) -> FlowFn:
    """A :data:`FlowFn` from a :func:`dastc.flow_estimation.estimate_flow` method name
    (``"dis"``, ``"raft"``, ...) or a callable (returned as is)."""
    if callable(method):
        return method

    def flow_fn(frames: Tensor, reference: Tensor) -> Tensor:
        from dastc.flow_estimation import estimate_flow

        return estimate_flow(frames, reference, method, weights=weights)

    return flow_fn


def _resize(x: Tensor, size: tuple[int, int] | None) -> Tensor:
    if size is None or tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


@torch.no_grad()
def video_logits(
    model: torch.nn.Module,
    frames: Tensor,
    flow_fn: FlowFn | str | None = "dis",
    temporal: bool = True,
    *,
    prev: Tensor | None = None,
    batch: int = 8,
) -> Tensor:
    """Logits ``(T, K, H, W)`` of consecutive frames ``(T, 3, H, W)`` at the model's size.

    ``temporal``: frame ``t`` is the last frame of the clip ``(t - 1, t)``
    ``(1, 2, 3, H, W)`` with ``flow_prev = [0, flow_fn(frame t, frame t - 1)]``; the
    first frame, without ``prev`` (the frame before ``frames[0]``, when a long video
    is segmented in chunks), is the 1-frame clip with zero flow. Else each frame is
    ``model(frame[None])``. ``batch``: clips per forward.
    """
    if frames.dim() != 4 or frames.shape[1] != 3:
        raise ValueError(f"frames: expected (T, 3, H, W), got {tuple(frames.shape)}")
    if frames.shape[0] == 0:
        raise ValueError("frames: expected at least one frame")
    out: list[Tensor] = []
    if not temporal:
        for s in range(0, frames.shape[0], batch):
            out.append(model(frames[s : s + batch]))
        return torch.cat(out)
    if flow_fn is None:
        raise ValueError("flow_fn: the temporal path needs a flow method or callable")
    fn = flow_function(flow_fn)
    if prev is None:
        zero = frames.new_zeros(1, 1, 2, *frames.shape[-2:])
        out.append(model(frames[None, :1], zero)[0])
    else:
        frames = torch.cat([prev[None].to(frames), frames])
    for s in range(1, frames.shape[0], batch):
        cur = frames[s : s + batch]
        ref = frames[s - 1 : s - 1 + cur.shape[0]]
        flow = fn(cur, ref).to(device=frames.device, dtype=frames.dtype)
        if flow.shape != (cur.shape[0], 2, *cur.shape[-2:]):
            raise ValueError(
                f"flow_fn: expected flow {(cur.shape[0], 2, *cur.shape[-2:])}, "
                f"got {tuple(flow.shape)}"
            )
        clips = torch.stack([ref, cur], dim=1)  # (n, 2, 3, H, W): (t - 1, t)
        flow_prev = torch.stack([torch.zeros_like(flow), flow], dim=1)  # (n, 2, 2, H, W)
        out.append(model(clips, flow_prev)[:, 1])
    return torch.cat(out)


@torch.no_grad()
def segment_video(
    model: torch.nn.Module,
    frames: Tensor,
    flow_fn: FlowFn | str | None = "dis",
    temporal: bool = True,
    *,
    size: tuple[int, int] | None = None,
    batch: int = 8,
) -> Tensor:
    """Class ids long ``(T, H, W)`` of a video ``frames`` float ``(T, 3, H, W)`` in [0, 1].

    The frames are resized to ``size`` (the run's training size; ``None``: as
    they are), segmented by :func:`video_logits` (the flow is estimated at that
    size, on the model's device) and the logits resized back before the argmax.
    """
    dev = next(model.parameters()).device
    x = _resize(frames.to(dev, torch.float32), size)
    logits = video_logits(model, x, flow_fn, temporal, batch=batch)
    return _resize(logits, tuple(frames.shape[-2:])).argmax(1).cpu()  # type: ignore[arg-type]


def temporal_consistency(pred: Tensor, flow_prev: Tensor, ignore_index: int = 255) -> Tensor:
    """Share of pixels whose class at frame ``t`` equals the class of frame ``t - 1``
    warped by ``flow_prev[t]`` (nearest), over ``t >= 1`` and the pixels whose previous
    position is inside the frame. ``pred`` long ``(T, H, W)``, ``flow_prev`` float
    ``(T, 2, H, W)`` (backward flow of each frame into the previous one; ``[0]`` unused).
    Returns a float64 scalar tensor (NaN for a single frame)."""
    from dastc.flow import warp

    if pred.shape[0] < 2:
        return torch.tensor(float("nan"), dtype=torch.float64)
    flow = flow_prev[1:].to(pred.device, torch.float32)
    warped = warp(pred[:-1], flow, mode="nearest", fill=ignore_index)
    seen = warped != ignore_index
    agree = (warped == pred[1:]) & seen
    return agree.sum().double() / seen.sum().clamp(min=1).double()


def frames(source: Path) -> Iterator[tuple[str, torch.Tensor]]:
    """``(name, float (3, H, W) in [0, 1])`` for each frame, in order."""
    import numpy as np

    if source.is_dir():
        from PIL import Image

        files = sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise SystemExit(f"{source}: no image files ({', '.join(sorted(IMAGE_SUFFIXES))})")
        for p in files:
            with Image.open(p) as im:
                arr = np.asarray(im.convert("RGB"), dtype=np.uint8)
            yield p.stem, torch.from_numpy(arr.copy()).permute(2, 0, 1).float() / 255
    elif source.is_file():
        try:
            import imageio.v3 as iio
        except ImportError as e:
            raise SystemExit(
                f"{source}: reading a video file needs imageio (pip install imageio[pyav]), "
                "which is not installed; or pass a folder of frames"
            ) from e
        for i, arr in enumerate(iio.imiter(source)):
            if arr.ndim == 2:  # grayscale
                arr = np.repeat(arr[..., None], 3, axis=-1)
            yield (
                f"{source.stem}_{i:06d}",
                torch.from_numpy(np.ascontiguousarray(arr[..., :3])).permute(2, 0, 1).float() / 255,
            )
    else:
        raise SystemExit(f"{source}: no such folder or file")


def _chunks(
    items: Iterable[tuple[str, Tensor]], n: int
) -> Iterator[tuple[list[str], list[Tensor]]]:
    names: list[str] = []
    imgs: list[Tensor] = []
    for name, img in items:
        if imgs and img.shape != imgs[0].shape:  # a frame of another size: its own chunk
            yield names, imgs
            names, imgs = [], []
        names.append(name)
        imgs.append(img)
        if len(imgs) == n:
            yield names, imgs
            names, imgs = [], []
    if imgs:
        yield names, imgs


def _imageio_writer_check(path: Path) -> Any:
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        raise SystemExit(f"--out-video: expected a .mp4 or .gif file, got {path}")
    try:
        import imageio.v3 as iio
    except ImportError as e:
        raise SystemExit(
            "--out-video: writing a video needs imageio, which is not installed "
            "(pip install imageio, plus imageio[pyav] for .mp4); the per-frame PNGs "
            "are written without it (drop --out-video)"
        ) from e
    return iio


def _write_video(iio: Any, path: Path, overlays: list[Any], fps: float) -> None:
    import numpy as np

    stack = np.stack(overlays)
    try:
        if path.suffix.lower() == ".gif":
            iio.imwrite(path, stack, duration=1000.0 / fps, loop=0)
        else:
            iio.imwrite(path, stack, fps=fps)
    except Exception as e:  # a missing plugin (pyav / ffmpeg) for .mp4
        raise SystemExit(
            f"--out-video {path}: imageio could not write it ({type(e).__name__}: {e}); "
            "for .mp4 install imageio[pyav] (or imageio[ffmpeg]), or write a .gif"
        ) from e


@torch.no_grad()
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("run", type=Path, help="run folder (or its checkpoint.pt)")
    p.add_argument("source", type=Path, help="folder of frames, or a video file")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--model", choices=("student", "teacher"), default="teacher")
    p.add_argument("--device", default="cpu")
    p.add_argument(
        "--no-temporal", action="store_true",
        help="segment each frame on its own (no flow, no temporal fusion)",
    )  # fmt: skip
    p.add_argument(
        "--flow-method", default="dis",
        help="dastc.flow_estimation.estimate_flow method: dis (OpenCV, default), raft, "
        "raft_large, raft_small (these need --flow-weights)",
    )  # fmt: skip
    p.add_argument("--flow-weights", default=None, help="local RAFT state-dict file")
    p.add_argument(
        "--out-video", type=Path, default=None, help="also write the overlays: .mp4/.gif"
    )
    p.add_argument("--fps", type=float, default=10.0, help="frame rate of --out-video")
    p.add_argument("--batch", type=int, default=8, help="frames per forward")
    a = p.parse_args(argv)
    from PIL import Image

    iio = _imageio_writer_check(a.out_video) if a.out_video is not None else None
    device = torch.device(a.device)
    model, cfg, k, names = load_run(a.run, a.model, device)
    temporal = not a.no_temporal and run_is_temporal(cfg)
    if not a.no_temporal and not temporal:
        print(f"the run ({cfg.method}) has no temporal fusion: segmenting frame by frame")
    flow_fn = flow_function(a.flow_method, a.flow_weights) if temporal else None
    a.out.mkdir(parents=True, exist_ok=True)
    size = (int(cfg.data.size[0]), int(cfg.data.size[1]))
    n = 0
    prev: Tensor | None = None  # the last frame of the previous chunk, at the model's size
    overlays: list[Any] = []
    for chunk_names, imgs in _chunks(frames(a.source), max(1, a.batch)):
        full = torch.stack(imgs)
        x = _resize(full.to(device), size)
        if prev is not None and prev.shape != x.shape[1:]:
            prev = None
        logits = video_logits(model, x, flow_fn, temporal, prev=prev, batch=max(1, a.batch))
        prev = x[-1]
        preds = _resize(logits, tuple(full.shape[-2:])).argmax(1).cpu()  # type: ignore[arg-type]
        for name, img, pred in zip(chunk_names, imgs, preds, strict=True):
            col = colorize(pred, k, names)
            Image.fromarray(col.numpy()).save(a.out / f"{name}_seg.png")
            over = (img.permute(1, 2, 0) * 0.5 + col.float() / 255 * 0.5).clamp(0, 1)
            over_u8 = (over * 255).to(torch.uint8).numpy()
            Image.fromarray(over_u8).save(a.out / f"{name}_overlay.png")
            if iio is not None:
                overlays.append(over_u8)
            n += 1
    how = f"temporal fusion, {a.flow_method} flow" if temporal else "frame by frame"
    print(f"segmented {n} frames ({how}) into {a.out}")
    if iio is not None and overlays:
        if any(o.shape != overlays[0].shape for o in overlays):
            raise SystemExit("--out-video: the frames differ in size; not writing a video")
        _write_video(iio, a.out_video, overlays, a.fps)
        print(f"wrote {a.out_video}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Segment your own frames (a folder of images, or a video file) with a trained run.

    python examples/predict.py runs/dastc my_frames/ --out my_frames_seg/
    python examples/predict.py runs/dastc clip.mp4 --out clip_seg/     # needs imageio

Writes, per frame, ``<name>_seg.png`` (colour-coded classes: the Cityscapes
benchmark colours for a run on a real benchmark, the synthetic palette for a
run on the synthetic clips) and ``<name>_overlay.png`` (the frame with the
colours blended in). Frames are
resized to the run's training size and back. Without optical flow the
temporal fusion is not used: each frame is segmented on its own.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))

from uda_config import Config, build_model
from uda_data import colorize

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp"}


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
                "reading a video file needs imageio (pip install imageio[pyav])"
            ) from e
        for i, arr in enumerate(iio.imiter(source)):
            yield (
                f"{source.stem}_{i:06d}",
                torch.from_numpy(np.ascontiguousarray(arr[..., :3])).permute(2, 0, 1).float() / 255,
            )
    else:
        raise SystemExit(f"{source}: no such folder or file")


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
    a = p.parse_args(argv)
    from PIL import Image

    device = torch.device(a.device)
    model, cfg, k, names = load_run(a.run, a.model, device)
    a.out.mkdir(parents=True, exist_ok=True)
    h, w = cfg.data.size
    n = 0
    for name, img in frames(a.source):
        x = F.interpolate(img[None].to(device), size=(h, w), mode="bilinear", align_corners=False)
        logits = model(x)  # image rank: (1, K, h, w)
        logits = F.interpolate(logits, size=img.shape[-2:], mode="bilinear", align_corners=False)
        pred = logits[0].argmax(0).cpu()
        col = colorize(pred, k, names)
        Image.fromarray(col.numpy()).save(a.out / f"{name}_seg.png")
        over = (img.permute(1, 2, 0) * 0.5 + col.float() / 255 * 0.5).clamp(0, 1)
        Image.fromarray((over * 255).to(torch.uint8).numpy()).save(a.out / f"{name}_overlay.png")
        n += 1
    print(f"segmented {n} frames into {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

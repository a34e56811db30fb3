"""Image UDA with the same blocks: every clip is one frame (T = 1), no flow.

``--method dastc`` is then DACS-style class mix + shallow-feature mix + prototype
alignment on images; the other methods and options are those of
``train_video_uda.py`` (``python examples/train_video_uda.py --help``).

Default: the built-in synthetic source → target images::

    python examples/train_image_uda.py --out runs/image_dastc

Real benchmarks (see docs/guides/real-benchmarks.md for the folder layouts)::

    python examples/train_image_uda.py --source gta5 --source-root /data/GTA5 \\
        --target cityscapes --target-root /data/cityscapes \\
        --size 512 1024 --iters 40000 --device cuda --out runs/gta5_dastc

    python examples/train_image_uda.py --source synthia --source-root /data/RAND_CITYSCAPES \\
        --target cityscapes --target-root /data/cityscapes \\
        --size 512 1024 --iters 40000 --device cuda --out runs/synthia_dastc

The example trains on ``Cityscapes(root, "train")`` without its labels and
evaluates on ``Cityscapes(root, "val")``. GTA5 → Cityscapes: the 19 Cityscapes
classes. SYNTHIA → Cityscapes, as the published numbers (DAFormer, HRDA, MIC):
the model predicts the 19 classes (SYNTHIA labels 16 of them), the mIoU
(``"miou"``, ``"scoring"`` in ``results.json``) is the mean over those 16 in the
19-class confusion matrix, and ``"scoring_13"`` gives the mean over 13 (the 16
without wall, fence and pole) of the same IoUs. ``--source`` and ``--target`` also
take these image datasets in ``train_video_uda.py`` with ``--clip-len 1``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import train_video_uda


def main(argv: list[str] | None = None) -> dict[str, object]:
    """``train_video_uda.main`` with clips of one frame (and the image datasets)."""
    return train_video_uda.main(argv, clip_len=1)


if __name__ == "__main__":
    main()

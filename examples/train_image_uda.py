"""Image UDA with the same blocks: every clip is one frame (T = 1), no flow.

``--method dastc`` is then DACS-style class mix + shallow-feature mix + prototype
alignment on images; the other methods and flags are those of
``train_video_uda.py``::

    python examples/train_image_uda.py --out runs/image_dastc
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from train_video_uda import main

if __name__ == "__main__":
    main(clip_len=1)

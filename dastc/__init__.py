"""dastc: domain-adaptation building blocks for video and image semantic segmentation.

The reference implementation of DA-STC (domain adaptive video semantic
segmentation via spatio-temporal consistency). Import a block into your own
training loop::

    from dastc import BidirectionalClipMix, ShallowFeatureMix
"""

__version__ = "0.1.0"

from dastc import functional
from dastc._validate import set_value_checks, value_checks

# --- imports (one block per module; keep sorted by module) ---

__all__ = [
    "__version__",
    "functional",
    "set_value_checks",
    "value_checks",
]

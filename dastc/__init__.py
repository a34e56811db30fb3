"""dastc: domain-adaptation building blocks for video and image semantic segmentation.

The reference implementation of DA-STC (domain adaptive video semantic
segmentation via spatio-temporal consistency). Import a block into your own
training loop::

    from dastc import BidirectionalClipMix, ShallowFeatureMix
"""

__version__ = "0.1.0"

from dastc import functional
from dastc._validate import set_value_checks, value_checks
from dastc.class_balance import ClassBalance
from dastc.distribution_alignment import DistributionAlignment

# --- imports (one block per module; keep sorted by module) ---
from dastc.functional.class_mix import ClipMixOutput
from dastc.functional.prototypes import Prototypes
from dastc.functional.pseudo_label import PseudoLabel
from dastc.inference import sliding_window_logits
from dastc.losses import IntraInterClassAlignmentLoss
from dastc.masking import BlockMasking
from dastc.metrics import (
    ConfusionMatrix,
    confusion_matrix,
    iou_from_confusion,
    mean_iou,
    upsample_logits,
)
from dastc.mixing import BidirectionalClipMix, ShallowFeatureMix
from dastc.prototypes import SpatioTemporalPrototypeAggregator
from dastc.teacher import EMATeacher
from dastc.warm_start import WarmStartGuard

__all__ = [
    "BidirectionalClipMix",
    "BlockMasking",
    "ClassBalance",
    "DistributionAlignment",
    "ClipMixOutput",
    "ConfusionMatrix",
    "EMATeacher",
    "IntraInterClassAlignmentLoss",
    "Prototypes",
    "SpatioTemporalPrototypeAggregator",
    "PseudoLabel",
    "ShallowFeatureMix",
    "WarmStartGuard",
    "confusion_matrix",
    "iou_from_confusion",
    "mean_iou",
    "sliding_window_logits",
    "upsample_logits",
    "__version__",
    "functional",
    "set_value_checks",
    "value_checks",
]

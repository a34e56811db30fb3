"""Stateless, differentiable ops: the fast core that dastc's modules call.

Every function here takes and returns tensors, works on images (rank 4) and
clips (rank 5), runs on the device and dtype of its inputs, and compiles with
``torch.compile(fullgraph=True)``.
"""

# --- imports (one block per module; keep sorted by module) ---
from dastc.flow import flow_validity, occlusion_mask, warp
from dastc.functional.alignment import prototype_infonce, prototype_mmd
from dastc.functional.augment import hue_rotation, strong_augment
from dastc.functional.class_balance import class_balanced_scores, class_confidence_stats
from dastc.functional.class_mix import ClipMixOutput, bidirectional_clip_mix, sample_class_masks
from dastc.functional.clip_augment import (
    ClipTransform,
    apply_clip_transform,
    draw_clip_transform,
)
from dastc.functional.cross_entropy import weighted_cross_entropy
from dastc.functional.distribution_alignment import align_distribution, class_distribution_stats
from dastc.functional.feature_mix import resize_mask, shallow_feature_mix
from dastc.functional.frame_prototypes import frame_mean_prototypes
from dastc.functional.masking import block_mask, mask_clip
from dastc.functional.prototypes import (
    Prototypes,
    adaptive_weights,
    class_prototypes,
    class_sums,
    confidence_weights,
    frame_reliability,
    prototypes_from_sums,
)
from dastc.functional.pseudo_label import PseudoLabel, pseudo_label, temporal_pseudo_label
from dastc.functional.vanished_classes import vanished_classes

__all__: list[str] = [
    "ClipMixOutput",
    "ClipTransform",
    "apply_clip_transform",
    "draw_clip_transform",
    "PseudoLabel",
    "Prototypes",
    "adaptive_weights",
    "block_mask",
    "mask_clip",
    "vanished_classes",
    "align_distribution",
    "class_balanced_scores",
    "class_confidence_stats",
    "class_distribution_stats",
    "hue_rotation",
    "strong_augment",
    "class_prototypes",
    "class_sums",
    "confidence_weights",
    "frame_mean_prototypes",
    "frame_reliability",
    "prototype_infonce",
    "prototype_mmd",
    "prototypes_from_sums",
    "flow_validity",
    "occlusion_mask",
    "pseudo_label",
    "temporal_pseudo_label",
    "warp",
    "weighted_cross_entropy",
    "bidirectional_clip_mix",
    "resize_mask",
    "sample_class_masks",
    "shallow_feature_mix",
]

"""Data: the built-in synthetic domain-shift clips and readers of the real benchmarks.

Every dataset yields the same item format: ``clip`` float ``(T, 3, H, W)`` in
``[0, 1]``, ``label`` long ``(T, H, W)`` (train ids or 255) and, where flow is
available, ``flow_prev`` float ``(T, 2, H, W)`` (each frame's backward flow to
the frame before it).
"""

# --- imports (one block per module; keep sorted by module) ---
from dastc.data._files import read_flow, read_image, read_label, read_list
from dastc.data._frames import ClipItem
from dastc.data.cityscapes import Cityscapes, CityscapesSeq
from dastc.data.gta5 import GTA5
from dastc.data.labelmaps import (
    CITYSCAPES_13_MAP,
    CITYSCAPES_16_MAP,
    CITYSCAPES_CLASSES,
    CITYSCAPES_MAP,
    CITYSCAPES_SYNTHIA_SEQ_11_MAP,
    CITYSCAPES_SYNTHIA_SEQ_MAP,
    CITYSCAPES_VIPER_MAP,
    EXTRA_MEANS,
    GTA5_MAP,
    IGNORE_INDEX,
    MEAN_EXCLUDES,
    SYNTHIA_13_CLASSES,
    SYNTHIA_16_CLASSES,
    SYNTHIA_16_MAP,
    SYNTHIA_MAP,
    SYNTHIA_SEQ_11_CLASSES,
    SYNTHIA_SEQ_11_MAP,
    SYNTHIA_SEQ_CLASSES,
    SYNTHIA_SEQ_MAP,
    TRAIN_ID_MAPS,
    VIPER_CLASSES,
    VIPER_MAP,
    TrainIdMap,
    get_train_id_map,
)
from dastc.data.palette import (
    CITYSCAPES_PALETTE,
    SYNTHIA_16_PALETTE,
    SYNTHIA_SEQ_PALETTE,
    VIPER_PALETTE,
    palette_for,
)
from dastc.data.rare_class_sampling import (
    RareClassSampler,
    class_pixel_counts,
    rare_class_probabilities,
)
from dastc.data.synthetic import DEFAULT_TARGET_SHIFT, Shift, SyntheticDrivingClips
from dastc.data.synthia import Synthia
from dastc.data.synthia_seq import SynthiaSeq
from dastc.data.viper import VIPER, connected_component, remove_ego_vehicle
from dastc.flow import compose_flow, flow_from_last

__all__: list[str] = [
    "CITYSCAPES_13_MAP",
    "CITYSCAPES_16_MAP",
    "CITYSCAPES_CLASSES",
    "CITYSCAPES_MAP",
    "CITYSCAPES_PALETTE",
    "CITYSCAPES_SYNTHIA_SEQ_11_MAP",
    "CITYSCAPES_SYNTHIA_SEQ_MAP",
    "CITYSCAPES_VIPER_MAP",
    "DEFAULT_TARGET_SHIFT",
    "EXTRA_MEANS",
    "GTA5",
    "GTA5_MAP",
    "IGNORE_INDEX",
    "SYNTHIA_13_CLASSES",
    "SYNTHIA_16_CLASSES",
    "SYNTHIA_16_MAP",
    "SYNTHIA_16_PALETTE",
    "SYNTHIA_MAP",
    "SYNTHIA_SEQ_11_CLASSES",
    "SYNTHIA_SEQ_11_MAP",
    "SYNTHIA_SEQ_CLASSES",
    "SYNTHIA_SEQ_MAP",
    "SYNTHIA_SEQ_PALETTE",
    "MEAN_EXCLUDES",
    "TRAIN_ID_MAPS",
    "VIPER",
    "VIPER_CLASSES",
    "VIPER_MAP",
    "VIPER_PALETTE",
    "ClipItem",
    "Cityscapes",
    "CityscapesSeq",
    "Shift",
    "SyntheticDrivingClips",
    "RareClassSampler",
    "Synthia",
    "SynthiaSeq",
    "TrainIdMap",
    "compose_flow",
    "connected_component",
    "flow_from_last",
    "get_train_id_map",
    "palette_for",
    "class_pixel_counts",
    "rare_class_probabilities",
    "read_flow",
    "read_list",
    "read_image",
    "read_label",
    "remove_ego_vehicle",
]

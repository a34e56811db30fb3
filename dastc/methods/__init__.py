"""The whole method and its baselines as modules a user imports into their own loop.

Every method is built as ``Method(student, num_classes, config=MethodConfig(...))``
and used the same way::

    method = DASTC(student, num_classes, MethodConfig(align_weight=0.1))
    for source, target in batches:           # dicts: clip, label, optional flow_prev
        out = method(source, target)         # StepOutput(loss, logs)
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
        method.after_step()                  # EMA teacher, iteration

:data:`METHODS` maps the names the example and the grid runner use to the classes.
"""

from dastc.methods.base import Method
from dastc.methods.config import PUBLIC_TAIL_CLASSES, MethodConfig
from dastc.methods.contract import LastMix, StepOutput, TwoStageSegmenter
from dastc.methods.da_stc import DASTC
from dastc.methods.image_dacs import ImageDACS
from dastc.methods.supervised import Oracle, SourceOnly

#: name -> class, in the order results tables list them
METHODS: dict[str, type[Method]] = {
    "source_only": SourceOnly,
    "oracle": Oracle,
    "image_dacs": ImageDACS,
    "dastc": DASTC,
}

__all__ = [
    "DASTC",
    "METHODS",
    "ImageDACS",
    "LastMix",
    "Method",
    "MethodConfig",
    "PUBLIC_TAIL_CLASSES",
    "Oracle",
    "SourceOnly",
    "StepOutput",
    "TwoStageSegmenter",
]

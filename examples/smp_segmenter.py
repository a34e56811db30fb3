"""A segmentation-models-pytorch model with the two stages the DA-STC blocks need.

``python examples/train_video_uda.py --model smp:<arch>:<encoder>`` builds
``SmpSegmenter(arch, encoder, K)``: ``smp.create_model(arch, encoder_name=encoder,
encoder_weights=None, classes=K)`` (nothing is downloaded), split as

* ``shallow(x)``: the encoder's first stage, whose output
  :class:`dastc.ShallowFeatureMix` mixes:

  - ResNet-style encoders (smp's ``resnet*`` and ``resnext*``, which have
    ``conv1``, ``bn1``, ``relu``, ``maxpool`` and ``layer1``...): the stem
    ``conv1 → bn1 → relu``, stride 2;
  - MiT encoders (``mit_b0`` ... ``mit_b5``, SegFormer's Mix Transformer, DA-STC's
    ViT setting ``smp:segformer:mit_b5``): the first stage, overlapping patch
    embedding ``patch_embed1`` (7×7 convolution, stride 4) ``→ block1 → norm1``,
    stride 4 (see ``smp_mit.py``);

* ``deep(f, flow_prev=None)``: the rest of the encoder (ResNet: ``maxpool``,
  ``layer1`` ...; MiT: stages 2-4), the decoder and the segmentation head;
  returns the decoder's output (the deep features for prototype alignment) and
  the logits at input size, fused with the previous frame by
  :class:`temporal_fusion.TemporalFusion` when ``flow_prev`` is given.

so that ``model(x) == model.deep(model.shallow(x))[1]`` and, without flow, equals
the smp model's own forward on the normalised frames, frame by frame. Other
encoders (``efficientnet-*``, ``mobilenet_v2``, ``tu-*`` ...) raise a
``ValueError`` naming what is missing. Any smp architecture that takes the
encoder works; for MiT (smp >= 0.4, whose ``segformer`` arch is the SegFormer
all-MLP head, 256 channels) that is ``segformer``, ``unet``, ``fpn``,
``upernet``, ``manet``, ``pspnet``, ``deeplabv3`` and ``deeplabv3plus`` (smp
refuses ``unetplusplus``, ``linknet`` and ``dpt``). Height and width must be
divisible by the encoder's output stride (``model.output_stride``: 32, 16 for
deeplabv3plus, 8 for deeplabv3 and pspnet).

Input clips in ``[0, 1]`` are normalised with the ImageNet mean and standard
deviation first, as torchvision's, smp's and SegFormer's pretrained encoders
expect.

Pretrained weights come from a local file (``--model-weights PATH``): a state
dict of the whole smp model (keys ``encoder.…``, ``decoder.…``), of the encoder
alone (e.g. torchvision's ResNet weights, ``fc.*`` dropped, or SegFormer's
ImageNet ``mit_b5.pth``, with the same key names as smp's MiT, ``head.*``
dropped) or of an ``SmpSegmenter`` (e.g. ``checkpoint.pt``'s ``"student"`` of
an earlier run). A ``state_dict``/``model``/``student`` wrapper and a
``module.`` or ``model.`` prefix are removed. With pretrained weights the
encoder's BatchNorm layers are frozen (eval mode, not trained), as in DACS:
the student's batches mix source, target and mixed clips, and the EMA teacher
predicts with running statistics. (MiT has LayerNorms only: nothing to freeze.)

Needs ``pip install "dastc[smp]"`` (segmentation-models-pytorch, which needs a
torchvision that imports beside your torch).
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from smp_mit import MIT_STRIDE, is_mit, mit_features, mit_shallow
from temporal_fusion import TemporalFusion
from torch import Tensor, nn

__all__ = ["SmpSegmenter", "parse_smp_name"]

_STEM = ("conv1", "bn1", "relu", "maxpool", "layer1")  # a ResNet-style encoder
_CLASSIFIERS = ("fc.", "head.")  # torchvision ResNet's, SegFormer's MiT ImageNet head
_WRAPPERS = ("state_dict", "model", "student")
_PREFIXES = ("module.", "model.")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def parse_smp_name(name: str) -> tuple[str, str]:
    """``"smp:<arch>:<encoder>"`` -> ``(arch, encoder)``; ``ValueError`` otherwise."""
    parts = name.split(":")
    if len(parts) != 3 or parts[0] != "smp" or not parts[1] or not parts[2]:
        raise ValueError(
            f"model: expected 'smp:<arch>:<encoder>' (e.g. smp:unet:resnet18), got {name!r}"
        )
    return parts[1], parts[2]


def _import_smp() -> Any:
    try:
        import segmentation_models_pytorch as smp
    except Exception as e:  # ImportError, or torchvision failing to load its operators
        raise ImportError(
            "--model smp:...: segmentation-models-pytorch does not import here "
            f"({type(e).__name__}: {e}). Install it with pip install 'dastc[smp]'; it needs a "
            "torchvision built for your torch."
        ) from e
    return smp


class SmpSegmenter(nn.Module):
    """An smp model split into ``shallow`` and ``deep`` stages, with temporal fusion.

    Args:
        arch: an smp architecture name (``"unet"``, ``"fpn"``, ``"deeplabv3plus"`` ...).
        encoder: a ResNet-style or MiT smp encoder name (``"resnet18"``,
            ``"resnet101"``, ``"mit_b0"`` ... ``"mit_b5"``).
        num_classes: ``K``.
        weights: optional local state-dict file (see the module docstring).
        freeze_bn: keep the encoder's BatchNorm layers in eval mode and untrained
            (default: when ``weights`` are given).

    Shapes (``H``, ``W`` divisible by ``output_stride``, the encoder's, 32 by default):
        * ``forward(x, flow_prev=None)``: ``(B, T, 3, H, W) -> (B, T, K, H, W)`` or
          ``(B, 3, H, W) -> (B, K, H, W)``.
        * ``shallow(x)``: ``-> (B[, T], C1, H/s, W/s)``, ``C1 = shallow_channels``,
          ``s = shallow_stride`` (2 for ResNet, 4 for MiT).
        * ``deep(f, flow_prev=None)``: ``-> (deep (B[, T], deep_channels, h', w'),
          logits (B[, T], K, H, W))``; ``h', w'`` is the decoder's output size.

    Raises:
        ImportError: segmentation-models-pytorch does not import.
        ValueError: unknown architecture or encoder, an encoder that is neither
            ResNet-style nor MiT, or a weights file that is not a state dict of the model.
    """

    def __init__(
        self,
        arch: str,
        encoder: str,
        num_classes: int,
        weights: str | Path | None = None,
        freeze_bn: bool | None = None,
    ) -> None:
        super().__init__()
        smp = _import_smp()
        try:
            self.net = smp.create_model(
                arch, encoder_name=encoder, encoder_weights=None, classes=num_classes
            )
        except KeyError as e:
            raise ValueError(
                f"unknown smp architecture {arch!r} or encoder {encoder!r} ({e.args[0]})"[:400]
            ) from e
        enc = self.net.encoder
        missing = [a for a in _STEM if not hasattr(enc, a)]
        # "resnet" or "mit": the split shallow/deep use (a name, not bound methods, so
        # that a deep copy such as the EMA teacher runs its own encoder)
        self.family = "resnet" if not missing else "mit" if is_mit(enc) else ""
        if not self.family:
            raise ValueError(
                f"encoder {encoder!r} has no {', '.join(missing)}; the shallow/deep split "
                "of --model smp needs a ResNet-style encoder (resnet18 ... resnet152, "
                "resnext50_32x4d ...) or a MiT one (mit_b0 ... mit_b5)"
            )
        self.num_classes = num_classes
        self.output_stride = int(enc.output_stride)
        self.shallow_stride = MIT_STRIDE if self.family == "mit" else 2
        # MiT's out_channels are [3, 0, C1, ...]: 0 for the stride-2 level it lacks
        self.shallow_channels = int(enc.out_channels[2 if self.family == "mit" else 1])
        head = next(m for m in self.net.segmentation_head.modules() if isinstance(m, nn.Conv2d))
        self.deep_channels = int(head.in_channels)
        self.fuse = TemporalFusion(num_classes)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(3, 1, 1), persistent=False)
        self.freeze_bn = weights is not None if freeze_bn is None else freeze_bn
        if weights is not None:
            self.load_weights(weights)
        if self.freeze_bn:
            for m in self._encoder_norms():
                for p in m.parameters():
                    p.requires_grad_(False)
            self.train(self.training)

    def _encoder_norms(self) -> list[nn.Module]:
        norm = nn.modules.batchnorm._NormBase
        return [m for m in self.net.encoder.modules() if isinstance(m, norm)]

    def train(self, mode: bool = True) -> SmpSegmenter:
        """As ``nn.Module.train``; frozen encoder BatchNorm layers stay in eval mode."""
        super().train(mode)
        if self.freeze_bn:
            for m in self._encoder_norms():
                m.eval()
        return self

    def load_weights(self, path: str | Path) -> None:
        """Load a local state dict into the whole model or into the encoder.

        Prints how many tensors were loaded, which of the model's stayed as
        initialised and which of the file's were not used.

        Raises:
            ValueError: the file is not a state dict, or none of its keys names a
                parameter or buffer of the model or its encoder.
        """
        try:
            sd = torch.load(path, map_location="cpu", weights_only=True)
        except (OSError, pickle.UnpicklingError, RuntimeError) as e:
            raise ValueError(
                f"model_weights: {path}: cannot read a state dict ({type(e).__name__}: "
                f"{str(e).splitlines()[0] if str(e) else ''})"
            ) from e
        while isinstance(sd, Mapping):  # {"state_dict": {...}}, checkpoint.pt's "student"
            inner = next((sd[k] for k in _WRAPPERS if isinstance(sd.get(k), Mapping)), None)
            if inner is None:
                break
            sd = inner
        if isinstance(sd, Mapping):
            sd = {k: v for k, v in sd.items() if isinstance(k, str) and isinstance(v, Tensor)}
        if not isinstance(sd, dict) or not sd:
            raise ValueError(f"model_weights: {path}: expected a state dict (name -> tensor)")
        for prefix in _PREFIXES:  # DDP's module., an EMA teacher's model.
            if all(k.startswith(prefix) for k in sd):
                sd = {k[len(prefix) :]: v for k, v in sd.items()}
        target: nn.Module = self.net
        if any(k.startswith("net.") for k in sd):  # an SmpSegmenter (with its fusion)
            target = self
        elif not any(k.startswith(("encoder.", "decoder.")) for k in sd):
            target = self.net.encoder
            sd = {k: v for k, v in sd.items() if not k.startswith(_CLASSIFIERS)}
        own = target.state_dict()
        matched = [k for k in sd if k in own and own[k].shape == sd[k].shape]
        if not matched:
            raise ValueError(
                f"model_weights: {path}: none of its {len(sd)} keys matches the model "
                f"(e.g. {next(iter(sd), None)!r} vs {next(iter(own))!r})"
            )
        nn.Module.load_state_dict(target, {k: sd[k] for k in matched}, strict=False)
        left = [k for k in own if k not in matched and not k.endswith("num_batches_tracked")]
        unused = [k for k in sd if k not in matched]
        print(
            f"model_weights: {path}: loaded {len(matched)} tensors; {len(left)} of the model "
            f"left as initialised{f' (e.g. {left[0]})' if left else ''}; {len(unused)} of the "
            f"file unused{f' (e.g. {unused[0]})' if unused else ''}"
        )

    @staticmethod
    def _frames(x: Tensor, name: str) -> tuple[Tensor, tuple[int, int] | None]:
        if x.dim() == 5:
            return x.flatten(0, 1), (x.shape[0], x.shape[1])
        if x.dim() != 4:
            raise ValueError(
                f"{name}: expected (B, T, C, H, W) or (B, C, H, W), got {tuple(x.shape)}"
            )
        return x, None

    @staticmethod
    def _unframes(y: Tensor, bt: tuple[int, int] | None) -> Tensor:
        return y if bt is None else y.unflatten(0, bt)

    def shallow(self, x: Tensor) -> Tensor:
        """ImageNet normalisation and the encoder's first stage: ``(B[, T], 3, H, W)``
        in ``[0, 1]`` ``-> (B[, T], C1, H/s, W/s)``, ``s = shallow_stride``."""
        xf, bt = self._frames(x, "x")
        stride = self.output_stride
        if xf.shape[-2] % stride or xf.shape[-1] % stride:
            raise ValueError(
                f"x: height and width must be divisible by {stride} (the output stride of "
                f"encoder {self.net.encoder.__class__.__name__}), got {tuple(xf.shape[-2:])}"
            )
        enc = self.net.encoder
        xf = (xf - self.mean.to(xf.dtype)) / self.std.to(xf.dtype)
        if self.family == "mit":
            return self._unframes(mit_shallow(enc, xf), bt)
        return self._unframes(enc.relu(enc.bn1(enc.conv1(xf))), bt)

    def _features(self, f: Tensor) -> list[Tensor]:
        """The encoder's feature list (what its forward returns) from shallow features."""
        enc = self.net.encoder
        if self.family == "mit":
            return mit_features(enc, f)
        # the decoders read only the shape of the input-resolution entry
        features = [f.new_empty(f.shape[0], 0, 2 * f.shape[-2], 2 * f.shape[-1]), f]
        x = f
        stages = [lambda t: enc.layer1(enc.maxpool(t)), enc.layer2, enc.layer3, enc.layer4]
        for stage in stages[: len(enc.out_channels) - 2]:  # the encoder's depth - 1
            x = stage(x)
            features.append(x)
        return features

    def deep(self, feats: Tensor, flow_prev: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Rest of the encoder, decoder and head; see the class docstring for shapes."""
        ff, bt = self._frames(feats, "feats")
        size = (self.shallow_stride * ff.shape[-2], self.shallow_stride * ff.shape[-1])
        dec = self.net.decoder(self._features(ff))
        logits = self.net.segmentation_head(dec)
        if logits.shape[-2:] != size:
            logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
        deep, logits = self._unframes(dec, bt), self._unframes(logits, bt)
        if flow_prev is not None:
            if bt is None:
                raise ValueError("flow_prev: temporal fusion needs a clip (B, T, C, h, w)")
            logits = self.fuse(logits, flow_prev)
        return deep, logits

    def forward(self, x: Tensor, flow_prev: Tensor | None = None) -> Tensor:
        """Logits at input size, the rank of ``x``."""
        return self.deep(self.shallow(x), flow_prev)[1]

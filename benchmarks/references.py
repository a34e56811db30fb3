"""Plain reference implementations that the benchmarks time dastc's ops against.

Each one computes what the dastc op computes, written the way public
domain-adaptive segmentation code (DACS, DAFormer, ADVENT, TPS) writes it:
Python loops over clips, frames and classes, boolean-mask indexing, a class
mask built by broadcasting the label map against the chosen classes, ``.item()``
reads, one ``grid_sample`` per frame, a per-parameter EMA loop. They are
deliberately unoptimised: they are the baseline a user would otherwise run.
``run.py`` checks that each one agrees with the dastc op before timing it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "class_mix_reference",
    "class_prototypes_reference",
    "confusion_reference",
    "ema_update_reference",
    "feature_mix_reference",
    "infonce_reference",
    "pseudo_label_reference",
    "resnet101_standin",
    "warp_reference",
]


# ---------------------------------------------------------------- clip mix
def generate_class_mask(label: Tensor, classes: Tensor) -> Tensor:
    """ClassMix's mask: broadcast ``(H, W)`` against ``(n,)`` classes, sum the matches."""
    pred, cls = torch.broadcast_tensors(label.unsqueeze(0), classes.unsqueeze(1).unsqueeze(2))
    return pred.eq(cls).sum(0)


def one_mix(mask: Tensor, a: Tensor, b: Tensor) -> Tensor:
    """``mask * a + (1 - mask) * b`` with the mask broadcast over channels (DACS ``oneMix``)."""
    stacked, _ = torch.broadcast_tensors(mask, a)
    return stacked * a + (1 - stacked) * b


def _draw(label_clip: Tensor, ignore_index: int, rng: np.random.Generator) -> Tensor:
    classes = torch.unique(label_clip)
    classes = classes[classes != ignore_index]
    n = classes.shape[0]
    choice = rng.choice(n, int((n + n % 2) / 2), replace=False)
    return classes[torch.as_tensor(choice, dtype=torch.long, device=classes.device)]


def class_mix_reference(
    src_clip: Tensor,
    src_label: Tensor,
    tgt_clip: Tensor,
    tgt_label: Tensor,
    tgt_weight: Tensor,
    ignore_index: int = 255,
    *,
    src_classes: Sequence[Tensor] | None = None,
    tgt_classes: Sequence[Tensor] | None = None,
    rng: np.random.Generator | None = None,
) -> dict[str, Tensor]:
    """Bidirectional ClassMix of clips with a loop over clips and frames.

    Per clip: ``torch.unique`` of its labels, half of the classes drawn with
    ``np.random.choice``; per frame: :func:`generate_class_mask` and :func:`one_mix`
    for clip, label and weight, in both directions. ``src_classes``/``tgt_classes``
    fix the drawn classes per clip (to compare with dastc's draw).

    Returns:
        dict with ``s2t_clip, s2t_label, s2t_weight, t2s_clip, t2s_label, t2s_weight``
        (clip shapes ``(B, T, ...)``; masks as long 0/1).
    """
    rng = rng if rng is not None else np.random.default_rng(0)
    B, T = src_label.shape[:2]
    out: dict[str, list[Tensor]] = {
        k: []
        for k in ("s2t_clip", "s2t_label", "s2t_weight", "t2s_clip", "t2s_label", "t2s_weight")
    }
    for b in range(B):
        cs = src_classes[b] if src_classes is not None else _draw(src_label[b], ignore_index, rng)
        ct = tgt_classes[b] if tgt_classes is not None else _draw(tgt_label[b], ignore_index, rng)
        for t in range(T):
            ms = generate_class_mask(src_label[b, t], cs)
            mt = generate_class_mask(tgt_label[b, t], ct)
            one = torch.ones_like(tgt_weight[b, t])
            out["s2t_clip"].append(one_mix(ms.unsqueeze(0), src_clip[b, t], tgt_clip[b, t]))
            out["s2t_label"].append(one_mix(ms, src_label[b, t], tgt_label[b, t]))
            out["s2t_weight"].append(one_mix(ms, one, tgt_weight[b, t]))
            out["t2s_clip"].append(one_mix(mt.unsqueeze(0), tgt_clip[b, t], src_clip[b, t]))
            out["t2s_label"].append(one_mix(mt, tgt_label[b, t], src_label[b, t]))
            out["t2s_weight"].append(one_mix(mt, tgt_weight[b, t], one))
    return {k: torch.stack(v).unflatten(0, (B, T)) for k, v in out.items()}


# ---------------------------------------------------------------- feature mix
def feature_mix_reference(
    src_feat: Tensor, tgt_feat: Tensor, s2t_mask: Tensor, t2s_mask: Tensor
) -> tuple[Tensor, Tensor]:
    """Per frame: nearest-resize the mask (as float) and ``m * a + (1 - m) * b``."""
    B, T, _, h, w = src_feat.shape
    s2t, t2s = [], []
    for b in range(B):
        for t in range(T):
            ms = F.interpolate(s2t_mask[b, t][None, None].float(), size=(h, w), mode="nearest")[0]
            mt = F.interpolate(t2s_mask[b, t][None, None].float(), size=(h, w), mode="nearest")[0]
            s2t.append(ms * src_feat[b, t] + (1 - ms) * tgt_feat[b, t])
            t2s.append(mt * tgt_feat[b, t] + (1 - mt) * src_feat[b, t])
    return torch.stack(s2t).unflatten(0, (B, T)), torch.stack(t2s).unflatten(0, (B, T))


# ---------------------------------------------------------------- prototypes
def class_prototypes_reference(
    features: Tensor,
    labels: Tensor,
    num_classes: int,
    weights: Tensor | None = None,
    ignore_index: int = 255,
) -> tuple[Tensor, Tensor]:
    """Per-class weighted mean features with a loop over clips, frames and classes.

    Per frame the labels (and weights) are nearest-resized to the feature map; per
    class ``mask = label == k`` selects ``feat[:, mask]`` (boolean indexing), whose
    (weighted) sum and count are accumulated over every frame of every clip; the
    prototype is ``sum / count`` (0 for an absent class). ``ignore_index`` never
    matches a class. Differentiable w.r.t. ``features``.

    Returns:
        ``(vectors (K, C), counts (K,))``.
    """
    del ignore_index  # never equal to a class id in [0, K)
    B, T, C, h, w = features.shape
    sums: list[list[Tensor]] = [[] for _ in range(num_classes)]
    counts: list[list[Tensor]] = [[] for _ in range(num_classes)]
    for b in range(B):
        for t in range(T):
            lab = F.interpolate(labels[b, t][None, None].float(), size=(h, w), mode="nearest")
            lab = lab[0, 0].long()
            wt = None
            if weights is not None:
                wt = F.interpolate(weights[b, t][None, None], size=(h, w), mode="nearest")[0, 0]
            feat = features[b, t]
            for k in range(num_classes):
                mask = lab == k
                if not mask.any():
                    continue
                if wt is None:
                    sums[k].append(feat[:, mask].sum(1))
                    counts[k].append(mask.sum().to(feat.dtype))
                else:
                    sums[k].append((feat[:, mask] * wt[mask]).sum(1))
                    counts[k].append(wt[mask].sum())
    vectors, totals = [], []
    for k in range(num_classes):
        if sums[k]:
            s, n = torch.stack(sums[k]).sum(0), torch.stack(counts[k]).sum()
            vectors.append(s / n if n > 0 else torch.zeros_like(s))
            totals.append(n)
        else:
            vectors.append(features.new_zeros(C))
            totals.append(features.new_zeros(()))
    return torch.stack(vectors), torch.stack(totals)


# ---------------------------------------------------------------- alignment
def infonce_reference(
    src: Tensor,
    tgt: Tensor,
    src_present: Tensor,
    tgt_present: Tensor,
    temperature: float = 0.1,
) -> Tensor:
    """Symmetric prototype InfoNCE with loops over classes (cosine per pair).

    For every class present in both domains: ``-log softmax`` of the cosine
    similarities (over the other domain's present classes) at the class itself,
    averaged over both directions and over the classes.
    """
    K = src.shape[0]
    both = [k for k in range(K) if bool(src_present[k]) and bool(tgt_present[k])]
    src_idx = [j for j in range(K) if bool(src_present[j])]
    tgt_idx = [j for j in range(K) if bool(tgt_present[j])]
    losses = []
    for k in both:
        ts = torch.stack([F.cosine_similarity(tgt[k], src[j], dim=0) for j in src_idx])
        st = torch.stack([F.cosine_similarity(src[k], tgt[j], dim=0) for j in tgt_idx])
        l_ts = -torch.log_softmax(ts / temperature, 0)[src_idx.index(k)]
        l_st = -torch.log_softmax(st / temperature, 0)[tgt_idx.index(k)]
        losses.append(0.5 * (l_ts + l_st))
    if not losses:
        return (src.sum() + tgt.sum()) * 0.0
    return torch.stack(losses).mean()


# ---------------------------------------------------------------- EMA teacher
class _Bottleneck(nn.Module):
    def __init__(self, cin: int, width: int, stride: int, downsample: bool) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, 4 * width, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(4 * width)
        self.downsample = (
            nn.Sequential(
                nn.Conv2d(cin, 4 * width, 1, stride, bias=False), nn.BatchNorm2d(4 * width)
            )
            if downsample
            else None
        )


def resnet101_standin(num_classes: int = 1000, width_div: int = 1) -> nn.Module:
    """A module with exactly the parameter and buffer tensors of a torchvision ResNet-101.

    Bottleneck blocks ``[3, 4, 23, 3]``, BatchNorm everywhere, a ``2048 -> 1000``
    classifier: 44.5M parameters in 314 tensors plus 312 buffers (626 tensors). It has
    no ``forward``: it only carries the tensors an EMA update walks over.
    ``width_div`` divides every width (same 626 tensors, about ``1 / width_div**2`` of
    the parameters).
    """
    model = nn.Module()
    stem = 64 // width_div
    model.conv1 = nn.Conv2d(3, stem, 7, 2, 3, bias=False)
    model.bn1 = nn.BatchNorm2d(stem)
    cin = stem
    widths = tuple(w // width_div for w in (64, 128, 256, 512))
    for i, (blocks, width) in enumerate(zip((3, 4, 23, 3), widths, strict=True)):
        layer = nn.Sequential()
        for j in range(blocks):
            stride = 2 if (j == 0 and i > 0) else 1
            layer.append(_Bottleneck(cin, width, stride, downsample=(j == 0)))
            cin = 4 * width
        setattr(model, f"layer{i + 1}", layer)
    model.fc = nn.Linear(cin, num_classes)
    return model


@torch.no_grad()
def ema_update_reference(teacher: nn.Module, student: nn.Module, momentum: float) -> None:
    """The per-tensor EMA loop: ``p_t.mul_(m).add_(p_s, alpha=1 - m)``; integer buffers copied."""
    for p_t, p_s in zip(teacher.parameters(), student.parameters(), strict=True):
        p_t.mul_(momentum).add_(p_s, alpha=1 - momentum)
    for b_t, b_s in zip(teacher.buffers(), student.buffers(), strict=True):
        if b_t.is_floating_point():
            b_t.mul_(momentum).add_(b_s, alpha=1 - momentum)
        else:
            b_t.copy_(b_s)


# ---------------------------------------------------------------- pseudo-labels
def pseudo_label_reference(
    logits: Tensor, threshold: float = 0.968
) -> tuple[Tensor, Tensor, Tensor]:
    """DACS pseudo-labels per clip: softmax, max, and the confident fraction via ``.item()``.

    Returns:
        ``(label, confidence, weight)`` each ``(B, T, H, W)``.
    """
    labels, confs, weights = [], [], []
    for b in range(logits.shape[0]):
        max_probs, pseudo_label = torch.max(torch.softmax(logits[b].detach(), dim=1), dim=1)
        ps_large_p = max_probs.gt(threshold).long() == 1
        ps_size = np.size(np.array(pseudo_label.cpu()))
        pseudo_weight = torch.sum(ps_large_p).item() / ps_size
        labels.append(pseudo_label)
        confs.append(max_probs)
        weights.append(pseudo_weight * torch.ones(max_probs.shape, device=logits.device))
    return torch.stack(labels), torch.stack(confs), torch.stack(weights)


# ---------------------------------------------------------------- flow warping
def warp_reference(x: Tensor, flow: Tensor) -> Tensor:
    """Backward warp, one ``grid_sample`` per frame with a grid built from the flow.

    ``out[b, t, :, y, x] = x[b, t, :, y + fy, x + fx]`` (bilinear, zeros outside).
    """
    B, T, _, H, W = x.shape
    ys, xs = torch.meshgrid(
        torch.arange(H, dtype=x.dtype, device=x.device),
        torch.arange(W, dtype=x.dtype, device=x.device),
        indexing="ij",
    )
    out = []
    for b in range(B):
        for t in range(T):
            gx = (xs + flow[b, t, 0]) * 2 / max(W - 1, 1) - 1
            gy = (ys + flow[b, t, 1]) * 2 / max(H - 1, 1) - 1
            grid = torch.stack((gx, gy), dim=-1)[None]
            out.append(
                F.grid_sample(
                    x[b, t][None], grid, mode="bilinear", padding_mode="zeros", align_corners=True
                )[0]
            )
    return torch.stack(out).unflatten(0, (B, T))


# ---------------------------------------------------------------- metrics
def _fast_hist(a: np.ndarray, b: np.ndarray, n: int) -> np.ndarray:
    k = (a >= 0) & (a < n)
    return np.bincount(n * a[k].astype(int) + b[k], minlength=n**2).reshape(n, n)


def confusion_reference(pred: Tensor, target: Tensor, num_classes: int) -> np.ndarray:
    """ADVENT's ``fast_hist`` per frame on host arrays (rows = label, columns = prediction)."""
    hist = np.zeros((num_classes, num_classes), dtype=np.int64)
    p = pred.reshape(-1, *pred.shape[-2:]).cpu().numpy()
    t = target.reshape(-1, *target.shape[-2:]).cpu().numpy()
    for i in range(p.shape[0]):
        hist += _fast_hist(t[i].flatten(), p[i].flatten(), num_classes)
    return hist

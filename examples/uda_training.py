"""The DA-STC training loop composed from dastc's blocks, shared by the UDA examples.

One iteration (see the method description in the docs):

1. the EMA teacher predicts on the target clip (with the flow-fused temporal
   model): pseudo-labels, confidence, a per-clip quality weight;
2. ``BidirectionalClipMix`` builds source→target and target→source clips (and
   their flows) from one class set per clip, then a strong augmentation;
3. ``ShallowFeatureMix`` mixes the student's shallow features of the source and
   target clips with the same masks;
4. ``SpatioTemporalPrototypeAggregator`` builds class prototypes of the deep
   features per domain (target weighted by confidence × frame reliability), and
   ``IntraInterClassAlignmentLoss`` aligns them;
5. loss = CE(source) + weighted CE on both mixed clips and both feature-mixed
   paths + λ · alignment; the teacher follows the student by EMA.
"""

from __future__ import annotations

import json
import math
import os
import signal
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
import uda_dist
from torch import Tensor, nn
from uda_data import (
    CachedDataset,
    DataSpec,
    EpochOrder,
    _Subset,
    batches,
    build_datasets,
    val_batches,
)

import dastc
from dastc import functional as DF

METHODS = ("dastc", "source_only", "image_dacs", "oracle")


@dataclass
class Config:
    """Everything that defines a run; saved in results.json and in checkpoints."""

    method: str = "dastc"
    iters: int = 1200
    batch: int = 4
    lr: float = 2e-3
    weight_decay: float = 1e-4
    ema: float = 0.99
    pseudo_threshold: float = 0.968
    pseudo_weight: str = "clip"
    class_balance: bool = True
    class_fraction: float = 0.5
    align_weight: float = 0.1
    align_kind: str = "infonce"
    align_temperature: float = 0.1
    align_memory: bool = True
    feature_blend: float = 1.0
    clip_mix: bool = True
    s2t: bool = True
    t2s: bool = True
    feature_mix: bool = True
    align: bool = True
    temporal: bool = True
    adaptive_weights: bool = True
    strong_aug: bool = True
    hue_jitter: float = 0.0
    rare_below: float = 0.0
    dist_align: bool = False
    adapt_start: int = 300
    model: str = "tiny"
    model_weights: str | None = None
    width: int = 32
    data: DataSpec = field(default_factory=DataSpec)
    seed: int = 0
    eval_every: int = 300
    log_every: int = 25
    ckpt_every: int = 300
    on_nan: str = "stop"
    threads: int = 0
    device: str = "cpu"
    render_workers: int = 2

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method: expected one of {METHODS}, got {self.method!r}")
        if isinstance(self.data, dict):
            d = dict(self.data)
            d["size"] = tuple(d["size"])
            self.data = DataSpec(**d)

    @property
    def adapts(self) -> bool:
        return self.method in ("dastc", "image_dacs")

    @property
    def use_align(self) -> bool:
        return self.method == "dastc" and self.align

    @property
    def use_temporal(self) -> bool:
        return self.method != "image_dacs" and self.temporal and self.data.clip_len > 1


def build_model(cfg: Config, num_classes: int, init_weights: bool = True) -> nn.Module:
    """The example's segmenter: ``--model tiny`` (the built-in temporal model) or
    ``--model smp:<arch>:<encoder>`` (a segmentation-models-pytorch model; see
    ``smp_segmenter.py``), initialised from ``cfg.model_weights`` when
    ``init_weights`` (a run restored from a checkpoint does not need them).

    Any model with the same three methods can be dropped in here: ``forward(clip,
    flow_prev=None)``, ``shallow(clip)`` and ``deep(shallow_feats, flow_prev=None) ->
    (deep_feats, logits)``, plus a ``deep_channels`` attribute.
    """
    if cfg.model == "tiny":
        from tiny_segmenter import TinySegmenter

        if cfg.model_weights is not None:
            raise SystemExit("--model-weights: only for --model smp:<arch>:<encoder>")
        w = cfg.width
        return TinySegmenter(num_classes, widths=(w // 2, w, 2 * w), deep_channels=3 * w // 2)
    if cfg.model.startswith("smp:"):
        from smp_segmenter import SmpSegmenter, parse_smp_name

        try:
            arch, encoder = parse_smp_name(cfg.model)
            weights = cfg.model_weights if init_weights else None
            # frozen encoder BatchNorm whenever pretrained weights are (or were) loaded
            model = SmpSegmenter(
                arch, encoder, num_classes, weights, freeze_bn=cfg.model_weights is not None
            )
        except (ImportError, ValueError) as e:
            raise SystemExit(f"--model {cfg.model}: {e}") from e
        h, w = cfg.data.size
        if h % model.output_stride or w % model.output_stride:
            raise SystemExit(
                f"--size: {cfg.model} needs a height and width divisible by "
                f"{model.output_stride}, got {h} {w}"
            )
        return model
    raise SystemExit(
        f"--model: expected 'tiny' or 'smp:<arch>:<encoder>' (see build_model for adding "
        f"your own), got {cfg.model!r}"
    )


# ---------------------------------------------------------------- augmentation
def strong_augment(
    clip: Tensor, g: torch.Generator, p_jitter: float = 0.8, hue: float = 0.0
) -> Tensor:
    """Colour jitter and Gaussian blur with the same parameters for every frame of a clip.

    Brightness, contrast and saturation factors in [0.8, 1.2] and, with
    ``hue > 0``, a hue rotation about the grey axis of up to ``hue`` of a turn
    (DACS uses 0.1: ±36 degrees), applied together with probability
    ``p_jitter``; blur with probability 0.5, sigma in [0.15, 1.15].

    clip: float ``(B, T, 3, H, W)`` in [0, 1] -> same shape.
    """
    B, T, C, H, W = clip.shape
    dev = clip.device

    def u(lo: float, hi: float) -> Tensor:
        return (lo + (hi - lo) * torch.rand(B, generator=g, device=dev)).view(B, 1, 1, 1, 1)

    on = (torch.rand(B, generator=g, device=dev) < p_jitter).view(B, 1, 1, 1, 1)
    bright, contrast, sat = u(0.8, 1.2), u(0.8, 1.2), u(0.8, 1.2)
    x = clip * bright
    grey = (x * torch.tensor([0.299, 0.587, 0.114], device=dev).view(1, 1, 3, 1, 1)).sum(2, True)
    x = (x - grey.mean((-2, -1), True)) * contrast + grey.mean((-2, -1), True)
    grey = (x * torch.tensor([0.299, 0.587, 0.114], device=dev).view(1, 1, 3, 1, 1)).sum(2, True)
    x = grey + (x - grey) * sat
    if hue > 0:
        rot = _hue_rotation(u(-hue, hue).view(B) * 2 * math.pi)
        x = torch.einsum("bij,btjhw->btihw", rot, x)
    x = torch.where(on, x, clip)
    sigma = u(0.15, 1.15).view(B)
    blur_on = torch.rand(B, generator=g, device=dev) < 0.5
    r = 2
    t = torch.arange(-r, r + 1, device=dev, dtype=clip.dtype)
    k = torch.exp(-(t.view(1, -1) ** 2) / (2 * sigma.view(-1, 1) ** 2))
    k = k / k.sum(1, keepdim=True)
    ident = torch.zeros_like(k)
    ident[:, r] = 1
    k = torch.where(blur_on.view(B, 1), k, ident)  # (B, 2r+1)
    kk = k.repeat_interleave(T * C, 0)  # (B*T*C, 2r+1)
    y = x.reshape(1, B * T * C, H, W)
    y = F.conv2d(
        F.pad(y, (r, r, 0, 0), mode="reflect"), kk.view(-1, 1, 1, 2 * r + 1), groups=B * T * C
    )
    y = F.conv2d(
        F.pad(y, (0, 0, r, r), mode="reflect"), kk.view(-1, 1, 2 * r + 1, 1), groups=B * T * C
    )
    return y.view(B, T, C, H, W).clamp(0, 1)


def _hue_rotation(angle: Tensor) -> Tensor:
    """``(B, 3, 3)`` rotations of RGB about the grey axis by ``angle`` ``(B,)`` radians."""
    k = torch.full((3,), 3**-0.5, device=angle.device, dtype=angle.dtype)
    cross = (
        torch.tensor(
            [[0.0, -1.0, 1.0], [1.0, 0.0, -1.0], [-1.0, 1.0, 0.0]],
            device=angle.device,
            dtype=angle.dtype,
        )
        * 3**-0.5
    )
    c, s = angle.cos().view(-1, 1, 1), angle.sin().view(-1, 1, 1)
    eye = torch.eye(3, device=angle.device, dtype=angle.dtype)
    return c * eye + s * cross + (1 - c) * torch.outer(k, k)


@torch.no_grad()
def balance_classes(logits: Tensor, running: Tensor, momentum: float = 0.99) -> Tensor:
    """Class-balanced pseudo-label scores (self-adaptive per-class thresholds, as in CBST).

    ``running`` ``(K,)`` holds, per class, a running mean of the teacher's
    confidence on the pixels it labels with that class; it is updated in place
    (classes absent from the batch keep their value). The returned scores are
    ``log(p_k / running_k)``: their argmax lets a class the teacher predicts with
    lower confidence (small objects) win a pixel it would otherwise lose to a
    confidently predicted large class.

    logits: float ``(B, T, K, H, W)`` -> scores of the same shape.
    """
    K = logits.shape[2]
    prob = logits.float().softmax(dim=2)
    conf, lab = prob.max(dim=2)
    lab, conf = lab.flatten(), conf.flatten()
    stats = torch.zeros(2, K, device=prob.device)
    stats[0].scatter_add_(0, lab, conf)
    stats[1].scatter_add_(0, lab, torch.ones_like(conf))
    sums, cnt = uda_dist.sum_all(stats)  # the same running means on every process
    mean = torch.where(cnt > 0, sums / cnt.clamp(min=1), running)
    running.lerp_(mean, 1 - momentum)
    return (prob / running.view(1, 1, K, 1, 1)).clamp(min=1e-12).log()


def rare_classes(ds: Any, num_classes: int, below: float, max_clips: int = 64) -> list[int]:
    """Classes whose pixel share in (up to ``max_clips`` evenly spaced) clips of ``ds``
    is below ``below``; the S→T mix pastes them whenever a source clip has them."""
    if below <= 0:
        return []
    n = len(ds)
    idx = sorted({int(i * n / min(n, max_clips)) for i in range(min(n, max_clips))})
    counts = torch.zeros(num_classes + 1, dtype=torch.float64)
    for i in idx:
        y = ds[i]["label"].flatten()
        counts += torch.bincount(y.clamp(max=num_classes), minlength=num_classes + 1).double()
    share = counts[:num_classes] / counts[:num_classes].sum().clamp(min=1)
    return [k for k in range(num_classes) if 0 < share[k] < below]


# ---------------------------------------------------------------- the trainer
class Trainer:
    """Holds every stateful piece of a run; one call of :meth:`step` is one iteration."""

    def __init__(
        self,
        cfg: Config,
        out: Path,
        device: torch.device | None = None,
        init_weights: bool = True,
    ) -> None:
        self.cfg = cfg
        self.out = out
        self.device = device or torch.device(cfg.device)
        self.world = uda_dist.world()
        self.rank = dist.get_rank() if self.world > 1 else 0
        torch.manual_seed(cfg.seed)
        self.src_ds, self.tgt_ds, self.val_ds, self.K, self.class_names = build_datasets(cfg.data)
        for ds, name in ((self.src_ds, "source"), (self.tgt_ds, "target"), (self.val_ds, "val")):
            if isinstance(ds, CachedDataset) and cfg.render_workers > 0:
                ds.fill(cfg.render_workers, desc=f"render {name} clips")
        self.student = build_model(cfg, self.K, init_weights).to(self.device)
        self.teacher = dastc.EMATeacher(self.student, momentum=cfg.ema, warmup=True)
        # temporal fusion needs flow in both domains (real data may come without)
        self.has_flow = cfg.use_temporal and all(
            "flow_prev" in ds[0] for ds in (self.src_ds, self.tgt_ds)
        )
        # every training forward goes through it (DDP under torchrun)
        self.net = uda_dist.wrap(self.student, self.device, all_used=self.has_flow)
        decay, no_decay = [], []
        for _n, p in self.student.named_parameters():
            (no_decay if p.ndim <= 1 else decay).append(p)
        self.opt = torch.optim.AdamW(
            [
                {"params": decay, "weight_decay": cfg.weight_decay},
                {"params": no_decay, "weight_decay": 0.0},
            ],
            lr=cfg.lr,
        )
        self.sched = torch.optim.lr_scheduler.LambdaLR(
            self.opt, lambda i: (1 - min(i, cfg.iters - 1) / cfg.iters) ** 0.9
        )
        self.rare = rare_classes(self.src_ds, self.K, cfg.rare_below) if cfg.adapts else []
        self.mix = dastc.BidirectionalClipMix(
            self.K, class_fraction=cfg.class_fraction, rare_classes=self.rare or None
        )
        self.fmix = dastc.ShallowFeatureMix(blend=cfg.feature_blend)
        feat_dim = int(self.student.deep_channels)
        self.agg_src = dastc.SpatioTemporalPrototypeAggregator(self.K, feat_dim).to(self.device)
        self.agg_tgt = dastc.SpatioTemporalPrototypeAggregator(self.K, feat_dim).to(self.device)
        self.align = dastc.IntraInterClassAlignmentLoss(
            temperature=cfg.align_temperature, kind=cfg.align_kind
        )
        self.gen = torch.Generator(device=self.device).manual_seed(self._gen_seed())
        self.da_src = torch.full((self.K,), 1.0 / self.K, device=self.device)
        self.da_tgt = torch.full((self.K,), 1.0 / self.K, device=self.device)
        self.cb_conf = torch.ones(self.K, device=self.device)
        self._memory_backup: tuple[dict[str, Tensor], dict[str, Tensor]] | None = None
        self.iteration = 0
        self.history: dict[str, list[list[Any]]] = {}  # name -> [[iteration, value], ...]
        self.evals: list[dict[str, Any]] = []
        n_s, n_t = len(self.src_ds), len(self.tgt_ds)  # type: ignore[arg-type]
        self.order_src = EpochOrder(n_s, cfg.batch, cfg.seed * 2 + 1, self.rank, self.world)
        self.order_tgt = EpochOrder(n_t, cfg.batch, cfg.seed * 2 + 2, self.rank, self.world)
        self.last_batch: dict[str, Any] = {}

    def _gen_seed(self) -> int:
        """The mixing generator's seed; each process draws its own classes."""
        return self.cfg.seed + 17 + 7919 * self.rank

    # -- model calls ---------------------------------------------------------
    def _flow(self, b: dict[str, Tensor]) -> Tensor | None:
        return b.get("flow_prev") if self.has_flow else None

    def _as_frames(self, b: dict[str, Tensor]) -> dict[str, Tensor]:
        """image_dacs: every frame is an image (a clip of one frame), no flow."""
        out = {}
        for k, v in b.items():
            if v.dim() >= 4 and k in ("clip", "label", "flow", "flow_prev", "valid"):
                out[k] = v.reshape(v.shape[0] * v.shape[1], 1, *v.shape[2:])
            else:
                out[k] = v
        return out

    # -- one iteration --------------------------------------------------------
    def step(self, bs: dict[str, Tensor], bt: dict[str, Tensor]) -> dict[str, Tensor]:
        cfg = self.cfg
        dev = self.device
        bs = {k: v.to(dev, non_blocking=True) for k, v in bs.items()}
        bt = {k: v.to(dev, non_blocking=True) for k, v in bt.items()}
        if cfg.method == "image_dacs":
            bs, bt = self._as_frames(bs), self._as_frames(bt)
        self.student.train()
        logs: dict[str, Tensor] = {}
        if cfg.method == "source_only":
            loss = F.cross_entropy(
                self.net(bs["clip"], self._flow(bs)).flatten(0, 1),
                bs["label"].flatten(0, 1),
                ignore_index=255,
            )
            logs["src"] = loss.detach()
        elif cfg.method == "oracle":
            loss = F.cross_entropy(
                self.net(bt["clip"], self._flow(bt)).flatten(0, 1),
                bt["label"].flatten(0, 1),
                ignore_index=255,
            )
            logs["tgt_sup"] = loss.detach()
        else:
            loss = self._adapt_loss(bs, bt, logs)
        logs["loss"] = loss.detach()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        return logs

    def _adapt_loss(
        self, bs: dict[str, Tensor], bt: dict[str, Tensor], logs: dict[str, Tensor]
    ) -> Tensor:
        """DA-STC loss. The student runs once on the concatenation of every input
        (the tiny model's GroupNorm is per sample, so batching changes nothing but
        speed; an smp model's encoder BatchNorm is frozen with pretrained weights): one
        shallow pass over [source, target, S→T, T→S] clips and one deep pass over
        their shallow features plus the two feature-mixed ones."""
        cfg = self.cfg
        xs, ys, xt = bs["clip"], bs["label"], bt["clip"]
        fs, ft = self._flow(bs), self._flow(bt)
        B = xs.shape[0]
        if self.iteration < cfg.adapt_start:  # warm start: the teacher must be decent first
            loss = F.cross_entropy(
                self.net(xs, fs).flatten(0, 1), ys.flatten(0, 1), ignore_index=255
            )
            logs["src"] = loss.detach()
            return loss
        # 1. pseudo-labels from the EMA teacher (temporal model: previous frame fused by flow)
        with torch.no_grad():
            t_logits = self.teacher.model(xt, ft).float()
        if cfg.dist_align:
            t_logits = self._align_distribution(t_logits, ys)
        if cfg.class_balance:
            t_logits = balance_classes(t_logits, self.cb_conf)
        pl = DF.pseudo_label(t_logits, cfg.pseudo_threshold)
        if cfg.pseudo_weight == "pixel":  # only confident pixels count; the rest are ignored
            pl = pl._replace(weight=(pl.confidence > cfg.pseudo_threshold).to(pl.weight.dtype))
        logs["pl_conf"] = (pl.confidence > cfg.pseudo_threshold).float().mean()
        logs["pl_hist"] = (
            torch.bincount(pl.label.flatten(), minlength=self.K).float() / pl.label.numel()
        )
        # 2. sequence-level bidirectional mix (+ strong augmentation, same for every frame)
        mix = self.mix(
            xs, ys, xt, pl.label, pl.weight, generator=self.gen, src_flow=fs, tgt_flow=ft
        )
        self.last_batch = {"xs": xs, "ys": ys, "xt": xt, "yt": pl.label, "mix": mix}
        dirs = [d for d, on in (("s2t", cfg.s2t), ("t2s", cfg.t2s)) if on]
        parts = {
            "s2t": (mix.s2t_clip, mix.s2t_label, mix.s2t_weight, mix.s2t_flow),
            "t2s": (mix.t2s_clip, mix.t2s_label, mix.t2s_weight, mix.t2s_flow),
        }
        clips, flows = [xs, xt], [fs, ft]
        if cfg.clip_mix:
            for d in dirs:
                clip = parts[d][0]
                clips.append(
                    strong_augment(clip, self.gen, hue=cfg.hue_jitter) if cfg.strong_aug else clip
                )
                flows.append(parts[d][3])
        # 3. one shallow pass; shallow-feature mix with the same masks; one deep pass
        fflows = list(flows) + ([parts[d][3] for d in dirs] if cfg.feature_mix else [])
        flow_cat = None if fflows[0] is None else torch.cat(fflows)  # type: ignore[arg-type]

        def feature_mix(shallow_all: Tensor) -> Tensor:
            shallow = shallow_all.split(B)
            feats = list(shallow)
            if cfg.feature_mix:
                f_s2t, f_t2s = self.fmix(shallow[0], shallow[1], mix.s2t_mask, mix.t2s_mask)
                feats += [f_s2t if d == "s2t" else f_t2s for d in dirs]
            return torch.cat(feats)

        deep_all, logits_all = self.net(torch.cat(clips), flow_cat, feature_mix)
        deep, logits = deep_all.split(B), logits_all.split(B)
        loss = F.cross_entropy(logits[0].flatten(0, 1), ys.flatten(0, 1), ignore_index=255)
        logs["src"] = loss.detach()
        i = 2
        names = ([d for d in dirs] if cfg.clip_mix else []) + (
            [f"f_{d}" for d in dirs] if cfg.feature_mix else []
        )
        for name in names:
            _, lab, w, _ = parts[name.removeprefix("f_")]
            lm = DF.weighted_cross_entropy(logits[i], lab, w)
            loss = loss + lm
            logs[name] = lm.detach()
            i += 1
        # 4. category-aware spatio-temporal alignment of deep features
        if cfg.use_align:
            weights = DF.adaptive_weights(t_logits) if cfg.adaptive_weights else None
            p_src = self.agg_src(deep[0], ys)
            p_tgt = self.agg_tgt(deep[1], pl.label, weights)
            if cfg.on_nan == "skip":  # a skipped step must leave the memory as it was
                self._memory_backup = (
                    {k: v.clone() for k, v in self.agg_src.state_dict().items()},
                    {k: v.clone() for k, v in self.agg_tgt.state_dict().items()},
                )
            self.agg_src.update(p_src)
            self.agg_tgt.update(p_tgt)
            src_side = self.agg_src.memory_prototypes() if cfg.align_memory else p_src
            la = self.align(src_side, p_tgt)
            loss = loss + cfg.align_weight * la
            logs["align"] = la.detach()
        return loss

    @torch.no_grad()
    def _align_distribution(self, t_logits: Tensor, ys: Tensor) -> Tensor:
        """Distribution alignment of the teacher's predictions (as in ReMixMatch).

        Multiplies the target class probabilities by ``p_source(k) / p_teacher(k)``
        (running means over iterations) and renormalises, i.e. adds the log-ratio
        to the logits. Classes the teacher under-predicts on the target, relative to
        their source frequency (small objects whose appearance shifted), get their
        argmax share back instead of vanishing from the pseudo-labels.
        """
        K, m = self.K, 0.99
        lab = torch.where((ys >= 0) & (ys < K), ys, K).flatten()
        prob = t_logits.float().softmax(dim=2)
        stats = torch.cat(
            [
                torch.bincount(lab, minlength=K + 1)[:K].float(),  # source class counts
                prob.sum(dim=(0, 1, 3, 4)),  # target probability mass
                prob.new_tensor([prob[:, :, 0].numel()]),  # target pixels
            ]
        )
        stats = uda_dist.sum_all(stats)  # the same running means on every process
        cnt, mass, npix = stats[:K], stats[K : 2 * K], stats[2 * K]
        total = cnt.sum()
        src = torch.where(total > 0, cnt / total.clamp(min=1), self.da_src)
        self.da_src.lerp_(src, 1 - m)
        self.da_tgt.lerp_(mass / npix, 1 - m)
        ratio = (self.da_src + 1e-6) / (self.da_tgt + 1e-6)
        return t_logits + ratio.log().view(1, 1, K, 1, 1)

    def undo_memory(self) -> None:
        """Restore the prototype memories from before the last step (``--on-nan skip``)."""
        if self._memory_backup is not None:
            self.agg_src.load_state_dict(self._memory_backup[0])
            self.agg_tgt.load_state_dict(self._memory_backup[1])
            self._memory_backup = None

    def optimizer_step(self) -> None:
        self.opt.step()
        self.sched.step()
        self.teacher.update(self.student)
        self.iteration += 1

    # -- evaluation ----------------------------------------------------------
    @torch.no_grad()
    def evaluate(self, model: nn.Module, max_batches: int | None = None) -> tuple[Tensor, float]:
        """Per-class IoU and mIoU (%) on the target val split, last frame of each clip.

        Each process evaluates its share of the clips; the confusion matrices are
        summed over processes (every process must call this)."""
        was = model.training
        model.eval()
        cm = dastc.ConfusionMatrix(self.K, device=self.device)
        bs, n = self.cfg.batch * 2, len(self.val_ds)  # type: ignore[arg-type]
        ds = self.val_ds
        if max_batches is not None and max_batches * bs < n:  # the same clips for any world
            ds = _Subset(ds, list(range(max_batches * bs)))
        val = val_batches(ds, bs, self.rank, self.world)
        for b in val:
            b = {k: v.to(self.device) for k, v in b.items()}
            logits = model(b["clip"], self._flow(b) if self.cfg.method != "image_dacs" else None)
            cm.update(logits[:, -1].argmax(1), b["label"][:, -1])
        model.train(was)
        cm.sync()
        iou, miou = cm.compute()
        return iou.cpu() * 100, float(miou) * 100

    # -- checkpoints ---------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {
            "format": "dastc-example-v1",
            "config": json.loads(json.dumps(asdict(self.cfg))),
            "num_classes": self.K,
            "iteration": self.iteration,
            "student": self.student.state_dict(),
            "teacher": self.teacher.state_dict(),
            "agg_src": self.agg_src.state_dict(),
            "agg_tgt": self.agg_tgt.state_dict(),
            "opt": self.opt.state_dict(),
            "sched": self.sched.state_dict(),
            "gen_ranks": uda_dist.gather_objects(self.gen.get_state().cpu()),
            "da": torch.stack([self.da_src, self.da_tgt]),
            "cb_conf": self.cb_conf,
            "torch_rng": torch.get_rng_state(),
            "history": self.history,
            "evals": json.loads(json.dumps(self.evals)),
        }

    def save(self, path: Path) -> None:
        """Atomic: write a temporary file, then rename over ``path``. Every process
        calls it (the mixing RNG states are gathered); rank 0 writes."""
        st = self.state()
        if self.rank == 0:
            tmp = path.with_suffix(path.suffix + ".tmp")
            torch.save(st, tmp)
            os.replace(tmp, path)
        if self.world > 1:
            dist.barrier()

    def load(self, path: Path) -> None:
        st = torch.load(path, map_location=self.device, weights_only=True)
        if st.get("format") != "dastc-example-v1":
            raise SystemExit(f"{path}: not a dastc example checkpoint")
        mine, theirs = asdict(self.cfg), st["config"]
        for key in ("model", "width", "method"):
            if mine[key] != theirs[key]:
                raise SystemExit(
                    f"{path}: checkpoint has {key}={theirs[key]!r}, this run {mine[key]!r}"
                )
        if st["num_classes"] != self.K:
            raise SystemExit(
                f"{path}: checkpoint has {st['num_classes']} classes, this run {self.K}"
            )
        self.student.load_state_dict(st["student"])
        self.teacher.load_state_dict(st["teacher"])
        self.agg_src.load_state_dict(st["agg_src"])
        self.agg_tgt.load_state_dict(st["agg_tgt"])
        self.opt.load_state_dict(st["opt"])
        self.sched.load_state_dict(st["sched"])
        self.iteration = int(st["iteration"])
        gens = st.get("gen_ranks") or [st["gen"]]  # older checkpoints: one state, "gen"
        try:
            if len(gens) != self.world:
                raise RuntimeError(f"saved by {len(gens)} process(es), resumed by {self.world}")
            self.gen.set_state(gens[self.rank].to("cpu"))
        except RuntimeError as e:  # another device type or another number of processes
            print(f"{path}: mixing RNG not restored ({e}); reseeding it")
            self.gen.manual_seed(self._gen_seed() + self.iteration)
        if "da" in st:
            self.da_src.copy_(st["da"][0])
            self.da_tgt.copy_(st["da"][1])
        if "cb_conf" in st:
            self.cb_conf.copy_(st["cb_conf"])
        torch.set_rng_state(st["torch_rng"].cpu())
        self.history = {k: list(v) for k, v in st["history"].items()}
        self.evals = list(st["evals"])

    def record(self, logs: dict[str, Tensor]) -> None:
        """Append ``[iteration, value]`` to the history of every logged quantity."""
        for k, v in logs.items():
            value = v.tolist() if k == "pl_hist" else float(v)
            self.history.setdefault(k, []).append([self.iteration, value])


class Interrupt:
    """Turns SIGINT/SIGTERM into a flag checked between iterations (then checkpoint, exit)."""

    def __init__(self) -> None:
        self.hit: int | None = None
        self._at = 0.0
        self._old: dict[int, Any] = {}

    def __enter__(self) -> Interrupt:
        for s in (signal.SIGINT, signal.SIGTERM):
            self._old[s] = signal.signal(s, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        # A second signal more than 2 s after the first gives up at once; one within
        # 2 s is the same request arriving twice (a launcher signalling the process
        # and its group) and waits for the checkpoint like the first.
        if self.hit is not None and time.monotonic() - self._at > 2.0:
            raise KeyboardInterrupt
        if self.hit is None:
            self.hit, self._at = signum, time.monotonic()

    def __exit__(self, *exc: object) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)


def train(
    cfg: Config,
    out: Path,
    resume: Path | None = None,
    progress: bool = True,
    stop_after: int | None = None,
    device: torch.device | None = None,
) -> dict[str, Any]:
    """Run (or resume) a training; write checkpoints, pictures, results.json; return the results.

    Launched by ``torchrun`` (``WORLD_SIZE`` > 1), it joins the process group and
    trains with DDP; see ``uda_dist``. Only rank 0 writes files.
    """
    rank, _, dev, initialised = uda_dist.setup(str(device or cfg.device))
    try:
        return _train(cfg, out, resume, progress and rank == 0, stop_after, dev)
    finally:
        if initialised:
            dist.destroy_process_group()


def _train(
    cfg: Config,
    out: Path,
    resume: Path | None,
    progress: bool,
    stop_after: int | None,
    device: torch.device,
) -> dict[str, Any]:
    from uda_pictures import save_all_pictures

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    out.mkdir(parents=True, exist_ok=True)
    tr = Trainer(cfg, out, device, init_weights=resume is None)
    lead = tr.rank == 0
    ckpt = out / "checkpoint.pt"
    if resume is not None:
        src = resume / "checkpoint.pt" if resume.is_dir() else resume
        tr.load(src)
    log = open(out / "log.txt" if lead else os.devnull, "a", encoding="utf-8")
    log.write(
        f"# {time.strftime('%Y-%m-%d %H:%M:%S')} start at iteration {tr.iteration}: "
        f"{json.dumps(asdict(cfg))}\n"
    )
    bar = _progress(cfg.iters, tr.iteration, progress)
    t0 = time.time()
    it_s = batches(tr.src_ds, tr.order_src, tr.iteration)
    it_t = batches(tr.tgt_ds, tr.order_tgt, tr.iteration)
    last_good = tr.iteration
    with Interrupt() as intr:
        while tr.iteration < cfg.iters:
            logs = tr.step(next(it_s), next(it_t))
            loss = logs["loss"]
            # one flag vector: non-finite loss, signal; any process's flag counts for all
            flags = uda_dist.any_true(
                torch.stack(
                    [(~torch.isfinite(loss)).float(), loss.new_tensor(float(intr.hit is not None))]
                )
            ).tolist()
            signalled = flags[1] > 0  # decided here, the same on every process
            if flags[0]:
                msg = (
                    f"non-finite loss at iteration {tr.iteration} "
                    f"(this process: {float(loss)}; any process's counts)"
                )
                log.write(msg + "\n")
                if cfg.on_nan == "skip":
                    tr.undo_memory()
                    tr.opt.zero_grad(set_to_none=True)
                    tr.iteration += 1
                    tr.sched.step()
                    continue
                log.close()
                raise FloatingPointError(
                    f"{msg}; the last good checkpoint (iteration {last_good}) is {ckpt}. "
                    "Lower --lr, or pass --on-nan skip to skip such steps."
                )
            tr.optimizer_step()
            if tr.iteration % cfg.log_every == 0 or tr.iteration == cfg.iters:
                logs = uda_dist.mean_logs(logs)
                tr.record(logs)
                line = " ".join(f"{k}={float(v):.3f}" for k, v in logs.items() if k != "pl_hist")
                log.write(f"it {tr.iteration} {line}\n")
                log.flush()
                if bar is not None:
                    bar.set_postfix_str(line[:90])
            if tr.iteration % cfg.eval_every == 0 and tr.iteration < cfg.iters:
                _eval_record(tr, log, max_batches=4)
            if tr.iteration % cfg.ckpt_every == 0:
                tr.save(ckpt)
                last_good = tr.iteration
            if bar is not None:
                bar.update(1)
            if signalled or (stop_after is not None and tr.iteration >= stop_after):
                tr.save(ckpt)
                hit = (intr.hit or signal.SIGTERM) if signalled else None
                log.write(
                    f"stopped at iteration {tr.iteration} (signal {hit}); "
                    f"resume with --resume {out}\n"
                )
                log.close()
                if bar is not None:
                    bar.close()
                if hit is not None:
                    raise SystemExit(128 + int(hit))
                return {"stopped_at": tr.iteration}
    if bar is not None:
        bar.close()
    tr.save(ckpt)
    seconds = time.time() - t0
    iou_s, miou_s = tr.evaluate(tr.student)
    iou_t, miou_t = tr.evaluate(tr.teacher.model)
    if not lead:
        log.close()
        return {"method": cfg.method, "miou": miou_s, "miou_teacher": miou_t, "rank": tr.rank}
    results = {
        "method": cfg.method,
        "miou": miou_s,
        "miou_teacher": miou_t,
        "evaluated": "student (miou) and EMA teacher (miou_teacher) on target val, "
        "last frame of each clip",
        "per_class_iou": dict(zip(tr.class_names, _nan_none(iou_s), strict=False)),
        "per_class_iou_teacher": dict(zip(tr.class_names, _nan_none(iou_t), strict=False)),
        "iters": cfg.iters,
        "seconds": round(seconds, 1),
        "pseudo_label_hist": tr.history["pl_hist"][-1][1] if "pl_hist" in tr.history else None,
        "pseudo_label_confident_fraction": tr.history["pl_conf"][-1][1]
        if "pl_conf" in tr.history
        else None,
        "config": asdict(cfg),
    }
    (out / "results.json").write_text(json.dumps(results, indent=2))
    log.write(f"final miou student={miou_s:.2f} teacher={miou_t:.2f} seconds={seconds:.0f}\n")
    log.close()
    torch.save(tr.student.state_dict(), out / "student.pt")
    try:
        save_all_pictures(tr, out, iou_s, iou_t)
    except ImportError as e:  # matplotlib is in the examples extra
        print(f"pictures skipped ({e}); pip install 'dastc[examples]'")
    return results


def _eval_record(tr: Trainer, log: Any, max_batches: int | None) -> None:
    _, ms = tr.evaluate(tr.student, max_batches)
    _, mt = tr.evaluate(tr.teacher.model, max_batches)
    tr.evals.append({"iter": tr.iteration, "student": ms, "teacher": mt})
    log.write(f"eval it {tr.iteration} miou student={ms:.2f} teacher={mt:.2f}\n")


def _nan_none(x: Tensor) -> list[float | None]:
    return [None if math.isnan(v) else round(v, 2) for v in x.tolist()]


def _progress(total: int, start: int, enabled: bool) -> Any:
    if not enabled:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, initial=start, desc="train", dynamic_ncols=True, mininterval=1.0)

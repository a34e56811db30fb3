"""DASTC: the whole method (bidirectional clip and feature mix, prototype alignment)."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from dastc import functional as DF
from dastc._label_counts import label_counts
from dastc.class_balance import ClassBalance
from dastc.distribution_alignment import DistributionAlignment
from dastc.functional.augment import strong_augment
from dastc.functional.masking import block_mask, mask_clip
from dastc.losses import IntraInterClassAlignmentLoss
from dastc.methods.base import Method
from dastc.methods.config import MethodConfig
from dastc.methods.contract import LastMix
from dastc.mixing import BidirectionalClipMix, ShallowFeatureMix
from dastc.prototypes import SpatioTemporalPrototypeAggregator
from dastc.warm_start import WarmStartGuard

__all__ = ["DASTC"]


class DASTC(Method):
    """DA-STC: one training step of the whole method, composed from dastc's blocks.

    After a source-only warm start of ``config.adapt_start`` iterations, each step:

    1. the EMA teacher predicts on the target clip (with the flow when the
       student is temporal); optional distribution alignment and class-balanced
       scores; :func:`~dastc.functional.pseudo_label` gives labels, confidence
       and the per-clip weight;
    2. :class:`~dastc.BidirectionalClipMix` pastes source classes onto the target
       clip (S→T) and pseudo-labelled target classes onto the source clip (T→S),
       one class set per clip, flows mixed alike; the mixed clips get a
       clip-consistent :func:`~dastc.functional.strong_augment`;
    3. one student pass: ``shallow`` over [source, target, S→T, T→S] clips, the
       :class:`~dastc.ShallowFeatureMix` of the source and target shallow
       features with the same masks, ``deep`` over all of them;
    4. :class:`~dastc.SpatioTemporalPrototypeAggregator` builds class prototypes
       of both domains' deep features (target weighted by confidence × frame
       reliability) and :class:`~dastc.IntraInterClassAlignmentLoss` aligns them;
    5. loss = CE(source) + weighted CE on the mixed clips and the feature-mixed
       paths + ``align_weight`` · alignment.

    Every switch of the ablation table is a :class:`MethodConfig` field.

    Args:
        student: a :class:`~dastc.methods.TwoStageSegmenter` on its device
            (a model with only ``forward`` works with ``feature_mix=False,
            align=False``).
        num_classes: ``K``.
        config: the knobs (default ``MethodConfig()``).

    Raises:
        ValueError: the config asks for the feature mix or alignment and the
            student has no ``shallow``/``deep`` (or no ``deep_channels``).

    Example:
        >>> import torch
        >>> from dastc.methods import DASTC, MethodConfig
        >>> from dastc.methods._toy import ToySegmenter
        >>> method = DASTC(ToySegmenter(4), 4, MethodConfig(adapt_start=0))
        >>> batch = {"clip": torch.rand(2, 2, 3, 16, 16),
        ...          "label": torch.randint(0, 4, (2, 2, 16, 16))}
        >>> out = method(batch, {"clip": torch.rand(2, 2, 3, 16, 16)})
        >>> out.loss.backward(); method.after_step()
        >>> sorted(out.logs)
        ['align', 'f_s2t', 'f_t2s', 'loss', 'pl_conf', 'pl_hist', 's2t', 'src', 't2s']
    """

    name: ClassVar[str] = "dastc"
    adapts: ClassVar[bool] = True
    aligns: ClassVar[bool] = True

    def __init__(
        self, student: nn.Module, num_classes: int, config: MethodConfig | None = None
    ) -> None:
        super().__init__(student, num_classes, config)
        cfg, K = self.config, self.num_classes
        if cfg.feature_mix:
            self._needs_two_stages("feature_mix")
        self.uses_align = self.aligns and cfg.align
        if self.uses_align:
            feat_dim: object = K
            if cfg.align_on == "deep":
                self._needs_two_stages("align")
                feat_dim = getattr(student, "deep_channels", None)
                if not isinstance(feat_dim, int) or feat_dim <= 0:
                    raise ValueError(
                        f"student: align needs an int deep_channels (the deep features' C), "
                        f"got {feat_dim!r}"
                    )
            assert isinstance(feat_dim, int)
            dev = self.generator.device
            self.agg_src, self.agg_tgt = (
                SpatioTemporalPrototypeAggregator(
                    K, feat_dim, cfg.ignore_index,
                    pooling=cfg.prototype_pooling, min_pixels=cfg.prototype_min_pixels,
                ).to(dev)
                for _ in range(2)
            )  # fmt: skip
            self.align_loss = IntraInterClassAlignmentLoss(
                temperature=cfg.align_temperature, kind=cfg.align_kind, absent=cfg.align_absent
            )
        self.two_stage = all(callable(getattr(student, a, None)) for a in ("shallow", "deep"))
        self.mix = BidirectionalClipMix(
            K, cfg.ignore_index, class_fraction=cfg.class_fraction,
            rare_classes=list(cfg.rare_classes) or None,
            exclude_s2t_classes=cfg.mix_exclude, rare_t2s=cfg.mix_rare_t2s,
            paste_threshold=cfg.paste_threshold or None,
            class_count=cfg.mix_classes or None,
        )  # fmt: skip
        #: the previous adapting step's source (clip, label, flow), with ``mix_previous_source``
        self.prev_source: tuple[Tensor, Tensor, Tensor | None] | None = None
        self.feature_mixer = ShallowFeatureMix(blend=cfg.feature_blend)
        self.class_balance = ClassBalance(K).to(self.generator.device)
        self.dist_align = DistributionAlignment(K).to(self.generator.device)
        self.guard: WarmStartGuard | None = None
        if cfg.warm_guard != "off":
            self.guard = WarmStartGuard(
                K, floor=cfg.warm_guard_floor, action=cfg.warm_guard,
                max_extension=cfg.warm_guard_max, every=cfg.warm_guard_every,
            ).to(self.generator.device)  # fmt: skip

    def _mix_source(
        self, xs: Tensor, ys: Tensor, fs: Tensor | None
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        """The source the clip mix pastes from: this step's, or with
        ``mix_previous_source`` the previous adapting step's (this step's the first
        time and whenever the shapes differ); stores this step's for the next."""
        if not self.config.mix_previous_source:
            return xs, ys, fs
        prev, self.prev_source = self.prev_source, (xs.detach(), ys, fs)
        if prev is None or prev[0].shape != xs.shape or (prev[2] is None) != (fs is None):
            return xs, ys, fs
        return prev

    def get_extra_state(self) -> dict[str, Any]:
        state = super().get_extra_state()
        if self.prev_source is not None:
            state["prev_source"] = self.prev_source
        return state

    def set_extra_state(self, state: Any) -> None:
        super().set_extra_state(state)
        prev = state.get("prev_source")
        dev = self.generator.device
        self.prev_source = None
        if prev is not None:
            clip, label, flow = prev
            self.prev_source = (clip.to(dev), label.to(dev), None if flow is None else flow.to(dev))

    @torch.no_grad()
    def _teacher_labels(self, xt: Tensor, ft: Tensor | None) -> Tensor:
        """The teacher's argmax on the target clip (what :class:`WarmStartGuard` checks)."""
        return self._check_logits(self.teacher.model(xt, ft)).argmax(2)

    def _frames(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """The batch as the student sees it (:class:`ImageDACS`: every frame an image)."""
        return batch

    def loss(
        self, source: dict[str, Tensor], target: dict[str, Tensor], logs: dict[str, Tensor]
    ) -> Tensor:
        source, target = self._frames(source), self._frames(target)
        cfg = self.config
        xs, ys, xt = source["clip"], source["label"], target["clip"]
        fs, ft = self._flows(source, target)
        warm = self.iteration < cfg.adapt_start  # warm start: the teacher must be decent first
        guarding = self.guard is not None and not self.guard.done
        if guarding:  # the guard may extend the warm start (it counts the teacher's labels)
            assert self.guard is not None
            self._remember(self.guard)
            warm = self.guard.step(
                self.iteration - cfg.adapt_start, lambda: self._teacher_labels(xt, ft)
            )
        if warm:
            if guarding:
                assert self.guard is not None
                self.guard.observe_source(ys)
            loss = self._ce(self.net(xs, fs), ys)
            logs["src"] = loss.detach()
            return loss
        return self.adapt_loss(xs, ys, xt, fs, ft, logs)

    def adapt_loss(
        self,
        xs: Tensor,
        ys: Tensor,
        xt: Tensor,
        fs: Tensor | None,
        ft: Tensor | None,
        logs: dict[str, Tensor],
    ) -> Tensor:
        """The loss of an adapting step (after the warm start), which :meth:`loss` calls.

        It reads no per-step Python state (the iteration, the warm-start guard), so
        with ``MethodConfig(draws="global")`` ``torch.compile`` turns it into one
        graph that later steps reuse: ``method.adapt_loss =
        torch.compile(method.adapt_loss)``.

        Args:
            xs: float ``(B, T, C, H, W)`` source clips (frames as :meth:`loss` passes them).
            ys: long ``(B, T, H, W)`` source labels.
            xt: float ``(B, T, C, H, W)`` target clips.
            fs: float ``(B, T, 2, H, W)`` source flows, or None for a per-frame student.
            ft: float ``(B, T, 2, H, W)`` target flows, or None.
            logs: dict the loss terms are logged into (detached scalars).

        Returns:
            The scalar loss.
        """
        cfg, K = self.config, self.num_classes
        B = xs.shape[0]
        # 1. pseudo-labels from the EMA teacher
        with torch.no_grad():
            t_logits = self._check_logits(self.teacher.model(xt, ft)).float()
        if cfg.dist_align:
            self._remember(self.dist_align)
            t_logits = self.dist_align(t_logits, ys)
        if cfg.class_balance:
            self._remember(self.class_balance)
            t_logits = self.class_balance(t_logits)
        pl = DF.pseudo_label(t_logits, cfg.pseudo_threshold)
        if cfg.pseudo_weight == "pixel":  # only confident pixels count; the rest are ignored
            pl = pl._replace(weight=(pl.confidence > cfg.pseudo_threshold).to(pl.weight.dtype))
        logs["pl_conf"] = (pl.confidence > cfg.pseudo_threshold).float().mean()
        logs["pl_hist"] = label_counts(pl.label, K).float() / pl.label.numel()
        # 2. sequence-level bidirectional mix (+ strong augmentation, same for every frame)
        mxs, mys, mfs = self._mix_source(xs, ys, fs)
        mix = self.mix(
            mxs, mys, xt, pl.label, pl.weight, generator=self.draw_generator, src_flow=mfs,
            tgt_flow=ft, tgt_confidence=pl.confidence if cfg.paste_threshold else None,
        )  # fmt: skip
        self.last_mix = LastMix(mxs, mys, xt, pl.label, mix)
        dirs = [d for d, on in (("s2t", cfg.s2t), ("t2s", cfg.t2s)) if on]
        parts = {
            "s2t": (mix.s2t_clip, mix.s2t_label, mix.s2t_weight, mix.s2t_flow),
            "t2s": (mix.t2s_clip, mix.t2s_label, mix.t2s_weight, mix.t2s_flow),
        }
        # one record per student input after [source, target]: (log name, label, weight)
        clips, flows = [xs, xt], [fs, ft]
        terms: list[tuple[str, Tensor, Tensor]] = []
        if cfg.clip_mix:
            for d in dirs:
                clip, lab, w, flow = parts[d]
                if cfg.strong_aug:
                    clip = strong_augment(clip, generator=self.draw_generator, hue=cfg.hue_jitter)
                clips.append(clip)
                flows.append(flow)
                terms.append((d, lab, w))
        if cfg.mic:  # masked image consistency: the masked target clip, the whole clip's labels
            mic_clip = xt
            if cfg.strong_aug:
                mic_clip = strong_augment(xt, generator=self.draw_generator, hue=cfg.hue_jitter)
            b, t, _, h, w = xt.shape
            mask = block_mask(
                (b, t, h, w), cfg.mic_patch, cfg.mic_ratio, per_frame=cfg.mic_per_frame,
                generator=self.draw_generator, device=xt.device,
            )  # fmt: skip
            clips.append(mask_clip(mic_clip, mask))
            flows.append(ft)
            terms.append(("mic", pl.label, pl.weight * cfg.mic_weight))
        mixed_feats = dirs if cfg.feature_mix else []
        for d in mixed_feats:
            flows.append(parts[d][3])
            terms.append((f"f_{d}", parts[d][1], parts[d][2]))
        # 3. one shallow pass; shallow-feature mix with the same masks; one deep pass
        flow_cat = None if flows[0] is None else torch.cat(flows)  # type: ignore[arg-type]

        def feature_mix(shallow_all: Tensor) -> Tensor:
            shallow = torch.split(shallow_all, B)
            feats = list(shallow)
            if mixed_feats:
                f_s2t, f_t2s = self.feature_mixer(
                    shallow[0], shallow[1], mix.s2t_mask, mix.t2s_mask
                )
                feats += [f_s2t if d == "s2t" else f_t2s for d in mixed_feats]
            return torch.cat(feats)

        deep: tuple[Tensor, ...] = ()
        if self.two_stage:
            deep_all, logits_all = self.net(torch.cat(clips), flow_cat, feature_mix)
            deep = torch.split(deep_all, B)
        else:
            logits_all = self.net(torch.cat(clips), flow_cat)
        logits = torch.split(self._check_logits(logits_all), B)
        loss = self._ce(logits[0], ys)
        logs["src"] = loss.detach()
        for i, (name, lab, w) in enumerate(terms, start=2):
            term = DF.weighted_cross_entropy(logits[i], lab, w, cfg.ignore_index)
            loss = loss + term
            logs[name] = term.detach()
        # 4. category-aware spatio-temporal alignment of deep features (or logits)
        if self.uses_align:
            weights = DF.adaptive_weights(t_logits) if cfg.adaptive_weights else None
            feats = deep if cfg.align_on == "deep" else logits
            ys_proto = ys
            if cfg.align_source == "correct":  # only the pixels the student gets right
                right = logits[0].detach().argmax(2) == ys
                ys_proto = torch.where(right, ys, torch.full_like(ys, cfg.ignore_index))
            p_src = self.agg_src(feats[0], ys_proto)
            p_tgt = self.agg_tgt(feats[1], pl.label, weights)
            self._remember(self.agg_src, self.agg_tgt)
            self.agg_src.update(p_src)
            self.agg_tgt.update(p_tgt)
            src_side = self.agg_src.memory_prototypes() if cfg.align_memory else p_src
            la = self.align_loss(src_side, p_tgt)
            loss = loss + cfg.align_weight * la
            logs["align"] = la.detach()
        return loss

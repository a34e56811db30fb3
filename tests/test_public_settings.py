"""The public DA-STC code's settings, as dastc options, against ports of its functions.

Ported from the public DA-STC code, repository ZHE-SAPI/UDASS (commit 9698961):

- ``video_udass/VIDEO/tps/dsp/transformmasks_dsp_cd_xiuzheng.py``: ``generate_class_mask``,
  ``oneMix`` (without its unused palette), ``Class_mix_nolongtail``;
- ``video_udass/VIDEO/tps/domain_adaptation_ablation/train_video_DAVSS_DSF_cd_ablation_24.py``
  (``train_TPS``): the class draws (2 of ``torch.unique`` of the source label plus
  ``class_to_select``; target classes other than the 2 source ones, 2 of them, pixels of
  confidence > 0.9), ``Class_Features.process_label`` / ``calculate_mean_vector``,
  ``update_objective_SingleVector``, ``guassian_kernel``, ``mmd_rbf``, ``temporal_moudle``.

The ports keep the public code's arithmetic; only device moves and prints are dropped.
Where the public code draws at random (numpy), the test replays dastc's draw and
feeds the same class sets to the port.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dastc import BidirectionalClipMix, SpatioTemporalPrototypeAggregator
from dastc.functional import (
    bidirectional_clip_mix,
    frame_mean_prototypes,
    prototype_mmd,
    sample_class_masks,
)
from dastc.losses import IntraInterClassAlignmentLoss
from dastc.methods import DASTC, PUBLIC_TAIL_CLASSES, MethodConfig
from dastc.methods._toy import ToySegmenter

# --------------------------------------------------------------------------- ports


def pub_generate_class_mask(pred, classes):
    pred, classes = torch.broadcast_tensors(
        pred.squeeze().unsqueeze(0), classes.unsqueeze(1).unsqueeze(2)
    )
    N = pred.eq(classes.float()).sum(0)
    return N


def pub_one_mix(mask, data=None, target=None):
    if data is not None:
        stackedMask0 = torch.broadcast_tensors(mask.float(), data[0])[0]
        data = (stackedMask0 * data[0] + (1 - stackedMask0) * data[1]).unsqueeze(0)
    if target is not None:
        stackedMask0 = torch.broadcast_tensors(mask.float(), target[0])[0]
        target = stackedMask0 * target[0] + (1 - stackedMask0) * target[1]
    return data, target


def pub_class_mix_nolongtail(image1, image2, label1, label2, mask_lbl):
    inputs_, _ = pub_one_mix(mask_lbl, data=torch.cat((image1, image2)))
    _, targets_ = pub_one_mix(mask_lbl, target=torch.cat((label1, label2)))
    return inputs_, targets_


class PubClassFeatures:
    def __init__(self, numbers=15):
        self.class_numbers = numbers

    def process_label(self, label):
        batch, _, w, h = label.size()
        pred1 = torch.zeros(batch, self.class_numbers + 1, w, h, dtype=torch.float64)
        id = torch.where(
            label < self.class_numbers, label, torch.tensor([self.class_numbers], dtype=label.dtype)
        )
        pred1 = pred1.scatter_(1, id.long(), 1)
        return pred1

    def calculate_mean_vector(self, feat_cls, outputs, labels=None, thresh=None):
        outputs_softmax = F.softmax(outputs, dim=1)
        if thresh is None:
            thresh = -1
        conf = outputs_softmax.max(dim=1, keepdim=True)[0]
        mask = conf.ge(thresh).to(feat_cls.dtype)
        outputs_argmax = outputs_softmax.argmax(dim=1, keepdim=True)
        outputs_argmax = self.process_label(outputs_argmax.to(feat_cls.dtype))
        if labels is None:
            outputs_pred = outputs_argmax
        else:
            labels_expanded = self.process_label(labels)
            outputs_pred = labels_expanded * outputs_argmax
        scale_factor = F.adaptive_avg_pool2d(outputs_pred * mask, 1)
        vectors = []
        ids = []
        for n in range(feat_cls.size()[0]):
            for t in range(self.class_numbers):
                if scale_factor[n][t].item() == 0:
                    continue
                if (outputs_pred[n][t] > 0).sum() < 5:
                    continue
                s = feat_cls[n] * outputs_pred[n][t] * mask[n]
                s = torch.sum(torch.sum(s, dim=-1), dim=-1) / torch.sum(
                    outputs_pred[n][t] * mask[n]
                )
                vectors.append(s)
                ids.append(t)
        return vectors, ids


def pub_update_objective_single_vector(objective_vectors, id, vector):
    if vector.sum().item() == 0:
        return objective_vectors
    objective_vectors[id] = vector.squeeze()
    return objective_vectors


def pub_guassian_kernel(source, target, kernel_mul=2.0, kernel_num=5, fix_sigma=None):
    n_samples = int(source.size()[0]) + int(target.size()[0])
    total = torch.cat([source, target], dim=0)
    total0 = total.unsqueeze(0).expand(int(total.size(0)), int(total.size(0)), int(total.size(1)))
    total1 = total.unsqueeze(1).expand(int(total.size(0)), int(total.size(0)), int(total.size(1)))
    L2_distance = ((total0 - total1) ** 2).sum(2)
    if fix_sigma:
        bandwidth = fix_sigma
    else:
        bandwidth = torch.sum(L2_distance.data) / (n_samples**2 - n_samples)
    bandwidth /= kernel_mul ** (kernel_num // 2)
    bandwidth_list = [bandwidth * (kernel_mul**i) for i in range(kernel_num)]
    kernel_val = [torch.exp(-L2_distance / bandwidth_temp) for bandwidth_temp in bandwidth_list]
    return sum(kernel_val)


def pub_mmd_rbf(source, target, kernel_mul=2.0, kernel_num=5, fix_sigma=None):
    batch_size = int(source.size()[0])
    kernels = pub_guassian_kernel(
        source, target, kernel_mul=kernel_mul, kernel_num=kernel_num, fix_sigma=fix_sigma
    )
    XX = kernels[:batch_size, :batch_size]
    YY = kernels[batch_size:, batch_size:]
    XY = kernels[:batch_size, batch_size:]
    YX = kernels[batch_size:, :batch_size]
    loss = torch.mean(XX + YY - XY - YX)
    return loss


def pub_temporal_module(objective_vectors_tar_dc, objective_vectors_tar_da):
    wei_db_sou, wei_da_sou = 0.5, 0.5
    return wei_db_sou * objective_vectors_tar_dc + wei_da_sou * objective_vectors_tar_da


def pub_objective_vectors(feat, outputs, num_classes, labels=None):
    """The public loop: ``calculate_mean_vector`` then ``update_objective_SingleVector``."""
    vectors_all = torch.zeros([num_classes, feat.shape[1]], dtype=feat.dtype)
    vectors, ids = PubClassFeatures(num_classes).calculate_mean_vector(feat, outputs, labels)
    for t in range(len(ids)):
        vectors_all = pub_update_objective_single_vector(vectors_all, ids[t], vectors[t])
    return vectors_all


# ------------------------------------------------------------------ the class mix

K = 15
TAIL = PUBLIC_TAIL_CLASSES["viper"]


def _tail_mask(k: int = K) -> torch.Tensor:
    m = torch.zeros(k, dtype=torch.bool)
    m[list(TAIL)] = True
    return m


def _labels(g: torch.Generator, classes: list[int], shape=(1, 2, 12, 16), ignore=0.1):
    pool = torch.tensor(classes)
    y = pool[torch.randint(0, len(pool), shape, generator=g)]
    return torch.where(torch.rand(shape, generator=g) < ignore, 255, y)


def _replay_draws(ys, yt, seed, count=2):
    """dastc's two random draws (source, then target without the source's), replayed."""
    g = torch.Generator().manual_seed(seed)
    _, drawn_s = sample_class_masks(ys, K, generator=g, class_count=count)
    _, drawn_t = sample_class_masks(yt, K, generator=g, class_count=count, exclude=drawn_s)
    return drawn_s, drawn_t


CASES = {
    # name: (source classes, target classes)
    "random": (list(range(K)), list(range(K))),
    "one-source-class": ([2], list(range(K))),
    "target-only-source-classes": ([0, 1], [0, 1]),  # public: np.random.choice(0, 1) raises
    "no-tail-in-source": ([0, 1, 2, 6, 8], list(range(K))),
    "only-tail-in-source": (list(TAIL), [0, 2, 8, 10]),
    "one-target-class-left": ([0, 1, 2], [0, 1, 9]),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_official_class_mix_matches_public_code(case: str, seed: int) -> None:
    """class_count=2 + tail classes (S→T only) + exclusion + confidence 0.9 = the public mix."""
    src_classes, tgt_classes = CASES[case]
    g = torch.Generator().manual_seed(100 * seed + len(case))
    ys, yt = _labels(g, src_classes), _labels(g, tgt_classes, ignore=0.0)
    xs, xt = torch.rand(1, 2, 3, 12, 16, generator=g), torch.rand(1, 2, 3, 12, 16, generator=g)
    conf = torch.rand(1, 2, 12, 16, generator=g) * 0.2 + 0.8  # about half above 0.9
    mix = BidirectionalClipMix(
        K, class_count=2, rare_classes=TAIL, rare_t2s=False, exclude_s2t_classes=True,
        paste_threshold=0.9,
    )  # fmt: skip
    out = mix(xs, ys, xt, yt, generator=torch.Generator().manual_seed(seed), tgt_confidence=conf)
    drawn_s, drawn_t = _replay_draws(ys, yt, seed)

    # the draws: 2 present classes (all when fewer), the target's disjoint from the source's
    present_s = {int(c) for c in ys.unique() if c != 255}
    present_t = {int(c) for c in yt.unique() if c != 255}
    ds = {int(c) for c in drawn_s[0].nonzero()}
    dt = {int(c) for c in drawn_t[0].nonzero()}
    assert ds <= present_s and len(ds) == min(2, len(present_s))
    assert dt <= present_t - ds and len(dt) == min(2, len(present_t - ds))

    # the public masks and mixes, frame by frame, from the same class sets
    classes_s = torch.unique(
        torch.cat((torch.tensor(sorted(ds)).float(), torch.tensor(TAIL).float()))
    )
    classes_t = torch.tensor(sorted(dt)).float()
    for t in range(2):
        mask_s = pub_generate_class_mask(ys[0, t].float(), classes_s)
        img, lab = pub_one_mix(mask_s, torch.stack((xs[0, t], xt[0, t]))), None
        _, lab = pub_one_mix(mask_s, target=torch.stack((ys[0, t].float(), yt[0, t].float())))
        assert torch.equal(out.s2t_mask[0, t], mask_s.bool())
        torch.testing.assert_close(out.s2t_clip[0, t], img[0][0], rtol=0, atol=0)
        assert torch.equal(out.s2t_label[0, t], lab.long())

        if len(classes_t):
            mask_t = pub_generate_class_mask(yt[0, t].float(), classes_t)
        else:  # the public code raises here (no target class left to draw)
            mask_t = torch.zeros(12, 16)
        high = torch.zeros(12, 16)
        high[conf[0, t] > 0.9] = 1
        mask_t = mask_t * high
        img_t, lab_t = pub_class_mix_nolongtail(
            xt[0, t : t + 1], xs[0, t : t + 1], yt[0, t : t + 1].float(),
            ys[0, t : t + 1].float(), mask_t,
        )  # fmt: skip
        assert torch.equal(out.t2s_mask[0, t], mask_t.bool())
        torch.testing.assert_close(out.t2s_clip[0, t], img_t[0], rtol=0, atol=0)
        assert torch.equal(out.t2s_label[0, t], lab_t.long())


def test_class_count_draws_every_pair_uniformly() -> None:
    """Like ``np.random.choice(n, 2, replace=False)``: each pair of present classes alike."""
    y = torch.tensor([0, 3, 5, 9]).repeat_interleave(4).view(1, 1, 4, 4)
    g = torch.Generator().manual_seed(0)
    n = 3000
    pairs = {p: 0 for p in itertools.combinations([0, 3, 5, 9], 2)}
    for _ in range(n):
        _, drawn = sample_class_masks(y, 10, generator=g, class_count=2)
        pairs[tuple(int(c) for c in drawn[0].nonzero().flatten())] += 1
    freq = np.array(list(pairs.values())) / n
    assert np.abs(freq - 1 / 6).max() < 0.03, pairs


def test_class_count_is_validated_and_fraction_ignored() -> None:
    y = torch.arange(8).view(1, 1, 2, 4)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="class_count"):
            sample_class_masks(y, 8, class_count=bad)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="class_count"):
            BidirectionalClipMix(8, class_count=bad)  # type: ignore[arg-type]
    for frac in (0.0, 1.0):
        _, chosen = sample_class_masks(y, 8, frac, class_count=3)
        assert int(chosen.sum()) == 3


def test_exclusion_skips_only_the_random_draw_not_the_tail() -> None:
    """Public: ``classes_t`` drops the 2 drawn source classes, not ``class_to_select``."""
    ys = torch.tensor([0, 1, 3]).repeat(16).view(1, 1, 6, 8)  # tail class 3 present
    yt = torch.tensor([0, 1, 3, 6]).repeat(12).view(1, 1, 6, 8)
    x = torch.rand(1, 1, 3, 6, 8)
    seen_tail_in_t2s = False
    for seed in range(30):
        out = bidirectional_clip_mix(
            x, ys, x, yt, num_classes=K, class_count=2, rare_classes=_tail_mask(),
            rare_t2s=False, exclude_s2t_classes=True, generator=torch.Generator().manual_seed(seed),
        )  # fmt: skip
        drawn_s, _ = _replay_draws(ys, yt, seed)
        t2s_classes = set(yt[out.t2s_mask].tolist())
        assert not (t2s_classes & {int(c) for c in drawn_s[0].nonzero()})
        assert 3 in set(ys[out.s2t_mask].tolist())  # the tail class is always pasted S→T
        seen_tail_in_t2s |= 3 in t2s_classes and 3 not in {int(c) for c in drawn_s[0].nonzero()}
    assert seen_tail_in_t2s


def test_rare_t2s_false_keeps_tail_classes_off_the_target_side() -> None:
    y = torch.tensor([3, 4, 5, 7, 0, 1]).repeat(8).view(1, 1, 6, 8)
    x = torch.rand(1, 1, 3, 6, 8)
    for seed in range(10):
        g = torch.Generator().manual_seed(seed)
        out = bidirectional_clip_mix(
            x, y, x, y, num_classes=K, class_count=1, rare_classes=_tail_mask(),
            rare_t2s=False, generator=g,
        )  # fmt: skip
        assert len(set(y[out.t2s_mask].tolist())) == 1  # only the one drawn class
        assert {3, 4, 5, 7} <= set(y[out.s2t_mask].tolist())


# ------------------------------------------------------------- prototypes and MMD


def _logits_with_sizes(g: torch.Generator, k: int, h: int, w: int) -> torch.Tensor:
    """Logits whose argmax gives class 0 exactly 4 pixels, class 1 exactly 5, class 2 none."""
    logits = torch.randn(1, k, h, w, generator=g, dtype=torch.float64)
    logits[:, :3] -= 20.0  # classes 0-2 lose everywhere ...
    flat = logits.view(k, -1)
    flat[0, :4] += 60.0  # ... except where placed
    flat[1, 4:9] += 60.0
    return logits


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_frame_mean_prototypes_match_public_temporal_module(seed: int) -> None:
    """Target: two predictions' prototypes (argmax masks, < 5 px skipped), averaged 0.5/0.5."""
    g = torch.Generator().manual_seed(seed)
    k, h, w = 12, 9, 11
    dc = _logits_with_sizes(g, k, h, w)
    da = torch.randn(1, k, h, w, generator=g, dtype=torch.float64)
    da[:, [0, 1, 2, 5]] -= 30.0  # class 5 only in the first prediction: half its vector
    expected = pub_temporal_module(
        pub_objective_vectors(dc, dc, k), pub_objective_vectors(da, da, k)
    )
    feats = torch.stack([dc, da], dim=1)  # (1, T=2, K, h, w): the features are the logits
    labels = feats.argmax(2)
    got = frame_mean_prototypes(feats, labels, k, min_pixels=5)
    torch.testing.assert_close(got.vectors, expected, rtol=1e-12, atol=1e-12)
    assert got.present[1] and not got.present[0] and not got.present[2]  # 5 px kept, 4 skipped
    agg = SpatioTemporalPrototypeAggregator(k, k, pooling="frame_mean", min_pixels=5).double()
    torch.testing.assert_close(agg(feats, labels).vectors, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("seed", [0, 1])
def test_source_prototypes_match_public_code(seed: int) -> None:
    """Source: labels nearest-resized to the logits, only pixels predicted right, < 5 px skipped."""
    g = torch.Generator().manual_seed(seed)
    k, h, w = 15, 10, 13
    logits = torch.randn(1, k, h, w, generator=g, dtype=torch.float64)
    label = torch.randint(0, k, (1, 2 * h + 1, 2 * w + 3), generator=g)
    label[:, :4] = 255
    lab_small = F.interpolate(label.double().unsqueeze(0), size=(h, w), mode="nearest")
    expected = pub_objective_vectors(logits, logits, k, labels=lab_small)
    # dastc: the method's "correct" source pixels, then per-frame prototypes
    small = lab_small[0].long()
    right = torch.where(logits.argmax(1) == small, small, 255)
    got = frame_mean_prototypes(logits.unsqueeze(1), right.unsqueeze(1), k, min_pixels=5)
    torch.testing.assert_close(got.vectors, expected, rtol=1e-12, atol=1e-12)
    # at the labels' resolution, the nearest resize happens inside (same pixels)
    right_full = torch.where(
        F.interpolate(logits, size=label.shape[-2:], mode="nearest").argmax(1) == label, label, 255
    )
    got_full = frame_mean_prototypes(logits.unsqueeze(1), right_full.unsqueeze(1), k, min_pixels=5)
    torch.testing.assert_close(got_full.vectors, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "case", ["random", "absent-rows", "one-side-empty", "identical", "single-class"]
)
def test_mmd_zero_rows_matches_public_mmd_rbf(case: str) -> None:
    g = torch.Generator().manual_seed(len(case))
    k, c = 12, 12
    src = torch.randn(k, c, generator=g, dtype=torch.float64)
    tgt = torch.randn(k, c, generator=g, dtype=torch.float64) + 0.5
    sp, tp = torch.ones(k, dtype=torch.bool), torch.ones(k, dtype=torch.bool)
    if case == "absent-rows":
        sp[[1, 4]] = False
        tp[[4, 7, 8]] = False
    elif case == "one-side-empty":
        tp[:] = False
    elif case == "identical":
        tgt = src.clone()
    elif case == "single-class":
        sp[1:] = False
        tp[1:] = False
    src = torch.where(sp.unsqueeze(1), src, 0.0)  # the public matrices hold zero rows
    tgt = torch.where(tp.unsqueeze(1), tgt, 0.0)
    expected = pub_mmd_rbf(src, tgt)
    got = prototype_mmd(src, tgt, sp, tp, absent="zero")
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)
    loss = IntraInterClassAlignmentLoss(kind="mmd", absent="zero")
    from dastc import Prototypes

    got2 = loss(Prototypes(src, sp.double(), sp), Prototypes(tgt, tp.double(), tp))
    torch.testing.assert_close(got2, expected, rtol=1e-10, atol=1e-12)


def test_mmd_zero_rows_stays_finite_where_the_public_code_gives_nan() -> None:
    """Nothing present on either side: the public bandwidth is 0/0 (NaN); dastc floors it."""
    z = torch.zeros(5, 4, dtype=torch.float64)
    none = torch.zeros(5, dtype=torch.bool)
    assert torch.isnan(pub_mmd_rbf(z, z))
    assert prototype_mmd(z, z, none, none, absent="zero").item() == 0.0


def test_the_public_alignment_chain_end_to_end() -> None:
    """Source logits + labels, two target predictions → MMD, all as the public step does."""
    g = torch.Generator().manual_seed(7)
    k, h, w = 15, 8, 10
    src = torch.randn(1, k, h, w, generator=g, dtype=torch.float64)
    label = torch.randint(0, k, (1, h, w), generator=g)
    dc = torch.randn(1, k, h, w, generator=g, dtype=torch.float64)
    da = torch.randn(1, k, h, w, generator=g, dtype=torch.float64)
    vs = pub_objective_vectors(src, src, k, labels=label.double().unsqueeze(1))
    vt = pub_temporal_module(pub_objective_vectors(dc, dc, k), pub_objective_vectors(da, da, k))
    expected = pub_mmd_rbf(vs, vt)

    right = torch.where(src.argmax(1) == label, label, 255).unsqueeze(1)
    ps = frame_mean_prototypes(src.unsqueeze(1), right, k, min_pixels=5)
    tgt = torch.stack([dc, da], 1)
    pt = frame_mean_prototypes(tgt, tgt.argmax(2), k, min_pixels=5)
    got = prototype_mmd(ps.vectors, pt.vectors, ps.present, pt.present, absent="zero")
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)


# ------------------------------------------------------------------ the method


def _batch(g: torch.Generator, k: int = 4, b: int = 2) -> dict[str, torch.Tensor]:
    return {
        "clip": torch.rand(b, 2, 3, 16, 16, generator=g),
        "label": torch.randint(0, k, (b, 2, 16, 16), generator=g),
        "flow_prev": torch.zeros(b, 2, 2, 16, 16),
    }


def _official(**kw: object) -> MethodConfig:
    return MethodConfig.official(adapt_start=0, rare_classes=(3,), **kw)


def test_official_config_sets_the_public_knobs() -> None:
    cfg = MethodConfig.official(rare_classes=PUBLIC_TAIL_CLASSES["synthia_seq"])
    for name, value in MethodConfig.official_knobs().items():
        assert getattr(cfg, name) == value, name
        assert getattr(MethodConfig(), name) != value, f"{name} is already the default"
    assert cfg.rare_classes == (3, 4, 5, 6, 10)
    assert MethodConfig.official(align_weight=0.5).align_weight == 0.5


def test_mix_previous_source_pastes_the_previous_steps_source() -> None:
    torch.manual_seed(0)
    method = DASTC(ToySegmenter(4), 4, _official(strong_aug=False))
    g = torch.Generator().manual_seed(1)
    first, second = _batch(g), _batch(g)
    tgt = _batch(g)
    method(first, tgt).loss.backward()
    method.after_step()
    assert method.last_mix is not None
    # the first step has no previous source: it mixes its own
    assert torch.equal(method.last_mix.source_clip, first["clip"])
    out = method(second, tgt)
    mix = method.last_mix
    assert torch.equal(mix.source_clip, first["clip"]) and torch.equal(
        mix.source_label, first["label"]
    )
    m = mix.mix.s2t_mask.unsqueeze(2).expand_as(first["clip"])
    assert m.any()
    assert torch.equal(mix.mix.s2t_clip[m], first["clip"][m])
    assert torch.isfinite(out.loss)


def test_mix_previous_source_survives_a_checkpoint() -> None:
    """Resuming from state_dict gives the same next step, bitwise."""
    g = torch.Generator().manual_seed(2)
    batches = [(_batch(g), _batch(g)) for _ in range(3)]

    def run(n_before: int, method: DASTC) -> None:
        for s, t in batches[:n_before]:
            method(s, t).loss.backward()
            method.after_step()

    torch.manual_seed(0)
    a = DASTC(ToySegmenter(4), 4, _official())
    run(2, a)
    torch.manual_seed(0)
    b = DASTC(ToySegmenter(4), 4, _official())
    b.student.load_state_dict(a.student.state_dict())
    b.load_state_dict(a.state_dict())
    la = a(*batches[2]).loss
    lb = b(*batches[2]).loss
    assert torch.equal(la, lb)
    assert torch.equal(a.last_mix.source_clip, batches[1][0]["clip"])
    assert torch.equal(b.last_mix.source_clip, batches[1][0]["clip"])


def test_official_method_aligns_logits_with_the_public_mmd() -> None:
    """The official step builds logit prototypes averaged over frames and logs a finite MMD."""
    torch.manual_seed(0)
    method = DASTC(ToySegmenter(4), 4, _official(mix_previous_source=False))
    assert method.agg_src.feat_dim == 4 and method.agg_src.pooling == "frame_mean"
    assert method.agg_src.min_pixels == 5 and method.align_loss.absent == "zero"
    assert method.mix.class_count == 2 and not method.mix.rare_t2s
    g = torch.Generator().manual_seed(3)
    out = method(_batch(g), _batch(g))
    assert "align" in out.logs and torch.isfinite(out.logs["align"])
    assert out.logs["align"].item() >= 0.0


def test_config_rejects_min_pixels_without_frame_mean() -> None:
    with pytest.raises(ValueError, match="prototype_min_pixels"):
        MethodConfig(prototype_min_pixels=5)
    with pytest.raises(ValueError, match="min_pixels"):
        SpatioTemporalPrototypeAggregator(4, 8, min_pixels=5)
    with pytest.raises(ValueError, match="align_on"):
        MethodConfig(align_on="shallow")  # type: ignore[arg-type]

"""BidirectionalClipMix and its functional core, against plain references."""

from __future__ import annotations

import math

import pytest
import torch

import dastc
from dastc import BidirectionalClipMix, ClipMixOutput
from dastc.functional import bidirectional_clip_mix, sample_class_masks
from dastc.functional.class_mix import _label_table, _present_classes

K = 6


def make_batch(seed: int, B: int = 2, T: int = 3, H: int = 8, W: int = 10, image: bool = False):
    g = torch.Generator().manual_seed(seed)
    shape = (B, H, W) if image else (B, T, H, W)
    cshape = (B, 3, H, W) if image else (B, T, 3, H, W)
    xs, xt = torch.rand(cshape, generator=g), torch.rand(cshape, generator=g)
    ys = torch.randint(0, K, shape, generator=g)
    yt = torch.randint(0, K, shape, generator=g)
    ys[torch.rand(shape, generator=g) < 0.1] = 255
    yt[torch.rand(shape, generator=g) < 0.1] = 255
    wt = torch.rand(shape, generator=g)
    return xs, ys, xt, yt, wt


def round_half_up(x: float) -> int:
    return math.floor(x + 0.5)


def check_masks_follow_contract(labels, mask, cf):
    """Per clip: mask is the union of whole classes, drawn from present valid classes."""
    for b in range(labels.shape[0]):
        present = sorted({int(v) for v in labels[b].unique() if int(v) != 255})
        chosen = sorted({int(v) for v in labels[b][mask[b]].unique()})
        assert 255 not in chosen
        assert set(chosen) <= set(present)
        assert len(chosen) == round_half_up(cf * len(present))
        # whole classes, in every frame: mask == isin(labels, chosen)
        ref = torch.zeros_like(mask[b])
        for c in chosen:
            ref |= labels[b] == c
        assert torch.equal(mask[b], ref)


def reference_mix(xs, ys, xt, yt, wt, ms, mt):
    """Pixel loop reference of the DESIGN formulas on clip-rank tensors."""
    B, T, _C, H, W = xs.shape
    s2t_clip, t2s_clip = xt.clone(), xs.clone()
    s2t_label, t2s_label = yt.clone(), ys.clone()
    s2t_w, t2s_w = wt.clone(), torch.ones_like(wt)
    for b in range(B):
        for t in range(T):
            for i in range(H):
                for j in range(W):
                    if ms[b, t, i, j]:
                        s2t_clip[b, t, :, i, j] = xs[b, t, :, i, j]
                        s2t_label[b, t, i, j] = ys[b, t, i, j]
                        s2t_w[b, t, i, j] = 1.0
                    if mt[b, t, i, j]:
                        t2s_clip[b, t, :, i, j] = xt[b, t, :, i, j]
                        t2s_label[b, t, i, j] = yt[b, t, i, j]
                        t2s_w[b, t, i, j] = wt[b, t, i, j]
    return s2t_clip, s2t_label, s2t_w, t2s_clip, t2s_label, t2s_w


@pytest.mark.parametrize("cf", [0.5, 0.3, 1.0, 0.0])
def test_value_masks_follow_contract(cf):
    xs, ys, xt, yt, wt = make_batch(0, B=3)
    out = bidirectional_clip_mix(
        xs,
        ys,
        xt,
        yt,
        wt,
        num_classes=K,
        class_fraction=cf,
        generator=torch.Generator().manual_seed(1),
    )
    check_masks_follow_contract(ys, out.s2t_mask, cf)
    check_masks_follow_contract(yt, out.t2s_mask, cf)


def test_value_mix_matches_pixel_loop():
    xs, ys, xt, yt, wt = make_batch(1)
    out = bidirectional_clip_mix(
        xs, ys, xt, yt, wt, num_classes=K, generator=torch.Generator().manual_seed(0)
    )
    ref = reference_mix(xs, ys, xt, yt, wt, out.s2t_mask, out.t2s_mask)
    got = (out.s2t_clip, out.s2t_label, out.s2t_weight, out.t2s_clip, out.t2s_label, out.t2s_weight)
    for a, b in zip(got, ref, strict=False):
        assert torch.equal(a, b)


def unique_presence(labels, num_classes, ignore_index):
    """Per-clip reference: the valid classes in torch.unique of the clip's labels."""
    present = torch.zeros(labels.shape[0], num_classes, dtype=torch.bool)
    for b in range(labels.shape[0]):
        for v in torch.unique(labels[b]).tolist():
            if v != ignore_index:
                present[b, v] = True
    return present


@pytest.mark.parametrize("ignore_index", [255, K, K + 1, -1, -100, 2**40, -(2**40)])
@pytest.mark.parametrize("image", [False, True])
def test_value_presence_matches_unique(ignore_index, image):
    g = torch.Generator().manual_seed(11)
    shape = (4, 9, 7) if image else (4, 3, 9, 7)
    labels = torch.randint(0, K, shape, generator=g)
    labels[torch.rand(shape, generator=g) < 0.3] = ignore_index
    labels[1] = labels[1].clamp(max=2)  # clip 1: classes 0-2 only
    labels[2] = ignore_index  # clip 2: nothing valid
    labels[3] = torch.where(labels[3] == 4, 0, labels[3])  # clip 3: class 4 absent
    table = _label_table(labels, K, ignore_index)
    present = _present_classes(table, K)
    assert torch.equal(present, unique_presence(labels, K, ignore_index))
    # The mask gathers the drawn classes through the same table: whole classes, never ignore.
    mask, chosen = sample_class_masks(
        labels, K, 0.5, ignore_index=ignore_index, generator=torch.Generator().manual_seed(0)
    )
    assert not (chosen & ~present).any()
    for b in range(shape[0]):
        ref = torch.isin(labels[b], chosen[b].nonzero().flatten())
        assert torch.equal(mask[b], ref)


def test_value_draw_is_uniform_over_present_classes():
    # 4 present classes, fraction 0.5 -> 2 drawn; each class should be drawn ~half the time.
    labels = torch.tensor([0, 1, 3, 5]).repeat(2, 1).reshape(1, 2, 2, 2)
    g = torch.Generator().manual_seed(0)
    counts = torch.zeros(K)
    n = 2000
    for _ in range(n):
        _, chosen = sample_class_masks(labels, K, 0.5, generator=g)
        counts += chosen[0].float()
    freq = counts / n
    assert torch.allclose(freq[[0, 1, 3, 5]], torch.full((4,), 0.5), atol=0.05)
    assert freq[2] == 0 and freq[4] == 0


def test_value_default_weight_is_one_and_flows_are_mixed():
    xs, ys, xt, yt, _ = make_batch(2)
    fs, ft = torch.randn(2, 3, 2, 8, 10), torch.randn(2, 3, 2, 8, 10)
    out = bidirectional_clip_mix(xs, ys, xt, yt, num_classes=K, src_flow=fs, tgt_flow=ft)
    assert torch.equal(out.s2t_weight, torch.ones_like(out.s2t_weight))
    assert out.s2t_weight.dtype == torch.float32
    m = out.s2t_mask.unsqueeze(2)
    assert torch.equal(out.s2t_flow, torch.where(m, fs, ft))
    assert torch.equal(out.t2s_flow, torch.where(out.t2s_mask.unsqueeze(2), ft, fs))


def test_shape_image_rank_returns_image_rank():
    xs, ys, xt, yt, wt = make_batch(3, image=True)
    out = BidirectionalClipMix(K)(xs, ys, xt, yt, wt, generator=torch.Generator().manual_seed(0))
    assert isinstance(out, ClipMixOutput)
    assert out.s2t_clip.shape == xs.shape and out.t2s_label.shape == ys.shape
    assert out.s2t_mask.shape == ys.shape and out.s2t_flow is None
    check_masks_follow_contract(ys.unsqueeze(1), out.s2t_mask.unsqueeze(1), 0.5)


def test_shape_batch_of_one_and_single_frame():
    xs, ys, xt, yt, wt = make_batch(4, B=1, T=1)
    out = BidirectionalClipMix(K)(xs, ys, xt, yt, wt)
    assert out.s2t_clip.shape == (1, 1, 3, 8, 10)


def test_value_same_generator_same_result():
    batch = make_batch(5)
    mix = BidirectionalClipMix(K)
    a = mix(*batch, generator=torch.Generator().manual_seed(42))
    b = mix(*batch, generator=torch.Generator().manual_seed(42))
    c = mix(*batch, generator=torch.Generator().manual_seed(43))
    for x, y in zip(a, b, strict=False):
        assert x is None or torch.equal(x, y)
    assert not (torch.equal(a.s2t_mask, c.s2t_mask) and torch.equal(a.t2s_mask, c.t2s_mask))


def test_value_one_class_and_no_valid_class():
    xs, _, xt, _, wt = make_batch(6)
    one = torch.full((2, 3, 8, 10), 2)
    none = torch.full((2, 3, 8, 10), 255)
    out = bidirectional_clip_mix(xs, one, xt, none, wt, num_classes=K)
    assert out.s2t_mask.all()  # round_half_up(0.5 * 1) = 1 class: everything pasted
    assert not out.t2s_mask.any()  # nothing valid to draw
    assert torch.equal(out.t2s_clip, xs) and torch.equal(out.t2s_weight, torch.ones_like(wt))
    assert torch.equal(out.s2t_clip, xs)


def test_value_rare_classes_exclusion_and_threshold():
    xs, ys, xt, yt, wt = make_batch(7, B=4)
    mix = BidirectionalClipMix(K, class_fraction=0.0, rare_classes=[3])
    out = mix(xs, ys, xt, yt, wt)
    assert torch.equal(out.s2t_mask, ys == 3)  # only the rare class, wherever present
    conf = torch.rand(yt.shape, generator=torch.Generator().manual_seed(0))
    strict = BidirectionalClipMix(K, class_fraction=1.0, paste_threshold=0.7)
    out = strict(xs, ys, xt, yt, wt, tgt_confidence=conf)
    assert torch.equal(out.t2s_mask, (yt != 255) & (conf > 0.7))
    # the threshold reads the per-pixel confidence, never the per-clip weight
    with pytest.raises(ValueError, match=r"^tgt_confidence: paste_threshold needs"):
        strict(xs, ys, xt, yt, wt)
    excl = BidirectionalClipMix(K, exclude_s2t_classes=True)
    out = excl(xs, ys, xt, yt, wt, generator=torch.Generator().manual_seed(3))
    for b in range(4):
        s = set(ys[b][out.s2t_mask[b]].tolist())
        t = set(yt[b][out.t2s_mask[b]].tolist())
        assert not s & t


def test_dtype_bf16_autocast_and_half_clips():
    xs, ys, xt, yt, wt = make_batch(8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = BidirectionalClipMix(K)(xs.bfloat16(), ys, xt.bfloat16(), yt, wt.bfloat16())
    assert out.s2t_clip.dtype == torch.bfloat16 and out.s2t_weight.dtype == torch.bfloat16
    ref = torch.where(out.s2t_mask.unsqueeze(2), xs.bfloat16(), xt.bfloat16())
    assert torch.equal(out.s2t_clip, ref)


def test_dynamo_fullgraph_equals_eager():
    import torch._inductor.config as inductor_config

    xs, ys, xt, yt, wt = make_batch(9)

    def fn(xs, ys, xt, yt, wt):
        return bidirectional_clip_mix(xs, ys, xt, yt, wt, num_classes=K)

    compiled = torch.compile(fn, fullgraph=True)
    with inductor_config.patch(fallback_random=True):
        torch.manual_seed(0)
        got = compiled(xs, ys, xt, yt, wt)
    torch.manual_seed(0)
    want = fn(xs, ys, xt, yt, wt)
    for a, b in zip(got, want, strict=False):
        assert (a is None and b is None) or torch.equal(a, b)


@pytest.mark.parametrize(
    ("kwargs", "err", "match"),
    [
        ({"src_label": "float"}, TypeError, "src_label"),
        ({"src_label": "out_of_range"}, ValueError, "src_label"),
        ({"tgt_label": "negative"}, ValueError, "tgt_label"),
        ({"tgt_clip": "short"}, ValueError, "tgt_clip"),
        ({"src_label": "short_t"}, ValueError, "src_label"),
        ({"tgt_weight": "wrong_shape"}, ValueError, "tgt_weight"),
        ({"src_clip": "int"}, TypeError, "src_clip"),
        ({"src_clip": "rank3"}, ValueError, "src_clip"),
        ({"tgt_flow": "missing"}, ValueError, "tgt_flow"),
        ({"src_clip": "empty"}, ValueError, "src_clip"),
    ],
)
def test_bad_input(kwargs, err, match):
    xs, ys, xt, yt, wt = make_batch(10)
    args = {"src_clip": xs, "src_label": ys, "tgt_clip": xt, "tgt_label": yt, "tgt_weight": wt}
    extra = {}
    ((name, kind),) = kwargs.items()
    v = args.get(name)
    if kind == "float":
        args[name] = v.float()
    elif kind == "out_of_range":
        args[name] = v.masked_fill(v == 255, K)
    elif kind == "negative":
        args[name] = v.masked_fill(v == 255, -1)
    elif kind in ("short", "short_t"):
        args[name] = v[:, :2]
    elif kind == "wrong_shape":
        args[name] = v[..., :5]
    elif kind == "int":
        args[name] = (v * 255).long()
    elif kind == "rank3":
        args[name] = v[0, 0]
    elif kind == "missing":
        extra = {"src_flow": torch.zeros(2, 3, 2, 8, 10)}
    elif kind == "empty":
        args = {k: a[:0] for k, a in args.items()}
    with pytest.raises(err, match=match):
        BidirectionalClipMix(K)(**args, **extra)


def test_bad_config():
    with pytest.raises(ValueError, match="class_fraction"):
        BidirectionalClipMix(K, class_fraction=1.5)
    with pytest.raises(ValueError, match="ignore_index"):
        BidirectionalClipMix(K, ignore_index=2)
    with pytest.raises(ValueError, match="rare_classes"):
        BidirectionalClipMix(K, rare_classes=[K])
    with pytest.raises(ValueError, match="num_classes"):
        BidirectionalClipMix(0)


def test_value_partly_labelled_source_clip_pastes_only_labelled_frames():
    """A source frame read as ignore (the public VIPER download's frame t - 1) pastes
    nothing: the S→T clip keeps that frame's target pixels and pseudo-labels."""
    xs, ys, xt, yt, wt = make_batch(9, B=3)
    ys[:, 0] = 255  # frame 0 of every source clip has no label
    out = BidirectionalClipMix(K, class_fraction=1.0)(xs, ys, xt, yt, wt)
    assert not out.s2t_mask[:, 0].any() and out.s2t_mask[:, 1:].any()
    assert torch.equal(out.s2t_clip[:, 0], xt[:, 0]) and torch.equal(out.s2t_label[:, 0], yt[:, 0])
    assert torch.equal(out.s2t_mask[:, 1:], ys[:, 1:] != 255)  # every labelled class drawn


@pytest.mark.parametrize("ignore", [255, -1, K, 70000])
@pytest.mark.parametrize("image", [False, True])
@pytest.mark.parametrize(
    "bad",
    ["none", "src_k", "tgt_k", "src_minus_1", "tgt_minus_2", "src_below_table", "src_above_table",
     "tgt_between", "both", "huge", "all_ignored"],
)  # fmt: skip
def test_value_label_check_on_the_class_table_refuses_what_the_plain_check_refuses(
    bad: str, image: bool, ignore: int
) -> None:
    """On CPU the clip mix checks the labels from its per-clip class tables; it refuses
    exactly what the plain check (labels first, then target; a loop here) refuses,
    with its message, before any draw, and otherwise mixes as before."""
    xs, ys, xt, yt, wt = make_batch(11, image=image)
    ys, yt = ys.masked_fill(ys == 255, ignore), yt.masked_fill(yt == 255, ignore)
    at = (0, 1, 2) if image else (0, 1, 2, 3)
    edits = {
        "src_k": [(ys, K)], "tgt_k": [(yt, K)], "src_minus_1": [(ys, -1)],
        "tgt_minus_2": [(yt, -2)], "src_below_table": [(ys, -70001)],
        "src_above_table": [(ys, ignore + 1)], "tgt_between": [(yt, K + 2)],
        "both": [(ys, K + 1), (yt, -5)], "huge": [(ys, 2**40)],
    }  # fmt: skip
    for tensor, value in edits.get(bad, []):
        tensor[at] = value
    if bad == "all_ignored":
        ys.fill_(ignore)

    def plain(labels: torch.Tensor, name: str) -> str | None:
        vals = sorted({v for v in labels.reshape(-1).tolist() if not (0 <= v < K or v == ignore)})
        if vals:
            return f"{name}: expected values in [0, {K}) or ignore_index={ignore}, got {vals[:8]}"
        return None

    want = plain(ys, "src_label") or plain(yt, "tgt_label")
    g = torch.Generator().manual_seed(3)
    kw = {"num_classes": K, "ignore_index": ignore, "generator": g}
    if want is not None:
        with pytest.raises(ValueError) as err:
            bidirectional_clip_mix(xs, ys, xt, yt, wt, **kw)
        assert str(err.value).startswith(want)
        assert err.value.__context__ is None  # no chained internal exception
        assert torch.equal(g.get_state(), torch.Generator().manual_seed(3).get_state())
        return
    got = bidirectional_clip_mix(xs, ys, xt, yt, wt, **kw)
    with dastc.value_checks(False):
        ref = bidirectional_clip_mix(
            xs, ys, xt, yt, wt, **{**kw, "generator": torch.Generator().manual_seed(3)}
        )
    for a, b in zip(got, ref, strict=True):
        assert (a is None and b is None) or torch.equal(a, b)

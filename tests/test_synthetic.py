"""Tests of the built-in synthetic driving clips and their domain shift."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from dastc.data import DEFAULT_TARGET_SHIFT, Shift, SyntheticDrivingClips

K = SyntheticDrivingClips.NUM_CLASSES
SIZE = (48, 96)


def _ds(
    domain: str = "source", split: str = "train", n: int = 4, **kw: object
) -> SyntheticDrivingClips:
    kw.setdefault("size", SIZE)
    return SyntheticDrivingClips(domain, split, n, **kw)  # type: ignore[arg-type]


def _class_id(name: str) -> int:
    return SyntheticDrivingClips.CLASSES.index(name)


def _warp_nearest(x: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """out[..., y, x] = x[..., y + fy, x + fx] (nearest), with F.grid_sample; x (N, C, H, W)."""
    _, _, h, w = x.shape
    gy, gx = torch.meshgrid(
        torch.arange(h, dtype=flow.dtype), torch.arange(w, dtype=flow.dtype), indexing="ij"
    )
    px = gx + flow[:, 0]
    py = gy + flow[:, 1]
    grid = torch.stack([2 * px / (w - 1) - 1, 2 * py / (h - 1) - 1], dim=-1)
    return F.grid_sample(x, grid, mode="nearest", padding_mode="border", align_corners=True)


# ---------------------------------------------------------------- shapes and values


@pytest.mark.parametrize("clip_len", [1, 2, 3])
def test_shape_item(clip_len: int) -> None:
    item = _ds(n=2, clip_len=clip_len)[1]
    h, w = SIZE
    assert item["clip"].shape == (clip_len, 3, h, w) and item["clip"].dtype == torch.float32
    assert item["label"].shape == (clip_len, h, w) and item["label"].dtype == torch.long
    assert item["flow"].shape == (clip_len, 2, h, w) and item["flow"].dtype == torch.float32
    assert item["flow_prev"].shape == (clip_len, 2, h, w)
    assert item["valid"].shape == (clip_len, h, w) and item["valid"].dtype == torch.bool
    assert item["index"] == 1


def test_shape_default_size_and_len() -> None:
    ds = SyntheticDrivingClips("target", "val", 3)
    assert len(ds) == 3
    assert ds[-1]["clip"].shape == (2, 3, 64, 128)
    assert ds[-1]["index"] == 2


@pytest.mark.parametrize("domain", ["source", "target"])
def test_value_ranges(domain: str) -> None:
    for item in (_ds(domain, n=3, clip_len=3)[i] for i in range(3)):
        clip, label = item["clip"], item["label"]
        assert torch.isfinite(clip).all() and clip.min() >= 0 and clip.max() <= 1
        assert label.min() >= 0 and label.max() < K
        assert torch.isfinite(item["flow"]).all() and torch.isfinite(item["flow_prev"]).all()


def test_palette_and_classes() -> None:
    S = SyntheticDrivingClips
    assert len(S.CLASSES) == K >= 8
    assert S.PALETTE.shape == (K, 3) and S.PALETTE.dtype == torch.uint8
    assert len({tuple(c) for c in S.PALETTE.tolist()}) == K  # distinct colours
    for rare in ("pole", "sign", "person", "car"):
        assert rare in S.CLASSES


def test_value_colorize() -> None:
    label = torch.tensor([[0, 1], [K - 1, 255]])
    rgb = SyntheticDrivingClips.colorize(label)
    assert rgb.shape == (2, 2, 3) and rgb.dtype == torch.uint8
    pal = SyntheticDrivingClips.PALETTE
    assert torch.equal(rgb[0, 0], pal[0]) and torch.equal(rgb[1, 0], pal[K - 1])
    assert torch.equal(rgb[1, 1], torch.zeros(3, dtype=torch.uint8))


# ---------------------------------------------------------------- determinism


def test_deterministic_per_index() -> None:
    a, b = _ds(n=3, seed=5), _ds(n=3, seed=5)
    for i in (0, 2):
        x, y = a[i], b[i]
        for k in ("clip", "label", "flow", "flow_prev", "valid"):
            assert torch.equal(x[k], y[k]), k
    # the order of access does not matter
    assert torch.equal(_ds(n=3, seed=5)[2]["clip"], a[2]["clip"])


def test_scenes_differ_across_index_seed_domain_split() -> None:
    base = _ds("source", "train", n=2, seed=0, shift=Shift())[0]["label"]
    others = [
        _ds("source", "train", n=2, seed=0, shift=Shift())[1]["label"],
        _ds("source", "train", n=2, seed=1, shift=Shift())[0]["label"],
        _ds("target", "train", n=2, seed=0, shift=Shift())[0]["label"],
        _ds("source", "val", n=2, seed=0, shift=Shift())[0]["label"],
    ]
    for other in others:
        assert (other != base).float().mean() > 0.05


def test_dataloader_workers_match_direct_indexing() -> None:
    ds = _ds("target", n=4)
    loader = DataLoader(ds, batch_size=2, num_workers=2, shuffle=False)
    batches = list(loader)
    assert len(batches) == 2
    for j, batch in enumerate(batches):
        for b in range(2):
            item = ds[2 * j + b]
            assert int(batch["index"][b]) == 2 * j + b
            for k in ("clip", "label", "flow", "valid"):
                assert torch.equal(batch[k][b], item[k]), k


# ---------------------------------------------------------------- flow


@pytest.mark.parametrize("domain", ["source", "target"])
def test_value_flow_warps_last_frame_labels(domain: str) -> None:
    ds = _ds(domain, n=6, clip_len=3)
    agree, agree_zero, total, moved = 0.0, 0.0, 0.0, []
    for i in range(len(ds)):
        item = ds[i]
        label, flow, valid = item["label"], item["flow"], item["valid"]
        t_last = label.shape[0] - 1
        assert torch.equal(flow[t_last], torch.zeros_like(flow[t_last]))
        assert valid[t_last].all()
        last = label[t_last].float()[None, None].expand(t_last, 1, *SIZE)
        warped = _warp_nearest(last, flow[:t_last])[:, 0].long()
        still = _warp_nearest(last, torch.zeros_like(flow[:t_last]))[:, 0].long()
        v = valid[:t_last]
        agree += float((warped == label[:t_last])[v].sum())
        agree_zero += float((still == label[:t_last])[v].sum())
        total += float(v.sum())
        moved.append(float(flow[:t_last].norm(dim=1).mean()))
        # most of each earlier frame is still visible in the last frame
        assert v.float().mean() > 0.45
    rate = agree / total
    assert rate > 0.95
    # the flow is not trivial: without it, far more pixels disagree
    assert 1 - agree_zero / total > 2 * (1 - rate)
    assert sum(moved) / len(moved) > 0.5


def test_value_flow_prev_warps_previous_frame_labels() -> None:
    ds = _ds("source", n=4, clip_len=3)
    agree, total = 0.0, 0.0
    for i in range(len(ds)):
        item = ds[i]
        label, fp = item["label"], item["flow_prev"]
        assert torch.equal(fp[0], torch.zeros_like(fp[0]))
        prev = label[:-1].float()[:, None]
        warped = _warp_nearest(prev, fp[1:])[:, 0].long()
        h, w = SIZE
        gy, gx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
        px, py = gx + fp[1:, 0], gy + fp[1:, 1]
        inside = (px >= 0) & (px <= w - 1) & (py >= 0) & (py <= h - 1)
        agree += float((warped == label[1:])[inside].sum())
        total += float(inside.sum())
    assert agree / total > 0.93


def test_value_flow_matches_own_reference_for_static_ground() -> None:
    """Ground pixels of the source move as the projective formula of a translating camera says.

    The camera translates forward by (cam_z[T-1] - cam_z[t]); for a ground point at
    depth d seen at row y (horizon y_h, focal f), the new row is
    y_h + (y - y_h) * d / (d - dz), so rows below the horizon move down.
    """
    item = _ds("source", n=1, clip_len=2)[0]
    label, flow, valid = item["label"], item["flow"], item["valid"]
    ground = ((label[0] == _class_id("road")) | (label[0] == _class_id("sidewalk"))) & valid[0]
    rows = torch.arange(SIZE[0])[:, None].expand(SIZE).float()
    dy = flow[0, 1][ground]
    # forward motion: ground rows move downwards, and more so the lower they are
    assert (dy >= -1e-4).all()
    low = rows[ground] > rows[ground].median()
    assert dy[low].mean() > dy[~low].mean()


# ---------------------------------------------------------------- the domain shift


def _class_mean_colour(ds: SyntheticDrivingClips, cls: int) -> torch.Tensor:
    acc, n = torch.zeros(3), 0.0
    for i in range(len(ds)):
        item = ds[i]
        m = item["label"] == cls
        acc += item["clip"].permute(0, 2, 3, 1)[m].sum(0)
        n += float(m.sum())
    return acc / max(n, 1.0)


def test_value_hue_rotates_classes_differently() -> None:
    angles = Shift(hue=90.0).class_hue_angles()
    assert angles.shape == (K,) and len(set(angles.tolist())) == K  # class-specific
    still = int(angles.abs().argmin())
    turned = int(angles.abs().argmax())
    plain = _ds(n=4, shift=Shift())
    rotated = _ds(n=4, shift=Shift(hue=90.0))
    # same scenes (layout unchanged): identical labels and flows
    for i in range(4):
        assert torch.equal(plain[i]["label"], rotated[i]["label"])
        assert torch.equal(plain[i]["flow"], rotated[i]["flow"])
    assert torch.allclose(
        _class_mean_colour(plain, still), _class_mean_colour(rotated, still), atol=1e-5
    )
    diff = (_class_mean_colour(plain, turned) - _class_mean_colour(rotated, turned)).abs().max()
    assert diff > 0.05


def _high_freq_energy(ds: SyntheticDrivingClips) -> float:
    lap = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]]).view(1, 1, 3, 3)
    e = 0.0
    for i in range(len(ds)):
        x = ds[i]["clip"].flatten(0, 1)[:, None]
        e += float(F.conv2d(x, lap).abs().mean())
    return e / len(ds)


def test_value_blur_lowers_and_noise_raises_high_frequencies() -> None:
    base = _high_freq_energy(_ds(n=3, shift=Shift()))
    assert _high_freq_energy(_ds(n=3, shift=Shift(blur=1.0))) < 0.6 * base
    assert _high_freq_energy(_ds(n=3, shift=Shift(noise=0.05))) > 1.3 * base


def test_value_texture_raises_within_class_variation() -> None:
    veg = _class_id("vegetation")

    def spread(ds: SyntheticDrivingClips) -> float:
        vals = [ds[i]["clip"].permute(0, 2, 3, 1)[ds[i]["label"] == veg] for i in range(len(ds))]
        return float(torch.cat(vals).std(0).mean())

    assert spread(_ds(n=3, shift=Shift(texture=1.0))) > 1.2 * spread(_ds(n=3, shift=Shift()))


def test_value_contrast_is_a_gamma() -> None:
    plain = _ds(n=2, shift=Shift())[0]["clip"]
    darker = _ds(n=2, shift=Shift(contrast=0.5))[0]["clip"]
    expected = plain.clamp(min=1e-6) ** torch.exp(torch.tensor(0.5))
    assert torch.allclose(darker, expected, atol=1e-5)


def _area_fractions(ds: SyntheticDrivingClips) -> torch.Tensor:
    counts = torch.zeros(K)
    for i in range(len(ds)):
        counts += torch.bincount(ds[i]["label"].flatten(), minlength=K).float()
    return counts / counts.sum()


def test_value_layout_changes_class_areas() -> None:
    plain = _area_fractions(_ds(n=12, shift=Shift()))
    moved = _area_fractions(_ds(n=12, shift=Shift(layout=1.0)))
    road, walk, sky = _class_id("road"), _class_id("sidewalk"), _class_id("sky")
    assert moved[road] < 0.8 * plain[road]  # narrower road, lower horizon
    assert moved[walk] > 1.1 * plain[walk]  # wider sidewalks
    assert moved[sky] > 1.2 * plain[sky]  # lower buildings, lower horizon


def test_value_default_target_differs_from_source() -> None:
    src = _ds("source", n=4)
    tgt = _ds("target", n=4)
    assert tgt.shift == DEFAULT_TARGET_SHIFT and src.shift.is_identity
    walk = _class_id("sidewalk")
    assert (_class_mean_colour(src, walk) - _class_mean_colour(tgt, walk)).abs().max() > 0.05
    assert (_area_fractions(src) - _area_fractions(tgt)).abs().max() > 0.02


def test_value_every_class_appears() -> None:
    for domain in ("source", "target"):
        seen = torch.zeros(K, dtype=torch.bool)
        ds = _ds(domain, n=8)
        for i in range(len(ds)):
            seen |= torch.bincount(ds[i]["label"].flatten(), minlength=K) > 0
        assert seen.all(), (domain, seen)


def test_value_objects_move_independently() -> None:
    """Cars move on their own: their flow differs from that of the road around them."""
    car = _class_id("car")
    road = _class_id("road")
    diffs = []
    ds = _ds("source", n=8)
    for i in range(len(ds)):
        item = ds[i]
        lab, flow = item["label"][0], item["flow"][0]
        m_car = (lab == car) & item["valid"][0]
        if m_car.sum() < 10:
            continue
        rows = m_car.nonzero()[:, 0]
        band = torch.zeros_like(m_car)
        band[rows.min() : rows.max() + 1] = True
        m_road = (lab == road) & band
        if m_road.sum() < 10:
            continue
        diffs.append(float((flow[:, m_car].mean(1) - flow[:, m_road].mean(1)).norm()))
    assert diffs and max(diffs) > 0.5


# ---------------------------------------------------------------- Shift


def test_shift_defaults() -> None:
    assert Shift().is_identity
    assert not DEFAULT_TARGET_SHIFT.is_identity
    assert Shift.default() is DEFAULT_TARGET_SHIFT
    for f in dataclasses.fields(Shift):
        if f.name != "seed":
            assert getattr(Shift(), f.name) == 0
    with pytest.raises(dataclasses.FrozenInstanceError):
        Shift().hue = 3.0  # type: ignore[misc]


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"blur": -1.0}, "blur"),
        ({"noise": -0.1}, "noise"),
        ({"texture": -2.0}, "texture"),
        ({"layout": 3.0}, "layout"),
        ({"hue": float("nan")}, "hue"),
        ({"contrast": float("inf")}, "contrast"),
    ],
)
def test_shift_bad_values(kwargs: dict[str, float], name: str) -> None:
    with pytest.raises(ValueError, match=name):
        Shift(**kwargs)


def test_shift_bad_types() -> None:
    with pytest.raises(TypeError, match="hue"):
        Shift(hue="a lot")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="seed"):
        Shift(seed=1.5)  # type: ignore[arg-type]


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"domain": "real"}, "domain"),
        ({"split": "test"}, "split"),
        ({"length": -1}, "length"),
        ({"clip_len": 0}, "clip_len"),
        ({"size": (8, 64)}, "size"),
        ({"size": (64,)}, "size"),
    ],
)
def test_bad_arguments(kwargs: dict[str, object], name: str) -> None:
    args: dict[str, object] = {"domain": "source", "split": "train", "length": 2}
    args.update(kwargs)
    with pytest.raises(ValueError, match=name):
        SyntheticDrivingClips(**args)  # type: ignore[arg-type]


def test_bad_shift_and_seed_types() -> None:
    with pytest.raises(TypeError, match="shift"):
        SyntheticDrivingClips("target", "train", 2, shift={"hue": 10})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="seed"):
        SyntheticDrivingClips("target", "train", 2, seed=0.5)  # type: ignore[arg-type]


def test_bad_index() -> None:
    ds = _ds(n=2)
    with pytest.raises(IndexError, match="index"):
        ds[2]
    with pytest.raises(IndexError, match="index"):
        ds[-3]
    with pytest.raises(TypeError, match="index"):
        ds[1.0]  # type: ignore[index]


def test_bad_colorize_input() -> None:
    with pytest.raises(TypeError, match="label"):
        SyntheticDrivingClips.colorize(torch.zeros(2, 2))
    with pytest.raises(ValueError, match="label"):
        SyntheticDrivingClips.colorize(torch.zeros(2, dtype=torch.long))

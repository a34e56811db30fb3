"""Tests for MIC block masking: dastc.functional.masking and dastc.masking.BlockMasking."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from dastc.functional.masking import block_mask, mask_clip
from dastc.masking import BlockMasking

# torch.compile backends: aot_eager traces the whole graph (fullgraph=True still
# fails on any graph break) without inductor's C++ build, which takes ~30 s a test
# on a cold cache; the inductor variant runs with ``-m slow``.
BACKENDS = ["aot_eager", pytest.param("inductor", marks=pytest.mark.slow)]


# ------------------------------------------------------------------ reference

# Ported from the public MIC code: lhoyer/MIC,
# seg/mmseg/models/utils/masking_consistency_module.py (BlockMaskGenerator), with
# mmseg's ``resize`` written out as the ``F.interpolate`` it calls (default mode
# 'nearest', no align_corners).


class MICBlockMaskGenerator:
    def __init__(self, mask_ratio: float, mask_block_size: int) -> None:
        self.mask_ratio = mask_ratio
        self.mask_block_size = mask_block_size

    @torch.no_grad()
    def generate_mask(self, imgs: torch.Tensor) -> torch.Tensor:
        B, _, H, W = imgs.shape

        mshape = B, 1, round(H / self.mask_block_size), round(W / self.mask_block_size)
        input_mask = torch.rand(mshape, device=imgs.device)
        input_mask = (input_mask > self.mask_ratio).float()
        input_mask = F.interpolate(input_mask, size=(H, W))
        return input_mask

    @torch.no_grad()
    def mask_image(self, imgs: torch.Tensor) -> torch.Tensor:
        input_mask = self.generate_mask(imgs)
        return imgs * input_mask


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# (H, W, patch): multiples; H/patch and W/patch rounding down (50/16 = 3.1,
# 70/16 = 4.4) and up (60/16 = 3.75, 24/16 = 1.5); Python's half-to-even (40/16 =
# 2.5 -> 2, 56/16 = 3.5 -> 4); a patch larger than the image that still rounds to
# one cell (50/64 = 0.8, 70/64 = 1.1); patch 1 (one cell per pixel); many cells.
SIZES = [
    (64, 64, 16),
    (50, 70, 16),
    (60, 24, 16),
    (40, 56, 16),
    (50, 70, 64),
    (9, 7, 1),
    (512, 512, 64),
    (256, 250, 2),  # 128 x 125 cells x 3 images: catches a threshold off by 1e-3
]


# ------------------------------------------------------------------ vs the public code


def test_generator_matches_global_rng() -> None:
    """The premise of the comparisons: a CPU generator seeded s draws what the global
    CPU RNG draws after torch.manual_seed(s)."""
    torch.manual_seed(123)
    a = torch.rand(3, 1, 7, 5)
    b = torch.rand(3, 1, 7, 5, generator=_gen(123))
    assert torch.equal(a, b)


@pytest.mark.parametrize("ratio", [0.7, 0.5, 0.0])
@pytest.mark.parametrize(("H", "W", "patch"), SIZES)
@pytest.mark.parametrize("per_frame", [False, True])
def test_block_mask_matches_mic(H: int, W: int, patch: int, ratio: float, per_frame: bool) -> None:
    B, C = 3, 3
    imgs = torch.rand(B, C, H, W, generator=_gen(99)) + 0.5  # no zero pixels
    mic = MICBlockMaskGenerator(mask_ratio=ratio, mask_block_size=patch)
    torch.manual_seed(7)
    want_mask = mic.generate_mask(imgs)  # (B, 1, H, W) float
    torch.manual_seed(7)
    want_img = mic.mask_image(imgs)

    mask = block_mask((B, 1, H, W), patch, ratio, per_frame=per_frame, generator=_gen(7))
    assert mask.shape == (B, 1, H, W) and mask.dtype == torch.bool
    assert torch.equal(mask.float(), want_mask)
    got = mask_clip(imgs.unsqueeze(1), mask).squeeze(1)
    assert torch.equal(got, want_img)
    # image form
    assert torch.equal(mask_clip(imgs, mask.squeeze(1)), want_img)
    if ratio == 0.0:
        assert bool(mask.all())


def test_patch_larger_than_image_gives_one_cell() -> None:
    """round(H / patch) = 0 (the public code would fail to resize): one cell per frame,
    the whole frame kept or masked."""
    m = block_mask((64, 2, 10, 12), patch_size=64, ratio=0.5, per_frame=True, generator=_gen())
    flat = m.reshape(64, 2, -1)
    assert torch.equal(flat.all(-1), flat.any(-1))  # each frame all kept or all masked
    assert bool(flat.all(-1).any()) and bool((~flat.any(-1)).any())
    g1, g2 = _gen(3), _gen(3)
    draws = torch.rand(64, 2, 1, 1, generator=g1)
    assert torch.equal(
        block_mask((64, 2, 10, 12), 64, 0.5, per_frame=True, generator=g2),
        (draws > 0.5).expand(64, 2, 10, 12),
    )


# ------------------------------------------------------------------ clips


def test_shared_mask_on_every_frame() -> None:
    m = block_mask((4, 5, 64, 48), patch_size=8, ratio=0.7, generator=_gen())
    assert m.shape == (4, 5, 64, 48)
    assert torch.equal(m, m[:, :1].expand_as(m))
    # and it is the T = 1 mask (the same single (B, 1, h, w) draw)
    assert torch.equal(m[:, 0], block_mask((4, 1, 64, 48), 8, 0.7, generator=_gen())[:, 0])
    assert not torch.equal(m[0], m[1])  # clips differ


@pytest.mark.parametrize(("H", "W", "patch"), [(64, 48, 8), (50, 70, 16)])
def test_per_frame_masks_match_mic_frame_by_frame(H: int, W: int, patch: int) -> None:
    """One torch.rand((B, T, h, w)) call draws, clip by clip and frame by frame, what B*T
    successive calls of the public code on single images draw."""
    B, T = 2, 4
    m = block_mask((B, T, H, W), patch, 0.7, per_frame=True, generator=_gen(5))
    assert m.shape == (B, T, H, W)
    mic = MICBlockMaskGenerator(mask_ratio=0.7, mask_block_size=patch)
    torch.manual_seed(5)
    img = torch.ones(1, 3, H, W)
    for b in range(B):
        for t in range(T):
            assert torch.equal(m[b, t].float(), mic.generate_mask(img)[0, 0]), (b, t)
    for b in range(B):
        for t in range(1, T):
            assert not torch.equal(m[b, t], m[b, 0]), (b, t)


@pytest.mark.parametrize("ratio", [0.7, 0.3])
@pytest.mark.parametrize("per_frame", [False, True])
def test_kept_fraction(ratio: float, per_frame: bool) -> None:
    """64 x 64 cells x 8 clips: the kept fraction's s.d. is <= 0.003, the tolerance 0.05."""
    m = block_mask((8, 2, 256, 256), 4, ratio, per_frame=per_frame, generator=_gen(11))
    assert abs(m.float().mean().item() - (1 - ratio)) < 0.05


def test_ratio_zero_keeps_all_and_draws_the_same() -> None:
    """ratio 0 keeps a draw of exactly 0 too, and consumes the draws as any ratio does."""
    g0, g1 = _gen(8), _gen(8)
    assert bool(block_mask((3, 2, 40, 40), 4, 0.0, per_frame=True, generator=g0).all())
    block_mask((3, 2, 40, 40), 4, 0.5, per_frame=True, generator=g1)
    assert torch.equal(g0.get_state(), g1.get_state())


def test_determinism() -> None:
    a = block_mask((2, 3, 40, 56), 8, 0.6, per_frame=True, generator=_gen(42))
    b = block_mask((2, 3, 40, 56), 8, 0.6, per_frame=True, generator=_gen(42))
    c = block_mask((2, 3, 40, 56), 8, 0.6, per_frame=True, generator=_gen(43))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_device_from_generator_and_device_argument() -> None:
    m = block_mask((1, 1, 8, 8), 4, 0.5, generator=_gen(), device="cpu")
    assert m.device.type == "cpu"
    assert torch.equal(m, block_mask((1, 1, 8, 8), 4, 0.5, generator=_gen()))


# ------------------------------------------------------------------ mask_clip


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_mask_clip_matches_reference(dtype: torch.dtype) -> None:
    clip = (torch.rand(2, 3, 4, 16, 20, generator=_gen(1)) + 0.5).to(dtype)
    mask = block_mask((2, 3, 16, 20), 4, 0.5, per_frame=True, generator=_gen(2))
    got = mask_clip(clip, mask)
    assert got.dtype == dtype and got.shape == clip.shape
    assert torch.equal(got, clip * mask[:, :, None])
    hidden = ~mask[:, :, None].expand_as(clip)
    assert bool((got[hidden] == 0).all())
    assert torch.equal(got[~hidden], clip[~hidden])


def test_mask_clip_gradient_is_mask() -> None:
    clip = torch.rand(2, 3, 4, 8, 8, dtype=torch.float64, generator=_gen(), requires_grad=True)
    mask = block_mask((2, 3, 8, 8), 2, 0.5, per_frame=True, generator=_gen(1))
    (grad,) = torch.autograd.grad(mask_clip(clip, mask).sum(), clip)
    assert torch.equal(grad, mask[:, :, None].expand_as(clip).double())
    assert torch.autograd.gradcheck(lambda x: mask_clip(x, mask), (clip.detach().requires_grad_(),))


# ------------------------------------------------------------------ module


def test_module_clip_and_image() -> None:
    masking = BlockMasking(patch_size=16, ratio=0.7)
    clip = torch.rand(2, 3, 3, 50, 70, generator=_gen()) + 0.5
    masked, mask = masking(clip, generator=_gen(4))
    assert mask.shape == (2, 3, 50, 70) and mask.dtype == torch.bool
    assert torch.equal(mask, block_mask((2, 3, 50, 70), 16, 0.7, generator=_gen(4)))
    assert torch.equal(masked, clip * mask[:, :, None])

    imgs = clip[:, 0]
    masked_i, mask_i = masking(imgs, generator=_gen(4))
    assert mask_i.shape == (2, 50, 70)
    torch.manual_seed(4)
    want = MICBlockMaskGenerator(0.7, 16).mask_image(imgs)
    assert torch.equal(masked_i, want)

    per = BlockMasking(patch_size=16, ratio=0.7, per_frame=True)
    _, m = per(clip, generator=_gen(4))
    assert torch.equal(m, block_mask((2, 3, 50, 70), 16, 0.7, per_frame=True, generator=_gen(4)))


def test_module_global_rng_and_state() -> None:
    masking = BlockMasking()
    torch.manual_seed(0)
    a = masking(torch.ones(1, 2, 3, 128, 128))[1]
    torch.manual_seed(0)
    b = masking(torch.ones(1, 2, 3, 128, 128))[1]
    assert torch.equal(a, b)
    assert masking.state_dict() == {}
    assert list(masking.parameters()) == [] and list(masking.buffers()) == []
    assert repr(masking) == "BlockMasking(patch_size=64, ratio=0.7, per_frame=False)"


# ------------------------------------------------------------------ bad input


def _mask(*shape: int) -> torch.Tensor:
    return torch.ones(*shape, dtype=torch.bool)


@pytest.mark.parametrize(
    ("call", "err", "name"),
    [
        (lambda: mask_clip(torch.rand(1, 2, 3, 4, 4), torch.ones(1, 2, 4, 4)), TypeError, "mask"),
        (
            lambda: mask_clip(torch.rand(1, 2, 3, 4, 4), torch.ones(1, 2, 4, 4, dtype=torch.uint8)),
            TypeError,
            "mask",
        ),
        (lambda: mask_clip(torch.rand(1, 2, 3, 4, 4), _mask(1, 1, 4, 4)), ValueError, "mask"),
        (lambda: mask_clip(torch.rand(1, 2, 3, 4, 4), _mask(1, 2, 4, 5)), ValueError, "mask"),
        (lambda: mask_clip(torch.rand(1, 2, 3, 4, 4), _mask(1, 4, 4)), ValueError, "mask"),
        (lambda: mask_clip(torch.rand(2, 3, 4, 4), _mask(1, 4, 4)), ValueError, "mask"),
        (lambda: mask_clip(torch.rand(2, 3, 4, 4), _mask(2, 1, 4, 4)), ValueError, "mask"),
        (
            lambda: mask_clip(torch.ones(1, 2, 3, 4, 4, dtype=torch.long), _mask(1, 2, 4, 4)),
            TypeError,
            "clip",
        ),
        (lambda: mask_clip(torch.rand(3, 4, 4), _mask(3, 4, 4)), ValueError, "clip"),
        (lambda: block_mask((1, 1, 8, 8), 4, 1.0), ValueError, "ratio"),
        (lambda: block_mask((1, 1, 8, 8), 4, -0.1), ValueError, "ratio"),
        (lambda: block_mask((1, 1, 8, 8), 4, float("nan")), ValueError, "ratio"),
        (lambda: block_mask((1, 1, 8, 8), 4, "0.5"), TypeError, "ratio"),  # type: ignore[arg-type]
        (lambda: block_mask((1, 1, 8, 8), 0, 0.5), ValueError, "patch_size"),
        (lambda: block_mask((1, 1, 8, 8), 4.0, 0.5), ValueError, "patch_size"),  # type: ignore[arg-type]
        (lambda: block_mask((1, 1, 8, 8), True, 0.5), ValueError, "patch_size"),
        (lambda: block_mask((1, 1, 8.0, 8), 4, 0.5), ValueError, "shape"),  # type: ignore[arg-type]
        (lambda: block_mask((1, 8, 8), 4, 0.5), ValueError, "shape"),  # type: ignore[arg-type]
        (lambda: block_mask((0, 1, 8, 8), 4, 0.5), ValueError, "shape"),
        (lambda: block_mask(torch.zeros(1, 1, 8, 8), 4, 0.5), ValueError, "shape"),  # type: ignore[arg-type]
        (
            lambda: block_mask((1, 1, 8, 8), 4, 0.5, generator=_gen(), device="meta"),
            ValueError,
            "generator",
        ),
        (lambda: BlockMasking(patch_size=0), ValueError, "patch_size"),
        (lambda: BlockMasking(ratio=1.0), ValueError, "ratio"),
        (lambda: BlockMasking(per_frame=1), TypeError, "per_frame"),  # type: ignore[arg-type]
        (lambda: BlockMasking()(torch.ones(1, 2, 3, 4, 4, dtype=torch.long)), TypeError, "clip"),
        (lambda: BlockMasking()(torch.rand(0, 3, 4, 4)), ValueError, "clip"),
    ],
)
def test_bad_input(call: object, err: type[Exception], name: str) -> None:
    assert callable(call)
    with pytest.raises(err, match=rf"^{name}: expected"):
        call()


# ------------------------------------------------------------------ compile


@pytest.mark.parametrize("backend", BACKENDS)
def test_dynamo_block_mask_and_mask_clip(backend: str) -> None:
    """fullgraph with torch's global generator (an explicit Generator argument is a
    graph break in dynamo)."""
    import torch._inductor.config as inductor_config

    clip = torch.rand(2, 3, 3, 50, 70, generator=_gen())

    def fn(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        B, T, _, H, W = x.shape
        m = block_mask((B, T, H, W), 16, 0.6, per_frame=True, device=x.device)
        return mask_clip(x, m), m

    compiled = torch.compile(fn, fullgraph=True, backend=backend)
    with inductor_config.patch(fallback_random=True):
        torch.manual_seed(0)
        got = compiled(clip)
    torch.manual_seed(0)
    for g, w in zip(got, fn(clip), strict=True):
        assert torch.equal(g, w)

"""Tests for dastc.functional.augment: hue_rotation and the clip-consistent strong_augment."""

from __future__ import annotations

import math

import pytest
import torch

import dastc
from dastc.functional.augment import hue_rotation, strong_augment

# torch.compile backends: aot_eager traces the whole graph (fullgraph=True still
# fails on any graph break) without inductor's C++ build, which takes ~30 s a test
# on a cold cache; the inductor variants run with ``-m slow``.
BACKENDS = ["aot_eager", pytest.param("inductor", marks=pytest.mark.slow)]

LUMA = (0.299, 0.587, 0.114)


# ------------------------------------------------------------------ references


def _ref_rotation(angle: float) -> torch.Tensor:
    """Rodrigues' formula R = I + sin(a) K + (1 - cos(a)) K^2, K the cross-product matrix of k."""
    k = [3**-0.5] * 3

    def cross(u: list[float], v: list[float]) -> list[float]:
        return [u[1] * v[2] - u[2] * v[1], u[2] * v[0] - u[0] * v[2], u[0] * v[1] - u[1] * v[0]]

    # column j of K is k x e_j
    cols = [cross(k, [1.0 if i == j else 0.0 for i in range(3)]) for j in range(3)]
    K = torch.tensor(cols, dtype=torch.float64).T
    eye = torch.eye(3, dtype=torch.float64)
    return eye + math.sin(angle) * K + (1 - math.cos(angle)) * (K @ K)


def _reflect(i: int, n: int) -> int:
    """Reflect padding without repeating the edge: -1 -> 1, n -> n - 2."""
    if i < 0:
        return -i
    if i >= n:
        return 2 * (n - 1) - i
    return i


def _ref_blur(frame: torch.Tensor, sigma: float) -> torch.Tensor:
    """A 5-tap Gaussian, rows then columns, reflect padding: plain Python loops."""
    taps = [math.exp(-(d * d) / (2 * sigma * sigma)) for d in range(-2, 3)]
    taps = [t / sum(taps) for t in taps]
    x = frame.double().tolist()  # [C][H][W]
    C, H, W = len(x), len(x[0]), len(x[0][0])
    rows = [
        [
            [sum(taps[d + 2] * x[c][i][_reflect(j + d, W)] for d in range(-2, 3)) for j in range(W)]
            for i in range(H)
        ]
        for c in range(C)
    ]
    out = [
        [
            [
                sum(taps[d + 2] * rows[c][_reflect(i + d, H)][j] for d in range(-2, 3))
                for j in range(W)
            ]
            for i in range(H)
        ]
        for c in range(C)
    ]
    return torch.tensor(out, dtype=torch.float64)


def _draws(B: int, seed: int, hue: float) -> dict[str, torch.Tensor]:
    """Replay strong_augment's draws: jitter gate, brightness, contrast, saturation,
    [hue], sigma, blur gate; each ``torch.rand(B)`` from the generator, in this order."""
    g = torch.Generator().manual_seed(seed)

    def rand() -> torch.Tensor:
        return torch.rand(B, generator=g).double()

    d = {"jitter": rand()}
    d["bright"], d["contrast"], d["sat"] = (0.8 + 0.4 * rand() for _ in range(3))
    if hue > 0:
        d["angle"] = (-hue + 2 * hue * rand()) * 2 * math.pi
    d["sigma"] = 0.15 + 1.0 * rand()
    d["blur"] = rand()
    d["state"] = g.get_state()
    return d


def _ref_strong_augment(
    clip: torch.Tensor, seed: int, p_jitter: float, hue: float, p_blur: float
) -> torch.Tensor:
    """Per clip, one draw of every parameter; per frame: jitter, hue, blur, clamp."""
    B, T = clip.shape[:2]
    d = _draws(B, seed, hue)
    luma = torch.tensor(LUMA, dtype=torch.float64).view(3, 1, 1)
    out = torch.empty(clip.shape, dtype=torch.float64)
    for b in range(B):
        for t in range(T):
            x = clip[b, t].double()
            if d["jitter"][b] < p_jitter:
                x = x * d["bright"][b]
                mean = (x * luma).sum(0).mean()  # the frame's mean grey level
                x = (x - mean) * d["contrast"][b] + mean
                grey = (x * luma).sum(0, keepdim=True)
                x = grey + (x - grey) * d["sat"][b]
                if hue > 0:
                    x = torch.einsum("ij,jhw->ihw", _ref_rotation(float(d["angle"][b])), x)
            if d["blur"][b] < p_blur:
                x = _ref_blur(x, float(d["sigma"][b]))
            out[b, t] = x.clamp(0, 1)
    return out


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ------------------------------------------------------------------ hue_rotation


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_shape_hue_rotation(dtype: torch.dtype) -> None:
    rot = hue_rotation(torch.linspace(-3, 3, 5, dtype=dtype))
    assert rot.shape == (5, 3, 3) and rot.dtype == dtype
    assert hue_rotation(torch.zeros(0)).shape == (0, 3, 3)


def test_value_hue_rotation_rodrigues() -> None:
    angles = torch.tensor([0.0, 0.3, -1.2, math.pi / 2, 2.5, -math.pi, 7.0], dtype=torch.float64)
    rot = hue_rotation(angles)
    for i, a in enumerate(angles.tolist()):
        torch.testing.assert_close(rot[i], _ref_rotation(a))


def test_value_hue_rotation_orthogonal_keeps_grey() -> None:
    angles = torch.randn(16, generator=_gen(), dtype=torch.float64) * 3
    rot = hue_rotation(angles)
    eye = torch.eye(3, dtype=torch.float64).expand(16, 3, 3)
    torch.testing.assert_close(rot @ rot.transpose(1, 2), eye)
    torch.testing.assert_close(torch.linalg.det(rot), torch.ones(16, dtype=torch.float64))
    grey = torch.tensor([0.4, 0.4, 0.4], dtype=torch.float64)
    torch.testing.assert_close(rot @ grey, grey.expand(16, 3))
    # luma-free check of a hue shift: the mean of the three channels is kept
    rgb = torch.rand(16, 3, generator=_gen(1), dtype=torch.float64)
    out = (rot @ rgb.unsqueeze(-1)).squeeze(-1)
    torch.testing.assert_close(out.mean(1), rgb.mean(1))
    assert not torch.allclose(out, rgb)


def test_value_hue_rotation_identity_at_zero() -> None:
    assert torch.equal(hue_rotation(torch.zeros(2)), torch.eye(3).expand(2, 3, 3))


def test_value_hue_rotation_half_turn_and_third_turn() -> None:
    red = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
    half = hue_rotation(torch.tensor([math.pi], dtype=torch.float64))[0] @ red
    # red reflected through the grey axis: 2 (k.r) k - r = (-1/3, 2/3, 2/3), a cyan
    torch.testing.assert_close(half, torch.tensor([-1 / 3, 2 / 3, 2 / 3], dtype=torch.float64))
    assert half[1] == pytest.approx(half[2]) and half[1] > half[0]
    # a third of a turn (positive: right-handed about (1, 1, 1)) permutes R -> G -> B
    third = hue_rotation(torch.tensor([2 * math.pi / 3], dtype=torch.float64))[0]
    perm = torch.tensor([[0, 0, 1], [1, 0, 0], [0, 1, 0]], dtype=torch.float64)
    torch.testing.assert_close(third, perm)


def test_value_hue_rotation_composes() -> None:
    a = torch.tensor([0.4, -1.1], dtype=torch.float64)
    b = torch.tensor([0.9, 2.0], dtype=torch.float64)
    torch.testing.assert_close(hue_rotation(a) @ hue_rotation(b), hue_rotation(a + b))


def test_gradcheck_hue_rotation() -> None:
    angle = torch.tensor([0.3, -2.0], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(hue_rotation, (angle,))


@pytest.mark.parametrize("backend", BACKENDS)
def test_dynamo_hue_rotation(backend: str) -> None:
    angle = torch.tensor([0.1, -0.7, 2.0])
    compiled = torch.compile(hue_rotation, fullgraph=True, backend=backend)
    torch.testing.assert_close(compiled(angle), hue_rotation(angle))


@pytest.mark.parametrize(
    ("angle", "err"),
    [
        (torch.tensor([1, 2]), TypeError),
        (torch.zeros(2, 1), ValueError),
        (torch.tensor(0.5), ValueError),
        ([0.5], TypeError),
    ],
)
def test_bad_input_hue_rotation(angle: object, err: type[Exception]) -> None:
    with pytest.raises(err, match="angle"):
        hue_rotation(angle)  # type: ignore[arg-type]


# ------------------------------------------------------------------ strong_augment: shape


@pytest.mark.parametrize("shape", [(2, 3, 3, 6, 7), (1, 1, 3, 3, 3), (3, 3, 5, 4)])
def test_shape_strong_augment(shape: tuple[int, ...]) -> None:
    clip = torch.rand(shape, generator=_gen())
    out = strong_augment(clip, generator=_gen(), hue=0.1)
    assert out.shape == clip.shape and out.dtype == clip.dtype


def test_shape_strong_augment_float64() -> None:
    clip = torch.rand(2, 2, 3, 5, 5, dtype=torch.float64, generator=_gen())
    assert strong_augment(clip, generator=_gen(), p_blur=1.0).dtype == torch.float64


def test_shape_strong_augment_float64_hue() -> None:
    clip = torch.rand(1, 2, 3, 5, 5, dtype=torch.float64, generator=_gen())
    assert strong_augment(clip, generator=_gen(), hue=0.1).dtype == torch.float64


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_shape_strong_augment_half_keeps_dtype(dtype: torch.dtype) -> None:
    clip = torch.rand(1, 2, 3, 5, 5, generator=_gen()).to(dtype)
    assert strong_augment(clip, generator=_gen(), p_blur=1.0).dtype == dtype


# ------------------------------------------------------------------ strong_augment: values


@pytest.mark.parametrize("hue", [0.0, 0.1])
def test_value_strong_augment_reference(hue: float) -> None:
    B = 8
    clip = torch.rand(B, 2, 3, 5, 6, generator=_gen(4))
    d = _draws(B, seed=11, hue=hue)
    # both branches of both gates occur, so the reference is not vacuous
    for gate in ("jitter", "blur"):
        assert 0 < int((d[gate] < 0.5).sum()) < B
    out = strong_augment(clip, generator=_gen(11), p_jitter=0.5, hue=hue, p_blur=0.5)
    torch.testing.assert_close(
        out.double(), _ref_strong_augment(clip, 11, 0.5, hue, 0.5), atol=2e-6, rtol=0
    )


def test_value_strong_augment_blur_reference() -> None:
    """p_jitter=0, p_blur=1: a per-clip Gaussian blur of sigma 0.15 + rand (the 6th draw)."""
    B = 3
    clip = torch.rand(B, 2, 3, 6, 5, dtype=torch.float64, generator=_gen(2))
    out = strong_augment(clip, generator=_gen(5), p_jitter=0.0, p_blur=1.0)
    sigma = _draws(B, seed=5, hue=0.0)["sigma"]
    assert float(sigma.max() - sigma.min()) > 0.1  # clips really get different sigmas
    for b in range(B):
        for t in range(2):
            ref = _ref_blur(clip[b, t], float(sigma[b])).clamp(0, 1)
            torch.testing.assert_close(out[b, t], ref, atol=1e-6, rtol=0)


def test_value_strong_augment_generator_consumption() -> None:
    """Six draws of B per call without hue, seven with (``hue=0``: no draw for it)."""
    B = 4
    clip = torch.rand(B, 1, 3, 4, 4, generator=_gen())
    for hue in (0.0, 0.2):
        g = _gen(3)
        strong_augment(clip, generator=g, hue=hue)
        assert torch.equal(g.get_state(), _draws(B, 3, hue)["state"])


def test_value_strong_augment_identity_when_off() -> None:
    clip = torch.rand(2, 3, 3, 4, 5, generator=_gen()) * 1.4 - 0.2  # outside [0, 1] too
    out = strong_augment(clip, generator=_gen(), p_jitter=0.0, hue=0.3, p_blur=0.0)
    assert torch.equal(out, clip.clamp(0, 1))


def test_value_strong_augment_in_unit_interval() -> None:
    clip = torch.rand(6, 2, 3, 5, 5, generator=_gen())
    clip[:, :, 0] = 1.0  # saturated red: brightness > 1 and saturation push it out
    out = strong_augment(clip, generator=_gen(), p_jitter=1.0, hue=0.5, p_blur=0.5)
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    assert bool((out == 1.0).any())  # the clamp was needed


def test_value_strong_augment_same_draw_for_every_frame() -> None:
    frame = torch.rand(1, 1, 3, 6, 6, generator=_gen())
    clip = frame.expand(4, 3, 3, 6, 6).contiguous()  # 4 clips, each 3 copies of one frame
    out = strong_augment(clip, generator=_gen(1), p_jitter=1.0, hue=0.1, p_blur=1.0)
    for t in range(1, 3):
        assert torch.equal(out[:, t], out[:, 0])
    for i in range(4):  # ... while every clip gets its own draw
        for j in range(i + 1, 4):
            assert not torch.allclose(out[i], out[j], atol=1e-3)


def test_value_strong_augment_frames_do_not_share_draws_with_length() -> None:
    """A clip's first frame is augmented the same whatever number of frames follow."""
    clip = torch.rand(3, 4, 3, 5, 5, generator=_gen())
    full = strong_augment(clip, generator=_gen(7), hue=0.1, p_jitter=1.0, p_blur=1.0)
    first = strong_augment(clip[:, :1], generator=_gen(7), hue=0.1, p_jitter=1.0, p_blur=1.0)
    torch.testing.assert_close(first, full[:, :1])


def test_value_strong_augment_image_equals_single_frame_clip() -> None:
    img = torch.rand(3, 3, 6, 5, generator=_gen())
    out = strong_augment(img, generator=_gen(2), hue=0.1, p_jitter=0.7, p_blur=0.7)
    assert out.dim() == 4
    ref = strong_augment(img.unsqueeze(1), generator=_gen(2), hue=0.1, p_jitter=0.7, p_blur=0.7)
    assert torch.equal(out, ref[:, 0])


def test_value_strong_augment_seeded() -> None:
    clip = torch.rand(4, 2, 3, 5, 5, generator=_gen())
    a = strong_augment(clip, generator=_gen(9), hue=0.1)
    b = strong_augment(clip, generator=_gen(9), hue=0.1)
    c = strong_augment(clip, generator=_gen(10), hue=0.1)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    torch.manual_seed(9)  # generator=None: torch's global generator
    d = strong_augment(clip, hue=0.1)
    torch.manual_seed(9)
    assert torch.equal(d, strong_augment(clip, hue=0.1))


def test_gradcheck_strong_augment() -> None:
    clip = 0.3 + 0.4 * torch.rand(2, 2, 3, 4, 4, dtype=torch.float64, generator=_gen())
    clip.requires_grad_()

    def fn(x: torch.Tensor) -> torch.Tensor:
        # hue=0: float64 clips with hue > 0 raise (test_shape_strong_augment_float64_hue)
        return strong_augment(x, generator=_gen(1), p_jitter=1.0, hue=0.0, p_blur=1.0)

    assert torch.autograd.gradcheck(fn, (clip,))


@pytest.mark.parametrize("backend", BACKENDS)
def test_dynamo_strong_augment(backend: str) -> None:
    """fullgraph with torch's global generator (an explicit Generator argument is a
    graph break in dynamo)."""
    import torch._inductor.config as inductor_config

    clip = torch.rand(3, 2, 3, 5, 5, generator=_gen())

    def fn(x: torch.Tensor) -> torch.Tensor:
        return strong_augment(x, p_jitter=0.5, hue=0.1, p_blur=0.5)

    compiled = torch.compile(fn, fullgraph=True, backend=backend)
    with inductor_config.patch(fallback_random=True):
        torch.manual_seed(0)
        got = compiled(clip)
    torch.manual_seed(0)
    torch.testing.assert_close(got, fn(clip))


@pytest.mark.parametrize(
    ("clip", "kwargs", "err", "match"),
    [
        (torch.rand(1, 2, 4, 5, 5), {}, ValueError, "clip"),
        (torch.rand(1, 1, 5, 5), {}, ValueError, "clip"),
        (torch.randint(0, 255, (1, 2, 3, 5, 5)), {}, TypeError, "clip"),
        (torch.rand(3, 5, 5), {}, ValueError, "clip"),
        (torch.rand(1, 2, 3, 2, 5), {}, ValueError, "clip"),
        ([[0.5]], {}, TypeError, "clip"),
        (torch.rand(1, 2, 3, 5, 5), {"hue": -0.1}, ValueError, "hue"),
        (torch.rand(1, 2, 3, 5, 5), {"hue": float("nan")}, ValueError, "hue"),
        (torch.rand(1, 2, 3, 5, 5), {"p_jitter": 1.5}, ValueError, "p_jitter"),
        (torch.rand(1, 2, 3, 5, 5), {"p_blur": -0.1}, ValueError, "p_blur"),
        (torch.rand(1, 2, 3, 5, 5), {"p_blur": "0.5"}, TypeError, "p_blur"),
    ],
)
def test_bad_input_strong_augment(
    clip: object, kwargs: dict[str, object], err: type[Exception], match: str
) -> None:
    with pytest.raises(err, match=match):
        strong_augment(clip, generator=_gen(), **kwargs)  # type: ignore[arg-type]


def test_augment_exported() -> None:
    assert dastc.functional.strong_augment is strong_augment
    assert dastc.functional.hue_rotation is hue_rotation

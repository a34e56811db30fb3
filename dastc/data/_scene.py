"""Analytic street-scene renderer behind :class:`dastc.data.SyntheticDrivingClips`.

The world is a straight street seen from a moving car (metres, ``X`` to the
right, ``Y`` up from the ground, ``Z`` forward):

* the ground plane ``Y = 0``: road for ``|X| < road_half``, sidewalk up to
  ``road_half + sidewalk``, a vegetation verge beyond;
* two facades ``X = x_left`` / ``X = x_right`` made of segments along ``Z``,
  each a building (windows) or a hedge/tree line (vegetation) of its own height;
* a far wall ``Z = z_far`` with a building skyline; sky everywhere else;
* objects as camera-facing planar sprites (poles, signs, persons, cars, trees)
  with their own constant velocity, depth-sorted per pixel with the background.

The camera translates (forward speed, lateral drift) and pans (a principal
point shift), so every visible point has an exact image motion: the flow is
the displacement of the surface visible at each pixel, computed in closed form
from its depth. Everything is vectorised over frames, objects and pixels.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor

from dastc.functional.augment import hue_rotation

ROAD, SIDEWALK, BUILDING, VEGETATION, SKY, POLE, SIGN, PERSON, CAR = range(9)
NUM_CLASSES = 9
CLASSES = (
    "road",
    "sidewalk",
    "building",
    "vegetation",
    "sky",
    "pole",
    "sign",
    "person",
    "car",
)

# Cityscapes-like display colours.
PALETTE_LIST = (
    (128, 64, 128),
    (244, 35, 232),
    (70, 70, 70),
    (107, 142, 35),
    (70, 130, 180),
    (153, 153, 153),
    (220, 220, 0),
    (220, 20, 60),
    (0, 0, 142),
)

# Albedo of each class before per-object colours and patterns (source domain).
_BASE = (
    (0.30, 0.32, 0.40),  # road: blue-grey asphalt
    (0.64, 0.58, 0.50),  # sidewalk: warm beige paving
    (0.55, 0.38, 0.30),  # building (overridden per segment)
    (0.24, 0.48, 0.17),  # vegetation
    (0.55, 0.70, 0.92),  # sky (overridden by a gradient)
    (0.50, 0.50, 0.46),  # pole
    (0.80, 0.15, 0.12),  # sign (overridden per sign)
    (0.40, 0.30, 0.50),  # person (overridden per person)
    (0.30, 0.30, 0.60),  # car (overridden per car)
)
# Texture: frequency (cycles per metre) and multiplicative amplitude per class.
_TEX_FREQ = (3.0, 2.5, 1.5, 2.0, 0.3, 4.0, 4.0, 5.0, 3.0)
_TEX_AMP = (0.10, 0.07, 0.06, 0.32, 0.0, 0.05, 0.03, 0.06, 0.05)

# Colour table entries shared by every scene (after the class base colours).
_M_WHITE, _M_KERB, _M_GLASS, _M_CARGLASS, _M_TYRE, _M_LIGHT, _M_SKIN = range(9, 16)
_MATERIALS = (
    *_BASE,
    (0.86, 0.86, 0.84),  # lane marks, sign borders
    (0.72, 0.72, 0.70),  # kerb
    (0.17, 0.21, 0.28),  # facade windows
    (0.10, 0.13, 0.18),  # car windows
    (0.06, 0.06, 0.06),  # tyres
    (0.85, 0.12, 0.08),  # tail lights
    (0.86, 0.66, 0.55),  # skin
)
_MATERIAL_TABLE = torch.tensor(_MATERIALS)
_CLASS_TEX = torch.tensor([_TEX_FREQ, _TEX_AMP]).T.contiguous()  # (K, 2)
_SKY_LOW = torch.tensor((0.78, 0.84, 0.92))
_SKY_HIGH = torch.tensor((0.42, 0.60, 0.88))

_FACADE_COLOURS = (
    (0.58, 0.36, 0.28),
    (0.70, 0.64, 0.55),
    (0.45, 0.45, 0.48),
    (0.76, 0.70, 0.52),
    (0.52, 0.30, 0.24),
)
_CAR_COLOURS = (
    (0.85, 0.85, 0.87),
    (0.10, 0.10, 0.12),
    (0.70, 0.12, 0.10),
    (0.15, 0.25, 0.60),
    (0.55, 0.56, 0.60),
    (0.25, 0.40, 0.30),
)
_SIGN_COLOURS = ((0.82, 0.12, 0.10), (0.10, 0.30, 0.80), (0.92, 0.78, 0.10))
_CLOTH_COLOURS = (
    (0.15, 0.15, 0.20),
    (0.60, 0.10, 0.15),
    (0.20, 0.35, 0.60),
    (0.75, 0.70, 0.60),
    (0.25, 0.45, 0.25),
    (0.85, 0.55, 0.15),
)

_T_FACADE_COLOURS = torch.tensor(_FACADE_COLOURS)
_T_CAR_COLOURS = torch.tensor(_CAR_COLOURS)
_T_SIGN_COLOURS = torch.tensor(_SIGN_COLOURS)
_T_CLOTH_COLOURS = torch.tensor(_CLOTH_COLOURS)
_T_GREYS = torch.tensor(((0.50, 0.50, 0.46), (0.35, 0.36, 0.38)))

# Object kinds (shape programs).
_K_POLE, _K_SIGN, _K_PERSON, _K_CAR, _K_TREE = range(5)
_NEAR = 1.0  # metres: objects closer than this are clipped
_NOISE_TABLE = 64


class SceneShift(Protocol):
    """The numeric knobs of a domain shift, as the renderer reads them (``synthetic.Shift``)."""

    @property
    def hue(self) -> float: ...
    @property
    def texture(self) -> float: ...
    @property
    def blur(self) -> float: ...
    @property
    def contrast(self) -> float: ...
    @property
    def noise(self) -> float: ...
    @property
    def layout(self) -> float: ...
    @property
    def seed(self) -> int: ...


class _Rand:
    """Uniform draws from one ``torch.Generator``, taken from a pre-drawn pool.

    Drawing one block of numbers and slicing it is much cheaper than many tiny
    ``torch.rand`` calls; the pool is refilled from the same generator when
    used up, so the sequence depends on the generator alone (nothing global).
    """

    _BLOCK = 2048

    def __init__(self, g: torch.Generator) -> None:
        self.g = g
        self.pool = torch.rand(self._BLOCK, generator=g)
        self.values: list[float] = self.pool.tolist()
        self.pos = 0

    def _take(self, n: int) -> int:
        if self.pos + n > self.pool.shape[0]:
            self.pool = torch.rand(max(self._BLOCK, n), generator=self.g)
            self.values = self.pool.tolist()
            self.pos = 0
        start = self.pos
        self.pos += n
        return start

    def u(self, lo: float, hi: float) -> float:
        return lo + (hi - lo) * self.values[self._take(1)]

    def uv(self, lo: float, hi: float, n: int | tuple[int, ...]) -> Tensor:
        shape = (n,) if isinstance(n, int) else n
        count = math.prod(shape)
        start = self._take(count)
        return lo + (hi - lo) * self.pool[start : start + count].view(shape)

    def i(self, lo: int, hi: int) -> int:
        """An int in ``[lo, hi]``."""
        return min(lo + int((hi - lo + 1) * self.values[self._take(1)]), hi)

    def iv(self, hi: int, n: int) -> Tensor:
        """``n`` ints in ``[0, hi)``."""
        return (self.uv(0.0, float(hi), n).long()).clamp(max=hi - 1)

    def bern(self, p: float, n: int | tuple[int, ...]) -> Tensor:
        return self.uv(0.0, 1.0, n) < p

    def sign(self, n: int) -> Tensor:
        return self.bern(0.5, n).float() * 2 - 1

    def pick(self, table: Tensor, n: int, jitter: float) -> Tensor:
        cols = table.index_select(0, self.iv(table.shape[0], n))
        return (cols + self.uv(-jitter, jitter, (n, 3))).clamp(0.0, 1.0)


@dataclass
class _Objects:
    kind: Tensor  # (N,) long
    cls: Tensor  # (N,) long
    shape: Tensor  # (N,) long, sign shape (0 disc, 1 rect, 2 triangle)
    x_left: Tensor  # (N,) at frame 0
    width: Tensor
    y_bottom: Tensor
    y_top: Tensor
    z: Tensor  # (N,) at frame 0
    vx: Tensor
    vz: Tensor
    col1: Tensor  # (N, 3)
    col2: Tensor  # (N, 3)


def _cat_objects(parts: list[_Objects]) -> tuple[_Objects, tuple[tuple[int, int, int], ...]]:
    """Concatenate object groups; also return ``(kind, start, stop)`` of each group."""
    fields = _Objects.__dataclass_fields__
    objs = _Objects(**{k: torch.cat([getattr(p, k) for p in parts]) for k in fields})
    groups = []
    start = 0
    for p in parts:
        n = p.kind.shape[0]
        groups.append((int(p.kind[0]), start, start + n))
        start += n
    return objs, tuple(groups)


def _group(
    kind: int,
    cls: int,
    xc: Tensor,
    width: Tensor,
    y0: Tensor,
    y1: Tensor,
    z: Tensor,
    vx: Tensor,
    vz: Tensor,
    col1: Tensor,
    col2: Tensor,
    shape: Tensor | None = None,
) -> _Objects:
    n = xc.shape[0]
    return _Objects(
        kind=torch.full((n,), kind, dtype=torch.long),
        cls=torch.full((n,), cls, dtype=torch.long),
        shape=torch.zeros(n, dtype=torch.long) if shape is None else shape,
        x_left=xc - width / 2,
        width=width,
        y_bottom=y0,
        y_top=y1,
        z=z,
        vx=vx,
        vz=vz,
        col1=col1,
        col2=col2,
    )


@dataclass
class _Scene:
    focal: float
    horizon: float
    cam_h: float
    road_half: float
    sidewalk: float
    x_left: float
    x_right: float
    cam_x: Tensor  # (T,)
    cam_z: Tensor  # (T,)
    cam_cx: Tensor  # (T,)
    seg_end: Tensor  # (2, S) facade segment ends along Z (left, right)
    seg_veg: Tensor  # (2, S) bool
    seg_height: Tensor  # (2, S)
    seg_colour: Tensor  # (2, S, 3)
    seg_phase: Tensor  # (2, S)
    seg_period: Tensor  # (2, S, 2) window period along Z and Y
    z_far: float
    far_height: Tensor  # (B,) skyline block heights
    far_colour: Tensor  # (B, 3)
    objects: _Objects
    groups: tuple[tuple[int, int, int], ...]  # (kind, start, stop) of each object group
    brightness: float
    noise_table: Tensor  # (2, 1, n + 1, n + 1) wrapped value-noise tables
    times: Tensor | None = None  # (T,) float time of each frame (None: 0 .. T - 1)


def _wrap_table(t: Tensor) -> Tensor:
    """Repeat the first row and column at the end (for wrap-around bilinear sampling)."""
    t = torch.cat([t, t[..., :1, :]], dim=-2)
    return torch.cat([t, t[..., :1]], dim=-1)


def sample_scene(
    g: torch.Generator, clip_len: int, size: tuple[int, int], layout: float, start: int = 0
) -> _Scene:
    """Draw one street scene and camera path from ``g`` (``layout`` moves its geometry).

    The clip's frames are the times ``start .. start + clip_len - 1`` (frame units; the
    scene is drawn for time 0, so ``start`` changes the camera path's frames, not the
    scene: time ``t`` looks the same for every ``start`` and ``clip_len`` that include it).
    """
    rnd = _Rand(g)
    h, w = size
    lay = layout
    focal = 0.9 * w
    horizon = h * (rnd.u(0.34, 0.44) + 0.10 * lay)
    cam_h = rnd.u(1.3, 1.7) * (1 + 0.35 * lay)
    road_half = rnd.u(3.0, 4.6) * (1 - 0.22 * lay)
    sidewalk = rnd.u(1.6, 3.0) * (1 + 0.45 * lay)
    x_left = -(road_half + sidewalk + rnd.u(0.0, 2.5))
    x_right = road_half + sidewalk + rnd.u(0.0, 2.5)
    obj_scale = 1 + 0.2 * lay

    t = torch.arange(start, start + clip_len, dtype=torch.float32)
    speed = rnd.u(0.5, 1.6)
    cam_x = rnd.u(-0.1, 0.6) * road_half + rnd.u(-0.15, 0.15) * t
    cam_z = speed * t
    cam_cx = w / 2 + rnd.u(-0.08, 0.08) * w + rnd.u(-2.5, 2.5) * t

    n_seg = 32
    seg_end = -8.0 + torch.cumsum(rnd.uv(4.0, 14.0, (2, n_seg)), dim=1)
    seg_veg = rnd.bern(0.3 + 0.15 * lay, (2, n_seg))
    build_h = rnd.uv(6.0, 24.0, (2, n_seg)) * (1 - 0.3 * lay)
    veg_h = rnd.uv(2.5, 8.0, (2, n_seg))
    seg_height = torch.where(seg_veg, veg_h, build_h)
    seg_colour = rnd.pick(_T_FACADE_COLOURS, 2 * n_seg, 0.05).view(2, n_seg, 3)
    seg_phase = rnd.uv(0.0, 2 * math.pi, (2, n_seg))
    seg_period = torch.stack([rnd.uv(2.2, 3.6, (2, n_seg)), rnd.uv(2.8, 3.6, (2, n_seg))], dim=-1)
    z_far = rnd.u(60.0, 110.0)
    far_height = rnd.uv(6.0, 28.0, 32) * (1 - 0.3 * lay)
    far_colour = rnd.pick(_T_FACADE_COLOURS, 32, 0.05)

    parts: list[_Objects] = []
    zero = torch.zeros
    # Poles on the sidewalk, some carrying a sign.
    n_pole = rnd.i(2, 6)
    side = rnd.sign(n_pole)
    pole_x = side * (road_half + sidewalk * rnd.uv(0.15, 0.85, n_pole))
    pole_w = rnd.uv(0.12, 0.25, n_pole) * obj_scale
    pole_top = rnd.uv(3.5, 7.0, n_pole) * obj_scale
    pole_z = rnd.uv(3.0, 70.0, n_pole)
    grey = rnd.pick(_T_GREYS, n_pole, 0.04)
    parts.append(
        _group(
            _K_POLE,
            POLE,
            pole_x,
            pole_w,
            zero(n_pole),
            pole_top,
            pole_z,
            zero(n_pole),
            zero(n_pole),
            grey,
            grey,
        )
    )
    has_sign = rnd.bern(0.65, n_pole)
    n_sign = int(has_sign.sum())
    if n_sign:
        sw = rnd.uv(0.5, 0.9, n_sign) * obj_scale
        sh = sw * rnd.uv(0.85, 1.15, n_sign)
        top = pole_top[has_sign] - rnd.uv(0.0, 0.5, n_sign)
        sx = pole_x[has_sign] - side[has_sign] * sw * rnd.uv(0.0, 0.5, n_sign)
        scol = rnd.pick(_T_SIGN_COLOURS, n_sign, 0.05)
        parts.append(
            _group(
                _K_SIGN,
                SIGN,
                sx,
                sw,
                top - sh,
                top,
                pole_z[has_sign] - 0.05,
                zero(n_sign),
                zero(n_sign),
                scol,
                scol,
                shape=rnd.iv(3, n_sign),
            )
        )
    # Persons: walking along the sidewalks, some crossing the road.
    n_person = rnd.i(1, 5)
    side = rnd.sign(n_person)
    crossing = rnd.bern(0.25, n_person)
    on_walk = side * (road_half + sidewalk * rnd.uv(0.15, 0.85, n_person))
    on_road = rnd.uv(-0.9, 0.9, n_person) * road_half
    px = torch.where(crossing, on_road, on_walk)
    ph = rnd.uv(1.55, 1.95, n_person) * obj_scale
    pvx = torch.where(crossing, rnd.sign(n_person) * rnd.uv(0.06, 0.18, n_person), 0.0)
    pvz = torch.where(crossing, 0.0, rnd.uv(-0.18, 0.18, n_person))
    parts.append(
        _group(
            _K_PERSON,
            PERSON,
            px,
            ph * rnd.uv(0.28, 0.34, n_person),
            zero(n_person),
            ph,
            rnd.uv(4.0, 45.0, n_person),
            pvx,
            pvz,
            rnd.pick(_T_CLOTH_COLOURS, n_person, 0.08),
            rnd.pick(_T_CLOTH_COLOURS, n_person, 0.08),
        )
    )
    # Cars: same-direction lane, oncoming lane, parked at the kerb.
    n_car = rnd.i(1, 5)
    role = rnd.iv(3, n_car)
    lane_x = torch.stack(
        [
            0.5 * road_half + rnd.uv(-0.3, 0.3, n_car),
            -0.5 * road_half + rnd.uv(-0.3, 0.3, n_car),
            rnd.sign(n_car) * (road_half - 1.1),
        ]
    ).gather(0, role[None])[0]
    lane_vz = torch.stack(
        [speed + rnd.uv(-0.6, 0.6, n_car), -rnd.uv(0.5, 1.5, n_car), zero(n_car)]
    ).gather(0, role[None])[0]
    car_h = rnd.uv(1.35, 2.1, n_car) * obj_scale
    car_w = rnd.uv(1.7, 2.0, n_car) * obj_scale
    parts.append(
        _group(
            _K_CAR,
            CAR,
            lane_x,
            car_w,
            zero(n_car),
            car_h,
            rnd.uv(5.0, 70.0, n_car),
            zero(n_car),
            lane_vz,
            rnd.pick(_T_CAR_COLOURS, n_car, 0.06),
            rnd.pick(_T_CAR_COLOURS, n_car, 0.06),
        )
    )
    # Trees at the outer edge of the sidewalk.
    n_tree = rnd.i(0, 3)
    if n_tree:
        side = rnd.sign(n_tree)
        tx = torch.where(side > 0, torch.tensor(x_right), torch.tensor(x_left)) - side * 0.8
        th = rnd.uv(4.0, 8.0, n_tree)
        leaf = torch.tensor(_BASE[VEGETATION]) * rnd.uv(0.8, 1.2, (n_tree, 1))
        trunk = torch.tensor((0.36, 0.26, 0.16)).expand(n_tree, 3)
        parts.append(
            _group(
                _K_TREE,
                VEGETATION,
                tx,
                rnd.uv(2.0, 4.0, n_tree),
                zero(n_tree),
                th,
                rnd.uv(4.0, 60.0, n_tree),
                zero(n_tree),
                zero(n_tree),
                leaf.clamp(0, 1),
                trunk.clone(),
            )
        )

    objects, groups = _cat_objects(parts)
    return _Scene(
        focal=focal,
        horizon=horizon,
        cam_h=cam_h,
        road_half=road_half,
        sidewalk=sidewalk,
        x_left=x_left,
        x_right=x_right,
        cam_x=cam_x,
        cam_z=cam_z,
        cam_cx=cam_cx,
        seg_end=seg_end,
        seg_veg=seg_veg,
        seg_height=seg_height,
        seg_colour=seg_colour,
        seg_phase=seg_phase,
        seg_period=seg_period,
        z_far=z_far,
        far_height=far_height,
        far_colour=far_colour,
        objects=objects,
        groups=groups,
        brightness=rnd.u(0.85, 1.12),
        noise_table=_wrap_table(torch.randn((2, 1, _NOISE_TABLE, _NOISE_TABLE), generator=g)),
        times=t,
    )


def _value_noise(table: Tensor, a: Tensor, b: Tensor) -> Tensor:
    """Two octaves of periodic bilinear value noise at real coordinates ``a``, ``b``.

    ``table`` is ``(2, 1, n + 1, n + 1)``: one random ``(n, n)`` table per octave,
    with its first row/column repeated at the end so the noise wraps around.
    """
    n = table.shape[-1] - 1
    coords = torch.stack([torch.stack([a, b], dim=-1), torch.stack([a, b], dim=-1) * 3.1])
    coords = torch.remainder(coords, float(n)) * (2.0 / n) - 1.0  # (2, ..., 2)
    grid = coords.reshape(2, -1, a.shape[-1], 2)
    out = F.grid_sample(table, grid, mode="bilinear", padding_mode="border", align_corners=True)
    return (0.65 * out[0, 0] + 0.35 * out[1, 0]).view(a.shape)


def _take_rows(table: Tensor, idx: Tensor) -> Tensor:
    """``table[idx]`` for a 2-D table, gathered with ``index_select`` (faster than indexing)."""
    return table.index_select(0, idx.reshape(-1)).view(*idx.shape, table.shape[1])


def _frac(x: Tensor) -> Tensor:
    return x - torch.floor(x)


def _sprite_cover(kind: int, shape: Tensor, u: Tensor, v: Tensor) -> Tensor:
    """Inside-mask of one kind's sprites at coordinates ``u`` (T, n, 1, W), ``v`` (T, n, H, 1).

    The conditions are split into their ``u`` and ``v`` parts, so that only the
    final combinations run at full ``(T, n, H, W)`` size.
    """
    box = (u >= 0) & (u <= 1) & (v >= 0) & (v <= 1)
    du = (u - 0.5).abs()
    if kind == _K_SIGN:
        s = shape[None, :, None, None]
        disc = (u - 0.5) ** 2 + (v - 0.5) ** 2 <= 0.25
        tri = du <= v / 2
        return box & torch.where(s == 0, disc, torch.where(s == 2, tri, box))
    if kind == _K_PERSON:
        head = ((u - 0.5) / 0.22) ** 2 + ((v - 0.09) / 0.09) ** 2 <= 1
        torso = (du <= 0.42) & ((v >= 0.16) & (v <= 0.56))
        legs = (((u - 0.3).abs() <= 0.14) | ((u - 0.7).abs() <= 0.14)) & (v > 0.56)
        return box & (head | torso | legs)
    if kind == _K_CAR:
        body = (v >= 0.42) & (v <= 0.9)
        vv = v.clamp(0.06, 0.42)
        cabin = (du <= 0.34 + 0.14 * (vv - 0.06) / 0.36) & ((v >= 0.06) & (v < 0.42))
        wheels = (((u - 0.2).abs() <= 0.11) | ((u - 0.8).abs() <= 0.11)) & (v > 0.9)
        return box & (body | cabin | wheels)
    if kind == _K_TREE:
        canopy = ((u - 0.5) / 0.5) ** 2 + ((v - 0.36) / 0.36) ** 2 <= 1
        trunk = (du <= 0.07) & (v >= 0.5)
        return box & (canopy | trunk)
    return box


def _hue_matrices(angles_deg: Tensor) -> Tensor:
    """Rotations of RGB about the grey axis, ``(K,) degrees -> (K, 3, 3)`` (the same
    rotation as the strong augmentation's hue jitter)."""
    return hue_rotation(angles_deg * (math.pi / 180))


def class_hue_angles(hue: float, seed: int) -> Tensor:
    """Per-class hue rotation (degrees): ``hue`` times a seeded permutation of [-1, 1]."""
    g = torch.Generator().manual_seed(int(seed) + 7919)
    perm = torch.randperm(NUM_CLASSES, generator=g)
    return hue * torch.linspace(-1.0, 1.0, NUM_CLASSES)[perm]


@functools.lru_cache(maxsize=32)
def _blur_matrix(n: int, sigma: float) -> Tensor:
    """``(n, n)`` matrix of a 1-D Gaussian blur with reflect boundaries (rows sum to 1)."""
    radius = max(1, math.ceil(3 * sigma))
    offs = torch.arange(-radius, radius + 1)
    k = torch.exp(-(offs.double() ** 2) / (2 * sigma**2))
    k = k / k.sum()
    src = torch.arange(n)[:, None] + offs[None, :]  # (n, 2r+1)
    period = max(2 * (n - 1), 1)
    src = src.remainder(period)
    src = torch.where(src > n - 1, period - src, src)  # reflect without repeating the edge
    m = torch.zeros(n, n, dtype=torch.float64)
    m.scatter_add_(1, src, k[None].expand(n, -1).contiguous())
    return m.float()


def _gaussian_blur(img: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian blur of ``(..., H, W)`` with reflect boundaries, as two matmuls."""
    h, w = img.shape[-2:]
    out = img @ _blur_matrix(w, float(sigma)).T
    return _blur_matrix(h, float(sigma)) @ out


def render(
    scene: _Scene,
    size: tuple[int, int],
    shift: SceneShift,
    g: torch.Generator,
    frames: list[int] | None = None,
) -> dict[str, Tensor]:
    """Render every frame of ``scene``: images, labels, flows to the last / previous frame.

    ``frames`` (increasing indices into the scene's clip) renders only those frames, each
    exactly as the whole clip renders it; the flows then go to the last / previous of them.
    """
    h, w = size
    f = scene.focal
    yh = scene.horizon
    ch = scene.cam_h
    cam_x, cam_z, cam_cx = scene.cam_x, scene.cam_z, scene.cam_cx
    times = scene.times if scene.times is not None else torch.arange(cam_x.shape[0]).float()
    if frames is not None:
        pick = torch.as_tensor(frames, dtype=torch.long)
        cam_x, cam_z, cam_cx, times = cam_x[pick], cam_z[pick], cam_cx[pick], times[pick]
    nt = cam_x.shape[0]
    inf = torch.tensor(float("inf"))

    xs = torch.arange(w, dtype=torch.float32)
    ys = torch.arange(h, dtype=torch.float32)
    dx = (xs[None, :] - cam_cx[:, None])[:, None, :]  # (T, 1, W)
    dy = (ys - yh)[None, :, None]  # (1, H, 1)

    # --- background candidates: ground, left facade, right facade, far wall.
    below = dy > 1e-3
    d_ground = torch.where(below, f * ch / dy.clamp(min=1e-3), inf)  # (1, H, 1)

    def facade(side: int, x_plane: float) -> tuple[Tensor, Tensor]:
        num = f * (x_plane - cam_x)[:, None, None]  # (T, 1, 1)
        ok = (dx < -1e-3) if side == 0 else (dx > 1e-3)
        d = torch.where(ok, num / torch.where(ok, dx, torch.ones_like(dx)), inf)  # (T, 1, W)
        z = cam_z[:, None, None] + d.clamp(max=1e4)
        ends = scene.seg_end[side]
        idx = torch.searchsorted(ends, z.contiguous()).clamp(max=ends.shape[0] - 1)
        veg = scene.seg_veg[side][idx]
        wave = 0.85 + 0.15 * torch.sin(1.3 * z + scene.seg_phase[side][idx])
        top = scene.seg_height[side][idx] * torch.where(veg, wave, torch.ones_like(wave))
        y = ch - dy * d.clamp(max=1e4) / f  # (T, H, W)
        valid = ok & (y >= 0) & (y <= top)
        return torch.where(valid, d, inf), idx

    d_left, idx_left = facade(0, scene.x_left)
    d_right, idx_right = facade(1, scene.x_right)

    d_far0 = (scene.z_far - cam_z).clamp(min=_NEAR)[:, None, None]  # (T, 1, 1)
    x_far = cam_x[:, None, None] + dx * d_far0 / f  # (T, 1, W)
    nb = scene.far_height.shape[0]
    block = torch.floor(x_far / 8.0).long() & (nb - 1)
    y_far = ch - dy * d_far0 / f  # (T, H, 1)
    d_far = torch.where(y_far <= scene.far_height[block], d_far0, inf)  # (T, H, W)

    bg = torch.stack(
        [t.expand(nt, h, w) for t in (d_ground, d_left, d_right, d_far)], dim=1
    )  # (T, 4, H, W)
    d_bg, win_bg = bg.min(dim=1)

    # --- objects: camera-facing sprites, one kind group at a time.
    ob = scene.objects
    tt = times[:, None]  # (T, 1)
    d_obj = ob.z[None] + ob.vz[None] * tt - cam_z[:, None]  # (T, N)
    xl = ob.x_left[None] + ob.vx[None] * tt  # (T, N)
    dd = d_obj[..., None, None]  # (T, N, 1, 1)
    u = (cam_x[:, None, None, None] + dx[:, None] * dd / f - xl[..., None, None]) / ob.width[
        None, :, None, None
    ]  # (T, N, 1, W)
    height = ob.y_top - ob.y_bottom
    v = (ob.y_top[None, :, None, None] - (ch - dy[:, None] * dd / f)) / height[
        None, :, None, None
    ]  # (T, N, H, 1)
    v = torch.where(dd > _NEAR, v, torch.full_like(v, -1.0))  # clipped: outside every sprite
    cover = torch.cat(
        [_sprite_cover(k, ob.shape[a:b], u[:, a:b], v[:, a:b]) for k, a, b in scene.groups], dim=1
    )  # (T, N, H, W)
    d_ob, win_ob = torch.where(cover, dd, inf).min(dim=1)

    is_obj = d_ob < d_bg
    dmin = torch.minimum(d_ob, d_bg)
    sky = torch.isinf(dmin)
    win = torch.where(is_obj, win_ob + 4, win_bg)
    win = torch.where(sky, torch.full_like(win, -1), win)  # surface id: -1 sky, 0-3 bg, 4+ obj
    oi = win_ob
    d = torch.where(sky, torch.ones_like(dmin), dmin)
    # Per-pixel attributes of the object at each pixel (meaningful where is_obj).
    attrs = torch.stack(
        [
            ob.cls.float(),
            ob.kind.float(),
            ob.shape.float(),
            ob.vx,
            ob.vz,
            ob.x_left,
            ob.width,
            ob.y_top,
            height,
        ],
        dim=1,
    )
    pa_ = _take_rows(attrs, oi)  # (T, H, W, 9)
    o_cls, o_kind, o_shape = pa_[..., 0].long(), pa_[..., 1].long(), pa_[..., 2].long()
    o_vx, o_vz, o_xl, o_w, o_top, o_h = pa_[..., 3:].unbind(-1)

    # --- world point of the visible surface.
    X = cam_x[:, None, None] + dx * d / f
    Y = ch - dy * d / f
    Z = cam_z[:, None, None] + d

    # --- labels.
    ax = X.abs()
    road = ax < scene.road_half
    walk = ax < scene.road_half + scene.sidewalk
    label = torch.where(road, ROAD, torch.where(walk, SIDEWALK, VEGETATION))
    on_left = win == 1
    on_right = win == 2
    on_facade = on_left | on_right
    seg_i = torch.where(on_right, idx_right, idx_left)  # (T, H, W)
    side_i = on_right.long()
    seg_flat = side_i * scene.seg_veg.shape[1] + seg_i
    facade_veg = torch.take(scene.seg_veg, seg_flat)
    label = torch.where(on_facade, torch.where(facade_veg, VEGETATION, BUILDING), label)
    label = torch.where(win == 3, BUILDING, label)
    label = torch.where(is_obj, o_cls, label)
    label = torch.where(sky, SKY, label)

    # --- flows (to the last frame, and to the previous frame).
    vx = torch.where(is_obj, o_vx, 0.0)
    vz = torch.where(is_obj, o_vz, 0.0)
    gx = xs.expand(nt, h, w)
    gy = ys[:, None].expand(nt, h, w)

    def project(s: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Pixel position in frame ``s[t]`` of each frame ``t``'s visible point."""
        dt = (times[s] - times)[:, None, None]
        ds = Z + vz * dt - cam_z[s][:, None, None]
        ok = ds > 0.05
        dsafe = torch.where(ok, ds, torch.ones_like(ds))
        px = cam_cx[s][:, None, None] + f * (X + vx * dt - cam_x[s][:, None, None]) / dsafe
        py = yh + f * (ch - Y) / dsafe
        sky_px = gx + (cam_cx[s] - cam_cx)[:, None, None]
        px = torch.where(sky, sky_px, torch.where(ok, px, gx))
        py = torch.where(sky, gy, torch.where(ok, py, gy))
        return px, py, ok | sky

    px, py, ok_last = project(torch.full((nt,), nt - 1, dtype=torch.long))
    flow = torch.stack([px - gx, py - gy], dim=1)
    flow[-1] = 0.0  # exactly zero (not round-off) for the last frame
    qx, qy, _ = project((torch.arange(nt) - 1).clamp(min=0))
    flow_prev = torch.stack([qx - gx, qy - gy], dim=1)
    flow_prev[0] = 0.0

    # Visibility at the flow target in the last frame: the same surface (background
    # surface or the same object) must be visible there.
    rx = torch.round(px)
    ry = torch.round(py)
    inb = (rx >= 0) & (rx <= w - 1) & (ry >= 0) & (ry <= h - 1)
    lin = (ry.clamp(0, h - 1) * w + rx.clamp(0, w - 1)).long()
    valid = inb & ok_last & (torch.take(win[-1], lin) == win)

    # --- appearance: a material index per pixel into a colour table, times a shade.
    n_obj = ob.kind.shape[0]
    n_seg = scene.seg_colour.shape[1]
    m_obj1 = len(_MATERIALS)
    m_obj2 = m_obj1 + n_obj
    m_seg = m_obj2 + n_obj
    m_far = m_seg + 2 * n_seg
    table = torch.cat(
        [
            _MATERIAL_TABLE,
            ob.col1,
            ob.col2,
            scene.seg_colour.reshape(-1, 3),
            scene.far_colour,
        ]
    )
    mat = label.clone()  # class base colours first
    shade = torch.ones_like(X)
    on_ground = win == 0
    # Road: lane marks; sidewalk: paving joints and kerb.
    dash = (ax < 0.09) & (_frac(Z / 6.0) < 0.5)
    edge = (ax > scene.road_half - 0.3) & (ax < scene.road_half - 0.15)
    mat = torch.where(on_ground & road & (dash | edge), _M_WHITE, mat)
    gwalk = on_ground & walk & ~road
    joint = (_frac(X / 0.7) < 0.08) | (_frac(Z / 0.7) < 0.08)
    shade = torch.where(gwalk & joint, 0.78, shade)
    mat = torch.where(gwalk & (ax < scene.road_half + 0.2), _M_KERB, mat)
    # Buildings: per-segment colour and windows.
    build = label == BUILDING
    far_i = torch.floor(X / 8.0).int() & (nb - 1)
    mat = torch.where(build & on_facade, m_seg + seg_flat, mat)
    mat = torch.where(build & (win == 3), m_far + far_i, mat)
    period = _take_rows(scene.seg_period.reshape(-1, 2), seg_flat)  # (T, H, W, 2)
    pa = torch.where(on_facade, period[..., 0], 3.0)
    pb = torch.where(on_facade, period[..., 1], 3.2)
    fa = _frac(torch.where(on_facade, Z, X) / pa)
    fb = _frac(Y / pb)
    window = (fa > 0.25) & (fa < 0.72) & (fb > 0.35) & (fb < 0.8) & (Y > 1.0)
    mat = torch.where(build & ~is_obj & window, _M_GLASS, mat)
    # Objects: per-object colours and parts, in sprite coordinates (lu, lv).
    frame = times[:, None, None]
    lu = ((X - o_xl - o_vx * frame) / o_w).clamp(0, 1)
    lv = ((o_top - Y) / o_h).clamp(0, 1)
    du = (lu - 0.5).abs()
    kind = torch.where(is_obj, o_kind, -1)
    shp = o_shape
    c1 = m_obj1 + oi
    c2 = m_obj2 + oi
    mat = torch.where(is_obj, c1, mat)
    shade = torch.where(kind == _K_POLE, 0.7 + 0.4 * torch.sin(math.pi * lu), shade)
    border = torch.where(
        shp == 0,
        (lu - 0.5) ** 2 + (lv - 0.5) ** 2 > 0.38**2,
        torch.where(
            shp == 2, (du > lv / 2 - 0.1) | (lv > 0.86), (du > 0.4) | ((lv - 0.5).abs() > 0.4)
        ),
    )
    mat = torch.where((kind == _K_SIGN) & border, _M_WHITE, mat)
    person = kind == _K_PERSON
    mat = torch.where(person & (lv >= 0.56), c2, mat)
    mat = torch.where(person & (lv < 0.18), _M_SKIN, mat)
    car = kind == _K_CAR
    mat = torch.where(
        car & (lv > 0.1) & (lv < 0.4) & (du < 0.26 + 0.4 * (lv - 0.1)), _M_CARGLASS, mat
    )
    mat = torch.where(car & (lv > 0.48) & (lv < 0.58) & (du > 0.36), _M_LIGHT, mat)
    mat = torch.where(car & (lv > 0.9), _M_TYRE, mat)
    shade = torch.where(car & (lv > 0.75), 0.75, shade)
    tree = kind == _K_TREE
    trunk = (du <= 0.07) & (lv >= 0.5) & (((lu - 0.5) / 0.5) ** 2 + ((lv - 0.36) / 0.36) ** 2 > 1)
    mat = torch.where(tree & trunk, c2, mat)

    # Texture in surface coordinates (metres), world-anchored so it moves with the scene.
    ta = torch.where(on_ground | (win == 3), X, Z)
    tb = torch.where(on_ground, Z, Y)
    ta = torch.where(is_obj, lu * o_w + 17.3 * oi.float(), ta)
    tb = torch.where(is_obj, lv * o_h, tb)
    ta = torch.where(sky, 20 * (gx - cam_cx[:, None, None]) / f, ta)
    tb = torch.where(sky, 20 * (yh - gy) / f, tb)
    ctex = _take_rows(_CLASS_TEX, label)
    freq = ctex[..., 0] * (1 + 0.5 * max(shift.texture, 0.0))
    nz = _value_noise(scene.noise_table, ta * freq, tb * freq)
    amp = ctex[..., 1] * (1.0 + shift.texture)
    shade = shade * (1 + amp * nz) * scene.brightness

    # Class-specific hue rotation: rotate the colour table once per class.
    if shift.hue != 0:
        rot = _hue_matrices(class_hue_angles(shift.hue, shift.seed))  # (K, 3, 3)
        tables = torch.einsum("kij,mj->kmi", rot, table)  # (K, M, 3)
        col = _take_rows(tables.reshape(-1, 3), label * table.shape[0] + mat)
    else:
        rot = torch.eye(3)[None].expand(NUM_CLASSES, 3, 3)
        col = _take_rows(table, mat)
    col = col * shade[..., None]  # (T, H, W, 3)
    # Sky: vertical gradient and soft clouds.
    sky_t = ((yh - ys) / max(yh, 1.0)).clamp(0, 1)[:, None, None]  # (H, 1, 1)
    sky_rgb = (_SKY_LOW * (1 - sky_t) + _SKY_HIGH * sky_t) @ rot[SKY].T  # (H, 1, 3)
    cloud = (nz * 0.6).clamp(0, 1)[..., None]
    # (clouds are grey, which a rotation about the grey axis keeps)
    sky_col = (sky_rgb * (1 - cloud) + 0.95 * cloud) * scene.brightness
    col = torch.where(sky[..., None], sky_col, col)

    img = col.clamp(0, 1).permute(0, 3, 1, 2).contiguous()  # (T, 3, H, W)
    if shift.blur > 0:
        img = _gaussian_blur(img, shift.blur)
    if shift.contrast != 0:
        img = img.clamp(min=1e-6) ** math.exp(shift.contrast)
    if shift.noise > 0:
        img = img + shift.noise * torch.randn(img.shape, generator=g)
    img = img.clamp(0, 1)

    return {
        "clip": img,
        "label": label,
        "flow": flow,
        "flow_prev": flow_prev,
        "valid": valid,
    }

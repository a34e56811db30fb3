"""Tests for dastc.methods: DASTC, ImageDACS, SourceOnly, Oracle and MethodConfig."""

from __future__ import annotations

import copy
import dataclasses
import io
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from conftest import free_port
from tiny_segmenter import TinySegmenter
from torch import Tensor, nn

from dastc.methods import (
    DASTC,
    METHODS,
    ImageDACS,
    Method,
    MethodConfig,
    Oracle,
    SourceOnly,
    StepOutput,
)
from dastc.methods._toy import ToySegmenter

K = 4
B, T, H, W = 2, 2, 16, 16
ALL_LOGS = {"src", "s2t", "t2s", "f_s2t", "f_t2s", "align", "pl_conf", "pl_hist", "loss"}
TERMS = ("src", "s2t", "t2s", "f_s2t", "f_t2s")


# ------------------------------------------------------------------ helpers


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _batch(
    seed: int = 0,
    b: int = B,
    t: int = T,
    *,
    label: bool = True,
    flow: bool = False,
    ignore: bool = True,
) -> dict[str, Tensor]:
    g = _gen(seed)
    out = {"clip": torch.rand(b, t, 3, H, W, generator=g)}
    if label:
        y = torch.randint(0, K, (b, t, H, W), generator=g)
        if ignore:
            y[:, :, :2] = 255
        out["label"] = y
    if flow:
        out["flow_prev"] = torch.randn(b, t, 2, H, W, generator=g)
    return out


def _student(seed: int = 0, k: int = K) -> ToySegmenter:
    torch.manual_seed(seed)
    return ToySegmenter(k)


def _method(cls: type[Method] = DASTC, seed: int = 0, **cfg: Any) -> Method:
    return cls(_student(seed), K, MethodConfig(**cfg))


def _ce(logits: Tensor, label: Tensor) -> Tensor:
    """Plain cross-entropy over every frame of every clip (255 ignored)."""
    return F.cross_entropy(logits.flatten(0, 1), label.flatten(0, 1), ignore_index=255)


def _step(method: Method, opt: torch.optim.Optimizer, src: dict, tgt: dict) -> StepOutput:
    out = method(src, tgt)
    opt.zero_grad()
    out.loss.backward()
    opt.step()
    method.after_step()
    return out


def _buffers(method: Method) -> dict[str, Tensor]:
    return {k: v.clone() for k, v in method.state_dict().items() if isinstance(v, Tensor)}


class ForwardOnly(nn.Module):
    """A segmenter with only ``forward`` (no shallow/deep, no deep_channels)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, K, 3, padding=1)

    def forward(self, clip: Tensor, flow_prev: Tensor | None = None) -> Tensor:
        return self.conv(clip.flatten(0, 1)).unflatten(0, clip.shape[:2])


class RecordingToy(ToySegmenter):
    """ToySegmenter that records the clips ``shallow`` sees and the flows ``deep`` gets."""

    def __init__(self) -> None:
        super().__init__(K)
        self.clips: list[tuple[int, ...]] = []
        self.flows: list[Tensor | None] = []

    def shallow(self, clip: Tensor) -> Tensor:
        self.clips.append(tuple(clip.shape))
        return super().shallow(clip)

    def deep(self, feats: Tensor, flow_prev: Tensor | None = None) -> tuple[Tensor, Tensor]:
        self.flows.append(flow_prev)
        return super().deep(feats, flow_prev)


# ------------------------------------------------------------------ construction


def test_construction_forward_only_needs_switches_off() -> None:
    with pytest.raises(ValueError, match=r"^student: feature_mix needs .*shallow.*deep"):
        DASTC(ForwardOnly(), K)
    with pytest.raises(ValueError, match=r"^student: align needs"):
        DASTC(ForwardOnly(), K, MethodConfig(feature_mix=False))
    with pytest.raises(ValueError, match=r"^student: feature_mix"):
        ImageDACS(ForwardOnly(), K)


@pytest.mark.parametrize("cls", [DASTC, ImageDACS])
def test_construction_forward_only_trains(cls: type[Method]) -> None:
    torch.manual_seed(0)
    student = ForwardOnly()
    method = cls(student, K, MethodConfig(feature_mix=False, align=False, adapt_start=0))
    out = method(_batch(0), {"clip": _batch(1)["clip"]})
    assert set(out.logs) == ALL_LOGS - {"f_s2t", "f_t2s", "align"}
    assert torch.isfinite(out.loss) and out.loss.requires_grad
    out.loss.backward()
    for p in student.parameters():
        assert p.grad is not None and bool(p.grad.abs().sum() > 0)


@pytest.mark.parametrize("deep_channels", [None, 0, 8.0, "8"])
def test_construction_align_needs_int_deep_channels(deep_channels: object) -> None:
    student = _student()
    student.deep_channels = deep_channels  # type: ignore[assignment]
    with pytest.raises(ValueError, match=r"^student: align needs an int deep_channels"):
        DASTC(student, K)
    DASTC(student, K, MethodConfig(align=False))  # fine without alignment
    ImageDACS(student, K)  # ImageDACS never aligns


def test_construction_bad_arguments() -> None:
    with pytest.raises(TypeError, match=r"^config: expected a MethodConfig, got dict"):
        DASTC(_student(), K, {"adapt_start": 0})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^config"):
        SourceOnly(_student(), K, dataclasses.asdict(MethodConfig()))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^student"):
        DASTC(lambda clip: clip, K)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^num_classes"):
        DASTC(_student(), 0)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("pseudo_threshold", 1.5),
        ("ema", -0.1),
        ("ema", float("nan")),
        ("class_fraction", 2),
        ("feature_blend", 0.0),
        ("hue_jitter", -0.1),
        ("align_weight", float("inf")),
        ("align_temperature", 0),
        ("pseudo_weight", "all"),
        ("align_kind", "x"),
        ("adapt_start", -1),
        ("adapt_start", 1.5),
        ("rare_classes", (2, -1)),
        ("draws", "numpy"),
    ],
)
def test_bad_input_method_config(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=f"^{field}: expected"):
        MethodConfig(**{field: value})


def test_method_config_json_round_trip() -> None:
    cfg = MethodConfig(
        rare_classes=[3, 1],  # type: ignore[arg-type]
        align_kind="mmd",
        pseudo_weight="pixel",
        hue_jitter=0.1,
        adapt_start=7,
        s2t=False,
        seed=5,
    )
    assert cfg.rare_classes == (3, 1)  # normalised to a tuple of ints
    d = json.loads(json.dumps(dataclasses.asdict(cfg)))
    back = MethodConfig(**d)
    assert back == cfg and back.rare_classes == (3, 1)
    assert back != MethodConfig()


def test_method_config_ablations() -> None:
    assert list(MethodConfig.ablations()) == [
        "clip_mix", "s2t", "t2s", "feature_mix", "align", "temporal",
        "adaptive_weights", "strong_aug", "class_balance",
    ]  # fmt: skip
    assert set(METHODS) == {"source_only", "oracle", "image_dacs", "dastc"}
    assert all(METHODS[c.name] is c for c in (DASTC, ImageDACS, SourceOnly, Oracle))


# ------------------------------------------------------------------ batch errors


@pytest.mark.parametrize("adapt_start", [0, 5])
def test_bad_input_batches(adapt_start: int) -> None:
    method = _method(adapt_start=adapt_start)
    src, tgt = _batch(0), {"clip": _batch(1)["clip"]}
    with pytest.raises(ValueError, match=r"^source: expected a 'label' entry"):
        method({"clip": src["clip"]}, tgt)
    with pytest.raises(TypeError, match=r"^source: expected a dict"):
        method(src["clip"], tgt)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^source: expected a 'clip' entry"):
        method({"label": src["label"]}, tgt)
    with pytest.raises(TypeError, match=r"^source\['label'\]"):
        method({**src, "label": src["label"].int()}, tgt)
    with pytest.raises(ValueError, match=r"^source\['label'\]: expected \(2, 2, 16, 16\)"):
        method({**src, "label": src["label"][:, :1]}, tgt)
    with pytest.raises(TypeError, match=r"^target\['clip'\]"):
        method(src, {"clip": (tgt["clip"] * 255).long()})
    with pytest.raises(ValueError, match=r"^target\['clip'\]: expected the shape of source"):
        method(src, {"clip": _batch(1, t=3)["clip"]})
    with pytest.raises(ValueError, match=r"^source\['flow_prev'\]"):
        method({**src, "flow_prev": torch.zeros(B, T, 2, H, W - 1)}, tgt)
    with pytest.raises(ValueError, match=r"^source\['clip'\]"):
        method({**src, "clip": src["clip"][:, :, :1]}, tgt)
    assert method.iteration == 0


def test_bad_input_oracle_needs_target_label() -> None:
    method = _method(Oracle)
    with pytest.raises(ValueError, match=r"^target: expected a 'label' entry"):
        method(_batch(0), {"clip": _batch(1)["clip"]})
    SourceOnly(_student(), K)(_batch(0), {"clip": _batch(1)["clip"]})  # no target label needed


@pytest.mark.parametrize(
    ("cls", "adapt_start"), [(DASTC, 0), (DASTC, 5), (ImageDACS, 0), (SourceOnly, 0), (Oracle, 0)]
)
def test_bad_input_student_with_wrong_classes(cls: type[Method], adapt_start: int) -> None:
    cfg = MethodConfig(adapt_start=adapt_start)
    method = cls(_student(k=K + 1), K, cfg)
    with pytest.raises(ValueError, match=rf"^student: expected logits \(B, T, {K}, H, W\)"):
        method(_batch(0), _batch(1))


# ------------------------------------------------------------------ semantics


@pytest.mark.parametrize("cls", [DASTC, ImageDACS])
def test_value_warm_start_is_source_cross_entropy(cls: type[Method]) -> None:
    method = _method(cls)  # default adapt_start=300
    assert method.config.adapt_start == 300
    src = _batch(0)
    before = _buffers(method)
    out = method(src, {"clip": _batch(1)["clip"]})
    assert set(out.logs) == {"src", "loss"}
    torch.testing.assert_close(out.loss, _ce(method.student(src["clip"]), src["label"]))
    assert torch.equal(out.logs["loss"], out.loss.detach())
    assert out.loss.requires_grad and not out.logs["loss"].requires_grad
    assert method.last_mix is None
    after = _buffers(method)
    assert all(torch.equal(before[k], after[k]) for k in before)  # no statistic moved


def test_value_adaptation_logs() -> None:
    method = _method(adapt_start=0, hue_jitter=0.1)
    out = method(_batch(0), {"clip": _batch(1)["clip"]})
    assert set(out.logs) == ALL_LOGS
    for name, v in out.logs.items():
        assert not v.requires_grad, name
        assert torch.isfinite(v).all(), name
    assert out.loss.requires_grad and out.loss.dtype == torch.float32
    assert out.logs["pl_hist"].shape == (K,) and bool((out.logs["pl_hist"] >= 0).all())
    torch.testing.assert_close(out.logs["pl_hist"].sum(), torch.tensor(1.0))
    assert 0.0 <= float(out.logs["pl_conf"]) <= 1.0
    total = sum(out.logs[k] for k in TERMS) + method.config.align_weight * out.logs["align"]
    torch.testing.assert_close(out.logs["loss"], total)
    assert method.last_mix is not None


@pytest.mark.parametrize(
    ("switches", "gone"),
    [
        ({"s2t": False}, {"s2t", "f_s2t"}),
        ({"t2s": False}, {"t2s", "f_t2s"}),
        ({"clip_mix": False}, {"s2t", "t2s"}),
        ({"feature_mix": False}, {"f_s2t", "f_t2s"}),
        ({"align": False}, {"align"}),
        ({"s2t": False, "t2s": False}, {"s2t", "t2s", "f_s2t", "f_t2s"}),
        ({"strong_aug": False, "class_balance": False, "temporal": False}, set()),
    ],
)
def test_value_switches_drop_their_logs(switches: dict[str, bool], gone: set[str]) -> None:
    method = _method(adapt_start=0, **switches)
    out = method(
        _batch(0, flow=True),
        {"clip": _batch(1)["clip"], "flow_prev": _batch(2, flow=True)["flow_prev"]},
    )
    assert set(out.logs) == ALL_LOGS - gone
    total = sum(out.logs[k] for k in TERMS if k in out.logs)
    if "align" in out.logs:
        total = total + method.config.align_weight * out.logs["align"]
    torch.testing.assert_close(out.logs["loss"], total)


def test_value_running_statistics_switches() -> None:
    plain = _method(adapt_start=0, class_balance=False)
    plain(_batch(0), {"clip": _batch(1)["clip"]})
    assert torch.equal(plain.class_balance.confidence, torch.ones(K))
    assert torch.equal(plain.dist_align.source_prior, torch.full((K,), 1 / K))  # off by default
    both = _method(adapt_start=0, dist_align=True)
    both(_batch(0), {"clip": _batch(1)["clip"]})
    assert not torch.equal(both.class_balance.confidence, torch.ones(K))
    assert not torch.equal(both.dist_align.source_prior, torch.full((K,), 1 / K))


def test_value_after_step_moves_teacher() -> None:
    method = _method(adapt_start=0)
    student = method.student
    opt = torch.optim.SGD(student.parameters(), lr=0.5)
    teacher = method.teacher.model
    t0 = copy.deepcopy(teacher.state_dict())
    assert all(torch.equal(t0[k], v) for k, v in student.state_dict().items())
    _step(method, opt, _batch(0), {"clip": _batch(1)["clip"]})
    assert method.iteration == 1
    # DACS warm-up: the first update (momentum min(1 - 1/1, ema) = 0) copies the student
    s1 = student.state_dict()
    assert all(torch.equal(teacher.state_dict()[k], v) for k, v in s1.items())
    assert any(not torch.equal(t0[k], v) for k, v in s1.items())
    t1 = copy.deepcopy(teacher.state_dict())
    _step(method, opt, _batch(2), {"clip": _batch(3)["clip"]})
    assert method.iteration == 2
    for k, v in student.state_dict().items():  # momentum min(1 - 1/2, ema) = 0.5
        torch.testing.assert_close(teacher.state_dict()[k], 0.5 * t1[k] + 0.5 * v)
        assert not torch.equal(teacher.state_dict()[k], v)


def test_value_skip_step_restores_statistics() -> None:
    method = _method(adapt_start=0, dist_align=True)
    opt = torch.optim.SGD(method.student.parameters(), lr=0.5)
    _step(method, opt, _batch(0), {"clip": _batch(1)["clip"]})
    before = _buffers(method)
    teacher_step = method.teacher.step
    out = method(_batch(2), {"clip": _batch(3)["clip"]})
    changed = [k for k, v in _buffers(method).items() if not torch.equal(v, before[k])]
    for k in (
        "agg_src.memory",
        "agg_tgt.memory",
        "class_balance.confidence",
        "dist_align.source_prior",
        "dist_align.target_prior",
    ):
        assert k in changed  # the step really moved it, so the restore is not vacuous
    out.loss.backward()
    opt.step()
    method.skip_step()
    after = _buffers(method)
    for k, v in before.items():  # teacher.* included: it did not follow the student
        assert torch.equal(after[k], v), k
    assert method.iteration == 2 and method.teacher.step == teacher_step
    # a later normal step updates again from the restored values
    _step(method, opt, _batch(4), {"clip": _batch(5)["clip"]})
    assert not torch.equal(method.agg_src.memory, before["agg_src.memory"])


def test_value_state_dict_contents() -> None:
    method = _method(adapt_start=0)
    opt = torch.optim.SGD(method.student.parameters(), lr=0.1)
    _step(method, opt, _batch(0), {"clip": _batch(1)["clip"]})
    sd = method.state_dict()
    student_keys = set(method.student.state_dict())
    for key in sd:
        if not key.startswith("teacher."):
            assert key not in student_keys and key.split(".")[0] not in {"student", "net"}, key
    assert {f"teacher.model.{k}" for k in student_keys} <= set(sd)
    assert {"agg_src.memory", "agg_tgt.memory", "class_balance.confidence"} <= set(sd)
    extra = sd["_extra_state"]
    assert extra["iteration"] == 1
    assert torch.equal(extra["generator"], method.generator.get_state())
    assert not any(p is v for p in method.student.parameters() for v in sd.values())
    # the method's own parameters are the teacher's: frozen, none of them the student's
    student_ids = {id(p) for p in method.student.parameters()}
    own = list(method.parameters())
    assert len(own) == len(student_ids)
    assert all(not p.requires_grad and id(p) not in student_ids for p in own)


def test_value_image_dacs_folds_frames() -> None:
    torch.manual_seed(0)
    student = RecordingToy()
    method = ImageDACS(student, K, MethodConfig(adapt_start=0))
    assert not hasattr(method, "agg_src") and not method.uses_align
    src = _batch(0, flow=True)
    tgt = {"clip": _batch(1)["clip"], "flow_prev": src["flow_prev"]}
    out = method(src, tgt)
    assert set(out.logs) == ALL_LOGS - {"align"}
    teacher = method.teacher.model
    assert teacher.clips == [(B * T, 1, 3, H, W)] and teacher.flows == [None]  # 1-frame clips
    mix = method.last_mix
    assert mix is not None
    assert mix.source_clip.shape == mix.target_clip.shape == (B * T, 1, 3, H, W)
    assert mix.source_label.shape == mix.pseudo_label.shape == (B * T, 1, H, W)
    assert mix.mix.s2t_clip.shape == (B * T, 1, 3, H, W)
    assert torch.equal(mix.source_clip[:, 0], src["clip"].flatten(0, 1))
    assert student.clips == [(4 * B * T, 1, 3, H, W)]  # source, target, S->T, T->S frames
    assert student.flows == [None]


def test_value_temporal_flow_plumbing() -> None:
    torch.manual_seed(0)
    student = RecordingToy()
    method = DASTC(student, K, MethodConfig(adapt_start=0))
    src, tgt_flow = _batch(0, flow=True), _batch(1, flow=True)
    tgt = {"clip": tgt_flow["clip"], "flow_prev": tgt_flow["flow_prev"]}
    method(src, tgt)
    teacher = method.teacher.model
    assert teacher.clips == [(B, T, 3, H, W)]
    (t_flow,) = teacher.flows
    assert t_flow is not None and torch.equal(t_flow, tgt["flow_prev"])
    # one student pass: shallow over source, target, S->T, T->S; deep over those and
    # the feature-mixed S->T and T->S
    assert student.clips == [(4 * B, T, 3, H, W)]
    (s_flow,) = student.flows
    assert s_flow is not None and s_flow.shape == (6 * B, T, 2, H, W)
    assert torch.equal(s_flow[:B], src["flow_prev"]) and torch.equal(
        s_flow[B : 2 * B], tgt["flow_prev"]
    )
    # without flow on both sides, or with temporal=False, the student gets none
    for cfg, target in (
        (MethodConfig(adapt_start=0), {"clip": tgt["clip"]}),
        (MethodConfig(adapt_start=0, temporal=False), tgt),
    ):
        student = RecordingToy()
        DASTC(student, K, cfg)(src, target)
        assert student.flows == [None]


def test_value_temporal_model_gets_fusion_gradient() -> None:
    """The example's TinySegmenter: with flow its temporal fusion is trained, without not."""
    grads = []
    for temporal in (True, False):
        torch.manual_seed(0)
        student = TinySegmenter(K, widths=(8, 8, 8), deep_channels=8)
        method = DASTC(student, K, MethodConfig(adapt_start=0, temporal=temporal))
        src, tf = _batch(0, flow=True), _batch(1, flow=True)
        out = method(src, {"clip": tf["clip"], "flow_prev": tf["flow_prev"]})
        assert torch.isfinite(out.loss)
        out.loss.backward()
        grads.append(student.fuse.weight.grad)
    assert grads[0] is not None and bool(grads[0].abs().sum() > 0)
    assert grads[1] is None


@pytest.mark.parametrize("flow", [False, True])
def test_value_supervised_losses(flow: bool) -> None:
    src, tgt = _batch(0, flow=flow), _batch(1, flow=flow)
    so = _method(SourceOnly)
    out = so(src, {k: v for k, v in tgt.items() if k != "label"})
    assert set(out.logs) == {"src", "loss"}
    torch.testing.assert_close(out.loss, _ce(so.student(src["clip"]), src["label"]))
    oracle = _method(Oracle)
    out = oracle(src, tgt)
    assert set(out.logs) == {"tgt_sup", "loss"}
    torch.testing.assert_close(out.loss, _ce(oracle.student(tgt["clip"]), tgt["label"]))
    assert not torch.allclose(out.loss, _ce(oracle.student(src["clip"]), src["label"]))


# ------------------------------------------------------------------ bitwise resume


def _resume_setup(seed: int) -> tuple[Method, torch.optim.Optimizer]:
    method = DASTC(_student(seed), K, MethodConfig(adapt_start=1, hue_jitter=0.1, dist_align=True))
    return method, torch.optim.AdamW(method.student.parameters(), lr=1e-2)


def test_value_bitwise_resume() -> None:
    batches = [(_batch(2 * i), {"clip": _batch(2 * i + 1)["clip"]}) for i in range(4)]

    method_a, opt_a = _resume_setup(0)
    logs_a = [_step(method_a, opt_a, *b).logs for b in batches]
    assert set(logs_a[0]) == {"src", "loss"} and set(logs_a[1]) == ALL_LOGS

    method_b, opt_b = _resume_setup(0)
    logs_b = [_step(method_b, opt_b, *b).logs for b in batches[:2]]
    buf = io.BytesIO()
    torch.save(
        {
            "student": method_b.student.state_dict(),
            "optimizer": opt_b.state_dict(),
            "method": method_b.state_dict(),
        },
        buf,
    )
    del method_b, opt_b
    buf.seek(0)
    ckpt = torch.load(buf, weights_only=False)
    method_c, opt_c = _resume_setup(1)  # other initial weights: everything comes from ckpt
    method_c.student.load_state_dict(ckpt["student"])
    opt_c.load_state_dict(ckpt["optimizer"])
    method_c.load_state_dict(ckpt["method"])
    assert method_c.iteration == 2
    logs_b += [_step(method_c, opt_c, *b).logs for b in batches[2:]]

    for la, lb in zip(logs_a, logs_b, strict=True):
        assert set(la) == set(lb)
        for k in la:
            assert torch.equal(la[k], lb[k]), k
    for k, v in method_a.student.state_dict().items():
        assert torch.equal(v, method_c.student.state_dict()[k]), k
    sa, sc = method_a.state_dict(), method_c.state_dict()
    assert set(sa) == set(sc)
    for k, v in sa.items():
        if isinstance(v, Tensor):
            assert torch.equal(v, sc[k]), k
    assert sa["_extra_state"]["iteration"] == sc["_extra_state"]["iteration"] == 4
    assert torch.equal(sa["_extra_state"]["generator"], sc["_extra_state"]["generator"])
    assert sa["teacher._extra_state"] == sc["teacher._extra_state"]


# ------------------------------------------------------------------ DDP


WORLD = 2
DDP_CONFIG = {"adapt_start": 0, "clip_mix": False, "feature_mix": False, "strong_aug": False}


def _ddp_batches() -> list[tuple[dict[str, Tensor], dict[str, Tensor]]]:
    """The global batches: 4 clips, 2 per process; no ignored source pixel, so each
    process's mean cross-entropy has the same number of terms."""
    return [
        (
            _batch(10 + 2 * i, b=2 * WORLD, ignore=False),
            {"clip": _batch(11 + 2 * i, b=2 * WORLD)["clip"]},
        )
        for i in range(2)
    ]


def _ddp_student() -> ToySegmenter:
    """A ToySegmenter whose head is scaled up, so that the teacher's argmax gives
    several classes, with different confidences, from the first step."""
    student = _student(0)
    with torch.no_grad():
        student.head.weight.mul_(10)
    return student


def _ddp_train(rank: int | None) -> dict[str, Any]:
    method = DASTC(_ddp_student(), K, MethodConfig(**DDP_CONFIG))
    opt = torch.optim.SGD(method.student.parameters(), lr=0.5)
    if rank is not None:
        method.distribute()
    losses = []
    for src, tgt in _ddp_batches():
        if rank is not None:
            mine = slice(2 * rank, 2 * rank + 2)
            src = {k: v[mine] for k, v in src.items()}
            tgt = {k: v[mine] for k, v in tgt.items()}
        losses.append(_step(method, opt, src, tgt).logs["align"])
    return {
        "student": method.student.state_dict(),
        "agg_src": method.agg_src.memory.clone(),
        "agg_tgt": method.agg_tgt.memory.clone(),
        "confidence": method.class_balance.confidence.clone(),
        "align": losses,
    }


def _ddp_worker(rank: int, port: int, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD
    )
    try:
        torch.save(_ddp_train(rank), os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(
    not dist.is_available() or not dist.is_gloo_available(), reason="needs the gloo backend"
)
def test_ddp_two_processes_equal_one(tmp_path: Path) -> None:
    ctx = mp.start_processes(
        _ddp_worker,
        args=(free_port(), str(tmp_path)),
        nprocs=WORLD,
        join=False,
        start_method="spawn",
    )
    start = time.monotonic()
    while not ctx.join(timeout=5):
        if time.monotonic() - start > 120:
            for p in ctx.processes:
                p.kill()
            pytest.fail("DDP workers did not finish within 120 s")
    ref = _ddp_train(None)
    for rank in range(WORLD):
        res = torch.load(tmp_path / f"rank{rank}.pt")
        for k, v in ref["student"].items():
            torch.testing.assert_close(res["student"][k], v, atol=1e-5, rtol=1e-5)
        for k in ("agg_src", "agg_tgt"):
            torch.testing.assert_close(res[k], ref[k], atol=1e-5, rtol=1e-5)
        # momentum 0.99: a process keeping its own confidences is off by only ~3e-5
        torch.testing.assert_close(res["confidence"], ref["confidence"], atol=1e-6, rtol=0)
        for got, want in zip(res["align"], ref["align"], strict=True):
            torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    assert int((ref["confidence"] != 1).sum()) >= 2  # several classes were predicted
    # not vacuous: a process that trained on its half alone ends elsewhere
    alone = _ddp_train_half_alone()
    assert not all(
        torch.allclose(alone["student"][k], v, atol=1e-5) for k, v in ref["student"].items()
    )


def _ddp_train_half_alone() -> dict[str, Any]:
    method = DASTC(_ddp_student(), K, MethodConfig(**DDP_CONFIG))
    opt = torch.optim.SGD(method.student.parameters(), lr=0.5)
    for src, tgt in _ddp_batches():
        _step(method, opt, {k: v[:2] for k, v in src.items()}, {k: v[:2] for k, v in tgt.items()})
    return {"student": method.student.state_dict()}


def test_bad_config_types_name_the_field() -> None:
    with pytest.raises(TypeError, match="adapt_start"):
        MethodConfig(adapt_start=True)  # a bool where a number is expected
    with pytest.raises(TypeError, match="align"):
        MethodConfig(align=1)  # a number where a switch is expected

"""Tests for dastc.EMATeacher."""

from __future__ import annotations

import copy
import io

import pytest
import torch
import torch.distributed as dist
import torch.nn.functional as F
from conftest import free_port
from torch import nn

import dastc
from dastc import EMATeacher
from dastc.functional import pseudo_label


def _net(seed: int = 0, k: int = 4) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1),
        nn.BatchNorm2d(6),  # float running stats + long num_batches_tracked
        nn.ReLU(),
        nn.Conv2d(6, k, 1),
    )


def _train_step(model: nn.Module, seed: int) -> None:
    """Change every parameter and the BN buffers, as a training step would."""
    g = torch.Generator().manual_seed(seed)
    model.train()
    model(torch.randn(2, 3, 5, 5, generator=g))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.1)


def _ref_update(ema: dict[str, torch.Tensor], student: nn.Module, m: float) -> None:
    """Per-tensor loop reference: ema = m * ema + (1 - m) * student; ints copied."""
    for name, s in [*student.named_parameters(), *student.named_buffers()]:
        if s.is_floating_point():
            ema[name] = m * ema[name] + (1 - m) * s.detach()
        else:
            ema[name] = s.detach().clone()


def _assert_teacher_equals(teacher: EMATeacher, ref: dict[str, torch.Tensor]) -> None:
    state = teacher.model.state_dict()
    assert state.keys() == ref.keys()
    for name, value in ref.items():
        torch.testing.assert_close(state[name], value, msg=name)


def _snapshot(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


# ---------------------------------------------------------------- construction
def test_teacher_is_frozen_copy() -> None:
    student = _net()
    teacher = EMATeacher(student)
    assert teacher.model is not student and not teacher.model.training
    assert all(not p.requires_grad for p in teacher.model.parameters())
    assert all(p.requires_grad for p in student.parameters())
    x = torch.randn(2, 3, 5, 5)
    student.eval()
    torch.testing.assert_close(teacher(x), student(x))
    teacher.train()
    assert not teacher.model.training
    assert dastc.EMATeacher is EMATeacher


# ---------------------------------------------------------------- update
@pytest.mark.parametrize("warmup", [False, True])
@pytest.mark.parametrize("foreach", [None, False])
def test_value_update(warmup: bool, foreach: bool | None) -> None:
    student = _net()
    teacher = EMATeacher(student, momentum=0.9, warmup=warmup, foreach=foreach)
    ref = _snapshot(student)
    for t in range(4):
        _train_step(student, seed=t)
        m = min(1 - 1 / (t + 1), 0.9) if warmup else 0.9
        assert isinstance(teacher.current_momentum(), float)
        assert teacher.current_momentum() == pytest.approx(m)
        teacher.update(student)
        _ref_update(ref, student, m)
        _assert_teacher_equals(teacher, ref)
    assert teacher.step == 4


def test_value_update_warmup_first_step_copies() -> None:
    student = _net()
    teacher = EMATeacher(student, momentum=0.999, warmup=True)
    _train_step(student, seed=0)
    teacher.update(student)
    _assert_teacher_equals(teacher, _snapshot(student))


def test_value_update_reassigned_parameter_is_followed() -> None:
    student = _net()
    teacher = EMATeacher(student, momentum=0.5)
    teacher.update(student)  # builds the cached slots
    conv = student[3]
    assert isinstance(conv, nn.Conv2d)
    conv.weight = nn.Parameter(torch.randn_like(conv.weight))  # same slot, new tensor
    ref = _snapshot(teacher.model)
    teacher.update(student)
    _ref_update(ref, student, 0.5)
    _assert_teacher_equals(teacher, ref)


def test_value_update_after_teacher_to() -> None:
    student = _net()
    teacher = EMATeacher(student, momentum=0.5)
    teacher.update(student)
    teacher.to(torch.float64)  # replaces buffer tensors; mismatched dtype is reported
    with pytest.raises(ValueError, match="student"):
        teacher.update(student)
    teacher.to(torch.float32)
    ref = _snapshot(teacher.model)
    _train_step(student, seed=3)
    teacher.update(student)
    _ref_update(ref, student, 0.5)
    _assert_teacher_equals(teacher, ref)


def test_value_update_shared_parameters() -> None:
    class Tied(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Linear(3, 3)
            self.b = self.a

    student = Tied()
    teacher = EMATeacher(student, momentum=0.5)
    ref = {k: v.detach().clone() for k, v in student.named_parameters()}
    assert list(ref) == ["a.weight", "a.bias"]
    with torch.no_grad():
        student.a.weight.add_(1.0)
    teacher.update(student)  # the shared tensor is updated once, not twice
    _ref_update(ref, student, 0.5)
    assert teacher.model.a is teacher.model.b
    torch.testing.assert_close(teacher.model.a.weight, ref["a.weight"])
    torch.testing.assert_close(teacher.model.b.bias, ref["a.bias"])


# ---------------------------------------------------------------- state
def test_state_dict_round_trip_mid_warmup() -> None:
    student = _net()
    a = EMATeacher(student, momentum=0.99, warmup=True)
    for t in range(3):
        _train_step(student, seed=t)
        a.update(student)
    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)
    buf.seek(0)
    b = EMATeacher(_net(seed=1), momentum=0.99, warmup=True)
    b.load_state_dict(torch.load(buf, weights_only=True))
    assert b.step == 3
    for t in range(3, 6):
        _train_step(student, seed=t)
        a.update(student)
        b.update(student)
        assert b.current_momentum() == a.current_momentum()
    _assert_teacher_equals(b, _snapshot(a.model))


def test_bad_input_state_dict() -> None:
    teacher = EMATeacher(_net())
    state = teacher.state_dict()
    state["_extra_state"] = {"wrong": 1}
    with pytest.raises(ValueError, match="state_dict"):
        teacher.load_state_dict(state)


# ---------------------------------------------------------------- wrappers, devices


def test_ddp_student() -> None:
    started = False
    if not dist.is_initialized():
        dist.init_process_group(
            "gloo", init_method=f"tcp://127.0.0.1:{free_port()}", rank=0, world_size=1
        )
        started = True
    try:
        student = _net()
        plain = copy.deepcopy(student)
        ddp = nn.parallel.DistributedDataParallel(student)
        teacher = EMATeacher(ddp, momentum=0.7)
        ref_teacher = EMATeacher(plain, momentum=0.7)
        assert not isinstance(teacher.model, nn.parallel.DistributedDataParallel)
        for t in range(2):
            _train_step(student, seed=t)
            _train_step(plain, seed=t)
            teacher.update(ddp)
            ref_teacher.update(plain)
        _assert_teacher_equals(teacher, _snapshot(ref_teacher.model))
    finally:
        if started:
            dist.destroy_process_group()


def test_data_parallel_and_compiled_student() -> None:
    student = _net()
    compiled = torch.compile(student)  # not run: only unwrapped
    assert hasattr(compiled, "_orig_mod")
    teacher = EMATeacher(compiled, momentum=0.6)
    assert teacher.model.state_dict().keys() == student.state_dict().keys()
    ref = _snapshot(student)
    wrappers: list[nn.Module] = [compiled, student]
    if not torch.cuda.is_available():  # DataParallel would move the student to the GPU
        wrappers.insert(1, nn.DataParallel(student))
    for t, wrapped in enumerate(wrappers):
        _train_step(student, seed=t)
        teacher.update(wrapped)
        _ref_update(ref, student, 0.6)
    _assert_teacher_equals(teacher, ref)


def test_value_foreach_and_loop_paths_agree() -> None:
    student = _net()
    fused = EMATeacher(student, momentum=0.8, foreach=True)
    loop = EMATeacher(student, momentum=0.8, foreach=False)
    for t in range(3):
        _train_step(student, seed=t)
        fused.update(student)
        loop.update(student)
    _assert_teacher_equals(loop, _snapshot(fused.model))


# ---------------------------------------------------------------- mismatches
def test_bad_input_student_mismatch() -> None:
    teacher = EMATeacher(_net(k=4))
    with pytest.raises(ValueError, match=r"3\.weight"):
        teacher.update(_net(k=5))  # last conv has another shape
    with pytest.raises(ValueError, match=r"3\.weight"):
        teacher.update(nn.Sequential(*list(_net())[:3]))  # missing layer
    bigger = _net()
    bigger.add_module("extra", nn.Linear(2, 2))
    with pytest.raises(ValueError, match="extra"):
        teacher.update(bigger)


def test_bad_input_student_changed_after_caching() -> None:
    student = _net()
    teacher = EMATeacher(student)
    teacher.update(student)
    conv = student[0]
    assert isinstance(conv, nn.Conv2d)
    conv.bias = nn.Parameter(torch.zeros(7))  # wrong shape in a cached slot
    with pytest.raises(ValueError, match=r"0\.bias"):
        teacher.update(student)
    assert teacher.step == 1


def test_bad_input_constructor() -> None:
    with pytest.raises(ValueError, match="momentum"):
        EMATeacher(_net(), momentum=1.5)
    with pytest.raises(TypeError, match="student"):
        EMATeacher("net")  # type: ignore[arg-type]


# ---------------------------------------------------------------- pseudo-labels
class _ClipNet(nn.Module):
    """Runs an image net on every frame: (B, T, 3, H, W) -> (B, T, K, h, w)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4:
            return self.net(x)
        y = self.net(x.flatten(0, 1))
        return y.view(*x.shape[:2], *y.shape[1:])


def test_value_pseudo_label_image_and_clip_upsampled() -> None:
    net = _ClipNet(nn.Sequential(nn.Conv2d(3, 5, 2, stride=2), nn.Tanh()))
    teacher = EMATeacher(net)
    x = torch.randn(2, 3, 3, 8, 10, requires_grad=True)
    pl = teacher.pseudo_label(x, threshold=0.3)
    assert pl.label.shape == (2, 3, 8, 10) and not pl.confidence.requires_grad
    low = net(x.detach()).flatten(0, 1)
    up = F.interpolate(low, size=(8, 10), mode="bilinear", align_corners=False)
    ref = pseudo_label(up.view(2, 3, 5, 8, 10), 0.3)
    assert torch.equal(pl.label, ref.label)
    torch.testing.assert_close(pl.weight, ref.weight)
    img = teacher.pseudo_label(x[:, 0].detach(), threshold=0.3, size=(4, 5))
    assert img.label.shape == (2, 4, 5)
    assert torch.equal(img.label, pseudo_label(net(x[:, 0].detach()), 0.3).label)


def test_value_pseudo_label_autocast_bf16() -> None:
    teacher = EMATeacher(_net())
    x = torch.randn(2, 3, 6, 6)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        pl = teacher.pseudo_label(x, 0.5)
        logits = teacher(x)
    assert pl.confidence.dtype == torch.float32
    assert torch.equal(pl.label, pseudo_label(logits, 0.5).label)


def test_bad_input_pseudo_label_model_output() -> None:
    flat = EMATeacher(nn.Conv2d(3, 4, 1))
    with pytest.raises(ValueError, match="x"):
        flat.pseudo_label(torch.randn(2, 3, 4))

    class FlatClip(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.flatten(0, 1)[:, :2]  # (B*T, K, H, W) for a clip

    with pytest.raises(ValueError, match=r"teacher\.model"):
        EMATeacher(FlatClip()).pseudo_label(torch.randn(2, 3, 3, 4, 4))

    class Dict(nn.Module):
        def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
            return {"out": x}

    with pytest.raises(TypeError, match=r"teacher\.model"):
        EMATeacher(Dict()).pseudo_label(torch.randn(2, 3, 4, 4))
    with pytest.raises(ValueError, match="size"):
        flat.pseudo_label(torch.randn(2, 3, 4, 4), size=(4, 0))

"""Masked image consistency inside DASTC / ImageDACS: what the student sees and learns."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from dastc import functional as DF
from dastc.methods import DASTC, ImageDACS, MethodConfig
from dastc.methods._toy import ToySegmenter


class Recorder(ToySegmenter):
    """Records the clips and logits of each student pass (shallow, then deep)."""

    def __init__(self, k: int) -> None:
        super().__init__(k)
        self.clips: list[Tensor] = []
        self.seen: list[tuple[Tensor, Tensor]] = []

    def shallow(self, clip: Tensor) -> Tensor:
        self.clips.append(clip.detach().clone())
        return super().shallow(clip)

    def deep(self, feats: Tensor, flow_prev: Tensor | None = None) -> tuple[Tensor, Tensor]:
        deep, logits = super().deep(feats, flow_prev)
        self.seen.append((self.clips[-1], logits.detach().clone()))
        return deep, logits


def _batches() -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    g = torch.Generator().manual_seed(0)
    src = {"clip": torch.rand(2, 3, 3, 32, 32, generator=g),
           "label": torch.randint(0, 4, (2, 3, 32, 32), generator=g)}  # fmt: skip
    return src, {"clip": torch.rand(2, 3, 3, 32, 32, generator=g) + 0.1}


def _method(cls: type[DASTC], **kw: object) -> tuple[DASTC, Recorder]:
    torch.manual_seed(0)
    student = Recorder(4)
    cfg = MethodConfig(adapt_start=0, clip_mix=False, feature_mix=False, align=False,
                       class_balance=False, strong_aug=False, mic=True, mic_patch=8,
                       **kw)  # type: ignore[arg-type]  # fmt: skip
    return cls(student, 4, cfg), student


@pytest.mark.parametrize("per_frame", [False, True])
def test_the_student_learns_the_unmasked_pseudo_labels_on_the_masked_clip(
    per_frame: bool,
) -> None:
    method, student = _method(DASTC, mic_per_frame=per_frame, mic_weight=0.5)
    src, tgt = _batches()
    out = method(src, tgt)
    clips, logits = student.seen[-1]
    xs, xt = src["clip"], tgt["clip"]
    B = xs.shape[0]
    assert torch.equal(clips[:B], xs) and torch.equal(clips[B : 2 * B], xt)
    masked = clips[2 * B :]
    kept = masked.ne(0).any(2)  # (B, T, H, W): the pixels the mask kept
    assert torch.equal(masked, xt * kept[:, :, None])
    # 8x8 blocks: constant on each block; about 30% kept
    blocks = kept.float().unflatten(-1, (4, 8)).unflatten(-3, (4, 8))
    assert torch.equal(blocks.amax((-3, -1)), blocks.amin((-3, -1)))
    assert 0.05 < kept.float().mean() < 0.6
    same = torch.equal(kept[:, :1].expand_as(kept), kept)
    assert same != per_frame
    # the loss term: weighted CE of the masked clip's logits against the teacher's labels
    with torch.no_grad():
        t_logits = method.teacher.model(xt)
    pl = DF.pseudo_label(t_logits, method.config.pseudo_threshold)
    want = DF.weighted_cross_entropy(logits[2 * B :], pl.label, pl.weight * 0.5)
    assert torch.allclose(out.logs["mic"], want, atol=1e-6)
    assert torch.allclose(out.logs["loss"], out.logs["src"] + out.logs["mic"], atol=1e-6)


def test_image_dacs_masks_each_frame_as_an_image() -> None:
    method, student = _method(ImageDACS)
    src, tgt = _batches()
    out = method(src, tgt)
    clips, _ = student.seen[-1]
    assert clips.shape == (3 * 6, 1, 3, 32, 32) and "mic" in out.logs


def test_mic_off_leaves_the_step_as_it_was() -> None:
    on, _ = _method(DASTC)
    off_cfg = MethodConfig(adapt_start=0, clip_mix=False, feature_mix=False, align=False,
                           class_balance=False, strong_aug=False)  # fmt: skip
    torch.manual_seed(0)
    off = DASTC(Recorder(4), 4, off_cfg)
    src, tgt = _batches()
    a, b = on(src, tgt), off(src, tgt)
    assert "mic" not in b.logs and torch.equal(a.logs["src"], b.logs["src"])


@pytest.mark.parametrize(
    ("kw", "match"),
    [({"mic_ratio": 1.0}, "mic_ratio"), ({"mic_patch": 0}, "mic_patch"),
     ({"mic_weight": -1.0}, "mic_weight"), ({"warm_guard": "stop"}, "warm_guard"),
     ({"warm_guard_every": 0}, "warm_guard_every"),
     ({"warm_guard_floor": 2.0}, "warm_guard_floor")],
)  # fmt: skip
def test_config_refuses_bad_values(kw: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        MethodConfig(**kw)  # type: ignore[arg-type]


@pytest.mark.filterwarnings("ignore:WarmStartGuard")
def test_training_steps_run_with_every_addition() -> None:
    torch.manual_seed(0)
    cfg = MethodConfig(adapt_start=1, mic=True, mic_patch=4, warm_guard="warn")
    method = DASTC(ToySegmenter(4), 4, cfg)
    opt = torch.optim.SGD(method.student.parameters(), lr=0.01)
    src, tgt = _batches()
    for _ in range(3):
        out = method(src, tgt)
        opt.zero_grad()
        out.loss.backward()
        assert all(torch.isfinite(p.grad).all() for p in method.student.parameters()
                   if p.grad is not None)  # fmt: skip
        opt.step()
        method.after_step()
    assert "mic" in out.logs
    assert isinstance(method.guard, nn.Module) and method.guard.done

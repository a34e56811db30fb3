"""WarmStartGuard and vanished_classes against plain references; the guard inside DASTC."""

from __future__ import annotations

import warnings

import pytest
import torch

from dastc.functional.vanished_classes import vanished_classes
from dastc.methods import DASTC, MethodConfig
from dastc.methods._toy import ToySegmenter
from dastc.warm_start import WarmStartGuard


def _vanished_reference(
    q: list[float], p: list[float], floor: float, min_prior: float
) -> list[bool]:
    return [pk >= min_prior and qk < floor * pk for qk, pk in zip(q, p, strict=True)]


@pytest.mark.parametrize("seed", range(5))
def test_vanished_classes_matches_a_loop(seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    K = 12
    p = torch.rand(K, generator=g, dtype=torch.float64)
    p[0] = 0.004  # rarer than min_prior: never judged
    p[1] = 0.005  # exactly min_prior: judged
    p = p / p.sum()
    q = torch.rand(K, generator=g, dtype=torch.float64) * p * 0.3
    q[2] = 0.1 * p[2]  # exactly at the floor: not vanished
    q[3] = 0.0
    for floor, min_prior in ((0.1, 0.005), (0.2, 0.0), (1.0, 0.05), (0.0, 0.0)):
        got = vanished_classes(q, p, floor, min_prior).tolist()
        assert got == _vanished_reference(q.tolist(), p.tolist(), floor, min_prior)


def test_vanished_classes_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match="pseudo_share: expected the shape of prior"):
        vanished_classes(torch.rand(3), torch.rand(4))
    with pytest.raises(TypeError, match="prior"):
        vanished_classes(torch.rand(3), torch.ones(3, dtype=torch.long))
    with pytest.raises(ValueError, match="floor"):
        vanished_classes(torch.rand(3), torch.rand(3), floor=1.5)
    with pytest.raises(ValueError, match="min_prior"):
        vanished_classes(torch.rand(3), torch.rand(3), min_prior=-0.1)


def test_observe_source_counts_classes_and_skips_ignored() -> None:
    g = torch.Generator().manual_seed(0)
    guard = WarmStartGuard(5)
    ref = [0] * 5
    for _ in range(3):
        y = torch.randint(0, 7, (2, 2, 9, 11), generator=g)
        y[y == 6] = 255
        guard.observe_source(y)
        for v in y.flatten().tolist():
            if v < 5:
                ref[v] += 1
    assert guard.source_counts.tolist() == ref
    assert torch.allclose(guard.prior(), torch.tensor(ref, dtype=torch.float64) / sum(ref))


def _guard(**kw: object) -> WarmStartGuard:
    guard = WarmStartGuard(3, floor=0.2, **kw)  # type: ignore[arg-type]
    guard.observe_source(torch.tensor([0] * 50 + [1] * 30 + [2] * 20))
    return guard


MISSING_1 = torch.tensor([0] * 60 + [2] * 40)
ALL_THERE = torch.tensor([0] * 50 + [1] * 30 + [2] * 20)
ONLY_1 = torch.tensor([1] * 30)


def test_extend_judges_windows_of_every_batches_and_stops_when_the_class_is_back() -> None:
    guard = _guard(every=3, max_extension=100)
    calls: list[int] = []

    def labels_at(since: int) -> torch.Tensor:
        calls.append(since)
        return MISSING_1 if since < 3 else ALL_THERE

    decisions = []
    with pytest.warns(UserWarning, match=r"classes \[1\] vanished.*extending"):
        for since in range(-6, 10):
            decisions.append(guard.step(since, lambda s=since: labels_at(s)))  # type: ignore[misc]
    # counted: the last 3 warm-start steps, then the extension's steps
    assert calls == [-3, -2, -1, 0, 1, 2, 3, 4, 5]
    # the check at 3 judges the window 0-2 (class 1 still gone), the check at 6 the window 3-5
    assert decisions == [True] * 6 + [True] * 6 + [False] * 4
    assert guard.extended == 6 and guard.done and guard.vanished == []


def test_a_window_is_judged_as_a_whole() -> None:
    # one batch without class 1 in a window that shows it enough: not vanished
    guard = _guard(every=3)
    for since, labels in zip((-3, -2, -1), (MISSING_1, MISSING_1, ONLY_1), strict=True):
        guard.step(since, lambda y=labels: y)  # type: ignore[misc]
    assert guard.step(0, lambda: MISSING_1) is False and guard.vanished == []


def test_extend_gives_up_after_max_extension_with_a_warning() -> None:
    guard = _guard(every=2, max_extension=4)
    with pytest.warns(UserWarning) as record:
        decisions = [guard.step(s, lambda: MISSING_1) for s in range(-2, 8)]
    assert decisions == [True] * 2 + [True] * 4 + [False] * 4
    assert guard.extended == 4 and guard.done
    msgs = [str(w.message) for w in record]
    assert any("after the longest extension" in m and "[1]" in m for m in msgs)


def test_the_extension_is_capped_between_checks() -> None:
    guard = _guard(every=4, max_extension=6)
    with pytest.warns(UserWarning):
        decisions = [guard.step(s, lambda: MISSING_1) for s in range(0, 12)]
    assert decisions == [True] * 6 + [False] * 6 and guard.extended == 6


def test_warn_never_extends() -> None:
    guard = _guard(action="warn", every=1)
    guard.step(-1, lambda: MISSING_1)
    with pytest.warns(UserWarning, match=r"classes \[1\] vanished.*adapting now"):
        assert guard.step(0, lambda: MISSING_1) is False
    assert guard.done and guard.extended == 0


def test_no_warning_and_no_extension_when_every_class_is_there() -> None:
    guard = _guard()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert guard.step(0, lambda: ALL_THERE) is False  # no window yet: this batch is judged
    assert guard.done


def test_a_fixed_prior_replaces_the_source_batches() -> None:
    guard = WarmStartGuard(3, floor=0.2, every=1)
    guard.set_prior(torch.tensor([10, 80, 10]))
    guard.observe_source(torch.zeros(100, dtype=torch.long))  # ignored: the prior is fixed
    assert torch.allclose(guard.prior(), torch.tensor([0.1, 0.8, 0.1], dtype=torch.float64))
    # class 1 at 30% of the pixels, 0.375 of its prior share: kept at floor 0.2, not at 0.5
    labels = torch.tensor([0] * 35 + [1] * 30 + [2] * 35)
    assert guard.step(0, lambda: labels) is False and guard.vanished == []
    strict = WarmStartGuard(3, floor=0.5, every=1, action="warn")
    strict.set_prior(torch.tensor([10, 80, 10]))
    with pytest.warns(UserWarning, match=r"\[1\]"):
        strict.step(0, lambda: labels)
    with pytest.raises(ValueError, match="counts"):
        strict.set_prior(torch.tensor([1, 2]))


def test_state_dict_resumes_an_extension_mid_way() -> None:
    a = _guard(every=4, max_extension=10)
    with pytest.warns(UserWarning):
        for s in range(-4, 3):
            a.step(s, lambda: MISSING_1)
    b = WarmStartGuard(3, floor=0.2, every=4, max_extension=10)
    b.load_state_dict(a.state_dict())
    assert b.extended == 3 and b.extending and not b.done and b.vanished == [1]
    assert torch.equal(b.source_counts, a.source_counts)
    assert torch.equal(b.target_counts, a.target_counts) and b.target_counts.sum() == 300
    with pytest.warns(UserWarning):
        rest_a = [a.step(s, lambda: MISSING_1) for s in range(3, 14)]
        rest_b = [b.step(s, lambda: MISSING_1) for s in range(3, 14)]
    assert rest_a == rest_b and a.extended == b.extended == 10


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"floor": 2.0}, "floor"),
        ({"action": "stop"}, "action"),
        ({"every": 0}, "every"),
        ({"max_extension": -1}, "max_extension"),
        ({"min_prior": "x"}, "min_prior"),
    ],
)
def test_guard_refuses_bad_arguments(kw: dict[str, object], match: str) -> None:
    with pytest.raises((TypeError, ValueError), match=match):
        WarmStartGuard(3, **kw)  # type: ignore[arg-type]


def _batches(seed: int) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    src = {"clip": torch.rand(2, 2, 3, 16, 16, generator=g),
           "label": torch.randint(0, 4, (2, 2, 16, 16), generator=g)}  # fmt: skip
    return src, {"clip": torch.rand(2, 2, 3, 16, 16, generator=g)}


def test_dastc_extends_its_warm_start_while_the_teacher_misses_a_class() -> None:
    torch.manual_seed(0)
    cfg = MethodConfig(adapt_start=2, warm_guard="extend", warm_guard_every=2,
                       warm_guard_max=10, align=False)  # fmt: skip
    with pytest.raises(ValueError, match="warm_guard: 'extend' needs a warm start"):
        MethodConfig(adapt_start=0, warm_guard="extend")
    method = DASTC(ToySegmenter(4), 4, cfg)
    opt = torch.optim.SGD(method.student.parameters(), lr=0.01)
    missing = torch.zeros(2, 2, 16, 16, dtype=torch.long)  # the teacher says class 0 only
    full = torch.arange(4).repeat_interleave(4).repeat(2, 2, 16, 1)
    adapting = []
    with pytest.warns(UserWarning, match="vanished"):
        for i in range(8):
            method._teacher_labels = (  # type: ignore[method-assign]
                lambda xt, ft, i=i: missing if i < 4 else full
            )
            out = method(*_batches(i))
            adapting.append("s2t" in out.logs)
            opt.zero_grad()
            out.loss.backward()
            opt.step()
            method.after_step()
    # warm start 0-1; the checks at 2 and 4 judge the teacher's labels of 0-1 and 2-3
    # (classes 1-3 gone): extended; the check at 6 judges 4-5 (all there): adapting
    assert adapting == [False] * 6 + [True] * 2
    assert method.guard is not None and method.guard.extended == 4
    assert "guard.source_counts" in method.state_dict()
    assert "guard.source_counts" not in DASTC(ToySegmenter(4), 4, MethodConfig()).state_dict()

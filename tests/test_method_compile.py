"""The whole method step under torch.compile: one graph with ``draws="global"``, no
recompiles from step to step, and the same losses as eager."""

from __future__ import annotations

import pytest
import torch

import dastc
from dastc.methods import DASTC, ImageDACS, Method, MethodConfig
from dastc.methods._toy import ToySegmenter

K = 4


def _batches(
    n: int, seed: int = 0
) -> list[tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        src = {
            "clip": torch.rand(2, 2, 3, 16, 16, generator=g),
            "label": torch.randint(0, K, (2, 2, 16, 16), generator=g),
        }
        out.append((src, {"clip": torch.rand(2, 2, 3, 16, 16, generator=g)}))
    return out


def _method(cls: type[Method] = DASTC, **cfg: object) -> Method:
    torch.manual_seed(0)
    return cls(ToySegmenter(K), K, MethodConfig(adapt_start=0, draws="global", **cfg))  # type: ignore[arg-type]


def _train(method: Method, batches: list, seed: int = 5) -> list[float]:  # type: ignore[type-arg]
    """Losses of a few steps (SGD on the student), the global generator seeded first."""
    opt = torch.optim.SGD(method.student.parameters(), lr=0.1)
    torch.manual_seed(seed)
    losses = []
    for src, tgt in batches:
        out = method(src, tgt)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        method.after_step()
        losses.append(float(out.loss.detach()))
    return losses


@pytest.mark.parametrize(
    ("cls", "cfg"),
    [(DASTC, {}), (DASTC, {"mic": True}), (ImageDACS, {}), (DASTC, {"align_kind": "mmd"})],
    ids=["dastc", "dastc-mic", "image_dacs", "dastc-mmd"],
)
def test_adapting_step_traces_as_one_graph(cls: type[Method], cfg: dict[str, object]) -> None:
    """``torch._dynamo.explain`` of an adapting step: one graph, no break, with value
    checks off (they read the data on the host) and the global generator."""
    method = _method(cls, **cfg)
    src, tgt = _batches(1)[0]
    with dastc.value_checks(False):
        out = torch._dynamo.explain(method.loss)(src, tgt, {})
    reasons = [b.reason.splitlines()[0] for b in out.break_reasons]
    assert out.graph_break_count == 0, reasons
    assert out.graph_count == 1


def test_adapt_loss_compiles_once_and_matches_eager() -> None:
    """``fullgraph=True`` compile of ``adapt_loss`` (dynamo's ``eager`` backend, so the
    draws are eager's): one graph for every step, the same losses and weights as an
    eager method trained on the same batches."""
    torch._dynamo.reset()
    batches = _batches(4)
    eager, compiled = _method(), _method()
    compiled.adapt_loss = torch.compile(  # type: ignore[method-assign]
        compiled.adapt_loss, backend="eager", fullgraph=True
    )
    counters = torch._dynamo.utils.counters
    counters.clear()
    with dastc.value_checks(False):
        want = _train(eager, batches)
        got = _train(compiled, batches)
    assert counters["stats"]["unique_graphs"] == 1
    assert got == pytest.approx(want, rel=1e-5)
    for a, b in zip(eager.student.parameters(), compiled.student.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_global_draws_follow_the_global_generator() -> None:
    """``draws="global"``: the step's draws follow ``torch.manual_seed``; the default
    ``"generator"``: the method's own generator, whatever the global state."""
    batches = _batches(2)
    a = _train(_method(), batches, seed=1)
    b = _train(_method(), batches, seed=1)
    c = _train(_method(), batches, seed=2)
    assert a == b and a != c
    own = []
    for seed in (1, 2):
        torch.manual_seed(0)
        m = DASTC(ToySegmenter(K), K, MethodConfig(adapt_start=0))
        own.append(_train(m, batches, seed=seed))
    assert own[0] == own[1]


@pytest.mark.slow
def test_inductor_compiled_step_matches_eager() -> None:
    """Inductor (the default backend) with ``fallback_random`` (eager's random numbers):
    the compiled adapting steps give the eager losses to float tolerance."""
    import torch._inductor.config as inductor_config

    torch._dynamo.reset()
    batches = _batches(3)
    eager, compiled = _method(), _method()
    compiled.adapt_loss = torch.compile(compiled.adapt_loss, fullgraph=True)  # type: ignore[method-assign]
    with dastc.value_checks(False), inductor_config.patch(fallback_random=True):
        want = _train(eager, batches)
        got = _train(compiled, batches)
    assert got == pytest.approx(want, rel=1e-4, abs=1e-5)

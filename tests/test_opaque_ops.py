"""The eager kernels that compiled graphs call as custom ops (``dastc/_opaque.py``):
each op against the plain torch call it wraps, ``torch.library.opcheck`` (schema,
fake shapes, autograd), and compiled dastc ops that call them."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import dastc
from dastc import _opaque
from dastc.functional import bidirectional_clip_mix, class_prototypes, warp


def _grid(n: int, h: int, w: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, h, w, 2, generator=g, dtype=torch.float64) * 2.4 - 1.2


@pytest.mark.parametrize("padding", ["zeros", "border"])
@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
def test_grid_sample_op_equals_grid_sample_with_its_gradients(mode: str, padding: str) -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 5, 7, generator=g, dtype=torch.float64, requires_grad=True)
    grid = _grid(2, 4, 6, 1).requires_grad_(mode == "bilinear")
    got = _opaque._grid_sample_op(x, grid, mode, padding)  # the op, as compiled graphs call it
    want = F.grid_sample(x, grid, mode=mode, padding_mode=padding, align_corners=False)
    assert torch.equal(got, want)
    assert torch.equal(_opaque.grid_sample(x, grid, mode, padding), want)  # the eager entry
    up = torch.randn(got.shape, generator=g, dtype=torch.float64)
    inputs = (x, grid) if mode == "bilinear" else (x,)
    gg = torch.autograd.grad(got, inputs, up)
    gw = torch.autograd.grad(want, inputs, up)
    for a, b in zip(gg, gw, strict=True):
        torch.testing.assert_close(a, b)
    torch.library.opcheck(_opaque._grid_sample_op, (x, grid, mode, padding))


@pytest.mark.parametrize("scaled", [False, True])
def test_gather_class_rows_is_the_pixel_loop(scaled: bool) -> None:
    g = torch.Generator().manual_seed(2)
    table = torch.randn(4, 6, generator=g)  # (C, K + 1)
    index = torch.randint(0, 6, (3, 10), generator=g)
    scale = torch.rand(3, 10, generator=g) if scaled else None
    got = _opaque._gather_class_rows_op(table, index, scale)
    assert torch.equal(got, _opaque.gather_class_rows(table, index, scale))  # the eager entry
    for n in range(3):
        for i in range(10):
            factor = 1.0 if scale is None else float(scale[n, i])
            assert torch.equal(got[n, :, i], table[:, index[n, i]] * factor)
    torch.library.opcheck(_opaque._gather_class_rows_op, (table, index, scale))


def test_class_counts_and_lookup_are_the_loops() -> None:
    g = torch.Generator().manual_seed(3)
    columns = torch.randint(0, 7, (2, 50), generator=g)
    counts = _opaque._class_counts_op(columns, 9)
    assert torch.equal(counts, _opaque.class_counts(columns, 9))
    assert counts.shape == (2, 9) and counts.dtype == torch.float32
    for b in range(2):
        for c in range(9):
            assert counts[b, c] == (columns[b] == c).sum()
    lookup = torch.rand(2, 9, generator=g) > 0.5
    got = _opaque._lookup_columns_op(lookup, columns)
    assert torch.equal(got, _opaque.lookup_columns(lookup, columns))
    assert torch.equal(got, torch.stack([lookup[b][columns[b]] for b in range(2)]))
    torch.library.opcheck(_opaque._class_counts_op, (columns, 9))
    torch.library.opcheck(_opaque._lookup_columns_op, (lookup, columns))


def _ops_in_graph(fn, *args):  # type: ignore[no-untyped-def]
    """Names of the ``dastc::`` ops in the graphs dynamo captures of ``fn(*args)``."""
    seen: set[str] = set()

    def backend(gm, example_inputs):  # type: ignore[no-untyped-def]
        for node in gm.graph.nodes:
            if node.op == "call_function" and "dastc" in str(node.target):
                seen.add(str(node.target))
        return gm.forward

    torch._dynamo.reset()
    out = torch.compile(fn, backend=backend, fullgraph=True)(*args)
    return seen, out


def test_compiled_ops_call_the_eager_kernels() -> None:
    """Under ``torch.compile`` warp, the clip mix and the prototypes call the custom ops,
    and give the eager results."""
    g = torch.Generator().manual_seed(4)
    x = torch.randn(2, 2, 3, 8, 8, generator=g)
    flow = torch.randn(2, 2, 2, 8, 8, generator=g)
    seen, out = _ops_in_graph(warp, x, flow)
    assert any("grid_sample" in s for s in seen), seen
    torch.testing.assert_close(out, warp(x, flow))

    ys = torch.randint(0, 4, (2, 2, 8, 8), generator=g)
    yt = torch.randint(0, 4, (2, 2, 8, 8), generator=g)

    def mix(xs, ys, xt, yt):  # type: ignore[no-untyped-def]
        return bidirectional_clip_mix(xs, ys, xt, yt, num_classes=4)

    with dastc.value_checks(False):
        seen, _ = _ops_in_graph(mix, x, ys, x.flip(0), yt)
    assert any("class_counts" in s for s in seen) and any("lookup_columns" in s for s in seen)

    feats = torch.randn(2, 2, 5, 8, 8, generator=g, requires_grad=True)

    def protos(feats, labels):  # type: ignore[no-untyped-def]
        return class_prototypes(feats, labels, 4).vectors.square().sum()

    from functorch.compile import make_boxed_func
    from torch._dynamo.backends.common import aot_autograd

    backward_ops: set[str] = set()

    def record_backward(gm, example_inputs):  # type: ignore[no-untyped-def]
        backward_ops.update(str(n.target) for n in gm.graph.nodes if n.op == "call_function")
        return make_boxed_func(gm.forward)

    backend = aot_autograd(
        fw_compiler=lambda gm, _: make_boxed_func(gm.forward), bw_compiler=record_backward
    )
    with dastc.value_checks(False):
        torch._dynamo.reset()
        compiled = torch.compile(protos, backend=backend, fullgraph=True)
        (got,) = torch.autograd.grad(compiled(feats, ys), feats)
        (want,) = torch.autograd.grad(protos(feats, ys), feats)
    torch.testing.assert_close(got, want)
    assert any("gather_class_rows" in s for s in backward_ops), backward_ops


@pytest.mark.parametrize("kind", ["clip", "label", "mask", "flow", "half"])
def test_clip_transform_op_is_the_eager_transform(kind: str) -> None:
    """Compiled graphs call the clip transform as one custom op: equal to the eager
    transform bit for bit, and ``opcheck`` passes (schema, fake shapes)."""
    from dastc.functional.clip_augment import _apply_op, apply_clip_transform, draw_clip_transform

    g = torch.Generator().manual_seed(5)
    tf = draw_clip_transform(2, (12, 20), (8, 48), generator=g)  # crops rows, pads columns
    x = {
        "clip": lambda: torch.rand(2, 2, 3, 12, 20, generator=g),
        "label": lambda: torch.randint(0, 9, (2, 2, 12, 20), generator=g),
        "mask": lambda: torch.rand(2, 12, 20, generator=g) > 0.5,
        "flow": lambda: torch.randn(2, 2, 2, 12, 20, generator=g),
        "half": lambda: torch.rand(2, 3, 12, 20, generator=g).half(),
    }[kind]()
    mode = "flow" if kind == "flow" else None
    fill = {"label": 2**60 + 1, "mask": 1}.get(kind)  # an int64 fill beyond float precision
    want = apply_clip_transform(tf, x, mode=mode, fill=fill)
    seen, got = _ops_in_graph(lambda t: apply_clip_transform(tf, t, mode=mode, fill=fill), x)
    assert any("apply_clip_transform" in s for s in seen), seen
    assert got.dtype == want.dtype and torch.equal(got, want)
    if kind == "label":
        assert (got == 2**60 + 1).any()  # the padding kept its exact value
    is_float = x.is_floating_point()
    args = (
        x, tf.size, tf.offset, tf.flip, list(tf.in_size), list(tf.out_size),
        mode or ("bilinear" if is_float else "nearest"),
        0.0 if not is_float else float(fill or 0), 0 if is_float else int(fill or 255),
    )  # fmt: skip
    assert torch.equal(_apply_op(*args), want)
    torch.library.opcheck(_apply_op, args)

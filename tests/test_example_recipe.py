"""The example's training recipe: loading with workers, SGD / per-group lr / warm-up,
mixed precision, presets; resume stays bitwise with all of them."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("matplotlib")

from test_examples import SMALL
from train_video_uda import parse_args
from uda_optim import build_optimizer, lr_factor, param_groups
from uda_training import train

from dastc.methods import PUBLIC_TAIL_CLASSES, MethodConfig


def _cfg(*argv: str, **kw: object):
    cfg, _, _, _ = parse_args([*SMALL, "--ckpt-every", "100", *argv])
    for k, v in kw.items():
        setattr(cfg, k, v)
    return cfg


def _final(path):
    return torch.load(path / "checkpoint.pt", weights_only=True)


def _assert_same(a, b) -> None:
    for key in ("student", "method"):
        for name, t in a[key].items():
            if isinstance(t, torch.Tensor):
                assert torch.equal(t, b[key][name]), (key, name)
    assert a["history"]["loss"] == b["history"]["loss"]


RECIPE = ["--optimizer", "sgd", "--lr", "0.01", "--head-lr-mult", "10", "--warmup", "2",
          "--amp", "bf16", "--source-size", "48", "96", "--crop", "32", "64",
          "--crop-scale", "0.5", "1.5", "--flip", "0.5"]  # fmt: skip


def test_workers_read_the_same_batches(tmp_path) -> None:
    """2 worker processes give the same run as reading in the training process."""
    train(_cfg("--workers", "0", iters=3), tmp_path / "w0", progress=False)
    train(_cfg("--workers", "2", iters=3), tmp_path / "w2", progress=False)
    _assert_same(_final(tmp_path / "w0"), _final(tmp_path / "w2"))


def test_resume_with_the_recipe_is_bitwise(tmp_path) -> None:
    """Workers, SGD, head lr, warm-up, bf16 autocast, random crops: resumed == uninterrupted."""
    train(_cfg(*RECIPE, "--workers", "2", iters=4), tmp_path / "full", progress=False)
    part = _cfg(*RECIPE, "--workers", "2", iters=4)
    assert train(part, tmp_path / "part", progress=False, stop_after=2) == {"stopped_at": 2}
    train(_cfg(*RECIPE, "--workers", "2", iters=4), tmp_path / "part",
          resume=tmp_path / "part", progress=False)  # fmt: skip
    a, b = _final(tmp_path / "full"), _final(tmp_path / "part")
    assert a["iteration"] == b["iteration"] == 4
    _assert_same(a, b)
    lrs = [g["lr"] for g in a["opt"]["param_groups"]]
    assert max(lrs) == pytest.approx(10 * min(lrs))  # the head at 10x


def test_fp16_trains_with_a_gradient_scaler_in_the_checkpoint(tmp_path) -> None:
    train(_cfg("--amp", "fp16", iters=2), tmp_path / "fp16", progress=False)
    st = _final(tmp_path / "fp16")
    assert st["scaler"] is not None and st["scaler"]["scale"] > 0
    assert all(torch.isfinite(t).all() for t in st["student"].values() if t.is_floating_point())


def test_param_groups_put_the_head_at_its_multiple() -> None:
    from uda_config import build_model

    cfg = _cfg()
    model = build_model(cfg, 9)
    groups = param_groups(model, 1e-4, 1e-3, 10.0)
    by_param = {id(p): g for g in groups for p in g["params"]}
    for name, p in model.named_parameters():
        g = by_param[id(p)]
        head = name.split(".")[0] in ("decoder", "classifier", "fuse")
        assert g["lr"] == pytest.approx(1e-2 if head else 1e-3), name
        assert g["weight_decay"] == (1e-4 if p.ndim > 1 else 0.0), name
    assert any(g["lr"] > 1e-3 for g in groups) and any(g["lr"] == 1e-3 for g in groups)
    # without a multiple: the two groups the example always had, in the same order
    plain = param_groups(model, 1e-4, 1e-3, 1.0)
    assert [g["name"] for g in plain] == ["encoder", "encoder/no_decay"]
    decayed = [p for p in model.parameters() if p.ndim > 1]
    assert [id(p) for p in plain[0]["params"]] == [id(p) for p in decayed]
    sgd = build_optimizer(model, "sgd", 1e-3, 5e-4, 10.0)
    assert isinstance(sgd, torch.optim.SGD) and sgd.defaults["momentum"] == 0.9


def _mmcv_lr(i: int, iters: int, warmup: int, ratio: float = 1e-6, power: float = 0.9) -> float:
    """mmcv's PolyLrUpdaterHook with linear warm-up (mmcv/runner/hooks/lr_updater.py:
    ``get_lr`` of PolyLrUpdaterHook, min_lr 0, and ``get_warmup_lr`` 'linear')."""
    regular = (1 - i / iters) ** power
    if i < warmup:
        k = (1 - i / warmup) * (1 - ratio)
        return regular * (1 - k)
    return regular


@pytest.mark.parametrize("warmup", [0, 5, 1500])
def test_lr_factor_matches_mmcv_warmup_and_poly(warmup: int) -> None:
    iters = 40000 if warmup == 1500 else 50
    for i in [0, 1, 2, warmup - 1, warmup, warmup + 1, iters // 2, iters - 1]:
        if i < 0:
            continue
        assert lr_factor(i, iters, warmup) == pytest.approx(_mmcv_lr(i, iters, warmup), rel=1e-12)


def test_presets_set_defaults_that_options_override() -> None:
    cfg, _, _, _ = parse_args(["--preset", "viper-cnn", "--lr", "0.5"])
    assert (cfg.optimizer, cfg.lr, cfg.head_lr_mult, cfg.weight_decay) == ("sgd", 0.5, 10.0, 5e-4)
    assert cfg.model == "smp:deeplabv3plus:resnet101" and cfg.iters == 40000
    assert cfg.data.source == "viper" and cfg.data.target == "cityscapes_seq"
    assert cfg.data.size == (512, 1024) and cfg.batch == 1
    assert cfg.data.source_size == (720, 1280) and cfg.data.crop == (512, 1024)
    m = cfg.method_config
    for name, value in MethodConfig.official_knobs().items():
        assert getattr(m, name) == value, name
    assert m.rare_classes == PUBLIC_TAIL_CLASSES["viper"]
    cfg, _, _, _ = parse_args(["--preset", "synthia-vit", "--align-weight", "0.2"])
    assert (cfg.optimizer, cfg.lr, cfg.warmup, cfg.weight_decay) == ("adamw", 6e-5, 1500, 0.01)
    assert cfg.model == "smp:segformer:mit_b5" and cfg.method_config.align_weight == 0.2
    assert cfg.method_config.rare_classes == PUBLIC_TAIL_CLASSES["synthia_seq"]
    cfg, _, _, _ = parse_args([])
    assert (cfg.preset, cfg.optimizer, cfg.amp, cfg.workers) == ("default", "adamw", "off", None)


def test_crops_reach_the_step_and_are_checked(tmp_path) -> None:
    """The source clips are read at --source-size and cropped to --size, one draw per clip
    and iteration; a crop the target does not match is refused."""
    import uda_augment

    seen = []
    real = uda_augment.augment_batch

    def spy(batch, *args, **kw):
        out = real(batch, *args, **kw)
        seen.append((tuple(batch["clip"].shape), tuple(out["clip"].shape), out["label"].dtype))
        return out

    import uda_training

    uda_training.augment_batch = spy
    try:
        train(_cfg("--source-size", "48", "96", "--crop", "32", "64", "--flip", "1", iters=2),
              tmp_path / "c", progress=False)  # fmt: skip
    finally:
        uda_training.augment_batch = real
    assert seen == [((2, 2, 3, 48, 96), (2, 2, 3, 32, 64), torch.long)] * 2
    with pytest.raises(SystemExit):
        parse_args([*SMALL, "--crop", "16", "32"])  # the target stays 32 x 64
    with pytest.raises(SystemExit):
        parse_args([*SMALL, "--source-size", "48", "96"])  # no crop: sizes differ
    x = {"clip": torch.rand(2, 2, 3, 48, 96), "label": torch.randint(0, 9, (2, 2, 48, 96))}

    def draw(it: int, domain: int = 0) -> torch.Tensor:
        return uda_augment.augment_batch(x, (32, 64), (0.5, 1.5), 0.5, 0, it, domain)["clip"]

    assert torch.equal(draw(7), draw(7))  # a function of (seed, iteration, domain)
    assert not torch.equal(draw(7), draw(8)) and not torch.equal(draw(7), draw(7, 1))

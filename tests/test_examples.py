"""The UDA examples: every method trains for a few iterations, resume is exact, predict runs."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("matplotlib")
pytest.importorskip("PIL")

from conftest import EXAMPLES
from train_video_uda import main, parse_args
from uda_config import Config
from uda_training import Run, train

# A tiny data set and schedule shared by every test here.
SMALL = ["--batch", "2", "--size", "32", "64", "--train-clips", "4", "--val-clips", "2",
         "--log-every", "1", "--adapt-start", "1"]  # fmt: skip
TINY = [*SMALL, "--iters", "3", "--eval-every", "2", "--no-progress"]


@pytest.mark.parametrize("method", ["dastc", "source_only", "image_dacs", "oracle"])
def test_each_method_trains_and_writes_results(tmp_path, method):
    out = tmp_path / method
    res = main(["--method", method, "--out", str(out), *TINY])
    assert res["method"] == method and res["iters"] == 3
    assert math.isfinite(res["miou"]) and 0 <= res["miou"] <= 100
    saved = json.loads((out / "results.json").read_text())
    assert set(saved["per_class_iou"]) == {
        "road",
        "sidewalk",
        "building",
        "vegetation",
        "sky",
        "pole",
        "sign",
        "person",
        "car",
    }
    assert saved["config"]["method"] == method
    for png in ("predictions.png", "per_class_iou.png", "training_curves.png"):
        assert (out / png).stat().st_size > 1000
    if method in ("dastc", "image_dacs"):
        assert (out / "mixed_clips.png").is_file()
        assert saved["pseudo_label_confident_fraction"] is not None
    assert "final miou" in (out / "log.txt").read_text()


def test_ablation_flags_reach_the_config():
    cfg, out, _, _ = parse_args(["--no-align", "--no-feature-mix", "--no-t2s", "--shift", "blur=0"])
    m = cfg.method_config
    assert not m.align and not m.feature_mix and not m.t2s and m.s2t and m.clip_mix
    assert cfg.data.shift == {"blur": 0.0}
    assert out == Path("runs") / "dastc"
    with pytest.raises(SystemExit):
        parse_args(["--shift", "nonsense=1"])


def _cfg(**kw) -> Config:
    cfg, _, _, _ = parse_args([*SMALL, "--ckpt-every", "100"])
    for k, v in kw.items():
        setattr(cfg.method_config if hasattr(cfg.method_config, k) else cfg, k, v)
    return cfg


@pytest.mark.parametrize(
    "opts",
    [
        {},
        {"class_balance": False, "hue_jitter": 0.1, "rare_below": 0.05},
        {
            "rcs": 0.01,
            "mic": True,
            "warm_guard": "extend",
            "warm_guard_every": 1,
            "warm_guard_max": 1,
        },
    ],
    ids=["default", "options", "image_recipe"],
)
def test_resume_is_bitwise_equal_to_uninterrupted(tmp_path, opts):
    full = _cfg(iters=4, **opts)
    train(full, tmp_path / "full", progress=False)
    part = _cfg(iters=4, **opts)
    stopped = train(part, tmp_path / "part", progress=False, stop_after=2)
    assert stopped == {"stopped_at": 2}
    train(_cfg(iters=4, **opts), tmp_path / "part", resume=tmp_path / "part", progress=False)
    a = torch.load(tmp_path / "full" / "checkpoint.pt", weights_only=True)
    b = torch.load(tmp_path / "part" / "checkpoint.pt", weights_only=True)
    assert a["iteration"] == b["iteration"] == 4
    for key in ("student", "method"):  # the method: teacher, memories, running statistics
        for name, t in a[key].items():
            if isinstance(t, torch.Tensor):
                assert torch.equal(t, b[key][name]), (key, name)
    assert a["method"]["_extra_state"]["iteration"] == 4
    assert torch.equal(
        a["method"]["_extra_state"]["generator"], b["method"]["_extra_state"]["generator"]
    )
    assert a["history"]["loss"] == b["history"]["loss"]
    cb = "class_balance.confidence"
    assert torch.equal(a["method"][cb], b["method"][cb])
    assert opts.get("class_balance", True) == bool((a["method"][cb] != 1).any())


def test_checkpoint_of_other_config_is_refused(tmp_path):
    train(_cfg(iters=1), tmp_path / "a", progress=False)
    import uda_checkpoint

    run = Run(_cfg(iters=2, width=16), torch.device("cpu"))
    with pytest.raises(SystemExit, match="width"):
        uda_checkpoint.load(run, tmp_path / "a" / "checkpoint.pt")


def test_predict_on_a_folder(tmp_path):
    from PIL import Image

    run = tmp_path / "run"
    main(["--out", str(run), "--method", "source_only", *TINY])
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(2):
        arr = (torch.rand(40, 70, 3) * 255).to(torch.uint8).numpy()
        Image.fromarray(arr).save(frames / f"f{i}.png")
    seg = tmp_path / "seg"
    cmd = [sys.executable, str(EXAMPLES / "predict.py"), str(run), str(frames), "--out", str(seg)]
    subprocess.run(cmd, check=True, capture_output=True)
    out = Image.open(seg / "f0_seg.png")
    assert out.size == (70, 40)
    assert (seg / "f1_overlay.png").is_file()


@pytest.mark.slow
def test_main_command_short_budget(tmp_path):
    """The README's main command, with a short budget."""
    cmd = [
        sys.executable,
        str(EXAMPLES / "train_video_uda.py"),
        "--iters",
        "60",
        "--eval-every",
        "30",
        "--out",
        str(tmp_path / "run"),
        "--no-progress",
    ]
    proc = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=1200)
    assert "target mIoU" in proc.stdout
    res = json.loads((tmp_path / "run" / "results.json").read_text())
    assert res["iters"] == 60 and math.isfinite(res["miou"])


@pytest.mark.parametrize("policy", ["stop", "skip"])
def test_non_finite_loss_stops_or_skips(tmp_path, monkeypatch, policy):
    from dastc.methods import DASTC, StepOutput

    real_forward, real_skip = DASTC.forward, DASTC.skip_step
    seen = {}

    def running(m):  # every running statistic the step changes
        return {k: v.clone() for k, v in m.state_dict().items()
                if k.startswith(("agg_", "class_balance"))}  # fmt: skip

    def forward(self, source, target):
        if self.iteration == 2:
            seen["before"] = running(self)
        out = real_forward(self, source, target)
        if self.iteration == 2:  # the third iteration's loss is NaN
            seen["changed"] = any(
                not torch.equal(v, seen["before"][k]) for k, v in running(self).items()
            )
            return StepOutput(out.loss * float("nan"), out.logs)
        return out

    def skip(self):
        real_skip(self)
        seen["after"] = running(self)

    monkeypatch.setattr(DASTC, "forward", forward)
    monkeypatch.setattr(DASTC, "skip_step", skip)
    cfg = _cfg(iters=4, ckpt_every=1, on_nan=policy)
    if policy == "stop":
        with pytest.raises(FloatingPointError, match=r"iteration 2.*last good checkpoint"):
            train(cfg, tmp_path / "run", progress=False)
        ck = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
        assert ck["iteration"] == 2  # the last good state is kept
    else:
        res = train(cfg, tmp_path / "run", progress=False)
        assert res["iters"] == 4 and math.isfinite(res["miou"])
        assert "non-finite loss" in (tmp_path / "run" / "log.txt").read_text()
        # the skipped step's prototypes and class-balance statistics were put back
        assert seen["changed"]
        assert all(torch.equal(v, seen["before"][k]) for k, v in seen["after"].items())


def test_real_benchmark_layouts_train_end_to_end(tmp_path):
    """VIPER -> Cityscapes-Seq through the readers, on tiny trees in the public layouts."""
    import numpy as np
    from test_data_readers import save_ids, save_rgb, viper_raw

    rng = np.random.default_rng(0)
    viper = tmp_path / "VIPER"
    for f in range(8, 14):
        save_rgb(viper / "train/img/001" / f"001_{f:05d}.jpg", rng)
        save_ids(viper / "train/cls/001" / f"001_{f:05d}.png", viper_raw(rng))
    cs = tmp_path / "cityscapes"
    _cityscapes_seq_tree(cs, rng)
    out = tmp_path / "run"
    res = main(
        [
            "--source", "viper", "--source-root", str(viper),
            "--target", "cityscapes-seq", "--target-root", str(cs),
            "--size", "16", "32", "--batch", "2", "--iters", "3", "--adapt-start", "1",
            "--eval-every", "100", "--no-progress", "--no-temporal", "--out", str(out),
        ]
    )  # fmt: skip
    assert res["iters"] == 3 and len(res["per_class_iou"]) == 15  # the VIPER protocol
    assert "person" in res["per_class_iou"]


def _cityscapes_seq_tree(cs: Path, rng) -> None:
    from test_data_readers import save_ids, save_rgb

    for split, cities in (("train", ("aachen", "bonn")), ("val", ("ulm", "zurich"))):
        for city in cities:
            seq_dir = cs / "leftImg8bit_sequence" / split / city
            for f in (18, 19):
                save_rgb(seq_dir / f"{city}_000001_{f:06d}_leftImg8bit.png", rng)
            labels = rng.integers(0, 34, (16, 32))
            gt = cs / "gtFine" / split / city / f"{city}_000001_000019_gtFine_labelIds.png"
            save_ids(gt, labels)


def test_synthia_seq_trains_12_classes_and_scores_11_as_published(tmp_path):
    """SYNTHIA-Seq -> Cityscapes-Seq: fence is trained and in the confusion matrix,
    left out of the mean (TPS / DA-VSN eval_video_UDA.py), and results.json says so."""
    import numpy as np
    from test_data_readers import save_rgb, write_png16

    rng = np.random.default_rng(1)
    synthia = tmp_path / "SYNTHIA-SEQS-04-DAWN"
    for f in range(6):
        save_rgb(synthia / "rgb" / f"{f:06d}.png", rng, 16 + 120, 32)
        lab = np.zeros((16 + 120, 32, 3), np.uint16)
        lab[..., 0] = rng.integers(0, 23, (16 + 120, 32))
        (synthia / "label").mkdir(parents=True, exist_ok=True)
        write_png16(synthia / "label" / f"{f:06d}.png", lab)
    cs = tmp_path / "cityscapes"
    _cityscapes_seq_tree(cs, rng)
    res = main(
        [
            "--source", "synthia_seq", "--source-root", str(synthia),
            "--target", "cityscapes-seq", "--target-root", str(cs),  # the old spelling works
            "--size", "16", "32", "--batch", "2", "--iters", "2", "--adapt-start", "1",
            "--eval-every", "100", "--no-progress", "--no-temporal", "--out", str(tmp_path / "r"),
        ]
    )  # fmt: skip
    assert list(res["per_class_iou"])[3] == "fence" and len(res["per_class_iou"]) == 12
    assert res["scoring"] == {
        "classes_trained": 12,
        "mean_over": [c for c in res["per_class_iou"] if c != "fence"],
        "left_out_of_mean": ["fence"],
    }
    ious = [v for k, v in res["per_class_iou"].items() if k != "fence" and v is not None]
    assert res["miou"] == pytest.approx(sum(ious) / len(ious), abs=0.01)  # IoUs rounded to 0.01


def test_adaptation_options_train_and_reach_the_config(tmp_path):
    out = tmp_path / "opts"
    extra = ["--hue-jitter", "0.1", "--rare-below", "0.05", "--pseudo-weight", "pixel",
             "--no-class-balance"]  # fmt: skip
    res = main(["--out", str(out), *TINY, *extra])
    cfg = res["config"]
    assert (cfg["method_config"]["hue_jitter"], cfg["rare_below"]) == (0.1, 0.05)
    assert cfg["method_config"]["pseudo_weight"] == "pixel"
    assert not cfg["method_config"]["class_balance"]
    assert math.isfinite(res["miou"])


@pytest.mark.filterwarnings("ignore:WarmStartGuard")
def test_image_recipe_options_train_and_report(tmp_path):
    out = tmp_path / "recipe"
    extra = ["--mic", "--mic-patch", "4", "--rcs", "0.01", "--warm-guard", "extend",
             "--warm-guard-max", "1", "--warm-guard-every", "1"]  # fmt: skip
    res = main(["--out", str(out), *TINY, *extra])
    cfg = res["config"]
    assert cfg["rcs"] == 0.01 and cfg["method_config"]["mic"]
    assert cfg["method_config"]["warm_guard"] == "extend"
    assert 0 <= res["warm_guard"]["extended"] <= 1
    assert set(res["warm_guard"]["last_vanished"]) <= set(res["per_class_iou"])
    stats = list(out.glob("rcs_class_stats_*.json"))
    assert len(stats) == 1
    assert len(json.loads(stats[0].read_text())["counts"]) == 4  # --train-clips 4
    assert "mic=" in (out / "log.txt").read_text()  # the MIC term was trained and logged
    ck = torch.load(out / "checkpoint.pt", weights_only=False)
    assert ck["method"]["guard._extra_state"]["fixed_prior"]  # the dataset's shares, not RCS's
    # other data (another seed renders other clips): another statistics file
    main(["--out", str(out), *TINY, *extra, "--seed", "1"])
    assert len(list(out.glob("rcs_class_stats_*.json"))) == 2


def test_rare_class_order_draws_clips_that_hold_the_drawn_class():
    from uda_data import RareClassOrder

    from dastc.data import RareClassSampler

    counts = torch.zeros(20, 3, dtype=torch.long)
    counts[:, 0] = 1000
    counts[::5, 1] = 50  # items 0, 5, 10, 15 hold the rare class 1
    counts[3, 2] = 50  # item 3 alone holds the rarest class 2
    sampler = RareClassSampler(counts, temperature=0.01, min_pixels=10)
    order = RareClassOrder(sampler, batch=4, seed=3)
    drawn = [i for it in range(50) for i in order.indices(it)]
    assert set(drawn) <= {0, 3, 5, 10, 15} and {0, 3, 5, 10, 15} <= set(drawn)
    assert order.indices(7) == RareClassOrder(sampler, batch=4, seed=3).indices(7)
    ranks = [RareClassOrder(sampler, 4, 3, rank=r, world=2).indices(7) for r in (0, 1)]
    glob = RareClassOrder(sampler, 8, 3).indices(7)
    assert ranks[0] == glob[0::2] and ranks[1] == glob[1::2]


def test_rare_classes():
    from uda_data import rare_classes

    # class 2 holds 1 pixel in 100, class 1 none at all (not "rare": absent), 255 ignored
    y = torch.zeros(10, 10, dtype=torch.long)
    y[0, 0], y[0, 1:4] = 2, 255
    ds = [{"label": y}] * 3
    assert rare_classes(ds, 3, 0.02) == [2]
    assert rare_classes(ds, 3, 0.005) == []
    assert rare_classes(ds, 3, 0.0) == []


def test_method_options_come_from_method_config():
    """Every MethodConfig field with help is an option, with the field's default."""
    from dataclasses import fields

    from dastc.methods import MethodConfig

    cfg, _, _, _ = parse_args([])
    assert cfg.method_config == MethodConfig()
    argv = ["--ema", "0.9", "--align-kind", "mmd", "--no-class-balance", "--dist-align",
            "--no-align-memory", "--adapt-start", "7"]  # fmt: skip
    cfg, _, _, _ = parse_args(argv)
    m = cfg.method_config
    assert (m.ema, m.align_kind, m.class_balance, m.dist_align, m.align_memory, m.adapt_start) == (
        0.9, "mmd", False, True, False, 7)  # fmt: skip
    helped = [f.name for f in fields(MethodConfig) if "help" in f.metadata]
    assert len(helped) >= 20
    with pytest.raises(SystemExit):
        parse_args(["--pseudo-threshold", "1.5"])  # MethodConfig's check, as a usage error


def test_compare_runs_means_per_group_and_class(tmp_path):
    from compare_runs import main as compare

    def run(name: str, miou: float, road: float, pole: float | None, hist: list[float]) -> Path:
        d = tmp_path / name
        d.mkdir()
        res = {"miou": miou, "per_class_iou": {"road": road, "pole": pole},
               "pseudo_label_hist": hist, "pseudo_label_confident_fraction": 0.5}  # fmt: skip
        (d / "results.json").write_text(json.dumps(res))
        return d

    a0, a1 = run("a0", 50.0, 80.0, 20.0, [0.9, 0.1]), run("a1", 54.0, 90.0, None, [0.7, 0.3])
    b0 = run("b0", 40.0, 70.0, 10.0, [1.0, 0.0])
    png = tmp_path / "bars.png"
    s = compare([f"a={a0},{a1}", f"b={b0}", "--plot", str(png)])
    assert s["a"]["miou"] == pytest.approx((52.0, math.sqrt(8.0)))
    assert s["a"]["iou"] == {"road": 85.0, "pole": 20.0}  # a missing IoU is left out
    assert s["a"]["pl_share"] == pytest.approx({"road": 0.8, "pole": 0.2})
    assert s["b"]["miou"] == (40.0, 0.0) and png.stat().st_size > 1000
    with pytest.raises(SystemExit, match=r"no results\.json"):
        compare([f"c={tmp_path / 'nothing'}"])

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

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
sys.path.insert(0, str(EXAMPLES))

from train_video_uda import main, parse_args  # noqa: E402
from uda_training import Config, Trainer, train  # noqa: E402

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
    assert not cfg.align and not cfg.feature_mix and not cfg.t2s and cfg.s2t and cfg.clip_mix
    assert cfg.data.shift == {"blur": 0.0}
    assert out == Path("runs") / "dastc"
    with pytest.raises(SystemExit):
        parse_args(["--shift", "nonsense=1"])


def _cfg(**kw) -> Config:
    cfg, _, _, _ = parse_args([*SMALL, "--ckpt-every", "100"])
    for k, v in kw.items():
        setattr(cfg, k, v)
    return cfg


@pytest.mark.parametrize(
    "opts",
    [{}, {"class_balance": False, "hue_jitter": 0.1, "rare_below": 0.05}],
    ids=["default", "options"],
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
    for key in ("student", "teacher", "agg_src", "agg_tgt"):
        for name, t in a[key].items():
            if isinstance(t, torch.Tensor):
                assert torch.equal(t, b[key][name]), (key, name)
    assert a["history"]["loss"] == b["history"]["loss"]
    assert torch.equal(a["cb_conf"], b["cb_conf"])
    assert opts.get("class_balance", True) == bool((a["cb_conf"] != 1).any())


def test_checkpoint_of_other_config_is_refused(tmp_path):
    train(_cfg(iters=1), tmp_path / "a", progress=False)
    other = _cfg(iters=2, width=16)
    tr = Trainer(other, tmp_path / "b")
    with pytest.raises(SystemExit, match="width"):
        tr.load(tmp_path / "a" / "checkpoint.pt")


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
    import uda_training

    real_step, real_undo = uda_training.Trainer.step, uda_training.Trainer.undo_memory
    seen = {}

    def memory(tr):
        return {k: v.clone() for k, v in tr.agg_tgt.state_dict().items()}

    def step(self, bs, bt):
        if self.iteration == 2:
            seen["before"] = memory(self)
        logs = real_step(self, bs, bt)
        if self.iteration == 2:  # the third iteration's loss is NaN
            seen["changed"] = any(
                not torch.equal(v, seen["before"][k]) for k, v in memory(self).items()
            )
            logs["loss"] = torch.tensor(float("nan"))
        return logs

    def undo(self):
        real_undo(self)
        seen["after"] = memory(self)

    monkeypatch.setattr(uda_training.Trainer, "step", step)
    monkeypatch.setattr(uda_training.Trainer, "undo_memory", undo)
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
        # the skipped step's prototypes left the memory as it was
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
    for split, cities in (("train", ("aachen", "bonn")), ("val", ("ulm", "zurich"))):
        for city in cities:
            seq_dir = cs / "leftImg8bit_sequence" / split / city
            for f in (18, 19):
                save_rgb(seq_dir / f"{city}_000001_{f:06d}_leftImg8bit.png", rng)
            labels = rng.integers(0, 34, (16, 32))
            gt = cs / "gtFine" / split / city / f"{city}_000001_000019_gtFine_labelIds.png"
            save_ids(gt, labels)
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


def test_adaptation_options_train_and_reach_the_config(tmp_path):
    out = tmp_path / "opts"
    extra = ["--hue-jitter", "0.1", "--rare-below", "0.05", "--pseudo-weight", "pixel",
             "--no-class-balance"]  # fmt: skip
    res = main(["--out", str(out), *TINY, *extra])
    cfg = res["config"]
    assert (cfg["hue_jitter"], cfg["rare_below"]) == (0.1, 0.05)
    assert cfg["pseudo_weight"] == "pixel" and not cfg["class_balance"]
    assert math.isfinite(res["miou"])


def test_hue_rotation_and_rare_classes():
    from uda_training import _hue_rotation, rare_classes

    angle = torch.tensor([0.0, 0.7, -2.0, math.pi])
    r = _hue_rotation(angle)
    torch.testing.assert_close(r @ r.transpose(1, 2), torch.eye(3).expand(4, 3, 3))
    torch.testing.assert_close(r @ torch.ones(3), torch.ones(4, 3))  # grey stays grey
    torch.testing.assert_close(r[0], torch.eye(3))
    red = r[3] @ torch.tensor([1.0, 0.0, 0.0])  # half a turn: red -> its complement's hue
    assert float(red[0]) < float(red[1]) and float(red[1]) == pytest.approx(float(red[2]), abs=1e-6)
    # class 2 holds 1 pixel in 100, class 1 none at all (not "rare": absent), 255 ignored
    y = torch.zeros(10, 10, dtype=torch.long)
    y[0, 0], y[0, 1:4] = 2, 255
    ds = [{"label": y}] * 3
    assert rare_classes(ds, 3, 0.02) == [2]
    assert rare_classes(ds, 3, 0.005) == []
    assert rare_classes(ds, 3, 0.0) == []


def test_balance_classes_against_a_loop():
    from uda_training import balance_classes

    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 2, 4, 5, 6, generator=g) * 3
    logits[:, :, 3] -= 10  # class 3 is never the argmax
    running = torch.tensor([0.9, 0.8, 0.5, 0.7])
    expect_run = running.clone()
    p = logits.softmax(2)
    conf, lab = p.max(2)
    for k in range(4):  # plain per-class mean confidence of the pixels labelled k
        sel = lab == k
        if sel.any():
            expect_run[k] = 0.9 * expect_run[k] + 0.1 * conf[sel].mean()
    out = balance_classes(logits, running, momentum=0.9)
    torch.testing.assert_close(running, expect_run)
    assert running[3] == 0.7  # absent class keeps its value
    torch.testing.assert_close(out, (p / expect_run.view(1, 1, 4, 1, 1)).log())
    # a low-confidence class wins pixels it loses under the plain argmax
    two = torch.tensor([0.55, 0.45]).log().view(1, 1, 2, 1, 1)
    assert balance_classes(two, torch.tensor([0.99, 0.6])).argmax(2).item() == 1

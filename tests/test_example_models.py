"""The example's models: temporal fusion, the smp adapter and the --model option."""

from __future__ import annotations

import sys

import pytest
import torch
from temporal_fusion import TemporalFusion
from tiny_segmenter import TinySegmenter
from uda_config import Config, build_model


def _reference_fusion(logits, flow, weight, bias):
    """Integer flows: frame t reads frame t-1 at (y + fy, x + fx); outside or t=0: itself."""
    B, T, K, H, W = logits.shape
    out = torch.empty_like(logits)
    for b in range(B):
        for t in range(T):
            for y in range(H):
                for x in range(W):
                    cur = logits[b, t, :, y, x]
                    fx, fy = int(flow[b, t, 0, y, x]), int(flow[b, t, 1, y, x])
                    sy, sx = y + fy, x + fx
                    if t > 0 and 0 <= sy < H and 0 <= sx < W:
                        prev = logits[b, t - 1, :, sy, sx]
                    else:
                        prev = cur
                    out[b, t, :, y, x] = weight[:, :K] @ cur + weight[:, K:] @ prev + bias
    return out


def test_temporal_fusion_matches_a_per_pixel_reference():
    g = torch.Generator().manual_seed(0)
    B, T, K, H, W = 2, 3, 4, 5, 6
    logits = torch.randn(B, T, K, H, W, generator=g, dtype=torch.float64)
    flow = torch.randint(-2, 3, (B, T, 2, H, W), generator=g).double()
    fuse = TemporalFusion(K).double()
    with torch.no_grad():
        fuse.weight.normal_(generator=g)
        fuse.bias.normal_(generator=g)
    got = fuse(logits, flow)
    want = _reference_fusion(logits, flow, fuse.weight[:, :, 0, 0], fuse.bias)
    torch.testing.assert_close(got, want)


def test_temporal_fusion_starts_as_the_identity_and_checks_shapes():
    fuse = TemporalFusion(3)
    logits = torch.randn(2, 2, 3, 8, 8)
    flow = 3 * torch.randn(2, 2, 2, 8, 8)
    torch.testing.assert_close(fuse(logits, flow), logits)
    with pytest.raises(ValueError, match="flow_prev"):
        fuse(logits, flow[:, :1])
    with pytest.raises(ValueError, match="logits"):
        fuse(logits[:, :, :2], flow)
    assert set(dict(fuse.named_parameters())) == {"weight", "bias"}


def test_tiny_segmenter_fuses_through_temporal_fusion():
    torch.manual_seed(0)
    model = TinySegmenter(5)
    clip = torch.rand(1, 2, 3, 32, 64)
    flow = torch.randn(1, 2, 2, 32, 64)
    with torch.no_grad():
        model.fuse.weight.normal_()
        per_frame = model(clip)
        fused = model(clip, flow)
    torch.testing.assert_close(fused, model.fuse(per_frame, flow))
    assert not torch.allclose(fused, per_frame)


def test_model_option_errors_name_the_problem(monkeypatch):
    with pytest.raises(SystemExit, match="expected 'tiny' or 'smp"):
        build_model(Config(model="resnet"), 9)
    with pytest.raises(SystemExit, match="smp:<arch>:<encoder>"):
        build_model(Config(model="smp:unet"), 9)
    with pytest.raises(SystemExit, match="only for --model smp"):
        build_model(Config(model_weights="w.pt"), 9)
    monkeypatch.setitem(sys.modules, "segmentation_models_pytorch", None)  # import fails
    with pytest.raises(SystemExit, match="does not import"):
        build_model(Config(model="smp:unet:resnet18"), 9)


# ---------------------------------------------------------------- with smp installed
def _smp():
    try:
        import segmentation_models_pytorch as smp
    except Exception as e:  # torchvision built for another torch fails at import
        pytest.skip(f"segmentation-models-pytorch does not import: {type(e).__name__}: {e}")
    return smp


@pytest.mark.parametrize(
    ("arch", "stride"), [("unet", 32), ("fpn", 32), ("deeplabv3plus", 16), ("deeplabv3", 8)]
)
def test_smp_split_equals_the_smp_forward(arch, stride):
    _smp()
    from smp_segmenter import IMAGENET_MEAN, IMAGENET_STD, SmpSegmenter

    torch.manual_seed(0)
    model = SmpSegmenter(arch, "resnet18", 6).eval()
    assert model.output_stride == stride
    clip = torch.rand(2, 2, 3, 64, 96)
    normed = (clip - torch.tensor(IMAGENET_MEAN).view(3, 1, 1)) / torch.tensor(IMAGENET_STD).view(
        3, 1, 1
    )
    with torch.no_grad():
        want = model.net(normed.flatten(0, 1)).unflatten(0, (2, 2))
        deep, logits = model.deep(model.shallow(clip))
        image = model(clip[:, 0])
    torch.testing.assert_close(logits, want, rtol=0, atol=0)
    torch.testing.assert_close(image, want[:, 0], rtol=0, atol=0)
    assert deep.shape[:3] == (2, 2, model.deep_channels)
    assert model.shallow(clip).shape == (2, 2, model.shallow_channels, 32, 48)
    with pytest.raises(ValueError, match=f"divisible by {stride}"):
        model(torch.rand(1, 3, stride * 2 + 4, 64))


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_smp_weights_files_in_the_usual_formats(tmp_path):
    _smp()
    from smp_segmenter import SmpSegmenter

    torch.manual_seed(0)
    donor = SmpSegmenter("unet", "resnet18", 4)
    enc = {k: v.clone() for k, v in donor.net.encoder.state_dict().items()}
    enc.pop("bn1.num_batches_tracked")  # torchvision files may lack these
    enc["fc.weight"] = torch.zeros(1000, 512)  # torchvision's classifier: dropped
    torch.save(enc, tmp_path / "encoder.pt")
    torch.manual_seed(1)
    model = SmpSegmenter("unet", "resnet18", 4, weights=tmp_path / "encoder.pt")
    enc.pop("fc.weight")
    got = {k: v for k, v in model.net.encoder.state_dict().items() if k in enc}
    assert _same(got, enc)
    assert not _same(model.net.decoder.state_dict(), donor.net.decoder.state_dict())

    whole = {f"module.{k}": v for k, v in donor.net.state_dict().items()}  # DDP-saved
    torch.save({"state_dict": whole}, tmp_path / "whole.pt")
    model = SmpSegmenter("unet", "resnet18", 4, weights=tmp_path / "whole.pt")
    assert _same(model.net.state_dict(), donor.net.state_dict())

    with torch.no_grad():
        donor.fuse.weight.normal_()
    torch.save({"student": donor.state_dict(), "iteration": 3}, tmp_path / "checkpoint.pt")
    model = SmpSegmenter("unet", "resnet18", 4, weights=tmp_path / "checkpoint.pt")
    assert _same(model.state_dict(), donor.state_dict())  # fusion included

    torch.save({"nothing.like.this": torch.zeros(3)}, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="none of its 1 keys"):
        SmpSegmenter("unet", "resnet18", 4, weights=tmp_path / "bad.pt")
    torch.save([torch.zeros(3)], tmp_path / "list.pt")
    with pytest.raises(ValueError, match="expected a state dict"):
        SmpSegmenter("unet", "resnet18", 4, weights=tmp_path / "list.pt")
    with pytest.raises(ValueError, match="cannot read"):
        SmpSegmenter("unet", "resnet18", 4, weights=tmp_path)  # a folder
    with pytest.raises(ValueError, match="ResNet-style"):
        SmpSegmenter("unet", "mobilenet_v2", 4)
    with pytest.raises(ValueError, match="unknown smp architecture"):
        SmpSegmenter("unet", "resnet7", 4)


def test_smp_encoder_batchnorm_is_frozen_with_pretrained_weights(tmp_path):
    _smp()
    from smp_segmenter import SmpSegmenter

    torch.save(SmpSegmenter("fpn", "resnet18", 3).state_dict(), tmp_path / "w.pt")
    for weights, frozen in ((None, False), (tmp_path / "w.pt", True)):
        model = SmpSegmenter("fpn", "resnet18", 3, weights=weights).train()
        bn = model.net.encoder.bn1
        assert bn.training is not frozen and bn.weight.requires_grad is not frozen
        assert model.net.decoder.training  # the decoder's norms always train
        before = bn.running_mean.clone()
        model(torch.rand(2, 3, 64, 64)).sum().backward()
        assert torch.equal(bn.running_mean, before) is frozen
        assert (bn.weight.grad is None) is frozen


def test_smp_model_trains_in_the_example_and_predicts(tmp_path):
    _smp()
    pytest.importorskip("matplotlib")
    from smp_segmenter import SmpSegmenter
    from train_video_uda import main

    weights = tmp_path / "init.pt"
    torch.save(SmpSegmenter("unet", "resnet18", 9).net.encoder.state_dict(), weights)
    out = tmp_path / "run"
    args = ["--model", "smp:unet:resnet18", "--model-weights", str(weights), "--out", str(out),
            "--batch", "2", "--size", "32", "64", "--train-clips", "4", "--val-clips", "2",
            "--adapt-start", "1", "--eval-every", "2", "--no-progress",
            "--render-workers", "0"]  # fmt: skip
    res = main([*args, "--iters", "2"])
    assert res["config"]["model"] == "smp:unet:resnet18" and res["iters"] == 2
    assert 0 <= res["miou"] <= 100
    weights.unlink()  # resuming and predicting read the checkpoint, not the initial weights
    res = main([*args, "--iters", "3", "--resume", str(out)])
    assert res["iters"] == 3
    from predict import load_run

    model, _, k, _ = load_run(out, "student", torch.device("cpu"))
    assert type(model).__name__ == "SmpSegmenter" and k == 9 and model.freeze_bn
    with pytest.raises(SystemExit, match="divisible by 32"):
        main([*args[:2], "--size", "48", "64", "--iters", "1", "--out", str(tmp_path / "x")])


# ---------------------------------------------------------------- MiT (smp:segformer:mit_b*)
def _normed(clip: torch.Tensor) -> torch.Tensor:
    from smp_segmenter import IMAGENET_MEAN, IMAGENET_STD

    mean, std = torch.tensor(IMAGENET_MEAN).view(3, 1, 1), torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return (clip - mean) / std


@pytest.mark.parametrize(
    ("arch", "stride"), [("segformer", 32), ("unet", 32), ("deeplabv3plus", 16)]
)
def test_smp_mit_split_is_exact(arch, stride):
    _smp()
    from smp_segmenter import SmpSegmenter

    torch.manual_seed(0)
    model = SmpSegmenter(arch, "mit_b0", 6).eval()
    assert (model.family, model.output_stride, model.shallow_stride) == ("mit", stride, 4)
    assert model.shallow_channels == 32  # mit_b0's first stage
    clip = torch.rand(2, 2, 3, 64, 96)
    with torch.no_grad():
        want = model.net(_normed(clip).flatten(0, 1)).unflatten(0, (2, 2))
        shallow = model.shallow(clip)
        deep, logits = model.deep(shallow)
        image = model(clip[:, 1])
        # the first stage is patch_embed1 -> block1 -> norm1, as the encoder's own forward
        assert torch.equal(shallow.flatten(0, 1), model.net.encoder(_normed(clip).flatten(0, 1))[2])
    assert shallow.shape == (2, 2, 32, 16, 24)  # stride 4
    torch.testing.assert_close(logits, want, rtol=0, atol=0)
    torch.testing.assert_close(image, want[:, 1], rtol=0, atol=0)
    assert deep.shape[:3] == (2, 2, model.deep_channels)
    with pytest.raises(ValueError, match=f"divisible by {stride} .*MixVisionTransformer"):
        model(torch.rand(1, 3, 64 + stride // 2, 64))


def test_smp_mit_temporal_path_runs_with_flow_and_trains():
    _smp()
    import copy

    from smp_segmenter import SmpSegmenter

    torch.manual_seed(0)
    model = SmpSegmenter("segformer", "mit_b0", 5)
    assert model.deep_channels == 256  # the SegFormer all-MLP head's width
    with torch.no_grad():
        model.fuse.weight.normal_()
    clip = torch.rand(1, 2, 3, 64, 64)
    flow = torch.randn(1, 2, 2, 64, 64)
    model.eval()
    with torch.no_grad():
        per_frame = model(clip)
        fused = model(clip, flow)
        deep, split = model.deep(model.shallow(clip), flow)
    torch.testing.assert_close(fused, model.fuse(per_frame, flow))
    torch.testing.assert_close(split, fused, rtol=0, atol=0)
    assert deep.shape == (1, 2, 256, 16, 16)  # the decoder's output, at stride 4
    assert not torch.allclose(fused, per_frame)
    with pytest.raises(ValueError, match="needs a clip"):
        model.deep(model.shallow(clip[:, 0]), flow[:, 0])

    model.train()
    model(clip, flow).square().mean().backward()
    for name in ("net.encoder.patch_embed1.proj.weight", "net.encoder.block4.0.attn.q.weight",
                 "net.decoder.fuse_stage.0.weight", "fuse.weight"):  # fmt: skip
        assert model.get_parameter(name).grad is not None, name

    model.eval()
    twin = copy.deepcopy(model)  # as the EMA teacher is made: it runs its own encoder
    with torch.no_grad():
        ref = model(clip, flow)
        twin.net.encoder.patch_embed1.proj.weight.zero_()
        assert not torch.allclose(twin(clip, flow), ref)
        torch.testing.assert_close(model(clip, flow), ref, rtol=0, atol=0)


def test_smp_mit_encoder_weights_file_with_its_imagenet_head(tmp_path):
    _smp()
    from smp_segmenter import SmpSegmenter

    torch.manual_seed(0)
    donor = SmpSegmenter("segformer", "mit_b0", 4)
    enc = {k: v.clone() for k, v in donor.net.encoder.state_dict().items()}
    assert "patch_embed1.proj.weight" in enc and "block1.0.attn.q.weight" in enc  # SegFormer's
    enc["head.weight"] = torch.zeros(1000, 256)  # SegFormer's ImageNet classifier: dropped
    torch.save({"state_dict": enc}, tmp_path / "mit_b0.pth")
    torch.manual_seed(1)
    model = SmpSegmenter("segformer", "mit_b0", 4, weights=tmp_path / "mit_b0.pth")
    assert _same(model.net.encoder.state_dict(), donor.net.encoder.state_dict())
    assert not _same(model.net.decoder.state_dict(), donor.net.decoder.state_dict())
    assert model.freeze_bn and all(p.requires_grad for p in model.net.encoder.parameters())


def test_smp_mit_trains_dastc_in_the_example(tmp_path):
    _smp()
    pytest.importorskip("matplotlib")
    from train_video_uda import main

    out = tmp_path / "run"
    args = ["--model", "smp:segformer:mit_b0", "--method", "dastc", "--out", str(out),
            "--batch", "1", "--size", "32", "64", "--train-clips", "2", "--val-clips", "1",
            "--adapt-start", "0", "--log-every", "1", "--eval-every", "2", "--no-progress",
            "--render-workers", "0"]  # fmt: skip
    res = main([*args, "--iters", "2"])
    assert res["config"]["model"] == "smp:segformer:mit_b0" and res["iters"] == 2
    assert res["config"]["method_config"]["feature_mix"] and res["config"]["method_config"]["align"]
    hist = torch.load(out / "checkpoint.pt", weights_only=False)["history"]
    for k in ("f_s2t", "f_t2s", "align"):  # the feature mix and the alignment ran, each step
        assert len(hist[k]) == 2 and all(torch.isfinite(torch.tensor(v)) for _, v in hist[k]), k
    with pytest.raises(SystemExit, match="divisible by 32"):
        main([*args[:2], "--size", "48", "64", "--iters", "1", "--out", str(tmp_path / "x")])

import torch
from torch.utils.data import DataLoader

import dastc
from dastc.data import SyntheticDrivingClips
from dastc.functional import adaptive_weights, weighted_cross_entropy
from tiny_net import TinyNet  # docs/snippets/tiny_net.py

K, STEPS, SIZE = SyntheticDrivingClips.NUM_CLASSES, 10, (32, 64)  # raise STEPS for real training
torch.manual_seed(0)
src = SyntheticDrivingClips("source", "train", length=2 * STEPS, size=SIZE)  # labelled
tgt = SyntheticDrivingClips("target", "train", length=2 * STEPS, size=SIZE)  # labels unused
src_loader = DataLoader(src, batch_size=2, shuffle=True)
tgt_loader = DataLoader(tgt, batch_size=2, shuffle=True)

model = TinyNet(K, width=16)
teacher = dastc.EMATeacher(model, momentum=0.99, warmup=True)  # makes the pseudo-labels
mix = dastc.BidirectionalClipMix(num_classes=K)  # S→T and T→S clips
fmix = dastc.ShallowFeatureMix()  # the same masks on shallow features
agg = dastc.SpatioTemporalPrototypeAggregator(K, feat_dim=16)  # class prototypes + EMA memory
align = dastc.IntraInterClassAlignmentLoss(temperature=0.1)
opt = torch.optim.AdamW(model.parameters(), lr=2e-3)

for s, t in zip(src_loader, tgt_loader, strict=True):
    xs, ys, xt = s["clip"], s["label"], t["clip"]  # (B, T, 3, H, W), (B, T, H, W), target clips
    pl = teacher.pseudo_label(xt, threshold=0.968)  # label, confidence, per-clip weight
    out = mix(xs, ys, xt, pl.label, pl.weight)
    fs, ft = model.shallow(xs), model.shallow(xt)
    deep_s, logits_s = model.deep(fs)
    deep_t, logits_t = model.deep(ft)
    f_s2t, f_t2s = fmix(fs, ft, out.s2t_mask, out.t2s_mask)
    mixed = [
        (model(out.s2t_clip), out.s2t_label, out.s2t_weight),  # sequence-level mix
        (model(out.t2s_clip), out.t2s_label, out.t2s_weight),
        (model.deep(f_s2t)[1], out.s2t_label, out.s2t_weight),  # shallow-feature mix
        (model.deep(f_t2s)[1], out.t2s_label, out.t2s_weight),
    ]
    loss = weighted_cross_entropy(logits_s, ys) + sum(weighted_cross_entropy(*m) for m in mixed)
    p_src = agg(deep_s, ys)
    p_tgt = agg(deep_t, pl.label, adaptive_weights(logits_t.detach()))
    agg.update(p_src)  # EMA memory of the source prototypes
    loss = loss + 0.1 * align(agg.memory_prototypes(), p_tgt)
    opt.zero_grad()
    loss.backward()
    opt.step()
    teacher.update(model)

cm = dastc.ConfusionMatrix(K)
with torch.no_grad():
    val = SyntheticDrivingClips("target", "val", length=4, size=SIZE)
    for item in DataLoader(val, batch_size=4):
        cm.update(teacher(item["clip"]).argmax(2), item["label"])
print(f"target mIoU of the teacher after {STEPS} steps: {100 * float(cm.compute()[1]):.1f}")

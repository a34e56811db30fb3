import tempfile
from pathlib import Path

import torch
from torch.utils.data import DataLoader

import dastc
from dastc.data import RareClassSampler, SyntheticDrivingClips
from dastc.functional import weighted_cross_entropy
from tiny_net import TinyNet  # docs/snippets/tiny_net.py

K, STEPS, WARM, SIZE = SyntheticDrivingClips.NUM_CLASSES, 10, 4, (32, 64)
torch.manual_seed(0)
src = SyntheticDrivingClips("source", "train", length=20, size=SIZE)
tgt = SyntheticDrivingClips("target", "train", length=20, size=SIZE)

# Rare class sampling: count each source clip's classes once (cached), then draw a
# class by rarity and a clip that holds more than min_pixels of it.
cache = Path(tempfile.mkdtemp()) / "class_stats.json"
sampler = RareClassSampler.from_dataset(
    src, K, cache=cache, temperature=0.01, min_pixels=4, num_samples=2 * STEPS, progress=False
)
src_loader = DataLoader(src, batch_size=2, sampler=sampler)
tgt_loader = DataLoader(tgt, batch_size=2, shuffle=True)

model = TinyNet(K, width=16)
teacher = dastc.EMATeacher(model, momentum=0.99, warmup=True)
masking = dastc.BlockMasking(patch_size=8, ratio=0.7)  # MIC: 64 px at 512x512 crops
guard = dastc.WarmStartGuard(K, floor=0.1, min_prior=0.01, max_extension=4, every=2)
opt = torch.optim.AdamW(model.parameters(), lr=2e-3)

for step, (s, t) in enumerate(zip(src_loader, tgt_loader, strict=True)):
    xs, ys, xt = s["clip"], s["label"], t["clip"]
    loss = weighted_cross_entropy(model(xs), ys)
    # True during the warm start (steps < WARM) and while the guard extends it
    warm = guard.step(step - WARM, lambda x=xt: teacher.pseudo_label(x).label)
    if warm:  # source only; the guard learns the source class shares
        guard.observe_source(ys)
    else:  # masked image consistency: the masked clip learns the whole clip's labels
        pl = teacher.pseudo_label(xt, threshold=0.968)
        masked, _ = masking(xt)
        loss = loss + weighted_cross_entropy(model(masked), pl.label, pl.weight)
    opt.zero_grad()
    loss.backward()
    opt.step()
    teacher.update(model)
print(f"warm start extended by {guard.extended} steps; last vanished classes: {guard.vanished}")
draws = zip(sampler.classes.tolist(), sampler.probabilities.tolist(), strict=True)
odds = {SyntheticDrivingClips.CLASSES[k]: round(p, 3) for k, p in draws if p > 0.01}
print(f"rare class sampling draws {odds}; adapted {STEPS - WARM - guard.extended} steps")

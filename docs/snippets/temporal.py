import torch
import torch.nn.functional as F
from torch.utils.data import default_collate

from dastc.data import SyntheticDrivingClips
from dastc.functional import occlusion_mask, temporal_pseudo_label, warp

K = SyntheticDrivingClips.NUM_CLASSES
ds = SyntheticDrivingClips("target", "val", length=2, clip_len=2, size=(64, 128))
batch = default_collate([ds[0], ds[1]])
label = batch["label"]  # (B, 2, H, W): frame 0 (previous), frame 1 (current)
flow_prev = batch["flow_prev"][:, 1]  # (B, 2, H, W): frame 1 -> frame 0, in pixels
flow_next = batch["flow"][:, 0]  # (B, 2, H, W): frame 0 -> frame 1 (the clip's last frame)

# A stand-in for the teacher's logits on the previous frame: confident and correct there.
prev_logits = 8.0 * F.one_hot(label[:, 0], K).permute(0, 3, 1, 2).float()  # (B, K, H, W)

# TPS-style: warp the previous frame's probabilities to the current frame.
pl = temporal_pseudo_label(prev_logits, flow_prev, threshold=0.968)
inside = pl.label != 255  # pixels whose flow leaves the frame get ignore_index
# Forward-backward consistency: True where the current pixel is visible in the previous frame.
visible = occlusion_mask(flow_prev, flow_next)
acc_all = (pl.label == label[:, 1])[inside].float().mean()
acc_visible = (pl.label == label[:, 1])[inside & visible].float().mean()
print(f"warped pseudo-labels agree with frame 1's labels on {100 * acc_all:.1f}% of pixels,")
share = 100 * visible.float().mean()
print(f"{100 * acc_visible:.1f}% where the occlusion check passes ({share:.0f}% of pixels)")

# With the current frame's own prediction, the two probability maps are averaged.
cur_logits = torch.randn(2, K, 64, 128)
pl_fused = temporal_pseudo_label(prev_logits, flow_prev, 0.968, current_logits=cur_logits)
assert bool((pl_fused.label != 255).all())  # out-of-frame pixels use the current prediction

# Labels and masks warp with mode="nearest" (out-of-frame pixels read 255 for labels).
warped_label = warp(label[:, 0], flow_prev, mode="nearest")
assert warped_label.shape == label[:, 1].shape and warped_label.dtype == torch.long

# Whole clips at once: frames 1..T-1 from frames 0..T-2, logits (B, T-1, K, H, W).
clip_logits = 8.0 * F.one_hot(label, K).permute(0, 1, 4, 2, 3).float()  # (B, T, K, H, W)
pl_clip = temporal_pseudo_label(clip_logits[:, :-1], batch["flow_prev"][:, 1:], 0.968)
print(pl_clip.label.shape)  # (B, T - 1, H, W)

import torch

import dastc
from dastc.functional import pseudo_label

K = 5
mix = dastc.BidirectionalClipMix(num_classes=K)
agg = dastc.SpatioTemporalPrototypeAggregator(K, feat_dim=8)

# Images: (B, C, H, W) with labels (B, H, W).
xs, xt = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
ys, yt = torch.randint(0, K, (2, 32, 32)), torch.randint(0, K, (2, 32, 32))
img = mix(xs, ys, xt, yt, generator=torch.Generator().manual_seed(0))
print(img.s2t_clip.shape, img.s2t_mask.shape)  # (2, 3, 32, 32) (2, 32, 32): the input's rank

# An image is a clip of one frame: the same call on (B, 1, C, H, W) gives the same pixels.
clip = mix(
    xs[:, None], ys[:, None], xt[:, None], yt[:, None], generator=torch.Generator().manual_seed(0)
)
assert clip.s2t_clip.shape == (2, 1, 3, 32, 32)
assert torch.equal(clip.s2t_clip[:, 0], img.s2t_clip)

# Clips: (B, T, C, H, W) with labels (B, T, H, W). The classes are drawn once per
# clip, so a pasted class is pasted in every frame it appears in.
T = 4
cs, ct = torch.rand(2, T, 3, 32, 32), torch.rand(2, T, 3, 32, 32)
cys, cyt = torch.randint(0, K, (2, T, 32, 32)), torch.randint(0, K, (2, T, 32, 32))
out = mix(cs, cys, ct, cyt)
for b in range(2):
    pasted = torch.unique(cys[b][out.s2t_mask[b]])  # the classes drawn for clip b
    assert torch.equal(out.s2t_mask[b], torch.isin(cys[b], pasted))  # same set in all T frames

# Prototypes pool over batch, time and space in one reduction, for either rank.
p_img = agg(torch.randn(2, 8, 8, 8), ys)  # features (B, C, h, w), labels nearest-resized
p_clip = agg(torch.randn(2, T, 8, 8, 8), cys)  # features (B, T, C, h, w)
print(p_img.vectors.shape, p_clip.vectors.shape)  # (5, 8) (5, 8)

# Pseudo-label quality weights are per image, or per clip (over all its frames).
print(pseudo_label(torch.randn(2, K, 32, 32)).weight.shape)  # (2, 32, 32)
print(pseudo_label(torch.randn(2, T, K, 32, 32)).weight.shape)  # (2, 4, 32, 32)

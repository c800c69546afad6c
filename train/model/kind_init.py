"""The starting point of a `BlurKindHead`, fitted to training frames.

The head's spectral features are fixed; what it learns is a standardization of them and a small MLP. Both
start fitted here, before the network trains, so that the decoder's kind modulation sees a meaningful kind
from its first step: the standardization as the features' mean and standard deviation over the training
frames whose kind is known, the MLP by full-batch Adam on the cross-entropy of those frames' kinds.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch.nn import functional as F

from .network import BLUR_KINDS, BlurKindHead

FIT_STEPS = 500
FIT_LR = 1e-2


def fit_blur_kind_head(head: BlurKindHead, samples: Iterable[dict[str, torch.Tensor]], seed: int = 0) -> dict[str, float]:
    """Fit `head` to `samples` (the training dataset's dicts: image, blur_kind with -1 for unknown). Returns
    the number of frames of each kind (by name) and the fitted head's accuracy on them. Refuses samples
    without every kind: the head would learn a constant."""
    features, kinds = [], []
    with torch.no_grad():
        for sample in samples:
            kind = int(sample["blur_kind"])
            if kind < 0:
                continue
            features.append(head.spectrum(sample["image"][None].float().to(head.kernels.device))[0])
            kinds.append(kind)
    target = torch.tensor(kinds, dtype=torch.long, device=head.kernels.device)
    counts = torch.bincount(target, minlength=len(BLUR_KINDS)).tolist()
    if min(counts) == 0:
        raise ValueError(f"the blur-kind head needs training frames of every kind to start from; got "
                         f"{dict(zip(BLUR_KINDS, counts, strict=True))} (blurred frames of a known kind)")
    x = torch.stack(features)
    with torch.no_grad():
        head.feature_mean.copy_(x.mean(0))
        head.feature_std.copy_(x.std(0).clamp_min(1e-3))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in head.mlp:
            if isinstance(layer, torch.nn.Linear):
                bound = 1 / layer.in_features ** 0.5
                # drawn on the CPU, whose generator serves any device the head lives on
                layer.weight.copy_(torch.empty(layer.weight.shape).uniform_(-bound, bound, generator=generator))
                layer.bias.zero_()
    z = (x - head.feature_mean) / head.feature_std
    parameters = list(head.mlp.parameters())
    trainable = [p.requires_grad for p in parameters]  # a head frozen for the run still starts fitted
    optimizer = torch.optim.Adam(parameters, lr=FIT_LR)
    with torch.enable_grad():
        for p in parameters:
            p.requires_grad_(True)
        for _ in range(FIT_STEPS):
            optimizer.zero_grad()
            F.cross_entropy(head.mlp(z), target).backward()
            optimizer.step()
    for p, flag in zip(parameters, trainable, strict=True):
        p.requires_grad_(flag)
        p.grad = None
    with torch.no_grad():
        accuracy = float((head.mlp(z).argmax(1) == target).float().mean())
    return {**dict(zip(BLUR_KINDS, counts, strict=True)), "accuracy": accuracy}

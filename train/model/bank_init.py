"""The starting point of a `DeconvolutionBank`, fitted to training data by least squares.

Filter l starts as the linear stride-2 filter that best maps images blurred at level l (all blur kinds
mixed, as the degradation draws them) to the 2x2-block means of their in-focus references:
    filter_l = argmin_w  sum over level-l images and stride-2 samples (w . window - mean of the 2x2 block)^2
             = (A^T A + ridge I)^-1 A^T b,   A: the image windows the filter sees, b: the block means,
the optimal linear restoration for the camera noise and blur jitter actually drawn (a Wiener filter needs a
noise-to-signal ratio chosen by hand and loses accuracy when cut to the bank's span). The mixing layer starts as
a lookup of the tile's blur-level probabilities, so the bank's first output is sum_l p_l * (filter_l * image).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn
from torch.nn import functional as F

from .network import DeconvolutionBank

RIDGE = 1e-4  # relative to the mean diagonal of A^T A: keeps rarely excited directions near zero


def windows(image: torch.Tensor, filters: nn.Conv2d) -> torch.Tensor:
    """[N, 1, H, W] -> [N * outputs, span^2]: what each output of the single-input convolution `filters` sees,
    in its (cross-correlation) weight order."""
    columns = F.unfold(image, kernel_size=filters.kernel_size, padding=filters.padding, stride=filters.stride)
    return columns.transpose(1, 2).reshape(-1, columns.shape[1])


@torch.no_grad()
def fit_deconvolution_bank(bank: DeconvolutionBank, samples: Iterable[dict[str, torch.Tensor]]) -> dict[int, int]:
    """Fit `bank`'s filters to `samples` (the training dataset's dicts: image, sharp, has_sharp, blur_level)
    and set its mixing to the level lookup. Returns the number of images seen per level; a level without
    any keeps its filter at the identity of the stride-2 grid (the 2x2 block mean)."""
    levels, _, span, _ = bank.filters.weight.shape
    normal = torch.zeros(levels, span * span, span * span, dtype=torch.float64)
    moment = torch.zeros(levels, span * span, dtype=torch.float64)
    seen = dict.fromkeys(range(levels), 0)
    for sample in samples:
        if not bool(sample["has_sharp"]):
            continue
        level = int(sample["blur_level"])
        a = windows(sample["image"][None].float(), bank.filters).double()
        b = F.avg_pool2d(sample["sharp"][None].float(), 2).reshape(-1).double()
        normal[level] += a.T @ a
        moment[level] += a.T @ b
        seen[level] += 1
    # Output i of the stride-2 filters sees input pixels 2i - padding onwards, so its own 2x2 block starts at
    # tap `padding`.
    pad = bank.filters.padding[0]
    identity = torch.zeros(span, span, dtype=torch.float64)
    identity[pad:pad + 2, pad:pad + 2] = 0.25
    weight = torch.empty(levels, span * span, dtype=torch.float64)
    for level in range(levels):
        if seen[level] == 0:
            weight[level] = identity.reshape(-1)
            continue
        ridge = RIDGE * normal[level].diagonal().mean()
        weight[level] = torch.linalg.solve(normal[level] + ridge * torch.eye(span * span, dtype=torch.float64),
                                           moment[level])
    bank.filters.weight.copy_(weight.reshape(levels, 1, span, span).to(bank.filters.weight))
    lookup = torch.zeros_like(bank.mix.weight)
    lookup[:, -levels:, 0, 0] = torch.eye(levels)  # the blur-level probabilities are the last mixing inputs
    bank.mix.weight.copy_(lookup)
    bank.mix.bias.zero_()
    return seen

"""The starting point of a `DeconvolutionBank`, fitted to training data by least squares.

Filter l starts as the linear stride-2 filter that best maps images blurred at level l (all blur kinds
mixed, as the degradation draws them) to the 2x2-block means of their in-focus references:
    filter_l = argmin_w  sum over level-l images and stride-2 samples (w . window - mean of the 2x2 block)^2
             = (A^T A + ridge I)^-1 A^T b,   A: the image windows the filter sees, b: the block means,
the optimal linear restoration for the camera noise and blur jitter actually drawn (a Wiener filter needs a
noise-to-signal ratio chosen by hand and loses accuracy when cut to the bank's span). A level whose filter runs
at full resolution (`deblur_bank_fine`) is fitted the same way to the reference's pixels. The mixing layer starts as
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


def _identity(conv: nn.Conv2d) -> torch.Tensor:
    """The filter of `conv` that passes the image through: the 2x2 block mean at stride 2 (output i sees input
    pixels 2i - padding onwards, so its own block starts at tap `padding`), the centre tap at stride 1."""
    span, pad = conv.kernel_size[0], conv.padding[0]
    identity = torch.zeros(span, span, dtype=torch.float64)
    if conv.stride[0] == 2:
        identity[pad:pad + 2, pad:pad + 2] = 0.25
    else:
        identity[pad, pad] = 1.0
    return identity.reshape(-1)


@torch.no_grad()
def fit_deconvolution_bank(bank: DeconvolutionBank, samples: Iterable[dict[str, torch.Tensor]]) -> dict[int, int]:
    """Fit `bank`'s filters to `samples` (the training dataset's dicts: image, sharp, has_sharp, blur_level)
    and set its mixing to the level lookup. A stride-2 filter is fitted to the reference's 2x2 block means, a
    full-resolution one to the reference itself. Returns the number of images seen per level; a level without
    any keeps its filter at the identity (the block mean at stride 2)."""
    # Level -> (its convolution, its output channel there).
    channels = [(conv, i) for conv in (bank.filters, bank.fine) if conv is not None for i in range(conv.out_channels)]
    owner = dict(zip(bank.levels, channels, strict=True))
    taps = {level: conv.weight[0].numel() for level, (conv, _) in owner.items()}
    normal = {level: torch.zeros(n, n, dtype=torch.float64) for level, n in taps.items()}
    moment = {level: torch.zeros(n, dtype=torch.float64) for level, n in taps.items()}
    seen = dict.fromkeys(sorted(owner), 0)
    for sample in samples:
        if not bool(sample["has_sharp"]):
            continue
        level = int(sample["blur_level"])
        conv, _ = owner[level]
        a = windows(sample["image"][None].float(), conv).double()
        sharp = sample["sharp"][None].float()
        b = (F.avg_pool2d(sharp, 2) if conv.stride[0] == 2 else sharp).reshape(-1).double()
        normal[level] += a.T @ a
        moment[level] += a.T @ b
        seen[level] += 1
    for level, (conv, channel) in owner.items():
        if seen[level] == 0:
            weight = _identity(conv)
        else:
            n = normal[level]
            weight = torch.linalg.solve(n + RIDGE * n.diagonal().mean() * torch.eye(len(n), dtype=n.dtype),
                                        moment[level])
        conv.weight[channel].copy_(weight.reshape(conv.weight.shape[1:]).to(conv.weight))
    levels = len(bank.levels)
    lookup = torch.zeros_like(bank.mix.weight)
    for output, level in enumerate(bank.levels):  # the blur-level probabilities are the last mixing inputs
        lookup[output, bank.mix.in_channels - levels + level, 0, 0] = 1.0
    bank.mix.weight.copy_(lookup)
    bank.mix.bias.zero_()
    return seen

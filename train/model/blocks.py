"""Building blocks of the network, each a small nn.Module."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


class ConvBNAct(nn.Sequential):
    """conv(k, stride) -> BatchNorm -> ReLU (BatchNorm folds into the conv at export)."""

    def __init__(self, cin: int, cout: int, kernel: int = 3, stride: int = 1, groups: int = 1, act: bool = True):
        layers: list[nn.Module] = [
            nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
        ]
        if act:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expand -> 3x3 depthwise (stride) -> 1x1 project, plus identity when shapes
    match. Depthwise convolutions keep the edge model near 1 GFLOP at 512x512."""

    def __init__(self, cin: int, cout: int, stride: int = 1, expansion: int = 2):
        super().__init__()
        hidden = cin * expansion
        layers: list[nn.Module] = []
        if expansion != 1:
            layers.append(ConvBNAct(cin, hidden, 1))
        layers += [ConvBNAct(hidden, hidden, 3, stride, groups=hidden), ConvBNAct(hidden, cout, 1, act=False)]
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        return x + y if self.residual else y


def stage(cin: int, cout: int, depth: int, stride: int, expansion: int) -> nn.Sequential:
    """`depth` inverted-residual blocks, the first one changing width and stride."""
    blocks = [InvertedResidual(cin, cout, stride, expansion)]
    blocks += [InvertedResidual(cout, cout, 1, expansion) for _ in range(depth - 1)]
    return nn.Sequential(*blocks)


class UpFuse(nn.Module):
    """Decoder step: upsample the coarse features x2 (bilinear), add the projected skip, refine."""

    def __init__(self, coarse: int, skip: int, cout: int, expansion: int):
        super().__init__()
        self.coarse = ConvBNAct(coarse, cout, 1, act=False)
        self.skip = ConvBNAct(skip, cout, 1, act=False)
        self.refine = InvertedResidual(cout, cout, 1, expansion)

    def forward(self, coarse: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        up = F.interpolate(self.coarse(coarse), size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.refine(F.relu(up + self.skip(skip)))


class FiLM(nn.Module):
    """Feature-wise linear modulation: features * (1 + gamma) + beta, with gamma and beta predicted per
    tile from the quality embedding, so the diagnosis can weigh evidence by how sharp each tile is."""

    def __init__(self, embedding: int, channels: int):
        super().__init__()
        self.to_gamma_beta = nn.Conv2d(embedding, 2 * channels, 1)
        # Start as the identity: the diagnosis path is unchanged until the quality signal is useful.
        nn.init.zeros_(self.to_gamma_beta.weight)
        nn.init.zeros_(self.to_gamma_beta.bias)

    def forward(self, features: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.to_gamma_beta(embedding).chunk(2, dim=1)
        return features * (1 + gamma) + beta


def normalized_entropy(logits: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """Entropy of softmax(logits) divided by log(number of classes): 0 = certain, 1 = uniform."""
    log_p = F.log_softmax(logits.float(), dim=dim)
    entropy = -(log_p.exp() * log_p).sum(dim=dim, keepdim=True)
    return entropy / math.log(logits.shape[dim])

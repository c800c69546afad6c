"""The DeepMT-ND network and its baselines, built from one `ModelConfig`.

    image -> encoder_low (strides 2, 4, 8) -> encoder_deep (strides 16, 32)
                 |  f2, f4, f8                     | f32
                 |-> deblur decoder (f8 -> f4 -> f2 -> full res, residual)  -> deblurred
                 |        `-> restored features r2 ----------.
                 `-> IQA head on f8 (tiles of 32x32 px)       |     -> blur_logits, quality, quality_map, certainty
                          `-> quality embedding per tile --.  |
    diagnosis head: f32 + restored(r2 -> stride 32), FiLM(quality embedding) -> diagnosis_logits

With `deblur_bank: true` a `DeconvolutionBank` adds a linear restoration of the image, steered per tile by the
IQA head, as one more input of the decoder's full-resolution refinement. With `deblur_kind: true` a
`BlurKindHead` tells defocus from Gaussian-like blur from the frame's tile spectrum, and its probabilities
modulate the refinement and shift the bank's mixing. With `deblur_gate: quality` the
deblurring residual is scaled per pixel by a learned function of the (upsampled) quality map, so in-focus
regions pass through unchanged.
`hier` is the figure above; `flat` keeps the three heads but cuts the two arrows into the diagnosis;
`st` is encoder + diagnosis head only. All are fully convolutional for H, W multiples of 32.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from .blocks import ConvBNAct, FiLM, InvertedResidual, UpFuse, normalized_entropy, stage
from .config import ModelConfig

TILE = 32  # quality_map resolution: one value per 32x32-pixel tile


def check_input(image: torch.Tensor) -> None:
    """Reject inputs that break the I/O contract, naming the shape and the fix."""
    if torch.jit.is_tracing() or torch.compiler.is_compiling():
        return
    if image.dim() != 4 or image.shape[1] != 1:
        raise ValueError(f"image of shape {tuple(image.shape)}: expected [N, 1, H, W] (one channel)")
    h, w = image.shape[-2:]
    if h % TILE or w % TILE:
        raise ValueError(f"image of size {h}x{w}: height and width must be multiples of {TILE} "
                         f"(pad or crop to {h // TILE * TILE or TILE}x{w // TILE * TILE or TILE})")


class EncoderLow(nn.Module):
    """Strides 2, 4, 8: the low/mid-level features shared by deblurring, IQA and diagnosis."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        w, d, e = cfg.widths, cfg.depths, cfg.expansion
        self.stem = nn.Sequential(ConvBNAct(1, w[0], 3, 2), stage(w[0], w[0], d[0], 1, e))
        self.stride4 = stage(w[0], w[1], d[1], 2, e)
        self.stride8 = stage(w[1], w[2], d[2], 2, e)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        f2 = self.stem(image)
        f4 = self.stride4(f2)
        return f2, f4, self.stride8(f4)


class EncoderDeep(nn.Module):
    """Strides 16, 32: the high-level features of the diagnosis."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        w, d, e = cfg.widths, cfg.depths, cfg.expansion
        self.stride16 = stage(w[2], w[3], d[3], 2, e)
        self.stride32 = stage(w[3], w[4], d[4], 2, e)

    def forward(self, f8: torch.Tensor) -> torch.Tensor:
        return self.stride32(self.stride16(f8))


class DeconvolutionBank(nn.Module):
    """A linear restoration that the IQA head steers: one learned deconvolution filter per blur level, each
    spanning S x S input pixels, applied at stride 2 and mixed per 32x32 tile by weights predicted from the
    IQA features and the tile's blur-level probabilities, then upsampled to full resolution:
        linear = up2( sum_l mix_l(tile) * (filter_l * image)[::2, ::2] )
    Why stride 2: a Wiener filter for the heaviest blur needs a support of some 30 pixels, which the decoder's
    convolutions cannot afford at full resolution; the detail above a quarter of the sampling frequency that
    mild blur leaves is restored by the refinement (full-resolution filters for levels 1 and 2 were measured
    and gained nothing at level 2, see DEVELOPERS.md). Sample i of the stride-2 grid sits at the
    centre of input pixels 2i and 2i+1, which is where bilinear upsampling (align_corners=False) puts it.
    `ifrt.train.model.bank_init` starts filter l as the least-squares restoration of level-l training images
    and the mixing as a lookup of the tile's level probabilities. Without `deblur_bank_in_focus` the in-focus
    filter is kept (so weights move between banks with and without it) but not applied. With a blur-kind head
    the frame's kind probabilities shift the mixing (`mix_kind`, starting at zero)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        span = cfg.deblur_bank_span
        self.first_level = 0 if cfg.deblur_bank_in_focus else 1
        self.filters = nn.Conv2d(1, cfg.blur_levels, span, stride=2, padding=span // 2 - 1, bias=False)
        self.mix = nn.Conv2d(cfg.iqa_width + cfg.blur_levels, cfg.blur_levels, 1)
        self.mix_kind = nn.Linear(len(BLUR_KINDS), cfg.blur_levels, bias=False) if cfg.deblur_kind else None
        if self.mix_kind is not None:
            nn.init.zeros_(self.mix_kind.weight)

    def forward(self, image: torch.Tensor, iqa_features: torch.Tensor, tile_blur_logits: torch.Tensor,
                kind: torch.Tensor | None = None) -> torch.Tensor:
        first = self.first_level
        responses = F.conv2d(image, self.filters.weight[first:], stride=self.filters.stride,
                             padding=self.filters.padding)
        mix = self.mix(torch.cat([iqa_features, torch.softmax(tile_blur_logits, dim=1)], dim=1))
        if self.mix_kind is not None:
            mix = mix + self.mix_kind(kind)[:, :, None, None]
        mix = F.interpolate(mix[:, first:], size=responses.shape[-2:], mode="bilinear", align_corners=False)
        linear = (responses * mix).sum(dim=1, keepdim=True)
        return F.interpolate(linear, size=image.shape[-2:], mode="bilinear", align_corners=False)


BLUR_KINDS = ("gaussian", "defocus")  # the blur-kind head's classes; spatially varying blur is Gaussian-like


def spectral_kernels(tile: int, radii: int, orientations: int) -> torch.Tensor:
    """[2 * radii * orientations, 1, tile, tile]: Hann-windowed cosine and sine kernels at 1..radii cycles per
    tile and `orientations` directions over a half-turn, each made zero-mean (so a tile's response is that of
    the tile minus its mean: its brightness does not leak into the low frequencies) and scaled by 1/tile (so
    the responses stay far inside float16's range). Order: radius, orientation, (cosine, sine)."""
    window = torch.hann_window(tile, periodic=False, dtype=torch.float64)
    window = window[:, None] * window[None, :]
    y, x = torch.meshgrid(torch.arange(tile, dtype=torch.float64), torch.arange(tile, dtype=torch.float64),
                          indexing="ij")
    kernels = []
    for radius in range(1, radii + 1):
        for o in range(orientations):
            angle = math.pi * o / orientations
            phase = 2 * math.pi * radius * (math.sin(angle) * y + math.cos(angle) * x) / tile
            for wave in (torch.cos(phase), torch.sin(phase)):
                k = window * wave
                kernels.append((k - k.mean()) / tile)
    return torch.stack(kernels)[:, None].float()


class BlurKindHead(nn.Module):
    """Whether a frame is blurred by defocus (the widefield PSF, a ringed disk) or by Gaussian-like blur, from
    its mean amplitude spectrum over 32x32 tiles (Welch's method): a fixed convolution at stride 32 with
    `spectral_kernels` (15 radii x 4 orientations, 63 MFLOPs at 512x512), the amplitude of each frequency
    averaged over orientations and tiles, its log relative to the lowest radius, standardized, through a small
    MLP. The kind shows only frame-wide, in the spectrum's shape; local features do not tell it (DEVELOPERS.md).
    Amplitudes rather than powers keep the dynamic range within float16. The standardization is fitted to
    training frames (`ifrt.train.model.kind_init`); logits [N, 2] in `BLUR_KINDS` order."""

    RADII, ORIENTATIONS = 15, 4

    def __init__(self, hidden: int = 32):
        super().__init__()
        self.register_buffer("kernels", spectral_kernels(TILE, self.RADII, self.ORIENTATIONS), persistent=False)
        self.register_buffer("feature_mean", torch.zeros(self.RADII - 1))
        self.register_buffer("feature_std", torch.ones(self.RADII - 1))
        self.mlp = nn.Sequential(nn.Linear(self.RADII - 1, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, hidden),
                                 nn.ReLU(inplace=True), nn.Linear(hidden, len(BLUR_KINDS)))

    def spectrum(self, image: torch.Tensor) -> torch.Tensor:
        """[N, 1, H, W] -> [N, RADII - 1]: log mean amplitude at radii 2..15 relative to radius 1."""
        responses = F.conv2d(image, self.kernels, stride=TILE).abs()
        n = image.shape[0]
        amplitude = responses.reshape(n, self.RADII, -1).mean(dim=-1)
        log = torch.log(amplitude + 1e-6)
        return log[:, 1:] - log[:, :1]

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.mlp((self.spectrum(image) - self.feature_mean) / self.feature_std)


class DeblurDecoder(nn.Module):
    """U-Net-style decoder from f8 back to full resolution. Predicts a residual added to the input
    (blur removes detail; the identity is the right starting point) and exposes its stride-2
    features as the restored features the diagnosis consumes."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        w, c, e = cfg.widths, cfg.decoder_width, cfg.expansion
        self.up4 = UpFuse(w[2], w[1], 2 * c, e)
        self.up2 = UpFuse(2 * c, w[0], c, e)
        self.to_full = nn.Conv2d(c, 4 * 4, 1)  # pixel shuffle: 16 channels at stride 2 -> 4 at full res
        layers: list[nn.Module] = []
        channels = 4 + 1  # the shuffled decoder features and the input image
        for _ in range(cfg.refine_depth - 1):
            layers += [nn.Conv2d(channels, cfg.refine_width, 3, padding=1), nn.ReLU(inplace=True)]
            channels = cfg.refine_width
        self.refine = nn.Sequential(*layers, nn.Conv2d(channels, 1, 3, padding=1))
        nn.init.zeros_(self.refine[-1].weight)
        nn.init.zeros_(self.refine[-1].bias)
        self.bank = DeconvolutionBank(cfg) if cfg.deblur_bank else None
        if self.bank is not None:
            # The bank's restoration enters the refinement's first convolution through its own weights, which
            # start at zero: a decoder trained without a bank keeps its exact output until these learn.
            self.refine_linear = nn.Conv2d(1, self.refine[0].out_channels, 3, padding=1, bias=False)
            nn.init.zeros_(self.refine_linear.weight)
        # With a blur-kind head, the kind probabilities modulate each hidden layer of the refinement (FiLM,
        # starting as the identity), so one refinement serves defocus and Gaussian-like blur alike.
        self.kind_film = nn.ModuleList(
            FiLM(len(BLUR_KINDS), cfg.refine_width) for _ in range(cfg.refine_depth - 1)) if cfg.deblur_kind else None
        # gate = sigmoid(slope * (1 - quality) + offset); starts near 0.05 in focus (quality 1) and 0.9 at
        # quality 0.75 (blur level 1 of 4).
        self.gate = nn.Parameter(torch.tensor([21.0, -3.0])) if cfg.deblur_gate == "quality" else None

    def forward(self, image, f2, f4, f8, iqa=None, kind=None) -> tuple[torch.Tensor, torch.Tensor]:
        """`kind`: the blur-kind head's probabilities [N, 2], needed when the decoder has `kind_film`."""
        restored = self.up2(self.up4(f8, f4), f2)
        full = F.pixel_shuffle(self.to_full(restored), 2)
        if self.kind_film is not None and kind is None:
            raise ValueError("this decoder's refinement is modulated by the blur kind (model.deblur_kind=true): "
                             "pass the blur-kind head's probabilities")
        hidden = self.refine[0](torch.cat([full, image], dim=1))
        if self.bank is not None:
            if iqa is None:
                raise ValueError("this decoder's deconvolution bank is steered by the IQA head "
                                 "(model.deblur_bank=true): pass the IQA head's outputs")
            hidden = hidden + self.refine_linear(self.bank(image, iqa["features"], iqa["tile_blur_logits"], kind))
        # refine = conv, (ReLU, conv) * (depth - 1): each hidden conv's output is modulated before its ReLU.
        for i, layer in enumerate(self.refine[1:]):
            if self.kind_film is not None and i % 2 == 0:
                hidden = self.kind_film[i // 2](hidden, kind[:, :, None, None])
            hidden = layer(hidden)
        residual = hidden
        if self.gate is not None:
            if iqa is None:
                raise ValueError("this decoder's residual is gated by quality (model.deblur_gate=quality): "
                                 "pass the IQA head's quality_map")
            quality = F.interpolate(iqa["quality_map"], size=image.shape[-2:], mode="bilinear", align_corners=False)
            residual = residual * torch.sigmoid(self.gate[0] * (1 - quality) + self.gate[1])
        return image + residual, restored


class IQAHead(nn.Module):
    """Blur level and quality per 32x32 tile from the mid-level features, pooled to the image with
    learned attention (empty background tiles carry no blur evidence and get little weight)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        c, e = cfg.iqa_width, cfg.expansion
        self.body = nn.Sequential(ConvBNAct(cfg.widths[2], c, 1), InvertedResidual(c, c, 2, e),
                                  InvertedResidual(c, c, 2, e))  # stride 8 -> 32
        self.tile_blur = nn.Conv2d(c, cfg.blur_levels, 1)
        self.tile_quality = nn.Conv2d(c, 1, 1)
        self.tile_attention = nn.Conv2d(c, 1, 1)

    def forward(self, f8: torch.Tensor) -> dict[str, torch.Tensor]:
        features = self.body(f8)
        tile_logits = self.tile_blur(features)
        quality_map = torch.sigmoid(self.tile_quality(features))
        n = features.shape[0]
        attention = torch.softmax(self.tile_attention(features).reshape(n, 1, -1), dim=-1)
        blur_logits = (tile_logits.reshape(n, tile_logits.shape[1], -1) * attention).sum(-1)
        quality = (quality_map.reshape(n, 1, -1) * attention).sum(-1).squeeze(1)
        return {"blur_logits": blur_logits, "quality": quality, "quality_map": quality_map,
                "certainty": 1 - normalized_entropy(tile_logits), "tile_blur_logits": tile_logits,
                "features": features}


class DiagnosisHead(nn.Module):
    """Deep features -> (optional: + restored features, FiLM by quality) -> pooled -> class logits."""

    def __init__(self, cfg: ModelConfig, hierarchical: bool):
        super().__init__()
        w, h, e = cfg.widths, cfg.head_width, cfg.expansion
        self.hierarchical = hierarchical
        cin = w[4]
        if hierarchical:
            c = cfg.decoder_width
            # Restored stride-2 features carried down to stride 32 by four strided blocks.
            self.restored_down = nn.Sequential(
                InvertedResidual(c, 2 * c, 2, e), InvertedResidual(2 * c, 2 * c, 2, e),
                InvertedResidual(2 * c, 4 * c, 2, e), InvertedResidual(4 * c, 4 * c, 2, e))
            cin += 4 * c
            q = cfg.quality_embedding
            self.quality_embedding = nn.Sequential(
                nn.Conv2d(cfg.iqa_width + cfg.blur_levels + 2, q, 1), nn.ReLU(inplace=True), nn.Conv2d(q, q, 1))
            self.film = FiLM(q, h)
        self.fuse = ConvBNAct(cin, h, 1)
        self.refine = InvertedResidual(h, h, 1, e)
        self.dropout = nn.Dropout(cfg.dropout)
        self.classifier = nn.Linear(h, cfg.num_classes)

    def forward(self, f32, restored=None, iqa=None) -> torch.Tensor:
        if self.hierarchical:
            x = self.fuse(torch.cat([f32, self.restored_down(restored)], dim=1))
            quality_in = torch.cat([iqa["features"], torch.softmax(iqa["tile_blur_logits"], dim=1),
                                    iqa["quality_map"], iqa["certainty"].to(iqa["quality_map"].dtype)], dim=1)
            x = self.film(x, self.quality_embedding(quality_in))
        else:
            x = self.fuse(f32)
        x = self.refine(x).mean(dim=(2, 3))
        return self.classifier(self.dropout(x))


CONTRACT_OUTPUTS = ("diagnosis_logits", "blur_logits", "quality", "quality_map", "deblurred", "certainty")


class DeepMTND(nn.Module):
    """The network for all three variants. forward(image [N,1,H,W]) returns a dict with the contract's
    output names; the single-task `st` variant returns only `diagnosis_logits`."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder_low = EncoderLow(cfg)
        self.encoder_deep = EncoderDeep(cfg)
        multitask = cfg.variant != "st"
        self.deblur = DeblurDecoder(cfg) if multitask else None
        self.iqa = IQAHead(cfg) if multitask else None
        self.blur_kind = BlurKindHead() if cfg.deblur_kind else None
        self.diagnosis = DiagnosisHead(cfg, hierarchical=cfg.variant == "hier")

    def forward(self, image: torch.Tensor, with_tiles: bool = False) -> dict[str, torch.Tensor]:
        """The contract's outputs; `with_tiles` adds `tile_blur_logits` [N,L,H/32,W/32] for the per-tile
        blur loss and, with a blur-kind head, `blur_kind_logits` [N,2] for its loss (training only, not part of
        the exported graph)."""
        outputs = self._outputs(image)
        if with_tiles:
            return outputs
        return {k: outputs[k] for k in CONTRACT_OUTPUTS if k in outputs}

    def forward_with_tiles(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.forward(image, with_tiles=True)

    def _outputs(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        check_input(image)
        f2, f4, f8 = self.encoder_low(image)
        f32 = self.encoder_deep(f8)
        if self.cfg.variant == "st":
            return {"diagnosis_logits": self.diagnosis(f32)}
        iqa = self.iqa(f8)
        kind_logits = self.blur_kind(image) if self.blur_kind is not None else None
        kind = torch.softmax(kind_logits, dim=1) if kind_logits is not None else None
        deblurred, restored = self.deblur(image, f2, f4, f8, iqa, kind)
        if self.cfg.variant == "hier":
            logits = self.diagnosis(f32, restored, iqa)
        else:
            logits = self.diagnosis(f32)
        return {"diagnosis_logits": logits, "blur_logits": iqa["blur_logits"], "quality": iqa["quality"],
                "quality_map": iqa["quality_map"], "deblurred": deblurred, "certainty": iqa["certainty"],
                "tile_blur_logits": iqa["tile_blur_logits"],
                **({"blur_kind_logits": kind_logits} if kind_logits is not None else {})}

    def focus_model(self) -> FocusNet:
        """The separable live-feedback graph (encoder_low + IQA head), sharing these weights."""
        if self.iqa is None:
            raise ValueError("the single-task (st) variant has no IQA head, hence no focus model")
        return FocusNet(self.encoder_low, self.iqa)


class FocusNet(nn.Module):
    """encoder_low + IQA head: blur_logits, quality, quality_map, certainty. Its state_dict keys are a
    subset of the full model's, so focus weights load from the same safetensors file."""

    def __init__(self, encoder_low: EncoderLow, iqa: IQAHead):
        super().__init__()
        self.encoder_low = encoder_low
        self.iqa = iqa

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        check_input(image)
        _, _, f8 = self.encoder_low(image)
        iqa = self.iqa(f8)
        return {k: iqa[k] for k in ("blur_logits", "quality", "quality_map", "certainty")}

"""Per-task losses with masks for unknown targets, and their weighting (fixed or learned).

A target that is unknown for a sample (no sharp reference, no blur label, no diagnosis) contributes
nothing: its sample is masked out of that task's mean, never filled in with a guess.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn import functional as F

TASKS = ("diagnosis", "blur", "quality", "deblur")


def masked_mean(per_sample: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of per_sample over mask==True; exactly 0 (with a gradient path) when nothing is known."""
    mask = mask.to(per_sample.dtype)
    return (per_sample * mask).sum() / mask.sum().clamp_min(1.0)


def charbonnier(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """Per-sample mean of sqrt((pred - target)^2 + eps^2): L1 that is smooth at 0."""
    return torch.sqrt((pred - target) ** 2 + eps * eps).flatten(1).mean(1)


def squared_error(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-sample mean squared error: what PSNR scores, where Charbonnier (like L1) settles for the median."""
    return ((pred - target) ** 2).flatten(1).mean(1)


def log_squared_error(pred: torch.Tensor, target: torch.Tensor, floor: float = 1e-5) -> torch.Tensor:
    """Per-sample 10*log10(MSE + floor): minus the PSNR (data range 1) that the evaluation reports per image.
    Averaged over a batch, a dB gained counts the same on a slightly and on a badly blurred image, where the
    mean squared error is dominated by the badly blurred ones and lets the network disturb in-focus images
    (whose error is tiny) for free. The floor (50 dB, below the camera noise of an in-focus image) keeps the
    gradient of a near-perfect sample bounded."""
    return 10 * torch.log10(squared_error(pred, target) + floor)


PIXEL_LOSSES = {"charbonnier": charbonnier, "mse": squared_error, "log_mse": log_squared_error}


def frequency_l1(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-sample L1 between 2-D FFT magnitudes: blur removes high frequencies, which pixel losses
    under-weight (they are a small share of the energy)."""
    fp = torch.fft.rfft2(pred.float(), norm="ortho")
    ft = torch.fft.rfft2(target.float(), norm="ortho")
    return (fp - ft).abs().flatten(1).mean(1)


DEFAULT_WEIGHTS = {"diagnosis": 1.0, "blur": 0.5, "quality": 1.0, "deblur": 1.0}


@dataclass
class LossConfig:
    # Task weights; a task left out keeps its default weight, a weight of 0 switches the task off.
    weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    learned_weights: bool = False  # homoscedastic uncertainty weighting (Kendall et al. 2018)
    label_smoothing: float = 0.1
    frequency_weight: float = 0.1  # share of the FFT term in the deblurring loss
    deblur_pixel: str = "charbonnier"  # pixel term of the deblurring loss: charbonnier | mse | log_mse
    tile_blur_weight: float = 0.5  # per-tile blur-level cross-entropy, relative to the image-level one
    blur_kind_weight: float = 0.5  # blur-kind cross-entropy (models with a blur-kind head), relative likewise

    def __post_init__(self):
        unknown = sorted(set(self.weights) - set(TASKS))
        if unknown:
            raise ValueError(f"loss.weights has unknown tasks {unknown} (expected {', '.join(TASKS)})")
        bad = {task: w for task, w in self.weights.items()
               if isinstance(w, bool) or not isinstance(w, (int, float)) or w < 0}
        if bad:
            raise ValueError(f"loss.weights {bad}: each weight must be a number >= 0 (0 switches the task off)")
        self.weights = DEFAULT_WEIGHTS | {task: float(w) for task, w in self.weights.items()}


class MultiTaskLoss(nn.Module):
    """Sum of weighted task losses. `batch` holds targets and masks:
    diagnosis [N] long (-1 = unknown), blur_level [N] long (-1 = unknown), blur_kind [N] long (-1 = unknown;
    read only for a model with a blur-kind head), blur_map [N,h,w] float (level units, NaN = unknown),
    sharp [N,1,H,W] with has_sharp [N] bool."""

    def __init__(self, cfg: LossConfig, blur_levels: int, tasks: tuple[str, ...] = TASKS):
        if cfg.deblur_pixel not in PIXEL_LOSSES:
            raise ValueError(f"loss.deblur_pixel={cfg.deblur_pixel!r} is unknown ({' | '.join(PIXEL_LOSSES)})")
        super().__init__()
        self.cfg = cfg
        self.blur_levels = blur_levels
        self.tasks = tuple(t for t in tasks if cfg.weights[t] > 0)  # LossConfig holds every task
        # log variances s_t: loss_t * exp(-s_t) + s_t; starting at 0 equals weight 1.
        self.log_vars = nn.ParameterDict({t: nn.Parameter(torch.zeros(())) for t in self.tasks}) \
            if cfg.learned_weights else None

    def task_losses(self, out: dict, batch: dict) -> dict[str, torch.Tensor]:
        losses: dict[str, torch.Tensor] = {}
        if "diagnosis" in self.tasks:
            target = batch["diagnosis"]
            ce = F.cross_entropy(out["diagnosis_logits"].float(), target.clamp_min(0),
                                 label_smoothing=self.cfg.label_smoothing, reduction="none")
            losses["diagnosis"] = masked_mean(ce, target >= 0)
        if "blur" in self.tasks and "blur_logits" in out:
            level = batch["blur_level"]
            ce = F.cross_entropy(out["blur_logits"].float(), level.clamp_min(0), reduction="none")
            loss = masked_mean(ce, level >= 0)
            tile_map = batch["blur_map"]
            known = torch.isfinite(tile_map)
            if "tile_blur_logits" in out and known.any():
                tile_level = torch.nan_to_num(tile_map).round().long().clamp(0, self.blur_levels - 1)
                tile_ce = F.cross_entropy(out["tile_blur_logits"].float(), tile_level, reduction="none")
                loss = loss + self.cfg.tile_blur_weight * (tile_ce * known).sum() / known.sum()
            if "blur_kind_logits" in out:
                kind = batch["blur_kind"]
                kind_ce = F.cross_entropy(out["blur_kind_logits"].float(), kind.clamp_min(0), reduction="none")
                loss = loss + self.cfg.blur_kind_weight * masked_mean(kind_ce, kind >= 0)
            losses["blur"] = loss
        if "quality" in self.tasks and "quality" in out:
            top = self.blur_levels - 1
            level = batch["blur_level"]
            q_target = 1 - level.float().clamp_min(0) / top
            loss = masked_mean(F.smooth_l1_loss(out["quality"].float(), q_target, beta=0.1, reduction="none"),
                               level >= 0)
            tile_map = batch["blur_map"]
            known = torch.isfinite(tile_map)
            if known.any():
                tile_target = 1 - torch.nan_to_num(tile_map).clamp(0, top) / top
                err = F.smooth_l1_loss(out["quality_map"][:, 0].float(), tile_target, beta=0.1, reduction="none")
                loss = loss + (err * known).sum() / known.sum()
            losses["quality"] = loss
        if "deblur" in self.tasks and "deblurred" in out:
            pred, sharp = out["deblurred"].float(), batch["sharp"].float()
            pixel = PIXEL_LOSSES[self.cfg.deblur_pixel](pred, sharp)
            per_sample = pixel + self.cfg.frequency_weight * frequency_l1(pred, sharp)
            losses["deblur"] = masked_mean(per_sample, batch["has_sharp"])
        return losses

    @staticmethod
    def known_images(batch: dict) -> dict[str, torch.Tensor]:
        """Per task, which of the batch's images have a known target for it (a boolean per image)."""
        level = (batch["blur_level"] >= 0) | torch.isfinite(batch["blur_map"]).flatten(1).any(1)
        kind = batch["blur_kind"] >= 0 if "blur_kind" in batch else torch.zeros_like(level)
        return {"diagnosis": batch["diagnosis"] >= 0, "blur": level | kind.to(level.device), "quality": level,
                "deblur": batch["has_sharp"].bool()}

    @classmethod
    def known_in_batch(cls, batch: dict) -> dict[str, torch.Tensor]:
        """Per task, 1.0 when the batch has at least one known target for it, else 0.0."""
        return {task: known.any().float() for task, known in cls.known_images(batch).items()}

    @classmethod
    def logged_weights(cls, batch: dict) -> dict[str, int]:
        """The weight of each of `forward`'s logged values in a mean over batches: a task's loss is the mean
        over the images that know its target, so it counts for that many images (a batch knowing none adds
        nothing, where weighting by the batch size would add a loss of 0); the total counts for every image."""
        weights = {f"loss_{task}": int(known.sum()) for task, known in cls.known_images(batch).items()}
        weights["loss"] = int(batch["image"].shape[0])
        return weights

    def forward(self, out: dict, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        losses = self.task_losses(out, batch)
        total = out["diagnosis_logits"].new_zeros((), dtype=torch.float32)
        known = self.known_in_batch(batch) if self.log_vars is not None else {}
        for task, value in losses.items():
            if self.log_vars is not None:
                # A task with no known target in the batch has a masked loss of 0, which is not a perfect score:
                # its term (regulariser s included) is switched off, so s learns nothing from it. Multiplied
                # rather than skipped, so that s still has a (zero) gradient for DDP's all-reduce.
                s = self.log_vars[task]
                total = total + known[task] * self.cfg.weights[task] * (value * torch.exp(-s) + s)
            else:
                total = total + self.cfg.weights[task] * value
        logged = {f"loss_{k}": float(v.detach()) for k, v in losses.items()}
        logged["loss"] = float(total.detach())
        return total, logged


def psnr(pred: torch.Tensor, target: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Per-sample PSNR in dB."""
    mse = ((pred.float() - target.float()) ** 2).flatten(1).mean(1).clamp_min(1e-12)
    return 10 * torch.log10(torch.tensor(data_range**2) / mse)


__all__ = ["PIXEL_LOSSES", "TASKS", "LossConfig", "MultiTaskLoss", "charbonnier", "frequency_l1",
           "log_squared_error", "masked_mean", "psnr", "squared_error"]

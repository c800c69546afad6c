"""`ifrt eval`: compare trained models on a held-out split, per blur level.

Every in-focus test image is degraded at every blur level with one degradation (`choose_degradation`:
never the first model's) and a generator seeded by (seed, image, level), so all compared models see
exactly the same pixels, in any order. Writes the PNG plots, report.md and report.json (no NaN: null), which
list them; a write the file system refuses leaves an earlier report as it was (`write_report`). Sections:
- diagnosis: accuracy, macro-F1, per-class AUC, confusion matrix, accuracy per blur level (image and
  patient level), calibration (ECE, reliability bins; temperature fitted on the validation split);
- iqa: blur-level accuracy, SROCC/PLCC of the quality score against the true (continuous) severity;
- deblur: PSNR/SSIM per level of the input, the network and Richardson-Lucy with the true PSF;
- natural images: whether the quality score falls with blur on non-glomerulus images (scikit-image's
  bundled pictures) at least as reliably as the variance of the Laplacian.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import sys
import tempfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ifrt.imageio import move_staged, staging_folder, write_text_atomic
from ifrt.normalize import apply_range, percentile_range
from ifrt.patients import combine_probabilities
from ifrt.runlock import folder_lock
from ifrt.train import metrics as M
from ifrt.train import print_warning
from ifrt.train.data.degrade import KINDS, DegradeConfig, blur_level_count, degrade, level_psf
from ifrt.train.dataset import BLUR_KIND_CLASS, DataConfig, ManifestDataset, read_signal, rows_for_split
from ifrt.train.model import DeepMTND, load_model, read_model_record
from ifrt.train.model.io import count_flops, resolve_model_dir

# Held in the report folder while an evaluation writes it (`ifrt.runlock`).
LOCK = ".ifrt-eval.lock"


def model_name(path: str | Path) -> str:
    path = Path(path)
    return path.parent.name if path.name in ("best", "last") else path.name


def model_dir_of(path: str | Path) -> Path:
    """The folder with the trained weights `path` names (`resolve_model_dir`); a folder or file with only
    ONNX graphs is refused with what eval needs instead."""
    try:
        return resolve_model_dir(path)
    except FileNotFoundError:
        path = Path(path)
        graphs = sorted(path.glob("*.onnx")) if path.is_dir() else [path] if path.suffix == ".onnx" else []
        if graphs:
            raise FileNotFoundError(
                f"{path}: holds ONNX graphs ({', '.join(g.name for g in graphs)}) but no trained weights; ifrt "
                "eval needs model.json + model.safetensors (a training run or its best/), as ONNX graphs alone "
                "cannot be evaluated") from None
        raise


def training_degradation(model_dir: Path) -> dict | None:
    """The `data.degrade` overrides the model was trained with (its run's config.yaml); None without a run."""
    import yaml

    config_path = model_dir.parent / "config.yaml"
    if not config_path.is_file():
        return None
    data = (yaml.safe_load(config_path.read_text()) or {}).get("data") or {}
    return {k: tuple(v) if isinstance(v, list) else v for k, v in (data.get("degrade") or {}).items()}


def choose_degradation(model_dirs: dict[str, Path], data_dir: Path, degrade_from: str | Path | None = None,
                       warn: Callable[[str], None] = print_warning) -> tuple[DegradeConfig, dict]:
    """The one degradation every model is evaluated on, and a record of where it came from: the training
    run of `degrade_from` when given, else the one every model was trained with, else the data model's
    default (DegradeConfig). The order of the models never matters. A setting the run leaves open takes the
    database's (its camera bit depth)."""
    def on_this_database(overrides: dict, model_dir: Path | None = None) -> DegradeConfig:
        try:
            return DataConfig(crop=0, degrade=overrides).for_database(data_dir).degrade_config()
        except (TypeError, ValueError) as exc:
            if model_dir is None:
                raise
            raise ValueError(f"{model_dir.parent / 'config.yaml'}: data.degrade: {exc}") from None

    if degrade_from is not None:
        source_dir = model_dir_of(degrade_from)
        overrides = training_degradation(source_dir)
        if overrides is None:
            raise FileNotFoundError(f"{degrade_from}: no training run's config.yaml beside its model to take the "
                                    "degradation from; give --degrade-from a run folder (or its best/)")
        cfg = on_this_database(overrides, source_dir)
        source = {"source": "degrade_from", "degrade_from": str(degrade_from)}
    else:
        trained = {name: training_degradation(d) for name, d in model_dirs.items()}
        configs = {name: on_this_database(overrides or {}, model_dirs[name]) for name, overrides in trained.items()}
        first = next(iter(configs.values()))
        if all(c == first for c in configs.values()) and any(o is not None for o in trained.values()):
            cfg, source = first, {"source": "training"}
        else:
            cfg, source = on_this_database({}), {"source": "default"}
            if len(configs) > 1 and any(c != first for c in configs.values()):
                differences = "; ".join(f"{name}: {_settings_text(_differences(c)) or 'the default'}"
                                        for name, c in configs.items())
                warn(f"the models were trained with different degradations ({differences}); all are evaluated on "
                     "the default (--degrade-from RUN takes a run's own)")
    return cfg, {**source, "settings": dataclasses.asdict(cfg), "differs_from_default": _differences(cfg)}


def _differences(cfg: DegradeConfig) -> dict:
    """The settings of `cfg` that differ from DegradeConfig()."""
    default = DegradeConfig()
    return {k: v for k, v in dataclasses.asdict(cfg).items() if v != getattr(default, k)}


def _settings_text(settings: dict) -> str:
    return ", ".join(f"{k}={list(v) if isinstance(v, tuple) else v}" for k, v in settings.items())


def check_out_dir(out_dir: Path) -> None:
    """Refuse, before any model runs, a report folder that is a file or cannot be created or written."""
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"{out_dir}: a file, not a folder; give --out a new folder or an earlier report's")
    existing = out_dir
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(f"{out_dir}: cannot be created, {existing} is a file, not a folder; give --out another "
                         "folder")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as exc:
        raise ValueError(f"{out_dir}: cannot be written ({existing}: {exc.strerror}); give --out a folder you can "
                         "write to") from None


@torch.no_grad()
def _run(models: dict[str, DeepMTND], dataset: ManifestDataset, batch_size: int) -> dict[str, dict]:
    """Outputs of every model on every sample, plus the sample targets, as numpy arrays."""
    loader = torch.utils.data.DataLoader(dataset, batch_size=dataset.whole_frame_batch_size(batch_size))
    collected: dict[str, dict[str, list]] = {name: {} for name in models}
    targets: dict[str, list] = {}
    for batch in loader:
        for key in ("diagnosis", "blur_level", "index"):
            targets.setdefault(key, []).append(batch[key].numpy())
        targets.setdefault("severity", []).append(np.nanmean(batch["blur_map"].numpy(), axis=(1, 2)))
        for name, model in models.items():
            out = model(batch["image"])
            store = collected[name]
            for key in ("diagnosis_logits", "blur_logits", "quality"):
                if key in out:
                    store.setdefault(key, []).append(out[key].float().numpy())
    result = {name: {k: np.concatenate(v) for k, v in store.items()} for name, store in collected.items()}
    result["_targets"] = {k: np.concatenate(v) for k, v in targets.items()}
    return result


def _diagnosis_section(logits_by_level: dict[int, np.ndarray], targets_by_level: dict[int, np.ndarray],
                       patients: list[str], class_names: list[str], temperature: float,
                       stain_positive: np.ndarray | None = None, class_prior: list[float] | None = None) -> dict:
    levels = sorted(logits_by_level)
    all_logits = np.concatenate([logits_by_level[lv] for lv in levels])
    all_targets = np.concatenate([targets_by_level[lv] for lv in levels])
    known = all_targets >= 0
    logits, target = all_logits[known], all_targets[known]
    probs = M.softmax(logits)
    pred = probs.argmax(1)
    confusion = M.confusion_matrix(pred, target, len(class_names))
    if known.any():
        ece, bins = M.expected_calibration_error(probs, target)
        ece_t, bins_t = M.expected_calibration_error(M.softmax(logits, temperature), target)
    else:  # no image with a diagnosis the model knows: no calibration to measure (not a perfect one)
        (ece, bins), (ece_t, bins_t) = (float("nan"), []), (float("nan"), [])
    per_level, per_level_patient = {}, {}
    for lv in levels:
        t = targets_by_level[lv]
        ok = t >= 0
        p = logits_by_level[lv].argmax(1)
        per_level[str(lv)] = M.accuracy(p[ok], t[ok])
        # Patient level: the patient's images at this blur level combined as `ifrt infer` combines them.
        pr = M.softmax(logits_by_level[lv])
        votes: dict[str, list] = {}
        for i in np.flatnonzero(ok):
            votes.setdefault(patients[i], []).append(i)
        hits = [int(combine_probabilities(pr[idx], class_prior).argmax() == t[idx[0]]) for idx in votes.values()]
        per_level_patient[str(lv)] = float(np.mean(hits)) if hits else float("nan")
    blurred = [lv for lv in levels if lv > 0]
    # Images whose stain is negative for this patient (manifest `grade` 0) show no deposits at all: their
    # diagnosis can only be guessed from a single image, so accuracy is also given without them.
    positive_per_level = {}
    if stain_positive is not None:
        for lv in levels:
            t = targets_by_level[lv]
            ok = (t >= 0) & stain_positive
            positive_per_level[str(lv)] = M.accuracy(logits_by_level[lv].argmax(1)[ok], t[ok])
    return {
        "accuracy": M.accuracy(pred, target),
        "accuracy_blurred": float(np.mean([per_level[str(lv)] for lv in blurred])) if blurred else float("nan"),
        "macro_f1": M.macro_f1(confusion),
        "auc": {name: M.roc_auc(probs[:, k], target == k) for k, name in enumerate(class_names)},
        "confusion": confusion.tolist(),
        "accuracy_per_level": per_level,
        "patient_accuracy_per_level": per_level_patient,
        "stain_positive_accuracy_per_level": positive_per_level,
        "ece": ece, "reliability": bins, "temperature": temperature, "ece_temperature_scaled": ece_t,
        "reliability_temperature_scaled": bins_t,
    }


def _iqa_section(blur_logits: np.ndarray, quality: np.ndarray, blur_level: np.ndarray, severity: np.ndarray) -> dict:
    known = blur_level >= 0
    pred = blur_logits.argmax(1)
    levels = sorted(set(blur_level[known].tolist()))
    return {
        "blur_accuracy": M.accuracy(pred[known], blur_level[known]),
        "blur_accuracy_per_level": {str(lv): M.accuracy(pred[blur_level == lv], blur_level[blur_level == lv])
                                    for lv in levels},
        "blur_within_one_level": float(np.mean(np.abs(pred[known] - blur_level[known]) <= 1)),
        # Quality falls as blur grows: correlate with -severity so that good agreement is positive.
        "quality_srocc": M.srocc(quality[known], -severity[known]),
        "quality_plcc": M.plcc(quality[known], -severity[known]),
        "mean_quality_per_level": {str(lv): float(quality[blur_level == lv].mean()) for lv in levels},
    }


def fit_temperatures(models: dict[str, DeepMTND], data_dir: Path, class_names: list[str], data_cfg: DataConfig,
                     levels: list[int], seed: int, batch_size: int,
                     max_images: int | None) -> tuple[dict[str, float], int]:
    """Temperature per model, fitted on the validation split at every blur level (the first `max_images`
    references), and how many references that was; T = 1 where none has a diagnosis the models know."""
    try:
        rows = _focus_rows(data_dir / "manifest.csv", "val", max_images)
    except ValueError:
        return {name: 1.0 for name in models}, 0
    logits: dict[str, list] = {name: [] for name in models}
    targets = []
    for lv in levels:
        ds = ManifestDataset(data_dir, rows, class_names, data_cfg, train=False, seed=seed + 1, level=lv,
                             normalization=next(iter(models.values())).cfg.normalization)
        result = _run(models, ds, batch_size)
        targets.append(result["_targets"]["diagnosis"])
        for name in models:
            logits[name].append(result[name]["diagnosis_logits"])
    t = np.concatenate(targets)
    known = t >= 0
    if not known.any():
        return {name: 1.0 for name in models}, len(rows)
    return {name: M.fit_temperature(np.concatenate(v)[known], t[known]) for name, v in logits.items()}, len(rows)


def input_percentiles(models: dict[str, DeepMTND]) -> tuple[float, float]:
    """(p_low, p_high) of the input normalization the compared models share (`_evaluate` refuses others)."""
    norm = next(iter(models.values())).cfg.normalization
    return float(norm["p_low"]), float(norm["p_high"])


def _focus_rows(manifest: Path, split: str, max_images: int | None) -> list:
    """The split's rows with an in-focus reference: the ones that can be degraded to every level."""
    focus = [r for r in rows_for_split(manifest, split) if r.sharp_path]
    if not focus:
        raise ValueError(f"{manifest}: no row with split={split!r} has an in-focus reference (sharp_path), so there "
                         "is nothing to degrade per blur level; fill sharp_path with the in-focus capture of each "
                         "field (for an in-focus capture, the image itself)")
    return focus[:max_images] if max_images else focus


# ---- deblurring against Richardson-Lucy ------------------------------------------------------------

def _transfer_function(psf: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The PSF's optical transfer function on an image of `shape`: the PSF centred at the origin and
    wrapped around (circular), so a PSF wider than the image folds onto it."""
    rows = (np.arange(psf.shape[0]) - psf.shape[0] // 2) % shape[0]
    cols = (np.arange(psf.shape[1]) - psf.shape[1] // 2) % shape[1]
    centred = np.zeros(shape, np.float64)
    np.add.at(centred, np.ix_(rows, cols), psf)
    return np.fft.fft2(centred)


def _mirrored(image: np.ndarray) -> np.ndarray:
    """`image` mirrored to about twice its size (numpy "reflect", OpenCV's BORDER_REFLECT_101, the blur's
    border rule), so that the FFT's circular convolution is the blur the image went through."""
    h, w = np.shape(image)
    return np.pad(np.asarray(image, np.float64), ((0, max(h - 2, 0)), (0, max(w - 2, 0))), mode="reflect")


def wiener_filter(observed: np.ndarray, psf: np.ndarray, ratios: tuple[float, ...]) -> list[np.ndarray]:
    """Classical Wiener deconvolution with a constant noise-to-signal power ratio, one estimate per ratio
    `nsr` in `ratios`:
        estimate = F^-1[ conj(H) / (|H|^2 + nsr) * F[observed] ]
    on the mirrored image, like `wiener_oracle` but told nothing about the target. The image's transform
    and the PSF's are computed once for all the ratios."""
    h, w = np.shape(observed)
    y = _mirrored(observed)
    otf, spectrum = _transfer_function(psf, y.shape), np.fft.fft2(y)
    power, conj = np.abs(otf) ** 2, np.conj(otf)
    return [np.real(np.fft.ifft2(conj / (power + nsr) * spectrum))[:h, :w].astype(np.float32) for nsr in ratios]


def wiener_oracle(observed: np.ndarray, target: np.ndarray, psf: np.ndarray) -> np.ndarray:
    """Wiener deconvolution given everything: the true PSF, the target's radially averaged power
    spectrum and the true noise power (what `observed` holds beyond the blurred target). Not a method,
    a bound: about the best a linear shift-invariant restoration can do on this image.
        estimate = F^-1[ conj(H) S / (|H|^2 S + N) * F[observed] ]
    Both images are mirrored first (`_mirrored`)."""
    h, w = np.shape(target)
    y, t = _mirrored(observed), _mirrored(target)
    otf, spectrum = _transfer_function(psf, t.shape), np.fft.fft2(t)
    noise_power = float(np.sum((y - np.real(np.fft.ifft2(otf * spectrum))) ** 2))  # = mean |F[noise]|^2
    fy, fx = np.meshgrid(np.fft.fftfreq(t.shape[0]), np.fft.fftfreq(t.shape[1]), indexing="ij")
    ring = np.rint(np.hypot(fy, fx) * max(t.shape)).astype(np.int64)
    power = np.bincount(ring.ravel(), np.abs(spectrum).ravel() ** 2) / np.bincount(ring.ravel())
    s = power[ring]
    gain = np.conj(otf) * s / (np.abs(otf) ** 2 * s + max(noise_power, 1e-30))
    return np.real(np.fft.ifft2(gain * np.fft.fft2(y)))[:h, :w].astype(np.float32)


def _mean_scores(scores: list[tuple[float, float]]) -> dict[str, float]:
    """Mean PSNR and SSIM of (psnr, ssim) pairs."""
    return {"psnr": float(np.mean([s[0] for s in scores])), "ssim": float(np.mean([s[1] for s in scores]))}


DEBLUR_KINDS = ("gaussian", "defocus")  # the shift-invariant blurs, whose PSF a non-blind method can be given
WIENER_NSR = (1e-3, 3e-3, 1e-2, 3e-2)  # noise-to-signal ratios tried by `wiener_filter` with the level's PSF


def deblur_comparison(models: dict[str, DeepMTND], data_dir: Path, rows, cfg: DegradeConfig, seed: int,
                      rl_iterations: tuple[int, ...] = (5, 10, 20, 40), kinds: tuple[str, ...] = DEBLUR_KINDS) -> dict:
    """PSNR/SSIM per blur kind and level of the blurred input, each network's `deblurred` output and
    non-blind Richardson-Lucy with the true PSF (Gaussian, or the widefield defocus PSF). RL's iteration
    count is chosen per level on these same images (an oracle: the comparison favours the baseline).
    Blurred levels also get `wiener_level_psf`, a classical Wiener filter told only the blur kind and level
    (the level's PSF without the frame's jitter, a constant noise-to-signal ratio from `WIENER_NSR` chosen per
    level on these images like RL's iterations), and `wiener_oracle`, the linear bound. Level 0 (in focus,
    camera noise only) has none of them: it shows whether a network leaves sharp frames alone, and is scored
    once, under the first kind."""
    deblurring = {name: m for name, m in models.items() if m.cfg.variant != "st"}
    sharps = []  # read once, degraded for every kind and level
    for row in rows:
        sharp = read_signal(data_dir / row.sharp_path, cfg)
        sharps.append(np.ascontiguousarray(sharp[:sharp.shape[0] // 32 * 32, :sharp.shape[1] // 32 * 32]))
    per_kind = {kind: {str(lv): _deblur_level(deblurring, sharps, cfg, seed, kind, lv, rl_iterations)
                       for lv in range(0 if kind == kinds[0] else 1, blur_level_count(cfg))}
                for kind in kinds}
    return {"images": len(rows), "per_kind": per_kind}


def _deblur_level(deblurring: dict[str, DeepMTND], sharps: list[np.ndarray], cfg: DegradeConfig, seed: int,
                  kind: str, lv: int, rl_iterations: tuple[int, ...]) -> dict:
    """One row of `deblur_comparison`: every image blurred by `kind` at level `lv`, then restored."""
    from skimage.restoration import richardson_lucy

    scores: dict[str, list] = {"input": []}
    kind_right: dict[str, list] = {}  # per model with a blur-kind head: whether it named this frame's kind
    rl_scores: dict[int, list] = {n: [] for n in rl_iterations}
    wiener_scores: dict[float, list] = {nsr: [] for nsr in WIENER_NSR}
    nominal_psf = level_psf(kind, lv, cfg) if lv > 0 else None
    for i, sharp in enumerate(sharps):
        # One stream per image, level and kind (Gaussian's without a suffix, as before defocus was added).
        rng = np.random.default_rng([seed, i, lv, 99, *([KINDS.index(kind)] if kind != "gaussian" else [])])
        d = degrade(sharp, rng, cfg, level=lv, kind=kind)
        lo, hi = percentile_range(d.image, *input_percentiles(deblurring))
        x, target = apply_range(d.image, lo, hi), apply_range(d.reference(sharp), lo, hi)
        scores["input"].append((M.psnr(x, target), M.ssim(x, target)))
        with torch.no_grad():
            image = torch.from_numpy(x)[None, None]
            for name, model in deblurring.items():
                out = model(image, with_tiles=True)
                y = out["deblurred"][0, 0].numpy()
                scores.setdefault(name, []).append((M.psnr(y, target), M.ssim(y, target)))
                if "blur_kind_logits" in out and lv > 0:
                    right = int(out["blur_kind_logits"][0].argmax()) == BLUR_KIND_CLASS[kind]
                    kind_right.setdefault(name, []).append(right)
        if d.psf is None:  # in focus: no blur to invert
            continue
        y = wiener_oracle(x, target, d.psf)
        scores.setdefault("wiener_oracle", []).append((M.psnr(y, target), M.ssim(y, target)))
        for nsr, y in zip(WIENER_NSR, wiener_filter(x, nominal_psf, WIENER_NSR), strict=True):
            wiener_scores[nsr].append((M.psnr(y, target), M.ssim(y, target)))
        observed = np.clip(d.image, 0, None).astype(np.float64)
        for n in rl_iterations:
            restored = richardson_lucy(observed, d.psf, num_iter=n, clip=False).astype(np.float32)
            y = apply_range(restored, lo, hi)
            rl_scores[n].append((M.psnr(y, target), M.ssim(y, target)))
    entry = {name: _mean_scores(v) for name, v in scores.items()}
    for name, right in kind_right.items():
        entry[name]["blur_kind_accuracy"] = float(np.mean(right))
    if lv > 0:
        best_n = _best_setting(rl_scores)
        entry["richardson_lucy"] = {**_mean_scores(rl_scores[best_n]), "iterations": best_n}
        best_nsr = _best_setting(wiener_scores)
        entry["wiener_level_psf"] = {**_mean_scores(wiener_scores[best_nsr]), "nsr": best_nsr}
    for name in [*deblurring, *(["wiener_oracle", "wiener_level_psf"] if lv > 0 else [])]:
        entry[name]["psnr_gain_vs_input"] = entry[name]["psnr"] - entry["input"]["psnr"]
        if lv > 0 and name in deblurring:
            entry[name]["psnr_gain_vs_richardson_lucy"] = entry[name]["psnr"] - entry["richardson_lucy"]["psnr"]
    return entry


def _best_setting(scores_by_setting: dict) -> float | int:
    """The setting (iteration count, noise-to-signal ratio) whose (psnr, ssim) list has the highest mean PSNR."""
    return max(scores_by_setting, key=lambda k: np.mean([s[0] for s in scores_by_setting[k]]))


# ---- quality on non-glomerulus images --------------------------------------------------------------

NATURAL_IMAGES = ("camera", "coins", "moon", "text", "page", "clock", "brick", "grass", "gravel", "astronaut",
                  "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field", "cell")


def natural_images(size: int = 256) -> dict[str, np.ndarray]:
    """scikit-image's bundled pictures as float32 [0,1] gray, center-cropped/resized to size x size.
    Pictures that would need a download are skipped."""
    import cv2
    from skimage import data

    images = {}
    for name in NATURAL_IMAGES:
        loader = getattr(data, name, None)
        if loader is None:
            continue
        try:
            img = np.asarray(loader())
        except Exception:  # not bundled in this scikit-image (would download): skip it
            continue
        if img.ndim == 3:
            img = cv2.cvtColor(img[..., :3].astype(np.float32), cv2.COLOR_RGB2GRAY)
        img = img.astype(np.float32)
        img = (img - img.min()) / max(float(img.max() - img.min()), 1e-6)
        side = min(img.shape)
        y, x = (img.shape[0] - side) // 2, (img.shape[1] - side) // 2
        images[name] = cv2.resize(img[y:y + side, x:x + side], (size, size), interpolation=cv2.INTER_AREA)
    return images


def natural_image_quality(models: dict[str, DeepMTND], cfg: DegradeConfig, seed: int, draws: int = 3) -> dict:
    """For each picture, degrade it at every level (`draws` noise/kind draws per level) and ask whether
    each score orders the blur levels: per-picture SROCC(score, -level) and pairwise ordering accuracy,
    for each network's quality and for the variance of the Laplacian (same normalized input)."""
    images = natural_images()
    scorers = {name: m for name, m in models.items() if m.cfg.variant != "st"}
    per_image: dict[str, dict] = {}
    for k, (picture, sharp) in enumerate(images.items()):
        levels, inputs = [], []
        for lv in range(blur_level_count(cfg)):
            for draw in range(draws):
                d = degrade(sharp, np.random.default_rng([seed, k, lv, draw, 7]), cfg, level=lv)
                lo, hi = percentile_range(d.image, *input_percentiles(scorers))
                inputs.append(apply_range(d.image, lo, hi))
                levels.append(lv)
        levels_arr = np.array(levels)
        scores = {"variance_of_laplacian": np.array([M.variance_of_laplacian(x) for x in inputs])}
        batch = torch.from_numpy(np.stack(inputs))[:, None]
        with torch.no_grad():
            for name, model in scorers.items():
                scores[name] = model(batch)["quality"].numpy()
        per_image[picture] = {name: {"srocc": M.srocc(s, -levels_arr),
                                     "pairwise_order_accuracy": M.pairwise_order_accuracy(levels_arr, s)}
                              for name, s in scores.items()}
    names = ["variance_of_laplacian", *scorers]
    summary = {name: {metric: float(np.mean([per_image[p][name][metric] for p in per_image]))
                      for metric in ("srocc", "pairwise_order_accuracy")} for name in names}
    return {"images": list(images), "draws_per_level": draws, "mean": summary, "per_image": per_image}


# ---- the whole evaluation --------------------------------------------------------------------------

def evaluate(model_paths: list[str | Path], data_dir: str | Path, out_dir: str | Path, *, split: str = "test",
             seed: int = 1234, batch_size: int = 8, max_images: int | None = None, deblur_images: int = 16,
             calibrate: bool = True, natural: bool = True, natural_draws: int = 3, threads: int = 2,
             degrade_from: str | Path | None = None, warn: Callable[[str], None] = print_warning) -> dict:
    """Evaluate the models in `model_paths` on the `split` images of the database `data_dir` at every blur
    level, write report.json, report.md and the plots into `out_dir`, and return the report. `warn(text)`
    receives each warning about the models or the data (default: `print_warning`)."""
    for name, value, least in (("max_images", max_images, 1), ("deblur_images", deblur_images, 0),
                               ("natural_draws", natural_draws, 1), ("batch_size", batch_size, 1)):
        if value is not None and value < least:
            raise ValueError(f"{name}={value}: give at least {least}")
    with contextlib.ExitStack() as held:
        return _evaluate(model_paths, Path(data_dir), Path(out_dir), held, split=split, seed=seed,
                         batch_size=batch_size, max_images=max_images, deblur_images=deblur_images,
                         calibrate=calibrate, natural=natural, natural_draws=natural_draws, threads=threads,
                         degrade_from=degrade_from, warn=warn)


def _evaluate(model_paths: list[str | Path], data_dir: Path, out_dir: Path, held: contextlib.ExitStack, *,
              split: str, seed: int, batch_size: int, max_images: int | None, deblur_images: int, calibrate: bool,
              natural: bool, natural_draws: int, threads: int, degrade_from: str | Path | None,
              warn: Callable[[str], None]) -> dict:
    check_out_dir(out_dir)
    torch.set_num_threads(threads)
    dirs: dict[str, Path] = {}
    for path in model_paths:
        directory = model_dir_of(path)
        name = model_name(directory)
        while name in dirs:
            name += "'"
        dirs[name] = directory
    models = {name: load_model(d) for name, d in dirs.items()}
    first = next(iter(models.values())).cfg
    class_names = first.class_names
    for name, m in models.items():
        if m.cfg.class_names != class_names:
            raise ValueError(f"{name}: classes {m.cfg.class_names} differ from {class_names}; compare models "
                             "trained on the same classes")
        if m.cfg.normalization != first.normalization:
            raise ValueError(f"{name}: input normalization {m.cfg.normalization} differs from "
                             f"{first.normalization}; every model is shown the same frames, so compare models "
                             "trained with the same model.normalization")
    cfg, degradation = choose_degradation(dirs, data_dir, degrade_from, warn)
    levels = list(range(blur_level_count(cfg)))
    for name, m in models.items():
        if m.cfg.blur_levels != len(levels):
            raise ValueError(f"{name}: tells {m.cfg.blur_levels} blur levels apart, but the degradation evaluated on "
                             f"has {len(levels)} (sigmas {list(cfg.sigmas)}); give --degrade-from a run trained "
                             "with the model's levels")
    data_cfg = DataConfig(crop=0, degrade=dataclasses.asdict(cfg))
    rows = _focus_rows(data_dir / "manifest.csv", split, max_images)
    unknown, unlabelled = _diagnoses_outside(rows, class_names, data_dir / "manifest.csv", split, warn)
    patients = [r.patient_id for r in rows]
    grades = [r.extra.get("grade") for r in rows]
    stain_positive = np.array([float(g) > 0 for g in grades]) if all(g not in (None, "") for g in grades) else None
    # Held from here, once the models and data are known to be usable, to the report's last file: a second
    # evaluation into the folder would mix its plots with this one's report.
    out_dir.mkdir(parents=True, exist_ok=True)
    held.enter_context(folder_lock(out_dir, LOCK, "ifrt eval", "give another --out"))

    outputs_by_level: dict[int, dict] = {}
    for lv in levels:
        ds = ManifestDataset(data_dir, rows, class_names, data_cfg, train=False, seed=seed, level=lv,
                             normalization=first.normalization)
        outputs_by_level[lv] = _run(models, ds, batch_size)
        print(f"evaluated blur level {lv} ({len(rows)} images)", file=sys.stderr, flush=True)
    if calibrate:
        print("fitting temperatures on the validation split", file=sys.stderr, flush=True)
        temperatures, calibration_images = fit_temperatures(models, data_dir, class_names, data_cfg, levels, seed,
                                                            batch_size, max_images)
    else:
        temperatures, calibration_images = {name: 1.0 for name in models}, 0

    report: dict = {"split": split, "images": len(rows), "patients": len(set(patients)), "levels": levels,
                    "unknown_diagnosis_images": sum(unknown.values()), "unknown_diagnoses": unknown,
                    "images_without_diagnosis": unlabelled,
                    "stain_positive_images": None if stain_positive is None else int(stain_positive.sum()),
                    "sigmas": list(cfg.sigmas), "degradation": degradation,
                    # With --split val the temperature is fitted on the very images it then scores.
                    "calibration": {"split": "val", "images": calibration_images, "same_images_as_scored":
                                    split == "val"} if calibrate else None,
                    "class_names": class_names, "seed": seed, "models": {}}
    for name, model in models.items():
        entry: dict = {"variant": model.cfg.variant, "size": model.cfg.size,
                       "params": int(sum(p.numel() for p in model.parameters())),
                       "gflops_512": count_flops(model, 512, 512) / 1e9}
        entry["diagnosis"] = _diagnosis_section(
            {lv: outputs_by_level[lv][name]["diagnosis_logits"] for lv in levels},
            {lv: outputs_by_level[lv]["_targets"]["diagnosis"] for lv in levels}, patients, class_names,
            temperatures[name], stain_positive, model.cfg.class_prior)
        if model.cfg.variant != "st":
            cat = {k: np.concatenate([outputs_by_level[lv][name][k] for lv in levels]) for k in ("blur_logits", "quality")}
            tgt = {k: np.concatenate([outputs_by_level[lv]["_targets"][k] for lv in levels])
                   for k in ("blur_level", "severity")}
            entry["iqa"] = _iqa_section(cat["blur_logits"], cat["quality"], tgt["blur_level"], tgt["severity"])
        report["models"][name] = entry
    if deblur_images and any(m.cfg.variant != "st" for m in models.values()):
        print(f"deblurring against Richardson-Lucy and the Wiener bound ({min(deblur_images, len(rows))} images "
              "per level)", file=sys.stderr, flush=True)
        report["deblur"] = deblur_comparison(models, data_dir, rows[:deblur_images], cfg, seed)
    if natural and any(m.cfg.variant != "st" for m in models.values()):
        print("quality on non-glomerulus pictures", file=sys.stderr, flush=True)
        try:
            report["natural_images"] = natural_image_quality(models, cfg, seed, draws=natural_draws)
        except ImportError as exc:
            report["natural_images"] = {"skipped": f"scikit-image is needed ({exc})"}
    write_report(report, out_dir)
    return report


def _diagnoses_outside(rows: list, class_names: list[str], manifest: Path, split: str,
                       warn: Callable[[str], None]) -> tuple[dict[str, int], int]:
    """Images per diagnosis the models do not know, and the number of images without a diagnosis; refuses
    a split where no image has a diagnosis the models know but some have one they do not."""
    unknown = dict(sorted(Counter(r.diagnosis for r in rows if r.diagnosis and r.diagnosis not in class_names).items()))
    unlabelled = sum(1 for r in rows if not r.diagnosis)
    if unknown and sum(unknown.values()) + unlabelled == len(rows):
        raise ValueError(f"{manifest}: no {split} image has a diagnosis the model knows: the {split} images have "
                         f"{', '.join(unknown)}, the model knows {', '.join(class_names)}; evaluate on a database "
                         "with the model's classes")
    if unknown:
        warn(_unknown_text(sum(unknown.values()), len(rows), unknown))
    return unknown, unlabelled


def _unknown_text(count: int, images: int, unknown: dict[str, int]) -> str:
    return (f"{count} of {images} images have a diagnosis the model does not know "
            f"({', '.join(f'{d}: {n}' for d, n in unknown.items())}); they count for quality and deblurring only")


# ---- report ----------------------------------------------------------------------------------------

def _fmt(v, digits: int = 3) -> str:
    """A number for the Markdown tables; "—" for none (JSON null) or not-a-number."""
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


DEGRADATION_SOURCES = {"training": "the one every model was trained with",
                       "default": "the data model's default (DegradeConfig)"}


def _degradation_line(report: dict) -> str:
    d = report["degradation"]
    source = DEGRADATION_SOURCES.get(d["source"]) or f"the one `{d.get('degrade_from')}` was trained with"
    return (f"Degradation: {source}, the same pixels for every model; settings that differ from the default: "
            f"{_settings_text(d['differs_from_default']) or 'none'}.")


def _coverage_lines(report: dict) -> list[str]:
    """What the header says of images whose diagnosis cannot be scored."""
    lines = []
    if report.get("unknown_diagnosis_images"):
        lines.append(_unknown_text(report["unknown_diagnosis_images"], report["images"], report["unknown_diagnoses"])
                     + ".")
    if report.get("images_without_diagnosis"):
        lines.append(f"{report['images_without_diagnosis']} of {report['images']} images have no diagnosis; they "
                     "count for quality and deblurring only.")
    return lines


def _calibration_line(report: dict) -> str:
    c = report.get("calibration")
    if c is None:
        return "No temperature scaling (--no-calibration): T-scaled figures equal the raw ones."
    if not c["images"]:
        return f"No in-focus reference in the `{c['split']}` split to fit a temperature on: T = 1."
    line = f"Temperature fitted on the `{c['split']}` split ({c['images']} in-focus references at every blur level)"
    if c["same_images_as_scored"]:
        line += ": the very images scored here, so the T-scaled ECE is optimistic"
    return line + "."


def markdown(report: dict) -> str:
    levels = report["levels"]
    coverage = _coverage_lines(report)
    lines = [f"# ifrt evaluation — split `{report['split']}`", "",
             f"{report['images']} {report['split']} images of {report['patients']} patient(s): each in-focus reference "
             f"degraded at every blur level (Gaussian-equivalent sigma {report['sigmas']} px), seed {report['seed']}.",
             "", _degradation_line(report), *(["", *coverage] if coverage else []), "",
             "| model | variant | size | parameters | GFLOPs at 512x512 |", "|---|---|---|---|---|",
             *(f"| {name} | {m['variant']} | {m['size']} | {m['params'] / 1e6:.3f} M | {_fmt(m.get('gflops_512'))} |"
               for name, m in report["models"].items()), "",
             "## Diagnosis accuracy per blur level", "",
             "| model | " + " | ".join(f"level {lv}" for lv in levels) + " | blurred mean | macro-F1 | ECE (T-scaled) |",
             "|---|" + "---|" * (len(levels) + 3)]
    for name, m in report["models"].items():
        d = m["diagnosis"]
        lines.append(f"| {name} ({m['variant']}) | " + " | ".join(_fmt(d["accuracy_per_level"][str(lv)]) for lv in levels)
                     + f" | {_fmt(d['accuracy_blurred'])} | {_fmt(d['macro_f1'])} | {_fmt(d['ece'])} ({_fmt(d['ece_temperature_scaled'])}) |")
    lines += ["", _calibration_line(report)]
    if report.get("stain_positive_images") is not None:
        lines += ["", f"Stain-positive images only ({report['stain_positive_images']} of {report['images']}; the others "
                  "show no deposits, so one image alone cannot tell the class):", "",
                  "| model | " + " | ".join(f"level {lv}" for lv in levels) + " |", "|---|" + "---|" * len(levels)]
        for name, m in report["models"].items():
            d = m["diagnosis"]["stain_positive_accuracy_per_level"]
            lines.append(f"| {name} | " + " | ".join(_fmt(d.get(str(lv))) for lv in levels) + " |")
    lines += ["", "Patient level (the product of the class probabilities of a patient's images, as `ifrt infer` combines them):", "",
              "| model | " + " | ".join(f"level {lv}" for lv in levels) + " |", "|---|" + "---|" * len(levels)]
    for name, m in report["models"].items():
        d = m["diagnosis"]["patient_accuracy_per_level"]
        lines.append(f"| {name} | " + " | ".join(_fmt(d[str(lv)]) for lv in levels) + " |")
    iqa = {n: m["iqa"] for n, m in report["models"].items() if "iqa" in m}
    if iqa:
        lines += ["", "## Image quality", "", "| model | blur-level accuracy | within one level | SROCC | PLCC |",
                  "|---|---|---|---|---|"]
        for name, q in iqa.items():
            lines.append(f"| {name} | {_fmt(q['blur_accuracy'])} | {_fmt(q['blur_within_one_level'])} | "
                         f"{_fmt(q['quality_srocc'])} | {_fmt(q['quality_plcc'])} |")
    if "deblur" in report:
        lines += ["", f"## Deblurring ({report['deblur']['images']} images)", "",
                  "PSNR dB / SSIM; Richardson-Lucy with the true PSF and its best iteration count per level; "
                  "wiener_level_psf is a Wiener filter with the level's PSF (kind and level known, not the frame's "
                  "exact blur) and its best constant noise-to-signal ratio per level; "
                  "wiener_oracle is Wiener deconvolution given the true PSF, image spectrum and noise power, a bound "
                  "for linear restoration rather than a method; level 0 is in focus (camera noise only): a deblurring "
                  "should leave it as it is."]
        for kind, table in report["deblur"]["per_kind"].items():
            names = [n for n in table[max(table, key=int)] if n != "input"]  # the last level has every column
            lines += ["", f"{kind} blur:", "", "| level | input | " + " | ".join(names) + " |",
                      "|---|---|" + "---|" * len(names)]
            for lv, e in table.items():
                lines.append(f"| {lv} | " + " | ".join(
                    f"{_fmt(e[n]['psnr'], 2)} / {_fmt(e[n]['ssim'])}" if n in e else "—" for n in ["input", *names])
                    + " |")
            for name in names:
                kind_accuracy = [f"{e[name]['blur_kind_accuracy']:.3f}" for e in table.values()
                                 if "blur_kind_accuracy" in e.get(name, {})]
                if kind_accuracy:
                    lines += ["", f"{name} names the blur kind of {' / '.join(kind_accuracy)} of these frames "
                              f"(levels 1 to {len(kind_accuracy)})."]
    nat = report.get("natural_images")
    if nat and "mean" in nat:
        lines += ["", f"## Quality on non-glomerulus pictures ({len(nat['images'])} scikit-image pictures, "
                  f"{nat['draws_per_level']} noise draws per level)", "",
                  "| score | SROCC with -level | pairwise order accuracy |", "|---|---|---|"]
        for name, s in nat["mean"].items():
            lines.append(f"| {name} | {_fmt(s['srocc'])} | {_fmt(s['pairwise_order_accuracy'])} |")
    if report.get("plots"):
        lines += ["", "## Plots", "", *(f"- `{p['file']}`: {p['shows']}" for p in report["plots"])]
    return "\n".join(lines) + "\n"


def json_ready(value):
    """`value` with numpy numbers as Python ones and non-finite floats as None: JSON has no NaN."""
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [json_ready(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


# The hidden folder in the report folder where a report is written whole before it is moved into place.
STAGING = ".ifrt-eval-report"


def write_report(report: dict, out_dir: Path) -> None:
    """The plots, report.md and report.json (which list the plots), written whole into a staging folder and then
    moved into place, report.json last (`ifrt.imageio.staging_folder`); the plots of an earlier report that the
    new one lacks are removed after. So a write the file system refuses (a full disk) leaves an earlier report in
    the folder as it was, and report.json never lists a plot that is gone. The error names the file in
    `out_dir`."""
    from ifrt.train import plots

    try:
        with staging_folder(out_dir, out_dir / STAGING) as staging:
            report["plots"] = plots.write_all(report, out_dir, write_into=staging)
            names = [p["file"] for p in report["plots"]] + ["report.md", "report.json"]
            write_text_atomic(staging / "report.md", markdown(report))
            write_text_atomic(staging / "report.json", json.dumps(json_ready(report), indent=2, allow_nan=False))
            move_staged(staging, out_dir, names)
    except OSError as exc:  # a folder in the way of a plot, say
        if exc.filename is not None and str(exc.filename).endswith(".png"):
            raise OSError(f"{exc.filename}: could not write the plot ({exc.strerror})") from None
        raise
    plots.remove_earlier(out_dir, keep=set(names))


__all__ = ["evaluate", "markdown", "natural_image_quality", "deblur_comparison", "read_model_record"]

"""`ifrt.Session`: load a model package once, then `predict` (diagnosis, quality, deblurring) and
`focus` (the fast live path). Normalization, tiling and blending are hidden; the knobs are keywords.

Data flows one way: decode -> native preprocess -> backend -> native postprocess -> Result."""

from __future__ import annotations

import logging
import math
import os
import time
from pathlib import Path

import numpy as np

from ifrt import focus as focus_metrics
from ifrt import postprocess
from ifrt.backends import create_backend
from ifrt.imageio import DEFAULT_MAX_PIXELS, read_image
from ifrt.model_package import ModelPackage, open_model
from ifrt.preprocess import PreprocessOptions, preprocess
from ifrt.result import FocusResult, Result, quality_text

log = logging.getLogger("ifrt")

TILE_GRID = 32  # quality maps have one cell per 32x32 input pixels
SUPPORTED_DTYPES = (np.uint8, np.uint16, np.float32)
MAX_CHANNELS = 16  # a third axis longer than this is a stack of planes (C x H x W, Z or time), not channels
PRECISIONS = ("fp32", "fp16", "int8")


# A frame whose structure is below this fraction of its pixel noise shows none: camera noise alone scores 0
# (see CHANCE_EXCESS), the synthetic database's glomeruli 2.1 and more (5.9 at the median), the samples 1.7 to
# 7.4, and a glomerulus field of 1 to 3 photons a pixel 0.38 on the focus path.
MIN_CONTRAST_TO_NOISE = 0.2


NOISE_SAMPLES = 65536  # pixels the score is computed from, whatever the frame's size
NOISE_SEGMENT = 256  # pixels read along each sampled row: short segments reach more rows, so row offsets average out
# The excess variance of pure noise scatters around 0 by one standard error, noise^2 / sqrt(pixels) (Bartlett's
# formula for a lag-1 autocorrelation); this many of them are taken off so that noise scores 0 but once in millions.
CHANCE_EXCESS = 5.0


def contrast_to_noise(image: np.ndarray, lo: float, hi: float, channel: int = 0, *, lag: int = 1) -> float:
    """How far the frame's structure stands above its pixel noise: the standard deviation of what neighbouring
    pixels share over that of what they do not,

        contrast^2 = var(pixels) / noise^2 - 1 - CHANCE_EXCESS / sqrt(pixels),  noise^2 = mean((a - b)^2) / 2

    over pairs `a`, `b` of pixels `lag` apart along a row and down a column (the larger of the two, so row
    and column offsets of a camera count as noise), 0 when negative. Any noise independent from pixel to pixel
    (Poisson at any count, read noise, hot pixels, quantization) has var = noise^2 and scores 0, with no
    assumption about its distribution; optics spread structure over neighbouring pixels, so it adds more
    to the variance than to the differences. Structure finer than a pixel counts as noise, so a sharp bright
    frame scores a few, not hundreds: the score says whether there is structure, not how sharp it is.

    Pixels are clipped to the normalization range `lo`..`hi` first (a few hot pixels cannot dominate; a clipped
    noise is still noise). `lag` 2 suits a frame area-resampled by a fractional factor, whose neighbours share
    source pixels. About NOISE_SAMPLES pixels are read, so the cost stays under a millisecond: pairs of rows
    `lag` apart, evenly spaced down the frame, each pair a NOISE_SEGMENT-pixel segment at a staggered column."""
    plane = image[..., channel] if image.ndim == 3 else image
    height, width = plane.shape
    if height <= lag or width <= lag:
        return 0.0
    length = min(width, NOISE_SEGMENT)
    pairs = max(1, min(NOISE_SAMPLES // (2 * length), (height - lag) // (lag + 1)))  # no row read twice
    top = np.linspace(0, height - lag - 1, pairs).astype(np.intp)
    first = (np.arange(pairs) * 0.6180339887 % 1.0 * (width - length + 1)).astype(np.intp)  # golden-ratio stagger
    rows = np.concatenate([top, top + lag])[:, None]
    columns = np.tile(first[:, None] + np.arange(length), (2, 1))
    pixels = plane[rows, columns].astype(np.float64)
    if hi > lo:
        np.clip(pixels, lo, hi, out=pixels)
    # Along each segment and round its ends, so that every pixel is in two pairs, as in the variance (a hot
    # pixel at an end would otherwise count more there than in the noise); and down each pair of rows.
    along = (_sum_of_squares(pixels[:, lag:] - pixels[:, :-lag])
             + _sum_of_squares(pixels[:, :lag] - pixels[:, -lag:])) / pixels.size / 2
    down = _sum_of_squares(pixels[pairs:] - pixels[:pairs]) / (pixels.size // 2) / 2
    noise = max(along, down)
    variance = float(pixels.var())
    if noise == 0.0:
        return 0.0 if variance == 0.0 else math.inf
    excess = variance / noise - 1.0 - CHANCE_EXCESS / math.sqrt(pixels.size)
    return math.sqrt(max(excess, 0.0))


def _sum_of_squares(values: np.ndarray) -> float:
    return float(np.square(values).sum())


def structure_warnings(contrast: float, consequence: str) -> list[str]:
    """[] when the frame shows structure; else the warning, ending with what it means for this result."""
    if contrast >= MIN_CONTRAST_TO_NOISE:
        return []
    return [f"no structure above the pixel noise (structure {contrast:.2f} times the noise, below "
            f"{MIN_CONTRAST_TO_NOISE:g}): {consequence}"]


class InputError(ValueError):
    """An image cannot be used; the message names the source and the problem."""


def _as_array(image, source: str, what: str) -> np.ndarray:
    """`image` as a numpy array; anything that is not array-like is a TypeError naming what was given."""
    if not isinstance(image, np.ndarray) and not hasattr(image, "__array__") \
            and not hasattr(image, "__array_interface__"):
        raise TypeError(f"{source}: {what}, not {type(image).__name__}")
    return np.asarray(image)


def _prepare_array(image: np.ndarray, source: str) -> np.ndarray:
    image = np.asarray(image)
    if image.size == 0:
        raise InputError(f"{source}: image is empty (shape {image.shape})")
    if image.ndim not in (2, 3):
        raise InputError(f"{source}: expected an H x W or H x W x C image, got shape {image.shape}")
    if image.dtype == np.float64:
        image = image.astype(np.float32)
    if image.dtype.type not in SUPPORTED_DTYPES:
        raise InputError(f"{source}: {image.dtype} pixels are not supported (expected uint8, uint16 or float32)")
    if image.ndim == 3 and image.shape[2] > MAX_CHANNELS:
        height, width, channels = image.shape
        raise InputError(f"{source}: shape {height}x{width}x{channels} would be {channels} channels of {height}x{width} "
                         f"pixels (at most {MAX_CHANNELS}); a stack of planes (C x H x W) must be passed one plane at a "
                         "time, image[0], or as np.moveaxis(image, 0, -1); a many-channel image as the plane to "
                         "analyse, image[..., c]")
    if min(image.shape[:2]) < TILE_GRID:
        raise InputError(f"{source}: image is {image.shape[0]}x{image.shape[1]} pixels; the model needs at least "
                         f"{TILE_GRID}x{TILE_GRID} (one quality tile)")
    if image.dtype.kind == "f" and not np.isfinite(image).all():
        bad = int(np.size(image) - np.isfinite(image).sum())
        pixels = "1 pixel is" if bad == 1 else f"{bad} pixels are"
        raise InputError(f"{source}: {pixels} NaN or infinite; fix the file or mask them before inference")
    return image


class Session:
    """A loaded model and backend.

    model: a model folder (see `ifrt.model_package`), or None for the bundled default model.
    backend: "auto" (fastest available: trt, ort, torch), or one of them.
    precision: "fp32", "fp16" or "int8" (uses the package's graphs of that precision, as `ifrt export onnx`
    wrote them; TensorRT builds FP16 either way).
    tile, overlap: frames whose longer side exceeds `max_untiled` are cut into `tile` x `tile` tiles
    sharing `overlap` pixels and blended back seamlessly.
    quality_threshold: below it the diagnosis is marked unreliable (advice: re-acquire in focus). A frame
    with no structure above its pixel noise (blank, shutter closed) is marked unreliable too.
    batch_size: tiles per backend call; max_pixels: larger image files are refused before decoding.
    Other keywords go to the backend: with a named backend, the options it takes (ort: threads; torch: device;
    trt: cache_dir, device); with "auto", which may load any backend, only options every backend takes, and
    the others through `per_backend={"ort": {"threads": 1}}`.
    """

    def __init__(self, model: str | os.PathLike | None = None, backend: str = "auto", *, precision: str = "fp32",
                 tile: int = 512, overlap: int = 64, max_untiled: int = 1024, batch_size: int = 4,
                 quality_threshold: float = 0.5, max_pixels: int = DEFAULT_MAX_PIXELS, **backend_options):
        if tile <= 0 or overlap < 0 or tile % TILE_GRID or overlap % TILE_GRID or overlap >= tile:
            raise ValueError(f"tile={tile}, overlap={overlap}: both must be multiples of {TILE_GRID}, tile > 0 and "
                             "0 <= overlap < tile")
        if precision not in PRECISIONS:
            raise ValueError(f"precision={precision!r}: expected one of {', '.join(PRECISIONS)}")
        for setting, value, low in (("batch_size", batch_size, 1), ("max_untiled", max_untiled, TILE_GRID),
                                    ("max_pixels", max_pixels, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{setting}={value!r}: expected an integer >= {low}")
        if not 0.0 <= quality_threshold <= 1.0:
            raise ValueError(f"quality_threshold={quality_threshold!r}: expected a quality between 0 and 1")
        self.package: ModelPackage = open_model(model)
        self.precision = precision
        options = dict(backend_options)
        # Every backend gets fp16 when asked, so one that cannot honour it refuses (and `auto` moves on) instead
        # of running fp32 under an fp16 label. fp32 is left to each backend's default: TensorRT builds FP16
        # engines from the fp32 graphs either way, as documented above.
        if precision != "fp32":
            options.setdefault("precision", precision)
        self.backend = create_backend(self.package, backend, **options)
        self.tile, self.overlap, self.max_untiled = tile, overlap, max_untiled
        self.batch_size, self.quality_threshold, self.max_pixels = batch_size, quality_threshold, max_pixels
        norm = self.package.normalization
        self._norm = {"norm": norm.get("kind", "percentile"), "p_low": norm.get("p_low", 1.0),
                      "p_high": norm.get("p_high", 99.8)}
        log.info("ifrt session: model %s, backend %s (%s)", self.package.root, self.backend.name,
                 getattr(self.backend, "device", "?"))

    @property
    def backend_name(self) -> str:
        return self.backend.name

    @property
    def class_names(self) -> list[str]:
        return self.package.class_names

    @property
    def class_prior(self) -> list[float] | None:
        return self.package.class_prior

    # ---- predict -----------------------------------------------------------------------------------

    def predict(self, source, *, deblur: bool = False, channel: int = 0, patient_id: str | None = None,
                name: str | None = None):
        """Predict one image (array or path) -> Result, or a list/tuple of them -> list[Result]. `name` is how
        the result and error messages name an array (default "array"; the i-th array of a list is
        "NAME[i]"; a path names itself)."""
        if isinstance(source, (list, tuple)):
            return [self.predict(s, deblur=deblur, channel=channel, patient_id=patient_id, name=f"{name or 'array'}[{i}]")
                    for i, s in enumerate(source)]
        start = time.perf_counter()
        if isinstance(source, bytes):
            raise TypeError(f"{source!r}: a path must be a str or a pathlib.Path, not bytes")
        if isinstance(source, (str, os.PathLike)):
            name = str(source)
            image = read_image(Path(source), max_pixels=self.max_pixels)
        else:
            name = name or "array"
            image = _as_array(source, name, "predict takes an image array, a path or a list of them")
        image = _prepare_array(image, name)
        read_ms = (time.perf_counter() - start) * 1e3
        result = self._predict_array(image, name, deblur=deblur, channel=channel)
        result.timings_ms = {"read": read_ms, **result.timings_ms}
        result.timings_ms["total"] = (time.perf_counter() - start) * 1e3
        result.patient_id = patient_id
        return result

    def _run(self, graph: str, tensor: np.ndarray) -> dict[str, np.ndarray]:
        chunks = [self.backend.run(graph, tensor[i:i + self.batch_size]) for i in range(0, len(tensor), self.batch_size)]
        return {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}

    def _predict_array(self, image: np.ndarray, name: str, *, deblur: bool, channel: int) -> Result:
        t0 = time.perf_counter()
        h, w = image.shape[:2]
        tiled = max(h, w) > self.max_untiled
        options = PreprocessOptions(channel=channel, tile=(self.tile, self.tile) if tiled else None,
                                    overlap=self.overlap if tiled else 0, **self._norm)
        try:
            pre = preprocess(image, options)
        except (ValueError, RuntimeError) as exc:
            raise InputError(f"{name}: {exc}") from exc
        t1 = time.perf_counter()
        out = self._run("full", pre.tensor)
        t2 = time.perf_counter()

        plan = pre.plan
        frame = (plan["frame_height"], plan["frame_width"])
        overlap = plan["overlap"]
        probs = postprocess.softmax(out["diagnosis_logits"])
        blur_probs = postprocess.softmax(out["blur_logits"]).mean(axis=0)
        quality_tiles = np.asarray(out["quality"], np.float32).reshape(-1)
        # Tiles vote for the diagnosis in proportion to how well focused they are.
        weights = np.clip(quality_tiles, 1e-3, None)
        probabilities = (probs * weights[:, None]).sum(0) / weights.sum()
        # Refused rather than returned: a NaN diagnosis would be written out as invalid JSON and poison every
        # patient it is combined into.
        if not (np.isfinite(probabilities).all() and np.isfinite(blur_probs).all() and np.isfinite(quality_tiles).all()):
            raise InputError(f"{name}: the model's outputs are not finite (NaN or infinity) for this image "
                             f"(normalization range {pre.lo:.4g} to {pre.hi:.4g}): float pixels spanning more than "
                             "float32 can hold, or an fp16 graph overflowing, cause this; check the pixel values or "
                             "use precision fp32")
        grid = (frame[0] // TILE_GRID, frame[1] // TILE_GRID)
        quality_map = self._stitch(out["quality_map"], grid, overlap // TILE_GRID)
        certainty = self._stitch(out["certainty"], grid, overlap // TILE_GRID) if "certainty" in out \
            else np.ones_like(quality_map)
        deblurred = None
        if deblur:
            restored = postprocess.blend_tiles(out["deblurred"], frame, overlap, (h, w)) if len(out["deblurred"]) > 1 \
                else out["deblurred"][0, 0, :h, :w]
            deblurred = postprocess.denormalize(np.ascontiguousarray(restored), pre.lo, pre.hi, image.dtype)
        quality = float(quality_tiles.mean())
        blur_level = int(np.argmax(blur_probs))
        warnings = structure_warnings(contrast_to_noise(image, pre.lo, pre.hi, channel),
                                      "nothing to diagnose; check the light path, the exposure and that the sample "
                                      "is in the field")
        if quality < self.quality_threshold:
            warnings.append(f"image quality {quality_text(quality)} is below {self.quality_threshold:g}"
                            + (f" (blur level {blur_level}): the diagnosis is unreliable; re-acquire the image in focus"
                               if blur_level else " although no blur is detected: the diagnosis is unreliable; "
                               "check the exposure and the content of the image"))
        reliable = not warnings
        t3 = time.perf_counter()
        return Result(source=name, shape=(h, w), dtype=image.dtype.name, class_names=self.class_names,
                      probabilities=probabilities.astype(np.float32), quality=quality,
                      blur_level=blur_level, blur_probabilities=blur_probs.astype(np.float32),
                      quality_map=quality_map, certainty=certainty, reliable=reliable, backend=self.backend.name,
                      timings_ms={"preprocess": (t1 - t0) * 1e3, "infer": (t2 - t1) * 1e3,
                                  "postprocess": (t3 - t2) * 1e3},
                      warnings=warnings, deblurred=deblurred, tiles=len(pre.tensor),
                      class_prior=self.class_prior)

    @staticmethod
    def _stitch(maps: np.ndarray, grid: tuple[int, int], overlap: int) -> np.ndarray:
        maps = np.ascontiguousarray(maps, np.float32).reshape(len(maps), 1, *maps.shape[-2:])
        if len(maps) == 1:
            return maps[0, 0]
        return postprocess.blend_tiles(maps, grid, overlap)

    # ---- focus -------------------------------------------------------------------------------------

    def focus(self, frame: np.ndarray, *, size: int = 512, channel: int = 0, metrics: bool = True,
              metric_tile: int | None = 256) -> FocusResult:
        """Live focus feedback: the focus graph on `frame` downsampled so its longer side is `size`
        (area interpolation), plus classical focus metrics on the full frame."""
        t0 = time.perf_counter()
        if isinstance(frame, (str, bytes, os.PathLike)):
            raise TypeError(f"frame: focus takes a frame as an array, not a path ({frame!r}); read it with "
                            "ifrt.imageio.read_image, or use predict")
        frame = _prepare_array(_as_array(frame, "frame", "focus takes a frame as an image array"), "frame")
        h, w = frame.shape[:2]
        scale = min(1.0, size / max(h, w))
        target = (max(int(round(h * scale)), 1), max(int(round(w * scale)), 1))
        options = PreprocessOptions(channel=channel, size=target if scale < 1.0 else None, resize="area", **self._norm)
        pre = preprocess(frame, options)
        t1 = time.perf_counter()
        out = self.backend.run("focus", pre.tensor)
        t2 = time.perf_counter()
        blur_probs = postprocess.softmax(out["blur_logits"])[0]
        classical = focus_metrics.focus(frame, tile=metric_tile, channel=channel).metrics if metrics else {}
        # On the downsampled frame the graph saw (a few ms): area averaging lowers the noise, not the structure,
        # so a dim field shows there. A fractional factor lets neighbours share a source pixel; two apart never do.
        seen = pre.tensor[0, 0, :pre.plan["resized_height"], :pre.plan["resized_width"]]
        lo, hi = np.percentile(seen[::2, ::2], (1.0, 99.8))
        fractional = h % seen.shape[0] or w % seen.shape[1]
        contrast = contrast_to_noise(seen, float(lo), float(hi), lag=2 if fractional else 1)
        warnings = structure_warnings(contrast, "the quality score means nothing here; an empty field or a closed "
                                                "shutter?")
        t3 = time.perf_counter()
        return FocusResult(quality=float(np.asarray(out["quality"]).reshape(-1)[0]),
                           blur_level=int(np.argmax(blur_probs)), blur_probabilities=blur_probs,
                           quality_map=np.asarray(out["quality_map"])[0, 0], certainty=np.asarray(out["certainty"])[0, 0],
                           metrics=classical, contrast_to_noise=contrast, warnings=warnings,
                           timings_ms={"preprocess": (t1 - t0) * 1e3, "infer": (t2 - t1) * 1e3,
                                       "metrics": (t3 - t2) * 1e3, "total": (t3 - t0) * 1e3})


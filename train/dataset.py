"""A torch Dataset over a manifest: read, degrade on the fly, normalize, and build targets with masks.

Each manifest row is used in one of two ways:
- rows with an in-focus reference (sharp_path) are, by default, re-degraded on the fly: the reference
  is blurred to a random allowed level with the data issue's degradation model, so every target is
  known (sharp reference, blur level, per-tile blur map) and every epoch sees new blur and noise;
- other rows (real captures; or any row when `on_the_fly` is off) are used as recorded, with the
  targets the row gives and the unknown ones masked (diagnosis -1, blur_level -1, blur_map NaN,
  has_sharp False).

Randomness comes from a generator seeded by (seed, epoch, index), so a sample is the same whatever
the worker, the process or a resumed run, and a validation/test sample is the same every epoch.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from ifrt.imageio import image_shape
from ifrt.normalize import apply_range, percentile_range
from ifrt.train.data import noise
from ifrt.train.data.degrade import DegradeConfig, blur_level_count, degrade
from ifrt.train.data.manifest import read_manifest
from ifrt.train.model.network import BLUR_KINDS
from ifrt.train.strict import dataclass_from_dict

TILE = 32
# The blur-kind target's class for each kind the degradation draws: its index among the blur-kind head's
# logits (`BLUR_KINDS`); spatially varying blur is Gaussian-like.
BLUR_KIND_CLASS = {**{kind: i for i, kind in enumerate(BLUR_KINDS)}, "spatial": BLUR_KINDS.index("gaussian")}


@dataclass
class DataConfig:
    crop: int = 256  # training crop, a multiple of 32; 0 keeps the whole image (trimmed to a multiple of 32)
    levels: list[int] | None = None  # blur levels drawn on the fly; None = all, [0] = in focus (+ noise) only
    content_diversity: float = 0.2  # share of training samples showing random non-glomerulus scenes
    flips: bool = True
    on_the_fly: bool = True  # re-degrade rows that have an in-focus reference
    degrade: dict = field(default_factory=dict)  # DegradeConfig overrides
    # Validation's own degradation: overrides on top of `degrade` (for example the blur-kind mix of another
    # run, so that runs trained on different mixes validate on the same frames), and its blur levels (None:
    # `levels`). The level sigmas are the labels, so they cannot differ from training's.
    val_degrade: dict = field(default_factory=dict)
    val_levels: list[int] | None = None

    def __post_init__(self):
        if "sigmas" in self.val_degrade:
            raise ValueError("data.val_degrade.sigmas: the blur levels are the labels the model learns; set "
                             "data.degrade.sigmas for training and validation alike")
        count = blur_level_count(self.degrade_config())
        _degrade_config({**self.degrade, **self.val_degrade}, "data.val_degrade")
        for name, levels in (("levels", self.levels), ("val_levels", self.val_levels)):
            if levels is not None and (not levels or any(isinstance(lv, bool) or not isinstance(lv, int)
                                                         or not 0 <= lv < count for lv in levels)):
                raise ValueError(f"data.{name}={levels}: give blur levels among 0..{count - 1} (one at least)")

    @classmethod
    def from_dict(cls, d: dict | None) -> DataConfig:
        return dataclass_from_dict(cls, d, "data")

    def degrade_config(self) -> DegradeConfig:
        return _degrade_config(self.degrade, "data.degrade")

    def for_validation(self) -> DataConfig:
        """The config validation draws its frames with: `val_degrade` applied, `val_levels` as the levels."""
        return dataclasses.replace(self, degrade={**self.degrade, **self.val_degrade}, val_degrade={},
                                   levels=self.levels if self.val_levels is None else list(self.val_levels),
                                   val_levels=None)

    def for_database(self, data_dir: Path) -> DataConfig:
        """This config with the database's recorded camera bit depth, unless the config sets one."""
        depth = database_bit_depth(data_dir)
        if depth is None or "bit_depth" in self.degrade:
            return self
        return dataclasses.replace(self, degrade={**self.degrade, "bit_depth": depth})


def _degrade_config(overrides: dict, what: str) -> DegradeConfig:
    """`DegradeConfig(**overrides)`, its errors prefixed with `what` (the config section they came from)."""
    try:
        return dataclass_from_dict(DegradeConfig, overrides, what)
    except ValueError as e:
        raise ValueError(str(e) if str(e).startswith(what) else f"{what}: {e}") from None


def class_names_of(rows) -> list[str]:
    """Diagnosis classes present in the data, sorted (class names come from the data, not the code)."""
    return sorted({r.diagnosis for r in rows if r.diagnosis})


def blur_kind_index(kind: str | None, blur_level: int) -> int:
    """The blur-kind target of a frame: its kind's class when it is blurred, -1 (unknown, masked) when it is in
    focus, its level is unknown, or its row names no kind this model tells apart."""
    if blur_level <= 0 or not kind:
        return -1
    return BLUR_KIND_CLASS.get(kind, -1)


def rows_for_split(manifest: str | Path, split: str) -> list:
    rows = [r for r in read_manifest(manifest) if r.split == split]
    if not rows:
        raise ValueError(f"{manifest}: no rows with split={split!r}")
    return rows


def random_scene(rng: np.random.Generator, size: int) -> np.ndarray:
    """A random in-focus fluorescence-like scene that is not a glomerulus: blobs, fibres, dots and
    smooth background at random scales, so the quality head learns blur, not glomerulus anatomy."""
    canvas = np.zeros((size, size), np.float32)
    background = cv2.resize(rng.random((4, 4)).astype(np.float32), (size, size), interpolation=cv2.INTER_CUBIC)
    canvas += rng.uniform(0, 0.3) * np.clip(background, 0, None)
    for _ in range(rng.integers(3, 40)):  # cells and nuclei
        center = tuple(int(v) for v in rng.integers(0, size, 2))
        axes = tuple(int(v) for v in rng.integers(2, max(3, size // 8), 2))
        cv2.ellipse(canvas, center, axes, float(rng.uniform(0, 180)), 0, 360, float(rng.uniform(0.2, 1.0)),
                    -1 if rng.random() < 0.7 else int(rng.integers(1, 4)))
    for _ in range(rng.integers(0, 30)):  # fibres
        p0 = tuple(int(v) for v in rng.integers(0, size, 2))
        p1 = tuple(int(v) for v in rng.integers(0, size, 2))
        cv2.line(canvas, p0, p1, float(rng.uniform(0.2, 1.0)), int(rng.integers(1, 3)))
    dots = rng.integers(0, size, (int(rng.integers(0, 400)), 2))
    canvas[dots[:, 0], dots[:, 1]] += rng.uniform(0.3, 1.0, len(dots)).astype(np.float32)
    texture = cv2.GaussianBlur(rng.random((size, size)).astype(np.float32), (0, 0), float(rng.uniform(0.5, 3)))
    canvas *= 0.6 + 0.8 * texture
    canvas = cv2.GaussianBlur(canvas, (0, 0), 0.6)  # the in-focus optical resolution
    return np.clip(canvas / max(float(canvas.max()), 1e-6), 0, 1).astype(np.float32)


def read_signal(path: Path, cfg: DegradeConfig) -> np.ndarray:
    """An image as float32 signal in [0, 1] (the degradation model's scale): integer pixels have the
    camera's dark offset removed and are divided by the white level of the camera's bit depth: 8 for
    uint8, `cfg.bit_depth` for uint16 (a 12-bit camera stores 0..4095 in uint16; `data.degrade.bit_depth`
    in the config, taken from synth.json for a synthetic database). A pixel above that white level
    means the bit depth is wrong, and is refused rather than mis-scaled."""
    from ifrt.imageio import read_image

    image = read_image(path)
    if image.dtype == np.uint8:
        return noise.adu_to_signal(image, offset=cfg.offset, bit_depth=8)
    if image.dtype == np.uint16:
        bit_depth = cfg.bit_depth if cfg.bit_depth > 8 else 16
        top = int(image.max(initial=0))
        if top > 2 ** bit_depth - 1:
            raise ValueError(f"{path}: pixel value {top} is above the {bit_depth}-bit range the data config "
                             f"declares (data.degrade.bit_depth); set it to the camera's bit depth")
        return noise.adu_to_signal(image, offset=cfg.offset, bit_depth=bit_depth)
    return image.astype(np.float32)


def database_bit_depth(data_dir: Path) -> int | None:
    """The camera bit depth a synthetic database records in its synth.json, if any."""
    import json

    path = Path(data_dir) / "synth.json"
    try:
        value = json.loads(path.read_text()).get("bit_depth") if path.is_file() else None
    except (OSError, ValueError):
        return None
    return int(value) if isinstance(value, int) else None


class ManifestDataset(Dataset):
    """Samples as dicts of tensors: image [1,H,W] (normalized), sharp [1,H,W] (the deblurring target in the
    input's normalized space: when degraded on the fly, the in-focus reference at the frame's own exposure,
    `Degraded.reference`; read from disk, the stored reference as it is), has_sharp, diagnosis (-1 unknown),
    blur_level (-1 unknown), blur_kind (`blur_kind_index`, -1 unknown), blur_map [H/32,W/32] (NaN unknown),
    index. `level` fixes the blur level of on-the-fly degradation (evaluation per level)."""

    def __init__(self, root: str | Path, rows, class_names: list[str], cfg: DataConfig, *, train: bool,
                 seed: int = 0, level: int | None = None, normalization: dict | None = None, repeats: int = 1):
        self.root = Path(root)
        self.rows = list(rows)
        self.class_index = {name: i for i, name in enumerate(class_names)}
        self.cfg = cfg
        self.degrade_cfg = cfg.degrade_config()
        self.blur_levels = blur_level_count(self.degrade_cfg)
        self.levels = cfg.levels if cfg.levels is not None else list(range(self.blur_levels))
        self.train = train
        self.seed = seed
        self.level = level
        self.epoch = 0
        self.repeats = repeats  # an epoch visits every row `repeats` times, each with its own draw
        norm = normalization or {"p_low": 1.0, "p_high": 99.8}
        self.p_low, self.p_high = float(norm.get("p_low", 1.0)), float(norm.get("p_high", 99.8))
        if cfg.crop % TILE:
            raise ValueError(f"data.crop={cfg.crop}: must be a multiple of {TILE} (0 keeps each image whole)")

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.rows) * self.repeats

    def _read(self, relative: str) -> np.ndarray:
        return read_signal(self.root / relative, self.degrade_cfg)

    def _degraded_on_the_fly(self, row) -> bool:
        return bool(row.sharp_path) and (self.cfg.on_the_fly or self.level is not None)

    def source_of(self, row) -> str:
        """The file a row's sample is cut from: its in-focus reference when it is degraded on the fly, else
        the recorded image."""
        return row.sharp_path if self._degraded_on_the_fly(row) else row.path

    def frame_sizes(self) -> dict[str, tuple[int, int]]:
        """(height, width) of every sample's source file, from the image headers (no pixels decoded)."""
        sources = dict.fromkeys(self.source_of(row) for row in self.rows)
        return {relative: image_shape(self.root / relative) for relative in sources}

    def whole_frame_batch_size(self, requested: int) -> int:
        """The batch size this dataset's whole frames (validation, evaluation) can share: `requested` when they
        all trim to one size in whole tiles, else 1 (in eval mode a frame's outputs do not depend on its batch)."""
        sizes = {(h // TILE, w // TILE) for h, w in self.frame_sizes().values()}
        return requested if len(sizes) <= 1 else 1

    def check_batchable(self) -> None:
        """Refuse, before anything trains, training frames that could not share a batch: one smaller than
        `data.crop`, or, with crop 0 (whole frames), sizes that differ once trimmed to whole tiles. Otherwise
        torch's collate would stop mid-epoch with a traceback naming no file."""
        sizes = self.frame_sizes()
        for relative, (h, w) in sizes.items():
            if min(h, w) < TILE:
                raise ValueError(f"{self.root / relative}: {h}x{w} pixels is smaller than one {TILE}x{TILE} tile; "
                                 "leave it out of the training split")
        smallest = min(min(size) for size in sizes.values())
        fix = (f"set data.crop to a multiple of {TILE} no larger than the smallest training image "
               f"(data.crop={smallest // TILE * TILE} fits every one)")
        crop = self.cfg.crop
        if crop:
            for relative, (h, w) in sizes.items():
                if h < crop or w < crop:
                    raise ValueError(f"{self.root / relative}: {h}x{w} pixels is smaller than the training crop "
                                     f"(data.crop={crop}); {fix}")
            return
        first, (h0, w0) = next(iter(sizes.items()))
        for relative, (h, w) in sizes.items():
            if (h // TILE, w // TILE) != (h0 // TILE, w0 // TILE):
                raise ValueError(f"{self.root / relative}: {h}x{w} pixels, but {self.root / first} is {h0}x{w0}: "
                                 f"with data.crop=0 every training image is used whole (trimmed to a multiple of "
                                 f"{TILE}), and a batch needs them all the same size; {fix}")

    def _random_scene(self, row, rng: np.random.Generator) -> np.ndarray:
        """A random scene in place of this row's frame: at the training crop, or with whole frames (crop 0) at
        the frame's own size, so that it batches with the other frames."""
        if self.cfg.crop:
            return random_scene(rng, self.cfg.crop)
        h, w = image_shape(self.root / row.sharp_path)
        return random_scene(rng, max(h, w))[:h, :w]

    def _crop_box(self, shape, rng, relative: str) -> tuple[int, int, int, int]:
        h, w = shape
        size = self.cfg.crop if self.train and self.cfg.crop else 0
        if size:
            if h < size or w < size:
                raise ValueError(f"{self.root / relative}: {h}x{w} pixels is smaller than the training crop "
                                 f"(data.crop={size}); set data.crop to a multiple of {TILE} no larger than the "
                                 "smallest training image")
            y, x = int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1))
            return y, x, size, size
        ch, cw = h // TILE * TILE, w // TILE * TILE
        if ch == 0 or cw == 0:
            raise ValueError(f"{self.root / relative}: {h}x{w} pixels is smaller than one {TILE}x{TILE} tile")
        return (h - ch) // 2, (w - cw) // 2, ch, cw

    def _recorded_blur_map(self, row, blur_level: int, y: int, x: int, h: int, w: int) -> np.ndarray:
        """The row's per-tile map when it has one and the crop is tile-aligned; else its global level for
        every tile (NaN when unknown)."""
        map_path = row.extra.get("blur_map")
        if map_path and y % TILE == 0 and x % TILE == 0:
            from ifrt.imageio import read_image

            tiles = read_image(self.root / map_path).astype(np.float32)
            part = tiles[y // TILE:(y + h) // TILE, x // TILE:(x + w) // TILE]
            if part.shape == (h // TILE, w // TILE):
                return part
        return np.full((h // TILE, w // TILE), np.nan if blur_level < 0 else float(blur_level), np.float32)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        row = self.rows[index % len(self.rows)]
        epoch = self.epoch if self.train else 0
        rng = np.random.default_rng([self.seed, epoch, index, 0 if self.level is None else self.level + 1])
        diagnosis = self.class_index.get(row.diagnosis, -1) if row.diagnosis else -1
        if self._degraded_on_the_fly(row):
            if self.train and rng.random() < self.cfg.content_diversity:
                sharp = self._random_scene(row, rng)
                diagnosis = -1  # a random scene has no diagnosis
            else:
                sharp = self._read(row.sharp_path)
            y, x, h, w = self._crop_box(sharp.shape, rng, row.sharp_path)
            sharp = np.ascontiguousarray(sharp[y:y + h, x:x + w])
            level = self.level if self.level is not None else int(rng.choice(self.levels))
            degraded = degrade(sharp, rng, self.degrade_cfg, level=level)
            image, blur_level, blur_map = degraded.image, int(degraded.blur_level), degraded.blur_map
            blur_kind = blur_kind_index(degraded.kind, blur_level)
            sharp = degraded.reference(sharp)
            has_sharp = True
        else:
            image = self._read(row.path)
            y, x, h, w = self._crop_box(image.shape, rng, row.path)
            image = np.ascontiguousarray(image[y:y + h, x:x + w])
            blur_level = row.blur_level if row.blur_level is not None else -1
            has_sharp = bool(row.sharp_path)
            sharp = self._read(row.sharp_path)[y:y + h, x:x + w] if has_sharp else np.zeros_like(image)
            blur_map = self._recorded_blur_map(row, blur_level, y, x, h, w)
            blur_kind = blur_kind_index(row.extra.get("blur_kind"), blur_level)
        if self.train and self.cfg.flips:
            k = int(rng.integers(0, 4))
            if image.shape[0] != image.shape[1]:
                k = k // 2 * 2  # quarter turns would change a non-square sample's shape within a batch
            flip = bool(rng.integers(0, 2))
            image, sharp, blur_map = (np.rot90(a, k) for a in (image, sharp, blur_map))
            if flip:
                image, sharp, blur_map = (a[:, ::-1] for a in (image, sharp, blur_map))
        lo, hi = percentile_range(np.ascontiguousarray(image, dtype=np.float32), self.p_low, self.p_high)
        normalized = apply_range(np.ascontiguousarray(image, dtype=np.float32), lo, hi)
        sharp_normalized = apply_range(np.ascontiguousarray(sharp, dtype=np.float32), lo, hi)
        return {
            "image": torch.from_numpy(normalized)[None],
            "sharp": torch.from_numpy(sharp_normalized)[None],
            "has_sharp": torch.tensor(has_sharp),
            "diagnosis": torch.tensor(diagnosis, dtype=torch.long),
            "blur_level": torch.tensor(blur_level, dtype=torch.long),
            "blur_kind": torch.tensor(blur_kind, dtype=torch.long),
            "blur_map": torch.from_numpy(np.ascontiguousarray(blur_map, dtype=np.float32)),
            "index": torch.tensor(index, dtype=torch.long),
        }

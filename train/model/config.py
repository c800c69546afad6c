"""The network's configuration: one dataclass, a registry of named sizes, and the metadata that
travels with the weights (class names, blur levels, normalization, input-size rule)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from ifrt.train.strict import dataclass_from_dict

VARIANTS = ("st", "flat", "hier")

# The model's input is exactly what `ifrt.normalize.normalize_percentile` produces; training and every
# runtime backend read this record rather than assuming it.
DEFAULT_NORMALIZATION = {"kind": "percentile", "p_low": 1.0, "p_high": 99.8, "clip": False}
INPUT_SIZE_RULE = {"multiple_of": 32, "channels": 1, "layout": "NCHW", "dtype": "float32"}


def checked_normalization(given: dict) -> dict:
    """`given` over DEFAULT_NORMALIZATION (so `model.normalization.p_high` alone keeps the rest), refusing a key
    it does not have and percentiles that are not 0 <= p_low < p_high <= 100: training and every runtime read
    exactly these keys, and would otherwise fall back to the defaults without a word."""
    unknown = sorted(set(given) - set(DEFAULT_NORMALIZATION))
    if unknown:
        raise ValueError(f"model.normalization.{unknown[0]} is not a setting (known: "
                         f"{', '.join(sorted(DEFAULT_NORMALIZATION))})")
    norm = {**DEFAULT_NORMALIZATION, **given}
    if norm["kind"] != "percentile":
        raise ValueError(f"model.normalization.kind={norm['kind']!r}: only 'percentile' is implemented")
    if norm["clip"] is not False:
        raise ValueError(f"model.normalization.clip={norm['clip']!r}: normalized values are never clipped "
                         "(CSBDeep-style; the model sees values past 0..1), so only false is implemented")
    for key in ("p_low", "p_high"):
        if isinstance(norm[key], bool) or not isinstance(norm[key], (int, float)):
            raise ValueError(f"model.normalization.{key}: expected a number, got {norm[key]!r}")
    if not 0 <= norm["p_low"] < norm["p_high"] <= 100:
        raise ValueError(f"model.normalization: p_low={norm['p_low']}, p_high={norm['p_high']}: percentiles need "
                         "0 <= p_low < p_high <= 100")
    return norm


@dataclass
class ModelConfig:
    """Everything needed to rebuild a network; saved as JSON next to its safetensors weights."""

    variant: str = "hier"  # st (diagnosis only) | flat (shared encoder, parallel heads) | hier (DeepMT-ND)
    size: str = "s"
    # Encoder widths at strides 2, 4, 8, 16, 32 and the number of residual blocks at each stride.
    widths: tuple[int, ...] = (16, 24, 48, 96, 160)
    depths: tuple[int, ...] = (1, 1, 2, 2, 2)
    expansion: int = 2  # inverted-residual expansion ratio
    decoder_width: int = 16  # deblurring decoder channels at stride 2
    # The deblurring decoder's full-resolution refinement: `refine_depth` 3x3 convolutions, `refine_width`
    # channels between them (at 512x512 each channel pair costs 4.7 MFLOPs).
    refine_width: int = 8
    refine_depth: int = 2
    # "quality": the deblurring's residual is scaled by a learned function of the IQA head's per-tile
    # quality map, so that in-focus regions pass through unchanged (the quality gates the restoration);
    # "none": the residual is added everywhere.
    deblur_gate: str = "none"
    # A linear restoration the IQA head steers (`DeconvolutionBank`): one learned deconvolution filter of
    # `deblur_bank_span` x `deblur_bank_span` pixels per blur level, applied at stride 2 and mixed per tile. The
    # span is even (the filter centres on a 2x2 block) and at most 32, the widest kernel a Jetson's DLA runs.
    deblur_bank: bool = False
    deblur_bank_span: int = 24
    # Whether the bank applies its filter for in-focus (level 0) tiles; without it an in-focus tile's linear
    # restoration is whatever the mixing makes of the blurred levels' filters (the quality gate passes such
    # tiles through anyway), and the bank costs one filter less (0.076 GFLOPs at 512x512).
    deblur_bank_in_focus: bool = True
    # A blur-kind head (`BlurKindHead`: defocus or Gaussian-like, from the frame's mean tile amplitude spectrum)
    # whose probabilities modulate the deblurring refinement and the bank's mixing.
    deblur_kind: bool = False
    iqa_width: int = 48
    head_width: int = 160  # diagnosis feature width at stride 32
    quality_embedding: int = 32
    dropout: float = 0.1
    class_names: list[str] = field(default_factory=lambda: ["IgAN", "MN", "DN", "LN"])
    # Each class's share of the training images (None: equal shares). The softmax carries this prior once per
    # image; combining a patient's images divides the extra copies out (`ifrt.patients`).
    class_prior: list[float] | None = None
    blur_levels: int = 5
    normalization: dict = field(default_factory=lambda: dict(DEFAULT_NORMALIZATION))
    input_size_rule: dict = field(default_factory=lambda: dict(INPUT_SIZE_RULE))

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ValueError(f"model variant {self.variant!r} is unknown (expected one of {', '.join(VARIANTS)})")
        self.widths = tuple(int(w) for w in self.widths)
        self.depths = tuple(int(d) for d in self.depths)
        if len(self.widths) != 5 or len(self.depths) != 5:
            raise ValueError("widths and depths need one entry per stride 2, 4, 8, 16, 32")
        if self.refine_width < 1 or self.refine_depth < 1:
            raise ValueError(f"refine_width={self.refine_width}, refine_depth={self.refine_depth}: both must be >= 1")
        if self.deblur_gate not in ("none", "quality"):
            raise ValueError(f"deblur_gate={self.deblur_gate!r} is unknown (none | quality)")
        if self.deblur_bank and not (2 <= self.deblur_bank_span <= 32 and self.deblur_bank_span % 2 == 0):
            raise ValueError(f"deblur_bank_span={self.deblur_bank_span}: the deconvolution bank's filters need an "
                             "even span of 2..32 pixels")
        if not self.deblur_bank_in_focus and not self.deblur_bank:
            raise ValueError("deblur_bank_in_focus=false drops a filter of the deconvolution bank, "
                             "which needs deblur_bank=true")
        if self.deblur_kind and self.variant == "st":
            raise ValueError("deblur_kind=true steers the deblurring decoder, which the single-task (st) "
                             "variant does not have")
        if self.blur_levels < 2:
            raise ValueError(f"blur_levels={self.blur_levels}: at least 2 (in focus and blurred) are needed")
        if not self.class_names:
            raise ValueError("class_names is empty: the diagnosis needs at least one class")
        self.normalization = checked_normalization(self.normalization)
        if self.class_prior is not None:
            prior = [float(p) for p in self.class_prior]
            if len(prior) != len(self.class_names) or not all(p > 0 for p in prior):
                raise ValueError(f"class_prior={self.class_prior}: one positive share per class "
                                 f"({len(self.class_names)}) is needed")
            self.class_prior = [p / sum(prior) for p in prior]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["widths"], d["depths"] = list(self.widths), list(self.depths)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        return dataclass_from_dict(cls, d, "model")


# Named sizes. `s` is the edge model (1.76 GFLOPs at 512x512 with the default refinement, at most 3 with a
# wider one; measured by tests/test_model_network.py); `m` doubles the widths for desktop GPUs.
SIZES: dict[str, dict] = {
    "s": dict(widths=(16, 24, 48, 96, 160), depths=(1, 1, 2, 2, 2), expansion=2, decoder_width=16,
              iqa_width=48, head_width=160, quality_embedding=32),
    "m": dict(widths=(24, 48, 96, 192, 320), depths=(1, 2, 3, 3, 2), expansion=3, decoder_width=32,
              iqa_width=96, head_width=320, quality_embedding=64),
    # For tests and CI only: trains in seconds on a CPU.
    "tiny": dict(widths=(8, 8, 16, 16, 32), depths=(1, 1, 1, 1, 1), expansion=1, decoder_width=8,
                 iqa_width=16, head_width=32, quality_embedding=8),
}


def model_config(size: str = "s", variant: str = "hier", **overrides) -> ModelConfig:
    """A named size with optional overrides, e.g. `model_config("s", "flat", class_names=[...])`."""
    if size not in SIZES:
        raise ValueError(f"model size {size!r} is unknown (expected one of {', '.join(SIZES)})")
    return dataclass_from_dict(ModelConfig, {"variant": variant, "size": size, **SIZES[size], **overrides}, "model")

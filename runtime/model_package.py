"""A model package: the folder a Session loads. It holds the exported graphs with their sidecars
(`full.onnx` + `full.onnx.json`, `focus.onnx`, optional `*.fp16.onnx`), and optionally the training
weights (`model.safetensors` + `model.json`) for the torch backend. Every ONNX is checked against the
sha256 its sidecar records before anything loads it."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_MODEL_DIR = Path(__file__).parent / "models" / "default"
GRAPHS = ("full", "focus")


class ModelPackageError(ValueError):
    """A model folder is missing a file, or a file does not match its recorded sha256."""


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class ModelPackage:
    root: Path
    metadata: dict  # decoded ifrt metadata of the full graph: class_names, blur_levels, normalization, ...
    graphs: dict[str, Path] = field(default_factory=dict)  # "full", "focus", "full.fp16", "focus.fp16"
    weights: Path | None = None  # model.safetensors beside model.json, for the torch backend

    @property
    def class_names(self) -> list[str]:
        return list(self.metadata["class_names"])

    @property
    def blur_levels(self) -> int:
        return int(self.metadata["blur_levels"])

    @property
    def normalization(self) -> dict:
        return dict(self.metadata["normalization"])

    def graph(self, name: str, precision: str = "fp32") -> Path:
        key = name if precision == "fp32" else f"{name}.{precision}"
        if key not in self.graphs:
            raise ModelPackageError(f"{self.root}: no {key} graph in this model (have: {', '.join(sorted(self.graphs))})")
        return self.graphs[key]


def _verified_sidecar(onnx_path: Path) -> dict:
    sidecar_path = onnx_path.with_name(onnx_path.name + ".json")
    if not sidecar_path.is_file():
        raise ModelPackageError(f"{onnx_path}: its sidecar {sidecar_path.name} is missing, so the file cannot be "
                                "verified; re-export it with `ifrt export onnx`")
    try:
        sidecar = json.loads(sidecar_path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelPackageError(f"{sidecar_path}: unreadable sidecar ({exc})") from exc
    actual = sha256_file(onnx_path)
    if sidecar.get("sha256") != actual:
        raise ModelPackageError(f"{onnx_path}: sha256 {actual[:12]}… does not match its sidecar "
                                f"({str(sidecar.get('sha256'))[:12]}…): the file was modified or truncated; "
                                "re-export or re-download the model")
    return sidecar


def open_model(model: str | Path | None = None) -> ModelPackage:
    """Open and verify a model folder (None: the bundled default model)."""
    root = Path(model) if model is not None else DEFAULT_MODEL_DIR
    if not root.is_dir():
        hint = " (the bundled default model is missing from this install)" if model is None else ""
        raise ModelPackageError(f"{root}: model folder not found{hint}")
    graphs, metadata = {}, None
    for name in GRAPHS:
        for precision in ("fp32", "fp16"):
            filename = f"{name}.onnx" if precision == "fp32" else f"{name}.{precision}.onnx"
            path = root / filename
            if path.is_file():
                sidecar = _verified_sidecar(path)
                graphs[name if precision == "fp32" else f"{name}.{precision}"] = path
                if name == "full" and precision == "fp32":
                    metadata = sidecar["metadata"]
    weights = root / "model.safetensors" if (root / "model.safetensors").is_file() else None
    if metadata is None:
        if weights is None:
            raise ModelPackageError(f"{root}: no full.onnx and no model.safetensors here: not an ifrt model folder")
        metadata = json.loads((root / "model.json").read_text())["model"]
    return ModelPackage(root=root, metadata=metadata, graphs=graphs, weights=weights)

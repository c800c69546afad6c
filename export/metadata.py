"""Model metadata that travels inside the ONNX (`metadata_props`) and beside every exported file
(a JSON sidecar with the file's sha256), so that runtimes never guess normalization or class names."""

from __future__ import annotations

import json
from pathlib import Path

from ifrt._version import __version__
from ifrt.model_package import config_hash, sha256_file

PREFIX = "ifrt."


def model_metadata(record: dict, graph: str, precision: str, output_names: tuple[str, ...],
                   weights_sha256: str | None = None) -> dict[str, str]:
    """metadata_props for one exported graph, from the model record written by training (model.json) and the
    sha256 of the weights (model.safetensors), which tie the graph to the exact model it came from."""
    model = record["model"]
    values = {
        "version": __version__,
        "graph": graph,
        "precision": precision,
        "class_names": model["class_names"],
        "class_prior": model.get("class_prior"),
        "blur_levels": model["blur_levels"],
        "normalization": model["normalization"],
        "input_size_rule": model["input_size_rule"],
        "outputs": list(output_names),
        "variant": model["variant"],
        "size": model["size"],
        "training_config_sha256": config_hash(record),
    }
    if weights_sha256:
        values["weights_sha256"] = weights_sha256
    return {PREFIX + k: v if isinstance(v, str) else json.dumps(v) for k, v in values.items()}


def decode_metadata(props: dict[str, str]) -> dict:
    """Inverse of model_metadata: `{'class_names': [...], 'graph': 'full', ...}` from metadata_props."""
    out = {}
    for key, value in props.items():
        if not key.startswith(PREFIX):
            continue
        name = key[len(PREFIX):]
        try:
            out[name] = json.loads(value)
        except json.JSONDecodeError:
            out[name] = value
    return out


def write_sidecar(model_path: str | Path, props: dict[str, str], extra: dict | None = None) -> Path:
    """`<file>.json` beside an exported file: its sha256, size and decoded metadata_props (written atomically)."""
    from ifrt.imageio import write_text_atomic

    model_path = Path(model_path)
    sidecar = model_path.with_name(model_path.name + ".json")
    doc = {"file": model_path.name, "sha256": sha256_file(model_path), "bytes": model_path.stat().st_size,
           "metadata": decode_metadata(props), **(extra or {})}
    write_text_atomic(sidecar, json.dumps(doc, indent=2, sort_keys=True) + "\n")
    return sidecar

"""A model package: the folder a Session loads. It holds the exported graphs with their sidecars
(`full.onnx` + `full.onnx.json`, `focus.onnx`, optional `*.fp16.onnx`), and optionally the training
weights (`model.safetensors` + `model.json`) for the torch backend. Every ONNX is checked against the
sha256 its sidecar records, and its external-data locations are checked to stay inside the folder,
before anything loads it; every graph and the weights must come from one model (see `check_one_model`)."""

from __future__ import annotations

import hashlib
import json
import mmap
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_MODEL_DIR = Path(__file__).parent / "models" / "default"
GRAPHS = ("full", "focus")


class ModelPackageError(ValueError):
    """A model folder is missing a file, or a file does not match its recorded sha256."""


def check_graph_names(graphs: tuple[str, ...]) -> None:
    """Refuse an empty, unknown or repeated graph name (`ifrt export onnx --graphs`) before anything is exported."""
    if not graphs or any(g not in GRAPHS for g in graphs) or len(set(graphs)) != len(graphs):
        raise ValueError(f"graphs {','.join(graphs) or 'none'}: expected one or more of {', '.join(GRAPHS)}, each "
                         f"once (e.g. {','.join(GRAPHS)})")


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def config_hash(record: dict) -> str:
    """sha256 of the training record (model.json: the network's config, the epoch and the validation metrics
    it was chosen on) as canonical JSON, without its `card`: the card documents the model, so bringing it up
    to date leaves the exported files as they are."""
    provenance = {k: v for k, v in record.items() if k != "card"}
    return hashlib.sha256(json.dumps(provenance, sort_keys=True).encode()).hexdigest()


@dataclass
class ModelPackage:
    root: Path
    metadata: dict  # decoded ifrt metadata of the full graph: class_names, blur_levels, normalization, ...
    graphs: dict[str, Path] = field(default_factory=dict)  # "full", "focus", "full.fp16", "full.int8", ...
    weights: Path | None = None  # model.safetensors beside model.json, for the torch backend

    @property
    def class_names(self) -> list[str]:
        return list(self.metadata["class_names"])

    @property
    def class_prior(self) -> list[float] | None:
        """Each class's share of the training images; None for equal shares (and for models exported
        before the prior was recorded)."""
        prior = self.metadata.get("class_prior")
        return None if prior is None else [float(p) for p in prior]

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
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelPackageError(f"{sidecar_path}: unreadable sidecar ({exc}); re-export the model with "
                                "`ifrt export onnx`") from exc
    if not isinstance(sidecar, dict) or not isinstance(sidecar.get("metadata"), dict):
        raise ModelPackageError(f"{sidecar_path}: not a sidecar written by `ifrt export onnx` (no \"metadata\" "
                                "section); re-export the model with `ifrt export onnx`")
    actual = sha256_file(onnx_path)
    if sidecar.get("sha256") != actual:
        raise ModelPackageError(f"{onnx_path}: sha256 {actual[:12]}… does not match its sidecar "
                                f"({str(sidecar.get('sha256'))[:12]}…): the file was modified or truncated; "
                                "re-export or re-download the model")
    return sidecar


# ---- ONNX external data ------------------------------------------------------------------------------
# An ONNX may keep tensors in other files, named by `location` entries (StringStringEntryProto: field 1
# key, field 2 value) that onnxruntime opens relative to the model. A hostile model could point them at
# any file on the machine ("../../etc/shadow", "/dev/zero"), so every location must stay inside the
# model folder. The runtime does not depend on the onnx package, so the entries are found in the raw
# protobuf bytes: the key field is always the 10 bytes 0A 08 "location", and its value field (tag 0x12,
# varint length) sits right after it or, in a hand-made file, right before it. Every candidate value in
# either position is checked, so a file cannot hide a location from this scan; at worst a stray byte
# pattern in weights is also checked, and only a value that escapes the folder refuses the model.
_LOCATION_KEY = b"\x0a\x08location"
_MAX_LOCATION = 4096


def _varint(data: bytes, pos: int) -> tuple[int, int] | None:
    value = shift = 0
    while pos < len(data) and shift < 64:
        byte = data[pos]
        value |= (byte & 0x7F) << shift
        pos += 1
        if not byte & 0x80:
            return value, pos
        shift += 7
    return None


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        out.append((value & 0x7F) | (0x80 if value > 0x7F else 0))
        value >>= 7
        if not value:
            return bytes(out)


def external_data_locations(data: bytes | mmap.mmap) -> list[bytes]:
    """Every `location` value in a serialized ONNX (see above), as raw bytes."""
    found = []
    start = data.find(_LOCATION_KEY)
    while start >= 0:
        after = start + len(_LOCATION_KEY)
        if after < len(data) and data[after] == 0x12:  # key, then value: what every writer produces
            parsed = _varint(data, after + 1)
            if parsed is not None:
                length, pos = parsed
                found.append(data[pos:pos + length])
        for length in range(min(start, _MAX_LOCATION)):  # value, then key
            prefix = b"\x12" + _encode_varint(length)
            at = start - length - len(prefix)
            if at >= 0 and data[at:start - length] == prefix:
                found.append(data[start - length:start])
        start = data.find(_LOCATION_KEY, after)
    return found


def onnx_external_data_locations(onnx_path: str | os.PathLike) -> list[bytes]:
    """`external_data_locations` of the ONNX file at `onnx_path`, scanned through a read-only memory map: a
    graph with embedded weights (up to 2 GB) is paged in from the page cache as the scan goes, never copied
    whole into the process. A file that cannot be mapped (empty, or not a regular file) is read."""
    with open(onnx_path, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode) or st.st_size == 0:
            return external_data_locations(f.read())
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            return external_data_locations(mapped)


def escaping_location(root: Path, location: bytes) -> str | None:
    """Why `location` (relative to the model folder `root`) is not a file inside it, or None."""
    text = location.decode("utf-8", errors="replace")
    parts = text.replace("\\", "/").split("/")
    if not text or "\x00" in text:
        return f"external data location {text!r} is empty or holds a NUL byte"
    if text.startswith(("/", "\\")) or (len(text) > 1 and text[1] == ":"):
        return f"external data location {text!r} is an absolute path"
    if ".." in parts:
        return f"external data location {text!r} climbs out of the model folder"
    resolved = (root / text).resolve()
    if not resolved.is_relative_to(root.resolve()):
        return f"external data location {text!r} resolves to {resolved}, outside the model folder (a symlink?)"
    return None


def check_external_data(onnx_path: Path) -> None:
    """Refuse an ONNX whose external-data files are not inside its own folder."""
    for location in onnx_external_data_locations(onnx_path):
        reason = escaping_location(onnx_path.parent, location)
        if reason:
            raise ModelPackageError(f"{onnx_path}: {reason}; refusing to load it (a model's tensors must "
                                    "live in files beside it)")


def open_model(model: str | Path | None = None) -> ModelPackage:
    """Open and verify a model folder (None: the bundled default model)."""
    root = Path(model) if model is not None else DEFAULT_MODEL_DIR
    if root.is_file():
        raise ModelPackageError(f"{root}: is a file; give the model folder that holds it")
    if not root.is_dir():
        hint = " (the bundled default model is missing from this install)" if model is None else ""
        raise ModelPackageError(f"{root}: model folder not found{hint}")
    root = checkpoint_of_run(root)
    graphs, metadata, sidecars = {}, None, {}
    for name in GRAPHS:
        for precision in ("fp32", "fp16", "int8"):
            filename = f"{name}.onnx" if precision == "fp32" else f"{name}.{precision}.onnx"
            path = root / filename
            if path.is_file():
                sidecar = sidecars[path] = _verified_sidecar(path)
                check_external_data(path)
                graphs[name if precision == "fp32" else f"{name}.{precision}"] = path
                if name == "full" and precision == "fp32":
                    metadata = sidecar["metadata"]
    weights = root / "model.safetensors" if (root / "model.safetensors").is_file() else None
    check_one_model(root, sidecars, weights)
    if metadata is None:
        if weights is None:
            raise ModelPackageError(f"{root}: no full.onnx and no model.safetensors here: not an ifrt model folder")
        metadata = read_model_record(root)["model"]
    return ModelPackage(root=root, metadata=metadata, graphs=graphs, weights=weights)


def check_one_model(root: Path, sidecars: dict[Path, dict], weights: Path | None) -> None:
    """Refuse a folder whose graphs and weights are not all from one model, as when a model was exported
    into a folder still holding another model's graphs, or model.json was replaced after the export: the
    runtime would label one network's outputs with another's class names. Every graph's sidecar records
    the training record's `config_hash` (`training_config_sha256`) and, since this check exists, the sha256
    of the weights it was exported from (`weights_sha256`); each must match the first graph's, model.json
    and model.safetensors."""
    if not sidecars:
        return
    first, *others = sidecars
    reference = sidecars[first]["metadata"]
    refuse = ("; re-export the model into this folder with `ifrt export onnx` (it replaces every graph), or "
              "copy the model folder again")
    for path in others:
        for key, what in (("training_config_sha256", "training record"), ("weights_sha256", "weights")):
            mine, theirs = sidecars[path]["metadata"].get(key), reference.get(key)
            if mine and theirs and mine != theirs:
                raise ModelPackageError(f"{path}: exported from another model than {first.name} (its {what} "
                                        f"sha256 is {mine[:12]}…, {first.name}'s {theirs[:12]}…){refuse}")
    recorded = reference.get("training_config_sha256")
    if recorded and (root / "model.json").is_file():
        actual = config_hash(read_model_record(root))
        if actual != recorded:
            raise ModelPackageError(f"{root / 'model.json'}: describes another model than {first.name} (its training "
                                    f"record sha256 is {actual[:12]}…, {first.name} was exported from "
                                    f"{recorded[:12]}…){refuse}")
    recorded = reference.get("weights_sha256")
    if recorded and weights is not None:
        actual = sha256_file(weights)
        if actual != recorded:
            raise ModelPackageError(f"{weights}: sha256 {actual[:12]}… is not that of the weights {first.name} was "
                                    f"exported from ({recorded[:12]}…){refuse}")


def checkpoint_of_run(root: Path) -> Path:
    """A training run folder (`ifrt train --out`) stands for its best checkpoint, or for its last one when
    no validation has chosen a best yet; any other folder stands for itself. Every command that takes a
    model (eval, export, infer, the Python API) reads a run folder this way."""
    holds_model = (root / "model.json").is_file() or any((root / f"{g}.onnx").is_file() for g in GRAPHS)
    if not holds_model:
        for checkpoint in ("best", "last"):
            if (root / checkpoint / "model.json").is_file():
                return root / checkpoint
    return root


def read_model_record(directory: str | Path) -> dict:
    """A model folder's model.json: the network's config (`model`) and what training recorded beside it, or
    an error naming the file."""
    path = Path(directory) / "model.json"
    if not path.is_file():
        raise ModelPackageError(f"{path}: no model config here (expected model.json beside model.safetensors)")
    try:
        record = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelPackageError(f"{path}: not valid JSON ({exc}); copy the model folder again") from None
    if not isinstance(record, dict) or not isinstance(record.get("model"), dict):
        raise ModelPackageError(f"{path}: no \"model\" section; this is not a model config written by `ifrt train`")
    return record

"""Weights as safetensors plus the model config as JSON: no pickles anywhere."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from ifrt.imageio import write_bytes_atomic, write_text_atomic
from ifrt.model_package import checkpoint_of_run, read_model_record

from .config import ModelConfig
from .network import DeepMTND

WEIGHTS = "model.safetensors"
CONFIG = "model.json"


def write_safetensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    """Write `tensors` to `path` atomically (`ifrt.imageio.write_bytes_atomic`), as an ordinary new file whose
    permissions the umask decides (safetensors' `save_file` creates 0600 files, which other users of a shared model
    folder cannot read)."""
    write_bytes_atomic(path, save(tensors, metadata=metadata))


def save_model(model: DeepMTND, directory: str | Path, extra: dict | None = None) -> Path:
    """Write `model.safetensors` and `model.json` (config + `extra`, e.g. training metrics) atomically."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    write_safetensors(directory / WEIGHTS, state, metadata={"format": "pt", "variant": model.cfg.variant})
    record = {"model": model.cfg.to_dict(), **(extra or {})}
    write_text_atomic(directory / CONFIG, json.dumps(record, indent=2))
    return directory


def resolve_model_dir(path: str | Path) -> Path:
    """A folder holding model.json + model.safetensors, or a run folder (`checkpoint_of_run`)."""
    directory = checkpoint_of_run(Path(path))
    if not (directory / CONFIG).is_file():
        raise FileNotFoundError(f"{path}: no {CONFIG} here or under best/ or last/ (train one with `ifrt train`)")
    return directory


def _read_weights(directory: Path, device: str) -> tuple[Path, dict[str, torch.Tensor]]:
    weights = directory / WEIGHTS
    if not weights.is_file():
        raise FileNotFoundError(f"{weights}: weights missing")
    try:
        return weights, load_file(str(weights), device=device)
    except SafetensorError as exc:
        raise ValueError(f"{weights}: not a readable safetensors file ({exc}); copy the model folder again") from None


def load_model(directory: str | Path, map_location: str = "cpu") -> DeepMTND:
    """Rebuild the network from `model.json` and load `model.safetensors`, in eval mode."""
    directory = Path(directory)
    cfg = ModelConfig.from_dict(read_model_record(directory)["model"])
    model = DeepMTND(cfg)
    weights, tensors = _read_weights(directory, map_location)
    fit = match_tensors(model, tensors)
    if fit["new"] or fit["unused"] or fit["reshaped"]:
        problems = [f"{len(fit[kind])} {what} ({', '.join(module_paths(fit[kind]))})" for kind, what in
                    (("new", "missing"), ("unused", "not in the network"), ("reshaped", "of another shape"))
                    if fit[kind]]
        raise ValueError(f"{weights}: the tensors do not fit the network {directory / 'model.json'} describes: "
                         f"{'; '.join(problems)}. The two files come from different models; copy them together")
    model.load_state_dict(tensors)
    return model.eval()


def match_tensors(model: torch.nn.Module, tensors: dict[str, torch.Tensor]) -> dict[str, list[str]]:
    """How `tensors` fit `model`'s state_dict, by name: `loaded` (same name and shape), `new` (only in the
    model), `reshaped` (in both, another shape) and `unused` (only in `tensors`, sorted)."""
    own = model.state_dict()
    report: dict[str, list[str]] = {"loaded": [], "new": [], "reshaped": [], "unused": sorted(set(tensors) - set(own))}
    for name, tensor in own.items():
        kind = "new" if name not in tensors else "reshaped" if tensors[name].shape != tensor.shape else "loaded"
        report[kind].append(name)
    return report


def module_paths(tensor_names: list[str], depth: int = 2) -> list[str]:
    """The distinct module paths (first `depth` components) of tensor names, in order:
    deblur.bank.filters.weight -> deblur.bank."""
    return list(dict.fromkeys(".".join(n.split(".")[:depth]) for n in tensor_names))


def load_matching_weights(model: torch.nn.Module, path: str | Path) -> dict[str, list[str]]:
    """Copy into `model` every tensor of the model at `path` (run or model folder) whose name and shape
    match: the start of a fine-tuning run. Returns the names `loaded`, `new` (not in the file, left as
    initialised), `reshaped` (in the file with another shape, left as initialised) and `unused` (in the
    file only). Refuses a file that shares no tensor with `model`."""
    weights, source = _read_weights(resolve_model_dir(path), "cpu")
    report = match_tensors(model, source)
    take = {name: source[name] for name in report["loaded"]}
    if not take:
        raise ValueError(f"{weights}: no tensor matches this model by name and shape (a different network?)")
    model.load_state_dict(take, strict=False)
    return report


def count_flops(model: torch.nn.Module, height: int = 512, width: int = 512) -> int:
    """Floating-point operations of one forward pass on a [1,1,H,W] image (a multiply-add counts 2)."""
    from torch.utils.flop_counter import FlopCounterMode

    was_training = model.training
    model.eval()
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(torch.zeros(1, 1, height, width))
    model.train(was_training)
    return int(counter.get_total_flops())

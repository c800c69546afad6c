"""Training loop: one process or many (torchrun + DistributedDataParallel), AMP on CUDA, resumable.

Run directory:
    config.yaml           the resolved configuration (model, data, loss, train)
    last/                 model.safetensors + model.json, optimizer.safetensors + trainer.json (resume point)
    best/                 model.safetensors + model.json of the best validation score so far
    metrics.csv, tb/      one row per epoch; TensorBoard scalars

No pickles: optimizer state is saved as safetensors tensors plus JSON. A killed run restarts from
`last/` at the batch where it was checkpointed (Ctrl-C in a single process checkpoints after the current
step); batches are a function of (seed, epoch), so the resumed run sees the same samples in the same order
as an uninterrupted one. A run resumes only with the data and settings it was started with.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import functools
import io
import json
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import yaml
from safetensors.torch import load_file
from torch import nn
from torch.utils.data import DataLoader, Sampler

from ifrt.imageio import move_staged, staging_folder, write_text_atomic
from ifrt.runlock import folder_lock
from ifrt.train import print_warning
from ifrt.train.data.manifest import read_manifest
from ifrt.train.data.split import patients_in_several_splits
from ifrt.train.dataset import DataConfig, ManifestDataset, class_names_of
from ifrt.train.losses import LossConfig, MultiTaskLoss, psnr
from ifrt.train.model import DeepMTND, ModelConfig, model_config, save_model
from ifrt.train.model.bank_init import fit_deconvolution_bank
from ifrt.train.model.io import load_matching_weights, module_paths, write_safetensors
from ifrt.train.model.kind_init import fit_blur_kind_head
from ifrt.train.strict import dataclass_from_dict
from ifrt.train.workers import ignore_ctrl_c

# Held in the run folder while a run writes it (`ifrt.runlock`).
LOCK = ".ifrt-train.lock"


@dataclass
class TrainConfig:
    epochs: int = 30
    batch_size: int = 16
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 100
    grad_clip: float = 5.0
    seed: int = 0
    num_workers: int = 0
    threads: int = 2  # torch CPU threads per process
    amp: bool = True  # mixed precision, CUDA only
    channels_last: bool = False  # measured slower for this network on CPU; try on GPU
    repeats: int = 1  # passes over the training rows per epoch (each with fresh degradations)
    checkpoint_minutes: float = 10.0  # also checkpoint `last/` this often within an epoch
    stop_after_steps: int = 0  # stop (checkpointed, resumable) after this many steps in this process; 0 = off
    select: str = "composite"  # best checkpoint: composite | diagnosis_accuracy | blur_accuracy | psnr_gain | loss
    progress: bool = True
    # Fine-tuning: start from the weights of this run or model folder (tensors matching by name and shape;
    # a resumed run continues from its own last/ instead) and keep the named modules fixed
    # (e.g. [encoder_low, encoder_deep, iqa, diagnosis]; BatchNorm statistics included).
    init_from: str = ""
    freeze: list[str] = field(default_factory=list)

    @classmethod
    def from_dict(cls, d: dict | None) -> TrainConfig:
        return dataclass_from_dict(cls, d, "train")


def load_config(path: str | Path | None, overrides: dict | None = None) -> dict:
    """YAML with sections model / data / loss / train; `overrides` like {"train": {"epochs": 1}} or
    {"loss": {"weights": {"deblur": 0.2}}} replace only the entries they name (mappings merge, other
    values, lists included, are replaced whole)."""
    config = yaml.safe_load(Path(path).read_text()) if path else {}
    config = _merged(config or {}, overrides or {})
    unknown = sorted(set(config) - {"model", "data", "loss", "train"})
    if unknown:
        raise ValueError(f"{path}: unknown sections {unknown} (expected model, data, loss, train)")
    return config


def _merged(base: dict, overrides: dict) -> dict:
    out = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merged(out[key], value)
        else:
            out[key] = value
    return out


class EpochSampler(Sampler[int]):
    """Indices for one epoch: a permutation seeded by (seed, epoch), sharded by rank, minus the first
    `skip` (already trained before a resume)."""

    def __init__(self, n: int, *, seed: int, epoch: int, rank: int, world: int, skip: int = 0):
        order = np.random.default_rng([seed, epoch, 7]).permutation(n)
        per_rank = len(order) // world
        self.indices = order[rank * per_rank:(rank + 1) * per_rank][skip:].tolist()

    def __iter__(self):
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def lr_at(step: int, total: int, cfg: TrainConfig) -> float:
    """Linear warm-up, then cosine decay to 1% of the peak."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, total - cfg.warmup_steps))
    return cfg.lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * progress)))


# ---- optimizer state without pickles ---------------------------------------------------------------

def save_training_state(directory: Path, optimizer: torch.optim.Optimizer, criterion: nn.Module,
                        state: dict) -> None:
    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    for pid, values in sd["state"].items():
        for key, value in values.items():
            tensors[f"optimizer.{pid}.{key}"] = (value if torch.is_tensor(value) else torch.tensor(value)).detach().cpu().contiguous()
    for key, value in criterion.state_dict().items():
        tensors[f"criterion.{key}"] = value.detach().cpu().contiguous()
    tensors["rng.torch"] = torch.get_rng_state()
    if torch.cuda.is_available():
        tensors["rng.cuda"] = torch.cuda.get_rng_state()
    write_safetensors(directory / "optimizer.safetensors", tensors)
    write_text_atomic(directory / "trainer.json",
                      json.dumps({**state, "param_groups": sd["param_groups"]}, indent=2))


def load_training_state(directory: Path, optimizer: torch.optim.Optimizer, criterion: nn.Module) -> dict:
    meta = json.loads((directory / "trainer.json").read_text())
    tensors = load_file(str(directory / "optimizer.safetensors"))
    state: dict[int, dict] = {}
    for name, value in tensors.items():
        if name.startswith("optimizer."):
            _, pid, key = name.split(".", 2)
            state.setdefault(int(pid), {})[key] = value
    optimizer.load_state_dict({"state": state, "param_groups": meta.pop("param_groups")})
    criterion.load_state_dict({k[len("criterion."):]: v for k, v in tensors.items() if k.startswith("criterion.")})
    torch.set_rng_state(tensors["rng.torch"])
    if "rng.cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["rng.cuda"])
    return meta


def replace_checkpoint(folder: Path, write: Callable[[Path], object]) -> None:
    """Replace the checkpoint in `folder` (`last/`, `best/`) with the files `write(staging)` writes, all or none:
    they are written into a hidden staging folder beside it first, then moved in by renames, `trainer.json` (what
    a resume reads first) last (`ifrt.imageio.staging_folder`). A write the file system refuses (a full disk)
    leaves the previous checkpoint whole, weights, optimizer state and resume point of one step, so a rerun
    resumes from it; the error names the checkpoint's file."""
    with staging_folder(folder, folder.with_name(f".{folder.name}.staging")) as staging:
        write(staging)
        names = sorted((p.name for p in staging.iterdir()), key=lambda name: name == "trainer.json")
        move_staged(staging, folder, names)


# ---- distributed helpers ---------------------------------------------------------------------------

@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed() -> tuple[Dist, torch.device]:
    """torchrun sets WORLD_SIZE/RANK/LOCAL_RANK; gloo on CPU, NCCL on GPUs."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    cuda = torch.cuda.is_available()
    if world == 1:
        return Dist(), torch.device("cuda" if cuda else "cpu")
    import torch.distributed as dist

    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if cuda:
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    return Dist(dist.get_rank(), dist.get_world_size(), local_rank), \
        torch.device(f"cuda:{local_rank}" if cuda else "cpu")


def to_device(batch: dict, device: torch.device, channels_last: bool) -> dict:
    out = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
    if channels_last:
        out["image"] = out["image"].contiguous(memory_format=torch.channels_last)
    return out


# ---- validation ------------------------------------------------------------------------------------

def add_logged(sums: dict[str, float], weights: dict[str, int], logged: dict[str, float],
               batch_weights: dict[str, int]) -> None:
    """Add one batch's logged losses to running sums, each weighted by the images it is a mean over
    (`MultiTaskLoss.logged_weights`)."""
    for k, v in logged.items():
        w = batch_weights.get(k, 0)
        sums[k] = sums.get(k, 0.0) + v * w
        weights[k] = weights.get(k, 0) + w


def logged_means(sums: dict[str, float], weights: dict[str, int]) -> dict[str, float]:
    """The mean of each logged loss over the images that know its target; a loss no image knew is left out
    (an empty cell in metrics.csv), not reported as 0."""
    return {k: v / weights[k] for k, v in sums.items() if weights.get(k, 0) > 0}


@torch.no_grad()
def validate(model: DeepMTND, loader: DataLoader, criterion: MultiTaskLoss, device: torch.device,
             channels_last: bool = False) -> dict[str, float]:
    """Loss and headline metrics over the validation set (degradations fixed by the seed)."""
    model.eval()
    sums: dict[str, float] = {}
    weights: dict[str, int] = {}
    diag_known = diag_correct = blur_known = blur_correct = sharp_known = 0
    psnr_in = psnr_out = 0.0
    for batch in loader:
        batch = to_device(batch, device, channels_last)
        out = model.forward_with_tiles(batch["image"])
        _, logged = criterion(out, batch)
        add_logged(sums, weights, logged, criterion.logged_weights(batch))
        known = batch["diagnosis"] >= 0
        diag_known += int(known.sum())
        diag_correct += int((out["diagnosis_logits"].argmax(1) == batch["diagnosis"])[known].sum())
        if "blur_logits" in out:
            known = batch["blur_level"] >= 0
            blur_known += int(known.sum())
            blur_correct += int((out["blur_logits"].argmax(1) == batch["blur_level"])[known].sum())
            has = batch["has_sharp"]
            sharp_known += int(has.sum())
            psnr_in += float(psnr(batch["image"], batch["sharp"])[has].sum())
            psnr_out += float(psnr(out["deblurred"], batch["sharp"])[has].sum())
    metrics = {f"val_{k}": v for k, v in logged_means(sums, weights).items()}
    if diag_known:
        metrics["val_diagnosis_accuracy"] = diag_correct / diag_known
    if blur_known:
        metrics["val_blur_accuracy"] = blur_correct / blur_known
    if sharp_known:
        metrics["val_psnr_gain_db"] = (psnr_out - psnr_in) / sharp_known
    return metrics


def frozen_modules(model: nn.Module, names: list[str]) -> list[nn.Module]:
    """The submodules named in `names` (dotted paths such as `deblur.up4`), with their parameters set
    not to train. An unknown name is an error listing the network's top-level modules."""
    modules = dict(model.named_modules())
    frozen = []
    for name in names:
        if not name or name not in modules:
            known = ", ".join(n for n, m in model.named_children() if m is not None)
            raise ValueError(f"train.freeze: the network has no module {name!r} (top-level modules: {known}; "
                             "dotted paths such as deblur.up4 name their parts)")
        for p in modules[name].parameters():
            p.requires_grad_(False)
        frozen.append(modules[name])
    return frozen


BANK_FIT_IMAGES = 400  # training images the deconvolution bank's least-squares start sees (about 80 per level)


KIND_FIT_IMAGES = 1000  # training images the blur-kind head's start sees (about 800 of them blurred)


def is_new(model: nn.Module, module: str, tensor: str, loaded: dict[str, list[str]] | None) -> bool:
    """Whether `model` has the submodule `module` (a dotted path) and init_from did not supply its `tensor`
    (a fresh run's modules are all new). A fine-tune that adds a part keeps the rest as loaded."""
    try:
        if model.get_submodule(module) is None:
            return False
    except AttributeError:
        return False
    return loaded is None or f"{module}.{tensor}" in loaded["new"] + loaded["reshaped"]


def bank_is_new(model: nn.Module, loaded: dict[str, list[str]] | None) -> bool:
    """Whether `model` has a deconvolution bank whose filters init_from did not supply."""
    return is_new(model, "deblur.bank", "filters.weight", loaded)


def kind_head_is_new(model: nn.Module, loaded: dict[str, list[str]] | None) -> bool:
    """Whether `model` has a blur-kind head whose classifier init_from did not supply."""
    return is_new(model, "blur_kind", "feature_mean", loaded)


def set_training(model: nn.Module, frozen: list[nn.Module]) -> None:
    """Training mode, except for frozen modules: their BatchNorm statistics and dropout stay as loaded."""
    model.train()
    for m in frozen:
        m.eval()


def selection_score(metrics: dict[str, float], select: str) -> float:
    """Higher is better. composite = mean of the available accuracies (diagnosis, blur level);
    psnr_gain = the deblurring's mean PSNR gain over its input (for runs that train only the deblurring)."""
    if select == "loss":
        return -metrics["val_loss"]
    if select == "psnr_gain":
        return metrics.get("val_psnr_gain_db", -metrics["val_loss"])
    if select in ("diagnosis_accuracy", "blur_accuracy"):
        return metrics.get(f"val_{select}", -metrics["val_loss"])
    if select != "composite":
        raise ValueError(f"select={select!r} is unknown (composite, diagnosis_accuracy, blur_accuracy, "
                         "psnr_gain, loss)")
    accuracies = [metrics[k] for k in ("val_diagnosis_accuracy", "val_blur_accuracy") if k in metrics]
    return float(np.mean(accuracies)) if accuracies else -metrics["val_loss"]


# ---- metrics sinks ---------------------------------------------------------------------------------

class MetricsLog:
    """metrics.csv (header fixed by the first row) and TensorBoard scalars. A resumed run appends to the rows of
    the `epochs_done` epochs its checkpoint completed (`keep_epochs`), and has TensorBoard drop the scalars
    logged at or after `step_done`, the checkpoint's step, which the run logs again."""

    def __init__(self, run_dir: Path, epochs_done: int, step_done: int = 0):
        self.csv_path = run_dir / "metrics.csv"
        self.fields: list[str] | None = None
        if self.csv_path.is_file():
            self.fields = keep_epochs(self.csv_path, epochs_done)
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(run_dir / "tb"), purge_step=step_done or None)
        except ImportError:  # tensorboard is in the train extra; CSV still works without it
            self.tb = None

    def scalar(self, name: str, value: float, step: int) -> None:
        if self.tb is not None:
            self.tb.add_scalar(name, value, step)

    def row(self, values: dict[str, float], step: int) -> None:
        text = io.StringIO(newline="")
        if self.fields is None:
            self.fields = list(values)
            csv.writer(text).writerow(self.fields)
        csv.DictWriter(text, self.fields, extrasaction="ignore").writerow(values)
        try:
            with self.csv_path.open("a", newline="") as f:  # one write per row: a full disk tears at most this one
                f.write(text.getvalue())
        except OSError as exc:
            raise OSError(exc.errno, exc.strerror or str(exc), str(self.csv_path)) from None
        for k, v in values.items():
            if k not in ("epoch", "step"):
                self.scalar(k, v, step)
        if self.tb is not None:
            self.tb.flush()

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def keep_epochs(path: Path, epochs_done: int) -> list[str] | None:
    """Keep in metrics.csv `path` the header and the rows of the first `epochs_done` epochs; return the header, or
    None when no row stays (the file is removed; the next row's fields make a new header). Cut are a last line
    without its newline (a row whose write a full disk or a kill interrupted) and the rows of later epochs: an
    epoch validated whose checkpoint the disk then refused, which the resumed run trains and writes again."""
    lines = path.read_bytes().decode("utf-8").splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines.pop()
    header = next(csv.reader(lines[:1]), None)
    if not header or "epoch" not in header:
        rows = []
    else:
        column = header.index("epoch")
        try:
            rows = [line for line in lines[1:] if int(next(csv.reader([line]))[column]) <= epochs_done]
        except (ValueError, IndexError):
            raise ValueError(f"{path}: a row without an epoch number; remove the row or the file") from None
    if not rows:
        path.unlink()
        return None
    kept = "".join(lines[:1] + rows)
    if path.stat().st_size != len(kept.encode("utf-8")):
        write_text_atomic(path, kept)
    return header


# ---- the loop --------------------------------------------------------------------------------------

def class_prior_of(rows, class_names: list[str]) -> list[float]:
    """Each class's share of the training images with a known diagnosis, plus one image per class, so that a
    class the training split lacks still gets a (small) prior."""
    counts = [1 + sum(r.diagnosis == name for r in rows) for name in class_names]
    return [c / sum(counts) for c in counts]


def missing_references_warning(manifest: Path, rows, variant: str) -> str | None:
    """The warning when training rows lack an in-focus reference (sharp_path): only rows with one are degraded
    on the fly, so without them the blur, quality and deblurring heads learn nothing, and silently so, as
    their losses are masked. None when every row has one, or for a single-task (st) run, which trains only the
    diagnosis anyway."""
    missing = sum(not row.sharp_path for row in rows)
    if variant == "st" or not missing:
        return None
    fix = ("fill the manifest's sharp_path with the in-focus capture of each field (for an in-focus capture, "
           "the image itself)")
    if missing == len(rows):
        return (f"{manifest}: no training row has an in-focus reference (sharp_path), so only the diagnosis will be "
                f"trained (and the blur level where a row records one; the deblurring not at all); {fix}")
    return (f"{manifest}: {missing} of {len(rows)} training rows have no in-focus reference (sharp_path) and "
            f"train only the diagnosis (and a blur_level they record); {fix}")


def run_config(model_cfg: ModelConfig, data_cfg: DataConfig, loss_cfg: LossConfig, train_cfg: TrainConfig) -> dict:
    """The resolved configuration, as the run folder's config.yaml records it."""
    return {"model": model_cfg.to_dict(), "data": dataclasses.asdict(data_cfg),
            "loss": dataclasses.asdict(loss_cfg), "train": dataclasses.asdict(train_cfg)}


# Settings that say how this process runs, not what the run learns: a resumed run may change them.
PROCESS_SETTINGS = frozenset({"train.stop_after_steps", "train.progress", "train.threads", "train.num_workers",
                              "train.checkpoint_minutes"})


def _leaves(config: dict, prefix: str = "") -> dict[str, object]:
    """A nested config as dotted keys: {"train": {"lr": 0.1}} -> {"train.lr": 0.1}."""
    leaves: dict[str, object] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            leaves.update(_leaves(value, f"{prefix}{key}."))
        else:
            leaves[f"{prefix}{key}"] = value
    return leaves


def check_resume(run_dir: Path, data_dir: Path, config: dict) -> list[str]:
    """Refuse to resume run_dir with other data or settings than it was trained with: a resumed run must end as
    the uninterrupted one would, and its config.yaml must stay true. PROCESS_SETTINGS may change, and a finished
    run may be given more epochs (trained further); returns those allowed changes, as `key: old -> new`."""
    saved_state = json.loads((run_dir / "last" / "trainer.json").read_text())
    saved = _leaves(yaml.safe_load((run_dir / "config.yaml").read_text()))
    now = _leaves(yaml.safe_load(yaml.safe_dump(config)))  # as config.yaml will record it
    finished = saved_state["epoch"] >= saved["train.epochs"]
    refused, allowed = [], []
    recorded = saved_state.get("data")
    if recorded is not None and recorded != str(data_dir.resolve()):
        refused.append(f"--data: {recorded} -> {data_dir.resolve()}")
    for key in dict.fromkeys([*saved, *now]):
        before, after = saved.get(key, "(unset)"), now.get(key, "(unset)")
        if before == after:
            continue
        change = f"{key}: {before} -> {after}"
        if key in PROCESS_SETTINGS or (key == "train.epochs" and finished and after > before):
            allowed.append(change)
        else:
            refused.append(change)
    if refused:
        raise ValueError(f"{run_dir}: cannot resume with other settings than the run's own ({'; '.join(refused)}); "
                         f"run the same command as before (its settings are in {run_dir / 'config.yaml'}), or "
                         "give another --out for a new run")
    return allowed


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped training after a step and `last/` holds the checkpoint to resume from; the message says
    where."""


class StopRequest:
    """While a single-process run trains, the first Ctrl-C (SIGINT) asks it to stop after the current optimizer
    step, checkpointed, and a second one stops it at once. The previous handler is restored on exit. Off under
    torchrun, whose processes cannot agree on a common step to stop at, and outside the main thread, where
    Python installs no signal handlers."""

    def __init__(self, enabled: bool):
        self.enabled = enabled and threading.current_thread() is threading.main_thread()
        self.requested = False
        self.previous = None

    def __enter__(self) -> StopRequest:
        if self.enabled:
            self.previous = signal.signal(signal.SIGINT, self.handle)
        return self

    def __exit__(self, *exc_info) -> None:
        if self.enabled:
            signal.signal(signal.SIGINT, self.previous if self.previous is not None else signal.SIG_DFL)

    def handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("\nstopping after this step (Ctrl-C again to stop at once, without a checkpoint)", file=sys.stderr,
              flush=True)


def build_everything(data_dir: Path, config: dict):
    data_cfg = DataConfig.from_dict(config.get("data")).for_database(data_dir)
    loss_cfg = dataclass_from_dict(LossConfig, config.get("loss"), "loss")
    train_cfg = TrainConfig.from_dict(config.get("train"))
    manifest = data_dir / "manifest.csv"
    rows = read_manifest(manifest)  # a missing manifest is named, with how to make one
    missing = [split for split in ("train", "val") if not any(row.split == split for row in rows)]
    if missing:
        raise ValueError(f"{manifest}: no rows in {' or '.join(missing)}; training needs both (assign splits with "
                         f"`ifrt data split {data_dir}`, which needs at least 3 patients)")
    leaked = patients_in_several_splits(rows)
    if leaked:
        patient, splits = next(iter(leaked.items()))
        raise ValueError(f"{manifest}: patient {patient} is in splits {', '.join(splits)} ({len(leaked)} patient(s) "
                         "like this), so validation would score images of patients the network trains on; one "
                         f"patient stays in one split (reassign them with `ifrt data split {data_dir}`)")
    class_names = class_names_of(rows)
    if not class_names:
        raise ValueError(f"{manifest}: no row has a diagnosis, and the network needs at least one class to learn; "
                         "fill the diagnosis column where it is known (an empty cell stays unknown and masked)")
    model_section = dict(config.get("model") or {})
    size, variant = model_section.pop("size", "s"), model_section.pop("variant", "hier")
    probe = ManifestDataset(data_dir, [], class_names, data_cfg, train=True)
    # A run's own config.yaml records what the database decided; reusing it must agree with the database.
    for key, found in (("class_names", list(class_names)), ("blur_levels", probe.blur_levels)):
        given = model_section.pop(key, None)
        if given is not None and (list(given) if isinstance(given, (list, tuple)) else given) != found:
            raise ValueError(f"model.{key}={given} in the config, but the database {data_dir} has {found}: "
                             f"leave model.{key} out (the database decides it)")
    prior = class_prior_of([r for r in rows if r.split == "train"], class_names)
    given = model_section.pop("class_prior", None)
    if given is not None and not (isinstance(given, (list, tuple)) and len(given) == len(prior) and
                                  all(abs(float(g) - p) <= 1e-6 for g, p in zip(given, prior, strict=True))):
        raise ValueError(f"model.class_prior={given} in the config, but the training split of {data_dir} gives "
                         f"{[round(p, 6) for p in prior]}: leave model.class_prior out (the database decides it)")
    model_cfg = model_config(size, variant, class_names=class_names, blur_levels=probe.blur_levels,
                             class_prior=prior, **model_section)
    return data_cfg, loss_cfg, train_cfg, model_cfg, manifest


def make_datasets(data_dir: Path, manifest: Path, data_cfg: DataConfig, train_cfg: TrainConfig,
                  model_cfg: ModelConfig) -> tuple[ManifestDataset, ManifestDataset]:
    """The training split, drawn anew each epoch, and the validation split, degraded the same way every
    epoch as `data.val_degrade` and `data.val_levels` say."""
    rows = read_manifest(manifest)  # the splits were checked by build_everything
    train_set = ManifestDataset(data_dir, [row for row in rows if row.split == "train"], model_cfg.class_names, data_cfg,
                                train=True, seed=train_cfg.seed, repeats=train_cfg.repeats,
                                normalization=model_cfg.normalization)
    val_set = ManifestDataset(data_dir, [row for row in rows if row.split == "val"], model_cfg.class_names,
                              data_cfg.for_validation(), train=False, seed=train_cfg.seed + 1,
                              normalization=model_cfg.normalization)
    return train_set, val_set


def train(data_dir: str | Path, config: dict, run_dir: str | Path, *,
          warn: Callable[[str], None] = print_warning) -> dict:
    """Train (or resume) into run_dir; returns the summary written to run_dir/summary.json. `warn(text)` receives
    each warning about the data, such as training rows without an in-focus reference (default: `print_warning`);
    `ifrt train` puts its name before it, as its other messages have. The run folder is held for the run
    (`ifrt.runlock`): a second run on it, fresh or resuming, is refused rather than both writing `last/`."""
    with contextlib.ExitStack() as held:
        return _train(Path(data_dir), config, Path(run_dir), warn, held)


def _train(data_dir: Path, config: dict, run_dir: Path, warn: Callable[[str], None],
           held: contextlib.ExitStack) -> dict:
    dist_info, device = init_distributed()
    data_cfg, loss_cfg, train_cfg, model_cfg, manifest = build_everything(data_dir, config)
    last_dir, best_dir = run_dir / "last", run_dir / "best"
    torch.set_num_threads(train_cfg.threads)
    torch.manual_seed(train_cfg.seed)

    train_set, val_set = make_datasets(data_dir, manifest, data_cfg, train_cfg, model_cfg)
    train_set.check_batchable()
    missing_references = missing_references_warning(manifest, train_set.rows, model_cfg.variant)
    if dist_info.main and missing_references:
        warn(missing_references)
    if dist_info.main:  # the folder is checked and created only once the data and settings are known to be usable
        run_dir.mkdir(parents=True, exist_ok=True)
        held.enter_context(folder_lock(run_dir, LOCK, "ifrt train", "give another --out for a new run"))
    resuming = (last_dir / "trainer.json").is_file()
    allowed_changes = check_resume(run_dir, data_dir, run_config(model_cfg, data_cfg, loss_cfg, train_cfg)) \
        if resuming else []

    model = DeepMTND(model_cfg).to(device)
    if train_cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    tasks = ("diagnosis",) if model_cfg.variant == "st" else ("diagnosis", "blur", "quality", "deblur")
    criterion = MultiTaskLoss(loss_cfg, model_cfg.blur_levels, tasks).to(device)
    frozen = frozen_modules(model, train_cfg.freeze)
    trainable = [p for p in model.parameters() if p.requires_grad]
    if not trainable:
        raise ValueError(f"train.freeze={train_cfg.freeze} leaves nothing to train")
    decay = [p for p in trainable if p.ndim > 1]
    no_decay = [p for p in trainable if p.ndim <= 1]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": train_cfg.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0},
                                   {"params": list(criterion.parameters()), "weight_decay": 0.0}], lr=train_cfg.lr)

    # The data folder is recorded with the resume point: a run resumes on the data it was trained on.
    state = {"epoch": 0, "batches_done": 0, "step": 0, "best_score": -math.inf, "best_epoch": -1,
             "data": str(data_dir.resolve())}
    loaded: dict[str, list[str]] | None = None  # what init_from supplied; None for a fresh or resumed run
    if resuming:
        from safetensors.torch import load_file as load_weights

        model.load_state_dict(load_weights(str(last_dir / "model.safetensors"), device=str(device)))
        state = {**load_training_state(last_dir, optimizer, criterion), "data": state["data"]}
        if dist_info.main:
            print(f"resuming {run_dir} at epoch {state['epoch'] + 1}, batch {state['batches_done']}"
                  + "".join(f"; {change}" for change in allowed_changes), file=sys.stderr)
    elif train_cfg.init_from:
        loaded = load_matching_weights(model, train_cfg.init_from)
        if dist_info.main:
            print(f"initialised {len(loaded['loaded'])} of {len(model.state_dict())} tensors from "
                  f"{train_cfg.init_from}" + "".join(f"; {kind} in {', '.join(module_paths(names))}"
                                                      for kind, names in loaded.items() if kind != "loaded" and names),
                  file=sys.stderr)
    if not resuming and bank_is_new(model, loaded):
        seen = fit_deconvolution_bank(model.deblur.bank, (train_set[i] for i in range(min(BANK_FIT_IMAGES, len(train_set)))))
        if dist_info.main:
            print("deconvolution bank fitted by least squares to " + ", ".join(
                f"{n} level-{level}" for level, n in seen.items()) + " training images", file=sys.stderr)
    if not resuming and kind_head_is_new(model, loaded):
        fit = fit_blur_kind_head(model.blur_kind, (train_set[i] for i in range(min(KIND_FIT_IMAGES, len(train_set)))),
                                 seed=train_cfg.seed)
        if dist_info.main:
            print(f"blur-kind head fitted to {fit['gaussian']} Gaussian-like and {fit['defocus']} defocused "
                  f"training images (accuracy on them {fit['accuracy']:.3f})", file=sys.stderr)
    if dist_info.main:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_text_atomic(run_dir / "config.yaml",
                          yaml.safe_dump(run_config(model_cfg, data_cfg, loss_cfg, train_cfg), sort_keys=False))

    net: nn.Module = model
    if dist_info.world > 1:
        net = nn.parallel.DistributedDataParallel(model, device_ids=[dist_info.local_rank] if device.type == "cuda" else None)
    use_amp = train_cfg.amp and device.type == "cuda"
    amp_dtype = torch.bfloat16 if use_amp and torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and amp_dtype == torch.float16)

    batches_per_epoch = len(train_set) // dist_info.world // train_cfg.batch_size
    if batches_per_epoch == 0:
        raise ValueError(f"{len(train_set.rows)} training rows x {train_cfg.repeats} repeats is less than one batch "
                         f"of {train_cfg.batch_size} per process; lower train.batch_size")
    total_steps = batches_per_epoch * train_cfg.epochs
    log = MetricsLog(run_dir, state["epoch"], state["step"]) if dist_info.main else None
    # Own generators: a DataLoader iterator otherwise draws its base seed from the global torch RNG,
    # which would make a run resumed mid-epoch see different dropout masks than an uninterrupted one.
    val_batch_size = val_set.whole_frame_batch_size(train_cfg.batch_size)
    stop_request = StopRequest(enabled=dist_info.world == 1)
    worker_init = ignore_ctrl_c if stop_request.enabled else None
    val_loader = DataLoader(val_set, batch_size=val_batch_size, num_workers=train_cfg.num_workers,
                            worker_init_fn=worker_init, generator=torch.Generator().manual_seed(train_cfg.seed))

    def checkpoint(epoch_done: int, batches_done: int) -> None:
        state.update(epoch=epoch_done, batches_done=batches_done)
        if dist_info.main:
            replace_checkpoint(last_dir, lambda folder: (
                save_model(model, folder, {"epoch": epoch_done, "step": state["step"]}),
                save_training_state(folder, optimizer, criterion, state)))

    started = time.monotonic()
    steps_here = 0
    set_training(model, frozen)
    with stop_request:
        for epoch in range(state["epoch"], train_cfg.epochs):
            if stop_request.requested:  # Ctrl-C between steps (validation, start-up): resume where `last/` is
                raise TrainingInterrupted(f"interrupted; rerun the same command to resume at epoch {epoch + 1}, "
                                          f"batch {state['batches_done']}")
            if train_cfg.stop_after_steps and steps_here >= train_cfg.stop_after_steps:
                break
            train_set.set_epoch(epoch)
            skip = state["batches_done"] * train_cfg.batch_size
            sampler = EpochSampler(len(train_set), seed=train_cfg.seed, epoch=epoch, rank=dist_info.rank,
                                   world=dist_info.world, skip=skip)
            loader = DataLoader(train_set, batch_size=train_cfg.batch_size, sampler=sampler,
                                num_workers=train_cfg.num_workers, drop_last=True, worker_init_fn=worker_init,
                                generator=torch.Generator().manual_seed(train_cfg.seed + epoch))
            # The epoch's training losses so far; a run resumed mid-epoch carries on from its checkpoint's sums, so
            # metrics.csv averages the whole epoch as an uninterrupted run does.
            running: dict[str, float] = state.setdefault("epoch_loss_sums", {})
            running_weights: dict[str, int] = state.setdefault("epoch_loss_weights", {})
            last_save = time.monotonic()
            progress = _progress(loader, train_cfg.progress and dist_info.main, f"epoch {epoch + 1}/{train_cfg.epochs}",
                                 initial=state["batches_done"], total=batches_per_epoch)
            for batch in progress:
                batch = to_device(batch, device, train_cfg.channels_last)
                for group in optimizer.param_groups:
                    group["lr"] = lr_at(state["step"], total_steps, train_cfg)
                with torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp):
                    out = net(batch["image"], with_tiles=True)
                loss, logged = criterion(out, batch)
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                if dist_info.world > 1:
                    _allreduce_grads(criterion, dist_info.world)
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(trainable, train_cfg.grad_clip)
                scaler.step(optimizer)
                scaler.update()
                state["step"] += 1
                state["batches_done"] += 1
                add_logged(running, running_weights, logged, criterion.logged_weights(batch))
                if dist_info.main and train_cfg.progress and hasattr(progress, "set_postfix"):
                    progress.set_postfix(loss=f"{logged['loss']:.3f}")
                if log is not None and state["step"] % 10 == 0:
                    log.scalar("train/loss_step", logged["loss"], state["step"])
                if train_cfg.checkpoint_minutes > 0 and time.monotonic() - last_save > 60 * train_cfg.checkpoint_minutes:
                    checkpoint(epoch, state["batches_done"])
                    last_save = time.monotonic()
                steps_here += 1
                if stop_request.requested or (train_cfg.stop_after_steps and steps_here >= train_cfg.stop_after_steps):
                    break
            stopping = stop_request.requested or (train_cfg.stop_after_steps and steps_here >= train_cfg.stop_after_steps)
            if stopping and state["batches_done"] < batches_per_epoch:
                checkpoint(epoch, state["batches_done"])
                if stop_request.requested:
                    raise TrainingInterrupted(f"interrupted; rerun the same command to resume at epoch {epoch + 1}, "
                                              f"batch {state['batches_done']}")
                if dist_info.main:
                    print(f"stopped after {steps_here} steps at epoch {epoch + 1}, batch {state['batches_done']}; "
                          "run the same command again to resume", file=sys.stderr)
                break
            if dist_info.world > 1:
                import torch.distributed as dist

                dist.barrier()
            if dist_info.main:
                metrics = validate(model, val_loader, criterion, device, train_cfg.channels_last)
                set_training(model, frozen)
                score = selection_score(metrics, train_cfg.select)
                row = {"epoch": epoch + 1, "step": state["step"], "lr": optimizer.param_groups[0]["lr"],
                       **{f"train_{k}": v for k, v in logged_means(running, running_weights).items()}, **metrics,
                       "score": score, "seconds": time.monotonic() - started}
                if score > state["best_score"]:
                    state.update(best_score=score, best_epoch=epoch + 1)
                    replace_checkpoint(best_dir, functools.partial(
                        save_model, model, extra={"epoch": epoch + 1, "metrics": metrics, "score": score}))
                log.row(row, state["step"])
                print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()),
                      file=sys.stderr, flush=True)
            state.update(batches_done=0, epoch_loss_sums={}, epoch_loss_weights={})
            checkpoint(epoch + 1, 0)
            if dist_info.world > 1:
                import torch.distributed as dist

                dist.barrier()

    summary = {"run_dir": str(run_dir), "epochs": train_cfg.epochs, "steps": state["step"],
               "best_epoch": state["best_epoch"], "best_score": state["best_score"],
               "world_size": dist_info.world, "model": model_cfg.to_dict()}
    if dist_info.main:
        write_text_atomic(run_dir / "summary.json", json.dumps(summary, indent=2))
        log.close()
    if dist_info.world > 1:
        import torch.distributed as dist

        dist.barrier()
        dist.destroy_process_group()
    return summary


def _allreduce_grads(criterion: nn.Module, world: int) -> None:
    """The learned task weights live outside the DDP-wrapped model: average their gradients by hand."""
    import torch.distributed as dist

    for p in criterion.parameters():
        if p.grad is not None:
            dist.all_reduce(p.grad)
            p.grad /= world


def _progress(iterable, enabled: bool, desc: str, initial: int, total: int):
    if not enabled:
        return iterable
    try:
        from tqdm import tqdm
    except ImportError:
        return iterable
    # Also when stderr is a log file: a background run's progress is then visible with `tail`.
    return tqdm(iterable, desc=desc, initial=initial, total=total, leave=False, mininterval=10)


__all__ = ["DataConfig", "LossConfig", "ModelConfig", "TrainConfig", "TrainingInterrupted", "load_config", "train"]

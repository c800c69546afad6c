"""A Triton Inference Server model repository from exported ifrt graphs:

    REPO/ifrt_full/config.pbtxt   REPO/ifrt_full/1/model.onnx  (or model.plan for a TensorRT engine)
    REPO/ifrt_focus/config.pbtxt  REPO/ifrt_focus/1/model.onnx

Batch is Triton's (max_batch_size > 0, dynamic batching); H and W stay dynamic (-1). The ifrt
metadata (class names, blur levels, normalization) is repeated in `parameters` so that clients can
read it from the model configuration endpoint.

One export at a time writes a repository: it holds the lock `ifrt export onnx` holds on its folder
(`ifrt.runlock`), so that two exports into one repository cannot leave one's model beside the other's config.
An export replaces its models all or none: every model folder is written whole into a staging folder, then each
replaces the earlier folder of its name (`ifrt.imageio.move_staged`), so a write the disk refuses leaves the
earlier export's models as they were, and no model file stays beside a config of another export. An earlier
export's model of a graph this export has none for (`ifrt_focus` when only a full graph is given) is removed
with it, so the repository never serves two exports' models side by side.

A server may poll the repository while an export writes it (`--model-control-mode=poll`), and Triton takes
every folder in it for a model. So the staging folder sits beside the repository (`.REPO.ifrt-export-staging`
in its parent, `staging_place`), and each model folder is swapped with the earlier one in one rename on Linux
(`ifrt.imageio.exchange_paths`): a poll finds the earlier model or the new one, never none, and no folder but
the models. Where the parent is another file system (the repository is a mount point, a Docker volume) or
read-only, the staging folder is `REPO/.ifrt-export-staging`, inside, and a poll during the export may see it;
where the swap is not available (another system, some FUSE or NFS mounts), a model folder is missing for the
moment between two renames. The lock file stays in the repository: Triton takes only folders for models.
Models of other names in the repository are left alone."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from ifrt.imageio import atomic_path, move_staged, staging_folder, write_text_atomic
from ifrt.runlock import folder_lock

# The lock file of `ifrt export onnx` (export/pipeline.py LOCK): an ONNX folder and a repository are one
# export's output folder alike, and two exports of either kind into one folder mix their files.
LOCK = ".ifrt-export.lock"
# Where the models are written before they replace the earlier ones, beside the repository (`.REPO` + this) or,
# where it cannot be, inside it under the name `ifrt export onnx` gives its own (export/pipeline.py STAGING).
STAGING = ".ifrt-export-staging"

# The graphs an export serves (`ifrt export onnx` writes both); each is a model `<prefix><graph>`.
GRAPHS = ("full", "focus")

ONNX_TO_TRITON = {1: "TYPE_FP32", 10: "TYPE_FP16", 7: "TYPE_INT64", 6: "TYPE_INT32"}


def _dims_without_batch(value_info) -> list[int]:
    dims = value_info.type.tensor_type.shape.dim[1:]
    return [d.dim_value if d.dim_value > 0 else -1 for d in dims]


def _tensor_block(value_info) -> str:
    dims = _dims_without_batch(value_info)
    dtype = ONNX_TO_TRITON[value_info.type.tensor_type.elem_type]
    # A per-image scalar ([N] in ONNX) is dims [1] reshaped to [] for Triton's batching.
    shape = f"dims: [ {', '.join(map(str, dims))} ]" if dims else "dims: [ 1 ]\n    reshape: { shape: [ ] }"
    return f'  {{\n    name: "{value_info.name}"\n    data_type: {dtype}\n    {shape}\n  }}'


def model_config(name: str, onnx_model, platform: str, max_batch_size: int, instance_kind: str,
                 instances: int, queue_delay_us: int) -> str:
    """config.pbtxt text for one model."""
    inputs = ",\n".join(_tensor_block(v) for v in onnx_model.graph.input)
    outputs = ",\n".join(_tensor_block(v) for v in onnx_model.graph.output)
    params = "\n".join(
        f'parameters {{ key: "{p.key}" value {{ string_value: {json.dumps(p.value)} }} }}'
        for p in sorted(onnx_model.metadata_props, key=lambda p: p.key) if p.key.startswith("ifrt."))
    return (f'name: "{name}"\nplatform: "{platform}"\nmax_batch_size: {max_batch_size}\n'
            f"input [\n{inputs}\n]\noutput [\n{outputs}\n]\n"
            f"dynamic_batching {{ max_queue_delay_microseconds: {queue_delay_us} }}\n"
            f"instance_group [ {{ kind: {instance_kind} count: {instances} }} ]\n{params}\n")


def write_repository(graphs: dict[str, Path], out_dir: str | Path, *, engines: dict[str, Path] | None = None,
                     max_batch_size: int = 8, instance_kind: str = "KIND_GPU", instances: int = 1,
                     queue_delay_us: int = 2000, prefix: str = "ifrt_",
                     warn: Callable[[str], None] | None = None) -> list[Path]:
    """Write one Triton model per graph (`{'full': full.onnx, 'focus': focus.onnx}`); with `engines`
    ({'full': model.engine}), that graph is served by TensorRT (`tensorrt_plan`) instead of ONNX Runtime.
    The ONNX still describes the I/O. Returns the config paths. Holds the repository's export lock while it
    writes (a second export into it is refused with `ifrt.runlock.FolderInUseError`). An earlier export's model
    of a graph in `GRAPHS` that `graphs` lacks is removed, and `warn` (when given) is told so."""
    import onnx

    if max_batch_size < 1:
        raise ValueError(f"max_batch_size={max_batch_size}: must be at least 1")
    out_dir = Path(out_dir)
    engines = engines or {}
    configs = []
    out_dir.mkdir(parents=True, exist_ok=True)
    with folder_lock(out_dir, LOCK, "ifrt export triton", "write into another -o repository"), \
            staging_folder(out_dir, staging_place(out_dir)) as staging:
        if staging != out_dir / STAGING:  # one a killed export left inside (a read-only parent then, or ifrt before)
            shutil.rmtree(out_dir / STAGING, ignore_errors=True)
        for graph, onnx_path in graphs.items():
            model = onnx.load(str(onnx_path), load_external_data=False)
            name = prefix + graph
            if graph in engines:
                platform, file_name, source = "tensorrt_plan", "model.plan", Path(engines[graph])
            else:
                platform, file_name, source = "onnxruntime_onnx", "model.onnx", Path(onnx_path)
            copy_atomic(source, staging / name / "1" / file_name)
            write_text_atomic(staging / name / "config.pbtxt", model_config(
                name, model, platform, max_batch_size, instance_kind, instances, queue_delay_us))
            configs.append(out_dir / name / "config.pbtxt")
        move_staged(staging, out_dir, [config.parent.name for config in configs])
        for graph in GRAPHS:
            stale = out_dir / (prefix + graph)
            if graph not in graphs and stale.is_dir():
                os.replace(stale, staging / f"stale-{stale.name}")  # removed with the staging folder
                if warn is not None:
                    warn(f"removed {stale}: an earlier export's model, for which this export has no {graph} graph")
    return configs


def file_system(path: Path) -> int:
    """The device number of the file system `path` is on."""
    return os.stat(path).st_dev


def staging_place(repo: Path) -> Path:
    """The staging folder of an export into the existing folder `repo`: `.REPO.ifrt-export-staging` beside it,
    out of a polling server's sight, where its parent is on the same file system (so moving a model in is a
    rename) and writable; otherwise `REPO/.ifrt-export-staging`. The parent is the real one, a symlink's
    target's."""
    real = repo.resolve()
    if real.parent != real and file_system(real.parent) == file_system(real) \
            and os.access(real.parent, os.W_OK | os.X_OK):
        return real.parent / f".{real.name}{STAGING}"
    return repo / STAGING


def copy_atomic(source: Path, target: Path) -> None:
    """Copy `source` to `target` through a synced temporary file beside it and a rename (`atomic_path`): a
    model file (an engine may be hundreds of MB) is streamed, not read whole."""
    with atomic_path(target) as tmp:
        shutil.copyfile(source, tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())

"""TensorRT engines on the Python side: the sidecar format, the engine-cache key, the check that
refuses an engine built for another GPU or TensorRT, and `TensorRTEngine`, a thin wrapper over the
native executor (`ifrt._native.Engine`).

The same format, key and messages are implemented in C++ (`csrc/core/engine_sidecar.*`); the
tests pin both to the same vectors. Nothing here imports tensorrt or torch at module level.

An engine is valid only for the ONNX it was built from (sha256, and that of its external-data files),
the TensorRT version that built it, the GPU model (name and compute capability; the cache also keys on
the GPU UUID) and its build options (precision, optimization profiles, workspace, DLA core; without
profiles, the default profile it is built with).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ifrt.model_package import onnx_external_data_locations, sha256_file

SIDECAR_FORMAT = "ifrt.engine/1"
PRECISIONS = ("fp32", "fp16", "int8")

INSTALL_TENSORRT = (
    "install TensorRT's Python bindings: pip install 'ifrt[trt]' on a desktop GPU, or on a Jetson the "
    "JetPack package (sudo apt install python3-libnvinfer; TensorRT does not come from pip there)"
)

# {input name: {"min": [...], "opt": [...], "max": [...]}}: one optimization profile, as in the sidecar.
Profile = dict[str, dict[str, list[int]]]


class TensorRTUnavailableError(RuntimeError):
    """TensorRT (Python bindings or the native executor) is not available; the message says how to get it."""


class SidecarError(ValueError):
    """A sidecar is missing, unreadable or not in the ifrt.engine/1 format."""


@dataclass(frozen=True)
class GpuIdentity:
    name: str
    compute_capability: str  # "8.7"
    uuid: str  # "GPU-..."


@dataclass
class EngineBuildSpec:
    """Everything that makes an engine valid; hashed into the cache key."""

    onnx_sha256: str
    tensorrt_version: str  # "10.3.0": major.minor.patch of the TensorRT that builds/loads it
    gpu: GpuIdentity
    precision: str = "fp16"
    profiles: list[Profile] = field(default_factory=list)  # as built: each requested profile `concurrency` times
    concurrency: int = 1  # contexts that may run one shape range at once (matters when no profile is given)
    workspace_bytes: int = 0
    dla_core: int = -1
    external_data_sha256: str = ""  # external_data_sha256(onnx): its external-data files; "" when none


# ---- text forms ------------------------------------------------------------------------------------


def _shape_text(shape: Sequence[int]) -> str:
    return "x".join(str(int(d)) for d in shape)


def profiles_text(profiles: Sequence[Profile]) -> str:
    """"image:1x1x256x256/1x1x512x512/4x1x1024x1024" (inputs joined by ",", profiles by ";")."""
    return ";".join(
        ",".join(f"{name}:{_shape_text(r['min'])}/{_shape_text(r['opt'])}/{_shape_text(r['max'])}"
                 for name, r in profile.items())
        for profile in profiles
    )


_SHAPE = re.compile(r"^\d{1,12}(x\d{1,12})*$")


def parse_profile(text: str) -> Profile:
    """One profile from "INPUT:MIN/OPT/MAX[,INPUT:MIN/OPT/MAX...]"; ValueError says what is wrong."""
    profile: Profile = {}
    for part in text.split(","):
        name, sep, shapes = part.rpartition(":")
        dims = shapes.split("/") if sep else []
        if not name or len(dims) != 3:
            raise ValueError(f"profile '{part}' is not INPUT:MIN/OPT/MAX "
                             "(for example image:1x1x256x256/1x1x512x512/4x1x1024x1024)")
        parsed = []
        for d in dims:
            if not _SHAPE.match(d):
                raise ValueError(f"profile '{part}': '{d}' is not a shape like 1x1x512x512 "
                                 "(positive whole numbers joined by x)")
            parsed.append([int(v) for v in d.split("x")])
        lo, opt, hi = parsed
        if not len(lo) == len(opt) == len(hi):
            raise ValueError(f"profile '{part}': min, opt and max must have the same rank")
        for i, (a, b, c) in enumerate(zip(lo, opt, hi, strict=True)):
            if not a <= b <= c:
                raise ValueError(f"profile '{part}': dim {i} must satisfy min <= opt <= max")
        profile[name] = {"min": lo, "opt": opt, "max": hi}
    return profile


def parse_profiles(text: str) -> list[Profile]:
    """The inverse of profiles_text; "" gives no profiles."""
    return [parse_profile(p) for p in text.split(";")] if text else []


# The profile used when none is given and the contract's input `image` ([N,C,H,W]) has dynamic dims:
# N 1/1/4, H and W 32/512/1024 (min/opt/max); larger frames are tiled. Same as trt/builder.h.
DEFAULT_MAX_BATCH, DEFAULT_MIN_SIDE, DEFAULT_OPT_SIDE, DEFAULT_MAX_SIDE = 4, 32, 512, 1024


def default_image_profile(dims: Sequence[int]) -> Profile:
    """The default profile for input `image` with `dims` (-1 where dynamic); static dims are kept."""
    lo, opt, hi = list(dims), list(dims), list(dims)
    for i, d in enumerate(dims):
        if d >= 0:
            continue
        lo[i], opt[i], hi[i] = (1, 1, DEFAULT_MAX_BATCH) if i == 0 else (DEFAULT_MIN_SIDE, DEFAULT_OPT_SIDE,
                                                                         DEFAULT_MAX_SIDE)
    return {"image": {"min": lo, "opt": opt, "max": hi}}


def default_profile_text() -> str:
    """The default profile's rule as the cache key records it for a build without profiles: the default for an
    `image` input whose every dim is dynamic, so that new defaults change the key."""
    return profiles_text([default_image_profile([-1, -1, -1, -1])])


def expand_profiles(profiles: Sequence[Profile], concurrency: int) -> list[Profile]:
    """Each profile repeated `concurrency` times: TensorRT runs execution contexts concurrently only
    on distinct profiles, so this is how many threads may infer one shape range at once."""
    if concurrency < 1:
        raise ValueError(f"concurrency must be >= 1, got {concurrency}")
    return [dict(p) for _ in range(concurrency) for p in profiles]


def tensorrt_version_triple(version: str) -> str:
    """"10.3.0.26" or "10.7.0.post1" -> "10.3.0" / "10.7.0": what engines are compatible across."""
    parts = re.findall(r"\d+", version)[:3]
    if len(parts) < 3:
        raise ValueError(f"cannot read a TensorRT version from '{version}'")
    return ".".join(parts)


def tensorrt_major(version: str) -> int:
    return int(tensorrt_version_triple(version).split(".")[0])


# ---- external data ---------------------------------------------------------------------------------

MAX_EXTERNAL_DATA_LOCATION = 4096  # longer names are no path a file system opens


def external_data_sha256(onnx_path: str | os.PathLike) -> str:
    """sha256 over the files the ONNX keeps tensors in (its external-data `location` entries, found as
    ifrt.model_package finds them), so that the cache key changes with a weights file beside an unchanged
    ONNX; "" when it names none. Same text and hash as onnx_external_data_sha256 in C++: one line per
    distinct location, in byte order, `<length>:<location> <sha256 of <folder>/<location>, or - when that is
    not a regular file>`, the folder joined as text, as TensorRT's ONNX parser does."""
    onnx_path = Path(onnx_path)
    locations = sorted({loc for loc in onnx_external_data_locations(onnx_path)
                        if 0 < len(loc) <= MAX_EXTERNAL_DATA_LOCATION})
    if not locations:
        return ""
    folder = os.fsencode(onnx_path.parent)
    lines = []
    for location in locations:
        path = folder + b"/" + location
        regular = b"\0" not in location and os.path.isfile(path)
        lines.append(b"%d:%s %s\n" % (len(location), location, sha256_file(path).encode() if regular else b"-"))
    return hashlib.sha256(b"".join(lines)).hexdigest()


# ---- cache key -------------------------------------------------------------------------------------


def cache_key_text(spec: EngineBuildSpec) -> str:
    """The text the cache key hashes; identical to engine_cache_key_text in C++."""
    return (
        "ifrt-engine-cache/2\n"
        f"onnx_sha256={spec.onnx_sha256}\n"
        f"external_data_sha256={spec.external_data_sha256}\n"
        f"tensorrt_version={spec.tensorrt_version}\n"
        f"gpu_uuid={spec.gpu.uuid}\n"
        f"precision={spec.precision}\n"
        f"profiles={profiles_text(spec.profiles)}\n"
        f"default_profile={'' if spec.profiles else default_profile_text()}\n"
        f"concurrency={spec.concurrency}\n"
        f"workspace_bytes={spec.workspace_bytes}\n"
        f"dla_core={spec.dla_core}\n"
    )


def cache_key(spec: EngineBuildSpec) -> str:
    return hashlib.sha256(cache_key_text(spec).encode()).hexdigest()


def cache_engine_name(onnx_path: str | os.PathLike, spec: EngineBuildSpec) -> str:
    """File name of the cached engine: `<onnx stem>-<first 16 hex digits of the key>.engine`."""
    return f"{Path(onnx_path).stem}-{cache_key(spec)[:16]}.engine"


# ---- sidecar ---------------------------------------------------------------------------------------


def sidecar_path(engine_path: str | os.PathLike) -> Path:
    """`model.engine` -> `model.engine.json`."""
    return Path(f"{os.fspath(engine_path)}.json")


def make_sidecar(spec: EngineBuildSpec, *, engine_sha256: str, strongly_typed: bool, ifrt_version: str,
                 metadata: Mapping[str, Any] | None = None,
                 built_profiles: Sequence[Profile] | None = None) -> dict[str, Any]:
    """The sidecar dictionary, fields in the order the C++ writer uses. `built_profiles`: the profiles
    the engine was built with when they differ from the request (the default profile filled in);
    the cache key stays that of the request."""
    sidecar: dict[str, Any] = {
        "format": SIDECAR_FORMAT,
        "ifrt_version": ifrt_version,
        "tensorrt_version": spec.tensorrt_version,
        "gpu": {"name": spec.gpu.name, "compute_capability": spec.gpu.compute_capability, "uuid": spec.gpu.uuid},
        "precision": spec.precision,
        "strongly_typed": strongly_typed,
        "profiles": [dict(p) for p in (spec.profiles if built_profiles is None else built_profiles)],
        "concurrency": spec.concurrency,
        "workspace_bytes": spec.workspace_bytes,
        "dla_core": spec.dla_core,
        "onnx_sha256": spec.onnx_sha256,
        "external_data_sha256": spec.external_data_sha256,
        "engine_sha256": engine_sha256,
        "cache_key": cache_key(spec),
    }
    if metadata:
        sidecar["metadata"] = dict(metadata)
    return sidecar


_REQUIRED = {"format": str, "ifrt_version": str, "tensorrt_version": str, "gpu": dict, "precision": str,
             "strongly_typed": bool, "profiles": list, "concurrency": int, "workspace_bytes": int, "dla_core": int,
             "onnx_sha256": str, "engine_sha256": str, "cache_key": str}


def validate_sidecar(sidecar: Any, source: str = "engine sidecar") -> dict[str, Any]:
    """Returns the sidecar if it has every field with the right type; SidecarError names the problem."""
    if not isinstance(sidecar, dict):
        raise SidecarError(f"{source}: not a JSON object")
    if "format" not in sidecar:
        raise SidecarError(f'{source}: missing "format" (not an ifrt engine sidecar)')
    if sidecar.get("format") != SIDECAR_FORMAT:
        raise SidecarError(f"{source}: format {sidecar.get('format')!r} is not {SIDECAR_FORMAT} "
                           "(written by a newer or different tool)")
    for key, kind in _REQUIRED.items():
        if key not in sidecar:
            raise SidecarError(f'{source}: missing "{key}"')
        if not isinstance(sidecar[key], kind) or (kind is int and isinstance(sidecar[key], bool)):
            raise SidecarError(f'{source}: "{key}" must be {kind.__name__}')
    for key in ("name", "compute_capability", "uuid"):
        if not isinstance(sidecar["gpu"].get(key), str):
            raise SidecarError(f'{source}: "gpu.{key}" must be a string')
    # Absent in sidecars written before external data was keyed: those engines' keys differ anyway.
    if not isinstance(sidecar.get("external_data_sha256", ""), str):
        raise SidecarError(f'{source}: "external_data_sha256" must be str')
    return sidecar


def read_sidecar(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise SidecarError(f"{path}: engine sidecar not found (every engine needs the JSON written beside it)") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SidecarError(f"{path}: invalid JSON ({exc})") from None
    return validate_sidecar(data, str(path))


def _short(digest: str) -> str:
    return digest[:12]


def _external_data_text(digest: str) -> str:
    return f"external data sha256 {_short(digest)}..." if digest else "no external data"


def sidecar_mismatches(
    sidecar: Mapping[str, Any],
    *,
    tensorrt_version: str | None = None,
    gpu: GpuIdentity | None = None,
    allow_same_model_gpu: bool = False,
    onnx_sha256: str | None = None,
    external_data_sha256: str | None = None,
    engine_sha256: str | None = None,
    precision: str | None = None,
    profiles: Sequence[Profile] | None = None,
    concurrency: int | None = None,
    workspace_bytes: int | None = None,
    dla_core: int | None = None,
) -> list[str]:
    """Every reason the engine must not be used here, one sentence each; [] when it may be loaded.
    Arguments left as None are not checked. Same rules and wording as sidecar_mismatches in C++."""
    why: list[str] = []
    have_gpu = sidecar["gpu"]
    if tensorrt_version and sidecar["tensorrt_version"] != tensorrt_version:
        why.append(f"built with TensorRT {sidecar['tensorrt_version']}, this is TensorRT {tensorrt_version} "
                   "(an engine loads only in the TensorRT version that built it)")
    if gpu is not None:
        if gpu.compute_capability and have_gpu["compute_capability"] != gpu.compute_capability:
            why.append(f"built for compute capability {have_gpu['compute_capability']} ({have_gpu['name']}), "
                       f"this GPU is {gpu.compute_capability} ({gpu.name})")
        elif gpu.name and have_gpu["name"] != gpu.name:
            why.append(f"built on a {have_gpu['name']}, this GPU is a {gpu.name}")
        elif gpu.uuid and have_gpu["uuid"] != gpu.uuid and not allow_same_model_gpu:
            why.append(f"built on GPU {have_gpu['uuid']}, this is GPU {gpu.uuid} (same model, {gpu.name}; "
                       "allow an engine from an identical GPU to accept it)")
    if onnx_sha256 and sidecar["onnx_sha256"] != onnx_sha256:
        why.append(f"built from ONNX sha256 {_short(sidecar['onnx_sha256'])}..., "
                   f"the ONNX given is {_short(onnx_sha256)}...")
    if external_data_sha256 is not None and sidecar.get("external_data_sha256", "") != external_data_sha256:
        why.append(f"built with {_external_data_text(sidecar.get('external_data_sha256', ''))}, the ONNX given has "
                   f"{_external_data_text(external_data_sha256)} (the files its tensors are kept in changed)")
    if engine_sha256 and sidecar["engine_sha256"] != engine_sha256:
        why.append(f"engine file sha256 {_short(engine_sha256)}... differs from the sidecar's "
                   f"{_short(sidecar['engine_sha256'])}... (the file changed after it was built, or is corrupt)")
    if precision and sidecar["precision"] != precision:
        why.append(f"built for precision {sidecar['precision']}, {precision} was asked for")
    if profiles is not None and profiles_text(sidecar["profiles"]) != profiles_text(profiles):
        why.append(f"built with profiles {profiles_text(sidecar['profiles'])}, asked for {profiles_text(profiles)}")
    if concurrency is not None and sidecar["concurrency"] != concurrency:
        why.append(f"built for {sidecar['concurrency']} concurrent context(s) per profile, asked for {concurrency}")
    if workspace_bytes is not None and sidecar["workspace_bytes"] != workspace_bytes:
        why.append(f"built with workspace {sidecar['workspace_bytes']} bytes, asked for {workspace_bytes}")
    if dla_core is not None and sidecar["dla_core"] != dla_core:
        why.append(f"built for DLA core {sidecar['dla_core']}, asked for {dla_core} (-1 means GPU only)")
    return why


# ---- the running machine ----------------------------------------------------------------------------


def cuda_runtime():
    """cuda-python's runtime module (cuda.bindings.runtime in 12.6+, cuda.cudart before)."""
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        try:
            from cuda import cudart
        except ImportError:
            return None
    return cudart


def gpu_identity(device: int = 0) -> GpuIdentity:
    """Name, compute capability and UUID of CUDA device `device`: from the native module when it was
    built with CUDA, else from cuda-python. TensorRTUnavailableError says why when neither can tell."""
    try:
        from ifrt.native import load

        devices, error = load().cuda_devices()
    except ImportError:
        devices, error = [], "native module missing"
    for d in devices:
        if d["index"] == device:
            return GpuIdentity(d["name"], d["compute_capability"], d["uuid"])
    cudart = cuda_runtime()
    if cudart is not None:
        err, prop = cudart.cudaGetDeviceProperties(device)
        if int(err) == 0:
            raw = bytes(prop.uuid.bytes)
            h = raw.hex()
            uuid = f"GPU-{h[0:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"
            name = prop.name.decode() if isinstance(prop.name, bytes) else str(prop.name)
            return GpuIdentity(name.rstrip("\x00"), f"{prop.major}.{prop.minor}", uuid)
        error = f"cudaGetDeviceProperties({device}) failed: {err}"
    raise TensorRTUnavailableError(f"CUDA device {device} is not visible ({error or 'no such device'})")


def import_tensorrt():
    """The tensorrt module, or TensorRTUnavailableError naming what to install."""
    try:
        import tensorrt
    except ImportError as exc:
        raise TensorRTUnavailableError(f"TensorRT is not installed ({exc}); {INSTALL_TENSORRT}") from None
    return tensorrt


def check_engine(engine_path: str | os.PathLike, *, device: int = 0, allow_same_model_gpu: bool = False,
                 tensorrt_version: str | None = None) -> list[str]:
    """Why `engine_path` cannot run on this machine ([] when it can): its sidecar against the running
    TensorRT (imported unless `tensorrt_version` is given), the GPU `device`, and the file's sha256."""
    sidecar = read_sidecar(sidecar_path(engine_path))
    if tensorrt_version is None:
        tensorrt_version = tensorrt_version_triple(import_tensorrt().__version__)
    return sidecar_mismatches(sidecar, tensorrt_version=tensorrt_version, gpu=gpu_identity(device),
                              allow_same_model_gpu=allow_same_model_gpu, engine_sha256=sha256_file(engine_path))


# ---- the native executor -----------------------------------------------------------------------------


def _native_engine_class():
    from ifrt.native import NativeUnavailableError, load

    try:
        native = load()
    except NativeUnavailableError as exc:
        raise TensorRTUnavailableError(str(exc)) from None
    engine = getattr(native, "Engine", None)
    if engine is None:
        raise TensorRTUnavailableError(
            "this ifrt was built without the TensorRT executor. Install TensorRT 10 or newer with its ONNX "
            "parser and development headers (desktop: NVIDIA's TensorRT packages; Jetson: JetPack 6) and the "
            "CUDA toolkit, then reinstall ifrt from source (pip install .), or use the onnxruntime backend")
    return engine


class TensorRTEngine:
    """A TensorRT engine run by the native executor. `infer` is thread-safe and releases the GIL."""

    def __init__(self, native_engine) -> None:
        self._engine = native_engine

    @classmethod
    def load(cls, engine_path: str | os.PathLike, *, device: int = 0, contexts: int = 2,
             allow_same_model_gpu: bool = False) -> TensorRTEngine:
        """Load `model.engine`; refused (RuntimeError with every reason) when its sidecar does not
        match this GPU and TensorRT."""
        engine = _native_engine_class()
        return cls(engine.load(os.fspath(engine_path), device=device, contexts=contexts,
                               allow_same_model_gpu=allow_same_model_gpu))

    @classmethod
    def from_onnx(cls, onnx_path: str | os.PathLike, cache_dir: str | os.PathLike, *, precision: str = "fp16",
                  profiles: Sequence[Profile] = (), concurrency: int = 1, workspace_bytes: int = 0,
                  timing_cache: str | os.PathLike | None = None, dla_core: int = -1, device: int = 0,
                  contexts: int = 2) -> TensorRTEngine:
        """The cached engine for this ONNX and options on this GPU, built (minutes) on first use."""
        engine = _native_engine_class()
        return cls(engine.from_onnx(os.fspath(onnx_path), os.fspath(cache_dir), precision=precision,
                                    profiles=profiles_text(profiles), concurrency=concurrency,
                                    workspace_bytes=workspace_bytes,
                                    timing_cache=os.fspath(timing_cache) if timing_cache else "",
                                    dla_core=dla_core, device=device, contexts=contexts))

    @property
    def path(self) -> str:
        return self._engine.path

    @property
    def sidecar(self) -> dict[str, Any]:
        return self._engine.sidecar

    @property
    def tensors(self) -> list[dict[str, Any]]:
        return self._engine.tensors

    def infer(self, inputs: Mapping[str, Any], outputs: Sequence[str] | None = None) -> dict[str, Any]:
        """inputs: {name: numpy array}; returns {name: numpy array} for `outputs` (default: all)."""
        return self._engine.infer(dict(inputs), list(outputs) if outputs is not None else None)

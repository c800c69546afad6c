"""`ifrt export trt`: ONNX -> TensorRT engine (`model.engine`) plus its sidecar (`model.engine.json`),
with the TensorRT Python API, for TensorRT 10 (JetPack 6 ships 10.3) and TensorRT 11.

Precision. TensorRT 11 removed BuilderFlag.FP16, weakly typed networks and the INT8 calibrator:
every network is strongly typed, so fp16 comes from an FP16 ONNX (`ifrt export onnx --fp16`) and
int8 from a Q/DQ-quantized ONNX. On TensorRT 10 an FP16 ONNX is built strongly typed the same way,
and a fp32 ONNX is built at fp16 with BuilderFlag.FP16. Version differences are guarded on
`trt.__version__` and use enum names only (TensorRT 11 renumbered the enums).

Device buffers (the post-build check run) use cuda-python: NVIDIA's own bindings, published as
wheels for x86_64 and aarch64 (Jetson) with no compile step, working on the CUDA primary context
that TensorRT and the native runtime share.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ifrt._version import __version__
from ifrt.engine import (
    PRECISIONS,
    EngineBuildSpec,
    Profile,
    TensorRTUnavailableError,
    cache_engine_name,
    cache_key,
    cuda_runtime,
    default_image_profile,
    expand_profiles,
    external_data_sha256,
    gpu_identity,
    import_tensorrt,
    make_sidecar,
    profiles_text,
    read_sidecar,
    sidecar_mismatches,
    sidecar_path,
    tensorrt_major,
    tensorrt_version_triple,
)
from ifrt.imageio import write_bytes_atomic as write_atomic
from ifrt.model_package import sha256_file

log = logging.getLogger("ifrt.export.trt")


class EngineBuildError(RuntimeError):
    """The ONNX or the options cannot give an engine; the message says what to change."""


@dataclass
class TrtBuildConfig:
    precision: str = "fp16"  # fp32 | fp16 | int8
    profiles: list[Profile] = field(default_factory=list)  # empty: the ONNX has static shapes
    concurrency: int = 1  # copies of each profile: threads that may run one shape range at once
    workspace_bytes: int = 0  # 0: TensorRT's default
    timing_cache: str | None = None  # read before and updated after the build
    dla_core: int = -1  # Jetson DLA core (GPU fallback on); -1: GPU only
    device: int = 0


@dataclass
class TrtExportResult:
    engine_path: Path
    sidecar_path: Path
    sidecar: dict[str, Any]
    built: bool  # False when an up-to-date engine was already there
    seconds: float


def _logger(trt):
    """A TensorRT logger that hands messages to Python logging ("ifrt.export.trt")."""

    class _Logger(trt.ILogger):
        def __init__(self) -> None:
            trt.ILogger.__init__(self)

        def log(self, severity, msg) -> None:
            S = trt.ILogger.Severity
            if severity in (S.INTERNAL_ERROR, S.ERROR):
                log.error("TensorRT: %s", msg)
            elif severity == S.WARNING:
                log.warning("TensorRT: %s", msg)
            elif severity == S.INFO:
                log.info("TensorRT: %s", msg)
            else:
                log.debug("TensorRT: %s", msg)

    return _Logger()


def onnx_metadata(onnx_path: Path) -> dict[str, str] | None:
    """The ONNX's metadata_props (class names, normalization, ...), copied into the sidecar; None when
    the onnx package is not installed."""
    try:
        import onnx
    except ImportError:
        log.info("onnx not installed: the sidecar will not carry the model metadata")
        return None
    model = onnx.load(str(onnx_path), load_external_data=False)
    return {p.key: p.value for p in model.metadata_props}


def _parse(trt, builder, logger, onnx_path: Path, strongly_typed: bool):
    flags = 0
    if strongly_typed and tensorrt_major(trt.__version__) < 11:
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "\n  ".join(f"{parser.get_error(i).desc()} (node {parser.get_error(i).node()})"
                             for i in range(parser.num_errors))
        raise EngineBuildError(f"{onnx_path}: the TensorRT ONNX parser rejected the model:\n  {errors}")
    return network, parser


def _network_types(trt, network) -> tuple[bool, bool]:
    """(has_half, has_qdq): an FP16 ONNX, a Q/DQ-quantized ONNX."""
    has_half = has_qdq = False
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        if layer.type in (trt.LayerType.QUANTIZE, trt.LayerType.DEQUANTIZE):
            has_qdq = True
        for j in range(layer.num_outputs):
            if layer.get_output(j).dtype == trt.DataType.HALF:
                has_half = True
    return has_half, has_qdq


def _add_profiles(trt, builder, network, config, profiles: Sequence[Profile], concurrency: int,
                  onnx_path: Path) -> list[Profile]:
    """Adds `profiles`, or the default profile (`concurrency` times) for a dynamic `image` input when
    none is given; returns the profiles added."""
    inputs = {network.get_input(i).name: tuple(network.get_input(i).shape) for i in range(network.num_inputs)}
    dynamic = {name: shape for name, shape in inputs.items() if any(d < 0 for d in shape)}
    profiles = list(profiles)
    if not profiles:
        if not dynamic:
            return []
        if list(dynamic) != ["image"] or len(dynamic["image"]) != 4:
            listed = ", ".join(f"{n} ({'x'.join(map(str, s))})" for n, s in dynamic.items())
            raise EngineBuildError(
                f"{onnx_path}: inputs with dynamic dims need an optimization profile: {listed}; "
                "give one with --profile, e.g. --profile image:1x1x256x256/1x1x512x512/4x1x1024x1024")
        profiles = [default_image_profile(dynamic["image"])] * max(1, concurrency)
        log.info("%s: no optimization profile given, using %s", onnx_path, profiles_text(profiles[:1]))
    for index, ranges in enumerate(profiles):
        profile = builder.create_optimization_profile()
        for name, r in ranges.items():
            if name not in inputs:
                raise EngineBuildError(f"{onnx_path}: profile names input '{name}', "
                                       f"the model's inputs are: {', '.join(inputs)}")
            if len(r["min"]) != len(inputs[name]):
                raise EngineBuildError(f"{onnx_path}: profile for '{name}' has rank {len(r['min'])}, "
                                       f"the input has rank {len(inputs[name])}")
            profile.set_shape(name, r["min"], r["opt"], r["max"])
        if config.add_optimization_profile(profile) < 0:
            raise EngineBuildError(f"{onnx_path}: optimization profile {index} is invalid or misses a dynamic input")
    return profiles


def _attach_timing_cache(config, path: str | None):
    if not path:
        return None
    blob = Path(path).read_bytes() if Path(path).is_file() else b""
    cache = config.create_timing_cache(blob)
    if cache is None and blob:
        log.warning("%s: timing cache unreadable, starting a new one", path)
        cache = config.create_timing_cache(b"")
    if not config.set_timing_cache(cache, ignore_mismatch=False):
        log.warning("%s: timing cache was made by another GPU or TensorRT version, starting a new one", path)
        cache = config.create_timing_cache(b"")
        if not config.set_timing_cache(cache, ignore_mismatch=False):
            log.warning("%s: TensorRT refused a new timing cache; building without one", path)
            return None
    return cache


def build_plan(onnx_path: Path, cfg: TrtBuildConfig,
               profiles: Sequence[Profile]) -> tuple[bytes, bool, list[Profile]]:
    """Serialized engine, whether it was built strongly typed, and the profiles it was built with.
    Needs TensorRT and a GPU."""
    trt = import_tensorrt()
    major = tensorrt_major(trt.__version__)
    logger = _logger(trt)
    builder = trt.Builder(logger)

    network, parser = _parse(trt, builder, logger, onnx_path, strongly_typed=major >= 11)
    has_half, has_qdq = _network_types(trt, network)
    strongly_typed = major >= 11
    if major >= 11 and cfg.precision == "fp16" and not has_half:
        raise EngineBuildError(f"{onnx_path}: is a fp32 model; TensorRT {major} takes FP16 from the model's own "
                               "types: export an FP16 ONNX (`ifrt export onnx --fp16`) and build from that")
    if major < 11 and has_half:
        # An FP16 ONNX already says where half precision is safe: build it as typed, like TensorRT 11.
        del network, parser
        network, parser = _parse(trt, builder, logger, onnx_path, strongly_typed=True)
        strongly_typed = True
    if cfg.precision == "int8" and not has_qdq:
        raise EngineBuildError(f"{onnx_path}: int8 needs a Q/DQ-quantized ONNX (QuantizeLinear/DequantizeLinear "
                               "nodes calibrated offline); TensorRT 11 has no INT8 calibrator")
    if cfg.precision == "fp32" and has_half:
        raise EngineBuildError(f"{onnx_path}: is an FP16 model; ask for --fp16, or build from the fp32 ONNX")
    if cfg.precision != "int8" and has_qdq:
        # Q/DQ nodes place INT8 whatever is asked: the engine and its sidecar would disagree.
        raise EngineBuildError(f"{onnx_path}: is an INT8 (Q/DQ) model; ask for --int8, or build from the fp32 or "
                               "fp16 ONNX")

    config = builder.create_builder_config()
    if major < 11 and not strongly_typed:
        if cfg.precision in ("fp16", "int8"):
            config.set_flag(trt.BuilderFlag.FP16)
        if cfg.precision == "int8":
            config.set_flag(trt.BuilderFlag.INT8)  # Q/DQ nodes place INT8; no calibrator
    if cfg.workspace_bytes > 0:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, cfg.workspace_bytes)
    if cfg.dla_core >= 0:
        if cfg.dla_core >= builder.num_DLA_cores:
            raise EngineBuildError(f"DLA core {cfg.dla_core} asked for, this device has {builder.num_DLA_cores} "
                                   "(DLA exists on Jetson AGX Orin / Xavier)")
        if cfg.precision == "fp32":
            raise EngineBuildError("DLA runs fp16 or int8 only; use --fp16")
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = cfg.dla_core
        config.set_flag(trt.BuilderFlag.GPU_FALLBACK)  # layers DLA cannot run go to the GPU
    built_profiles = _add_profiles(trt, builder, network, config, profiles, cfg.concurrency, onnx_path)
    timing_cache = _attach_timing_cache(config, cfg.timing_cache)

    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise EngineBuildError(f"{onnx_path}: TensorRT could not build an engine (see the TensorRT errors above)")
    if timing_cache is not None and cfg.timing_cache:
        Path(cfg.timing_cache).parent.mkdir(parents=True, exist_ok=True)
        write_atomic(cfg.timing_cache, bytes(memoryview(config.get_timing_cache().serialize())))
    return bytes(memoryview(serialized)), strongly_typed, built_profiles


def build_spec(onnx_path: Path, cfg: TrtBuildConfig, tensorrt_version: str) -> EngineBuildSpec:
    if cfg.precision not in PRECISIONS:
        raise EngineBuildError(f"precision '{cfg.precision}' is not one of {', '.join(PRECISIONS)}")
    return EngineBuildSpec(
        onnx_sha256=sha256_file(onnx_path),
        external_data_sha256=external_data_sha256(onnx_path),
        tensorrt_version=tensorrt_version_triple(tensorrt_version),
        gpu=gpu_identity(cfg.device),
        precision=cfg.precision,
        profiles=expand_profiles(cfg.profiles, cfg.concurrency),
        concurrency=cfg.concurrency,
        workspace_bytes=cfg.workspace_bytes,
        dla_core=cfg.dla_core,
    )


@contextlib.contextmanager
def engine_build_lock(engine_path: Path) -> Iterator[None]:
    """Held from the up-to-date check to the written sidecar: the flock on `<engine>.lock` that the native
    runtime's engine cache takes too, so that two builders of one engine (an export and a first run, or two
    runs) build it once, the second waiting and then finding it up to date. Without flock (Windows) or a
    writable folder it does nothing, as before."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    try:
        engine_path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(f"{engine_path}.lock", "a+")  # held open for the whole build
    except OSError:
        yield
        return
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.warning("%s: another process is building this engine; waiting for it", engine_path)
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def export_engine(onnx_path: str | os.PathLike, engine_path: str | os.PathLike | None = None, *,
                  cache_dir: str | os.PathLike | None = None, cfg: TrtBuildConfig | None = None,
                  force: bool = False, verify: bool = True) -> TrtExportResult:
    """Build `engine_path` (default: the ONNX path with `.engine`) or, with `cache_dir`, the engine the
    native runtime's cache would build (`<stem>-<key>.engine`), plus the sidecar. An existing engine
    whose sidecar matches this ONNX, these options, this TensorRT and this GPU is kept unless `force`."""
    cfg = cfg or TrtBuildConfig()
    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise FileNotFoundError(f"{onnx_path}: ONNX model not found")
    trt = import_tensorrt()
    spec = build_spec(onnx_path, cfg, trt.__version__)
    if cache_dir is not None:
        engine_path = Path(cache_dir) / cache_engine_name(onnx_path, spec)
    engine_path = Path(engine_path) if engine_path else onnx_path.with_suffix(".engine")
    side = sidecar_path(engine_path)
    start = time.perf_counter()
    with engine_build_lock(engine_path):
        return _export_engine(onnx_path, engine_path, side, cfg, spec, trt, force, verify, start)


def _export_engine(onnx_path: Path, engine_path: Path, side: Path, cfg: TrtBuildConfig, spec: EngineBuildSpec, trt,
                   force: bool, verify: bool, start: float) -> TrtExportResult:
    if engine_path.is_file() and side.is_file() and not force:
        try:
            existing = read_sidecar(side)
            reasons = sidecar_mismatches(
                existing, tensorrt_version=spec.tensorrt_version, gpu=spec.gpu,
                onnx_sha256=spec.onnx_sha256, external_data_sha256=spec.external_data_sha256,
                engine_sha256=sha256_file(engine_path), precision=spec.precision,
                # none asked for: the default for this ONNX, which the ONNX and the key's default_profile pin
                profiles=spec.profiles or None, concurrency=spec.concurrency,
                workspace_bytes=spec.workspace_bytes, dla_core=spec.dla_core)
            if not reasons and existing["cache_key"] != cache_key(spec):
                reasons = [f"its sidecar records cache key {existing['cache_key'][:12]}..., this request's is "
                           f"{cache_key(spec)[:12]}... (another default profile or an older ifrt)"]
        except ValueError as exc:
            reasons = [str(exc)]
        if not reasons:
            log.info("%s: up to date, kept", engine_path)
            return TrtExportResult(engine_path, side, existing, False, time.perf_counter() - start)
        log.warning("%s: rebuilding: %s", engine_path, "; ".join(reasons))

    log.warning("%s: building a TensorRT %s %s engine on %s (minutes)", onnx_path, trt.__version__,
                cfg.precision, spec.gpu.name)
    plan, strongly_typed, built_profiles = build_plan(onnx_path, cfg, spec.profiles)
    sidecar = make_sidecar(spec, engine_sha256=hashlib.sha256(plan).hexdigest(), strongly_typed=strongly_typed,
                           ifrt_version=__version__, metadata=onnx_metadata(onnx_path),
                           built_profiles=built_profiles)
    if verify:
        verify_plan(plan, cfg.device)
    engine_path.parent.mkdir(parents=True, exist_ok=True)
    # Engine first, sidecar last: a sidecar only ever describes a complete engine.
    write_atomic(engine_path, plan)
    write_atomic(side, (json.dumps(sidecar, indent=2) + "\n").encode())
    return TrtExportResult(engine_path, side, sidecar, True, time.perf_counter() - start)


def _check(result, what: str):
    """cuda-python calls return (error, value...); raise on an error."""
    err, *rest = result if isinstance(result, tuple) else (result,)
    if int(err) != 0:
        raise RuntimeError(f"CUDA error during {what}: {err}")
    return rest[0] if len(rest) == 1 else rest


def verify_plan(plan: bytes, device: int = 0) -> dict[str, tuple[int, ...]]:
    """Deserialize `plan` and run it once on a random image at each input's opt shape (profile 0);
    raise EngineBuildError if any output is NaN or infinite (an FP16 overflow). Returns output shapes."""
    import numpy as np

    trt = import_tensorrt()
    cudart = cuda_runtime()
    if cudart is None:
        raise TensorRTUnavailableError("cuda-python is not installed (pip install 'ifrt[trt]'); "
                                       "it provides the device buffers for the check run (or pass --no-verify)")
    _check(cudart.cudaSetDevice(device), "cudaSetDevice")
    engine = trt.Runtime(_logger(trt)).deserialize_cuda_engine(plan)
    if engine is None:
        raise EngineBuildError("the engine just built does not deserialize")
    context = engine.create_execution_context()
    stream = _check(cudart.cudaStreamCreate(), "cudaStreamCreate")
    rng = np.random.default_rng(0)
    buffers, host_out = [], {}
    try:
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        for name in inputs:
            shape = tuple(engine.get_tensor_shape(name))
            if any(d < 0 for d in shape):
                shape = tuple(engine.get_tensor_profile_shape(name, 0)[1])  # opt
            context.set_input_shape(name, shape)
            host = rng.random(shape).astype(trt.nptype(engine.get_tensor_dtype(name)))
            ptr = _check(cudart.cudaMalloc(max(host.nbytes, 1)), "cudaMalloc")
            buffers.append(ptr)
            _check(cudart.cudaMemcpy(ptr, host.ctypes.data, host.nbytes, cudart.cudaMemcpyKind.cudaMemcpyHostToDevice),
                   "copying an input")
            context.set_tensor_address(name, int(ptr))
        for name in names:
            if name in inputs:
                continue
            host = np.empty(tuple(context.get_tensor_shape(name)), dtype=trt.nptype(engine.get_tensor_dtype(name)))
            ptr = _check(cudart.cudaMalloc(max(host.nbytes, 1)), "cudaMalloc")
            buffers.append(ptr)
            context.set_tensor_address(name, int(ptr))
            host_out[name] = (host, ptr)
        if not context.execute_async_v3(int(stream)):
            raise EngineBuildError("the engine just built failed to run")
        _check(cudart.cudaStreamSynchronize(stream), "running the engine")
        for name, (host, ptr) in host_out.items():
            _check(cudart.cudaMemcpy(host.ctypes.data, ptr, host.nbytes, cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost),
                   "copying an output")
            if np.issubdtype(host.dtype, np.floating) and not np.isfinite(host).all():
                raise EngineBuildError(f"output '{name}' has NaN or infinite values on a test image "
                                       "(FP16 overflow? build --fp32 or check the FP16 ONNX)")
    finally:
        for ptr in buffers:
            cudart.cudaFree(ptr)
        cudart.cudaStreamDestroy(stream)
    return {name: host.shape for name, (host, _) in host_out.items()}

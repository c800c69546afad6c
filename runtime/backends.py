"""Inference backends behind one interface: `run(graph, image_tensor) -> {output name: array}`.

- `trt`: the native TensorRT executor; engines built from the package's ONNX on first use and cached
  per GPU/TensorRT/options (`ifrt.engine`).
- `ort`: onnxruntime, CUDA provider when present, else CPU.
- `torch`: the training weights run by PyTorch (the reference; only when torch is installed).

`auto` takes the first available in that order (fastest first)."""

from __future__ import annotations

import importlib.util
import os
import threading
from pathlib import Path

import numpy as np

from ifrt.model_package import ModelPackage

BACKENDS = ("trt", "ort", "torch")


class BackendUnavailableError(RuntimeError):
    """The requested backend cannot run here; the message says what to install."""


class InferenceError(RuntimeError):
    """A backend failed to run a graph on one batch (onnxruntime out of memory, a kernel's error): that image
    fails, the next may not. The message names the graph and the backend's own message."""


def ort_errors() -> tuple[type[Exception], ...]:
    """onnxruntime's own exception classes (Fail, InvalidArgument, RuntimeException, ...): plain `Exception`
    subclasses, not RuntimeError, so they must be named to be caught."""
    from onnxruntime.capi import onnxruntime_pybind11_state as state

    return tuple(c for c in vars(state).values() if isinstance(c, type) and issubclass(c, Exception))


def export_command(root: Path, precision: str) -> str:
    """The command that writes `precision` ONNX graphs next to the weights in `root`."""
    return f"ifrt export onnx {root} -o {root}" + ("" if precision == "fp32" else f" --{precision}")


def require_onnx_graphs(package: ModelPackage, precision: str, backend: str) -> None:
    """Refuse, when it loads, a package without ONNX graphs of `precision` (a training run's `best/` holds only
    weights), so that `auto` moves on to the torch backend and an explicit choice says what to do."""
    if not any((g if precision == "fp32" else f"{g}.{precision}") in package.graphs for g in ("full", "focus")):
        found = ", ".join(sorted(package.graphs)) or "none"
        raise BackendUnavailableError(
            f"{package.root}: no {precision} ONNX graphs here (found: {found}), so the {backend} backend cannot run "
            f"this model; export them with `{export_command(package.root, precision)}`"
            + (" or use the torch backend" if package.weights is not None and precision == "fp32" else ""))


class OrtBackend:
    name = "ort"

    def __init__(self, package: ModelPackage, precision: str = "fp32", threads: int | None = None):
        require_onnx_graphs(package, precision, self.name)
        import onnxruntime as ort

        self.package, self.precision = package, precision
        available = ort.get_available_providers()
        self.providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
        self._options = ort.SessionOptions()
        self._options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self._options.intra_op_num_threads = threads or os.cpu_count() or 1
        # Idle onnxruntime workers spin between runs by default, taking the cores the native pre- and
        # postprocessing need in the live loop; blocking instead costs nothing measurable per run.
        self._options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._sessions: dict = {}
        self._loading = threading.Lock()
        self._errors = ort_errors()
        self.device = "cuda" if self.providers[0] == "CUDAExecutionProvider" else "cpu"

    def _session(self, graph: str):
        """The graph's onnxruntime session, its output names and its input's fixed dims, made on first use, once:
        threads whose first calls meet wait for the one loading it rather than each loading a copy (a session
        holds the model's weights, and on a GPU its own memory arena). Running a session needs no lock."""
        if graph not in self._sessions:
            with self._loading:
                if graph not in self._sessions:
                    self._sessions[graph] = self._load(graph)
        return self._sessions[graph]

    def _load(self, graph: str):
        import onnxruntime as ort

        path = self.package.graph(graph, self.precision)
        session = ort.InferenceSession(str(path), self._options, providers=self.providers)
        return session, [o.name for o in session.get_outputs()], fixed_input_shape(session)

    def run(self, graph: str, image: np.ndarray) -> dict[str, np.ndarray]:
        session, names, fixed = self._session(graph)
        image = np.ascontiguousarray(image, np.float32)
        if fixed[2:] != (None, None) and tuple(image.shape[2:]) != fixed[2:]:
            raise ValueError(f"{self.package.graph(graph, self.precision)}: the graph takes {fixed[2]}x{fixed[3]} "
                             f"images only (exported with --static), not {image.shape[2]}x{image.shape[3]}; export "
                             "it without --static, or give frames of that size")
        if fixed[0] is not None and len(image) != fixed[0]:  # a static batch: calls of that many, the last padded
            batch, parts = fixed[0], []
            for start in range(0, len(image), batch):
                chunk = image[start:start + batch]
                padded = np.concatenate([chunk, np.zeros((batch - len(chunk), *chunk.shape[1:]), np.float32)])
                parts.append([out[:len(chunk)] for out in self._infer(graph, session, names, padded)])
            return {name: np.concatenate([part[k] for part in parts]) for k, name in enumerate(names)}
        return dict(zip(names, self._infer(graph, session, names, image), strict=True))

    def _infer(self, graph: str, session, names: list[str], image: np.ndarray) -> list[np.ndarray]:
        try:
            return session.run(names, {"image": image})
        except self._errors as exc:
            path = self.package.graph(graph, self.precision)
            raise InferenceError(f"{path}: onnxruntime could not run the {graph} graph on a batch of "
                                 f"{len(image)} x {image.shape[2]}x{image.shape[3]}: {exc}") from exc


def fixed_input_shape(session) -> tuple[int | None, ...]:
    """The image input's dims, None where the graph takes any size (a named dynamic dim)."""
    return tuple(d if isinstance(d, int) else None for d in session.get_inputs()[0].shape)


class TorchBackend:
    name = "torch"

    def __init__(self, package: ModelPackage, precision: str = "fp32", device: str | None = None):
        # Refused rather than ignored: a run recorded as fp16 must have run in fp16, and `auto` then says why
        # no backend loads instead of silently running fp32.
        if precision != "fp32":
            raise BackendUnavailableError(f"the torch backend runs fp32 only, not {precision} (use the ort or trt "
                                          f"backend with {precision} ONNX graphs, or precision fp32)")
        if importlib.util.find_spec("torch") is None:
            raise BackendUnavailableError("the torch backend needs PyTorch: pip install 'ifrt[train]'")
        if package.weights is None:
            raise BackendUnavailableError(f"{package.root}: no model.safetensors here, so the torch backend cannot "
                                          "run this model (use the ort backend)")
        import torch

        from ifrt.train.model import load_model

        self.torch = torch
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.model = load_model(package.root, map_location="cpu").to(self.device)
        self._focus = self.model.focus_model() if self.model.cfg.variant != "st" else None

    def run(self, graph: str, image: np.ndarray) -> dict[str, np.ndarray]:
        module = self.model if graph == "full" else self._focus
        if module is None:
            raise BackendUnavailableError("this model has no focus graph (single-task variant)")
        with self.torch.no_grad():
            outputs = module(self.torch.from_numpy(np.ascontiguousarray(image, np.float32)).to(self.device))
        return {k: v.float().cpu().numpy() for k, v in outputs.items()}


def engine_cache_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """Where the trt backend keeps its engines: `cache_dir`, else $IFRT_ENGINE_CACHE, else
    $XDG_CACHE_HOME/ifrt/engines (~/.cache/ifrt/engines); an empty variable counts as unset, ~ is expanded."""
    chosen = cache_dir or os.environ.get("IFRT_ENGINE_CACHE") or \
        Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ifrt" / "engines"
    return Path(chosen).expanduser()


def trt_onnx_precision(package: ModelPackage, graph: str, precision: str) -> str:
    """The ONNX a TensorRT engine of `precision` is built from: the graph's own fp16 or int8 export when the
    package has it (TensorRT 11 takes FP16 only from the graph's types, and INT8 only from Q/DQ graphs),
    else fp32 for fp16 and fp32 engines. INT8 without a Q/DQ graph cannot be built."""
    if f"{graph}.{precision}" in package.graphs:
        return precision
    if precision == "int8":
        raise BackendUnavailableError(f"{package.root}: no {graph}.int8.onnx here, and TensorRT builds INT8 only "
                                      f"from Q/DQ graphs; export them with `{export_command(package.root, 'int8')}`")
    return "fp32"


class TrtBackend:
    name = "trt"

    def __init__(self, package: ModelPackage, precision: str = "fp16", cache_dir: str | Path | None = None,
                 device: int = 0):
        from ifrt import native
        from ifrt.engine import TensorRTEngine, TensorRTUnavailableError

        native_error = native.load().NativeError
        self.package, self.device = package, "cuda"
        cache = engine_cache_dir(cache_dir)
        require_onnx_graphs(package, precision if precision != "fp16" or "full.fp16" in package.graphs else "fp32",
                            self.name)
        self._engines = {}
        for graph in ("full", "focus"):
            if graph not in package.graphs:
                continue
            onnx = package.graph(graph, trt_onnx_precision(package, graph, precision))
            try:
                self._engines[graph] = TensorRTEngine.from_onnx(onnx, cache, precision=precision, device=device)
            except TensorRTUnavailableError as exc:
                raise BackendUnavailableError(str(exc)) from exc
            except native_error as exc:  # the build or the load failed
                # Unavailable rather than fatal, so that backend "auto" goes on to onnxruntime.
                raise BackendUnavailableError(f"{onnx}: TensorRT could not build or load an engine: {exc}") from exc

    def run(self, graph: str, image: np.ndarray) -> dict[str, np.ndarray]:
        return self._engines[graph].infer({"image": np.ascontiguousarray(image, np.float32)})


BACKEND_CLASSES: dict[str, type] = {"trt": TrtBackend, "ort": OrtBackend, "torch": TorchBackend}


def available_backends() -> list[str]:
    """Backends that can be constructed here, fastest first (without loading a model)."""
    found = []
    try:
        from ifrt import native

        core = native.load()
        if core.build_info()["with_tensorrt"] and core.cuda_devices()[0]:
            found.append("trt")
    except ImportError:
        pass
    if importlib.util.find_spec("onnxruntime") is not None:
        found.append("ort")
    if importlib.util.find_spec("torch") is not None:
        found.append("torch")
    return found


def backend_options(cls: type) -> list[str]:
    """The keyword options a backend class takes, in its signature's order."""
    import inspect

    return [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "package")]


def check_backend_options(requested: str, options: dict, per_backend: dict[str, dict]) -> None:
    """Refuse, before anything loads, options a backend that may be constructed does not take: under `auto`
    that is any backend, so each option must go to the backend that takes it through `per_backend`."""
    names = BACKENDS if requested == "auto" else (requested,)
    for name, given in per_backend.items():
        if name not in BACKEND_CLASSES:
            raise ValueError(f"per_backend: {name!r} is not a backend (expected {', '.join(BACKENDS)})")
        unknown = sorted(set(given) - set(backend_options(BACKEND_CLASSES[name])))
        if unknown:
            raise ValueError(f"per_backend[{name!r}]: {', '.join(unknown)}: not an option of the {name} backend, "
                             f"which takes {', '.join(backend_options(BACKEND_CLASSES[name]))}")
    refused = {name: sorted(set(options) - set(backend_options(BACKEND_CLASSES[name]))) for name in names}
    unknown = sorted({option for options_refused in refused.values() for option in options_refused})
    if not unknown:
        return
    if requested != "auto":
        raise ValueError(f"{', '.join(unknown)}: not an option of the {requested} backend, which takes "
                         f"{', '.join(backend_options(BACKEND_CLASSES[requested]))}")
    takes = {name: [o for o in unknown if o in backend_options(BACKEND_CLASSES[name])] for name in BACKENDS}
    orphans = [o for o in unknown if not any(o in taken for taken in takes.values())]
    if orphans:
        listed = "; ".join(f"{n}: {', '.join(backend_options(c))}" for n, c in BACKEND_CLASSES.items())
        raise ValueError(f"{', '.join(orphans)}: not an option of any backend (they take {listed})")
    routed = ", ".join(f"{name!r}: {{{', '.join(f'{o!r}: ...' for o in taken)}}}" for name, taken in takes.items()
                       if taken)
    raise ValueError(f"{', '.join(unknown)}: not an option of every backend, and backend 'auto' may load any of "
                     f"them: give each option to the backend that takes it, per_backend={{{routed}}}")


def create_backend(package: ModelPackage, backend: str = "auto", *, per_backend: dict[str, dict] | None = None,
                   **options):
    """Construct `backend` for `package`; `auto` tries trt, ort, torch in order and keeps the first that loads.

    `options` go to whichever backend is constructed; `per_backend` maps a backend name to options only that
    backend takes (`{"ort": {"threads": 1}}`), so that `auto` can tune one backend without the others
    refusing an argument they do not know."""
    if backend not in ("auto", *BACKENDS):
        raise ValueError(f"backend {backend!r} is unknown (expected auto, {', '.join(BACKENDS)})")
    check_backend_options(backend, options, per_backend or {})
    candidates = available_backends() if backend == "auto" else [backend]
    errors = []
    for name in candidates:
        cls = BACKEND_CLASSES[name]
        try:
            return cls(package, **options, **(per_backend or {}).get(name, {}))
        except (BackendUnavailableError, ImportError) as exc:
            if backend != "auto":
                raise BackendUnavailableError(str(exc)) from exc
            errors.append(f"{name}: {exc}")
    raise BackendUnavailableError("no inference backend could load this model: " + "; ".join(errors))

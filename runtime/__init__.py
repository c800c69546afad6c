"""ifrt: real-time kidney immunofluorescence diagnosis, focus feedback and deblurring.

`import ifrt` is the deployable runtime: it never imports torch, onnx or tensorrt. Training lives in
`ifrt.train` (extra `ifrt[train]`), export in `ifrt.export` (extra `ifrt[export]`).

    session = ifrt.Session()                 # the bundled default model, fastest backend available
    result = session.predict("glomerulus.tif", patient_id="P001")     # a Result
    result.label, result.quality, result.quality_map
    ifrt.aggregate(results, by="patient")    # patient-level diagnosis over a stain panel (needs patient_id)
    session.focus(frame)                     # live focus feedback on a numpy frame: a FocusResult

Submodules such as `ifrt.imageio`, `ifrt.live` and `ifrt.acquisition` load on first use.
"""

from ifrt._version import __version__

__all__ = ["__version__", "Session", "Result", "FocusResult", "aggregate"]

_LAZY = {"Session": "ifrt.session", "Result": "ifrt.result", "FocusResult": "ifrt.result",
         "aggregate": "ifrt.patients"}
# Submodules reachable as attributes (`ifrt.normalize.normalize(...)`) without importing them first.
_SUBMODULES = ("acquisition", "engine", "export", "focus", "imageio", "live", "normalize", "patients", "postprocess",
               "preprocess", "train")


def __getattr__(name: str):
    # Loaded on first use so that `import ifrt` stays light (no native module or onnxruntime import).
    import importlib

    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    if name in _SUBMODULES:
        return importlib.import_module(f"ifrt.{name}")
    raise AttributeError(f"module 'ifrt' has no attribute {name!r}")

"""ifrt: real-time kidney immunofluorescence diagnosis, focus feedback and deblurring.

`import ifrt` is the deployable runtime: it never imports torch, onnx or tensorrt. Training lives in
`ifrt.train` (extra `ifrt[train]`), export in `ifrt.export` (extra `ifrt[export]`).
"""

from ifrt._version import __version__

__all__ = ["__version__"]

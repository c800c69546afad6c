"""`import ifrt` as the README uses it: submodules reachable as attributes, and nothing heavy imported."""

import subprocess
import sys

import pytest


def python(code: str) -> str:
    """Run `code` in a fresh interpreter (so that no earlier import hides a missing one) and return stdout."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()


@pytest.mark.parametrize("name", ["acquisition", "engine", "focus", "imageio", "live", "normalize", "patients",
                                  "postprocess", "preprocess"])
def test_a_submodule_the_readme_uses_is_an_attribute_of_ifrt(name):
    assert python(f"import ifrt; print(ifrt.{name}.__name__)") == f"ifrt.{name}"


def test_import_ifrt_imports_no_submodule_or_heavy_dependency():
    loaded = python("import sys, ifrt; print(sorted(m for m in sys.modules if m.split('.')[0] in "
                    "('ifrt', 'torch', 'onnxruntime', 'onnx', 'tensorrt', 'cv2')))")
    assert loaded == "['ifrt', 'ifrt._version']"


def test_an_unknown_attribute_of_ifrt_is_an_attribute_error():
    import ifrt

    with pytest.raises(AttributeError, match="module 'ifrt' has no attribute 'nonexistent'"):
        ifrt.nonexistent  # noqa: B018 - the attribute access is what is tested

"""The TensorRT backend against onnxruntime on the same model and tensors (`pytest -m gpu` on a machine
with a CUDA GPU and TensorRT; skipped elsewhere). Engines are built from the package's ONNX into a
temporary cache: fp32 engines must match onnxruntime to float rounding, fp16 engines within the
stated half-precision tolerance, with the same diagnosis and blur level."""

import numpy as np
import pytest

from ifrt import backends
from ifrt.model_package import open_model
from ifrt.normalize import apply_range, percentile_range

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif("trt" not in backends.available_backends(),
                       reason="needs TensorRT and a CUDA GPU (ifrt built with TensorRT)"),
]

TOLERANCE = {"fp32": 2e-3, "fp16": 5e-2}


def _batch(size=128, count=3, seed=0) -> np.ndarray:
    from ifrt.train.data.degrade import degrade
    from ifrt.train.data.synth import render_glomerulus

    rng = np.random.default_rng(seed)
    images = []
    for i in range(count):
        sharp = render_glomerulus(rng, ("IgAN", "MN", "DN", "LN")[i % 4], "IgG", size)
        image = degrade(sharp, rng, level=i % 5).image
        images.append(apply_range(image, *percentile_range(image)))
    return np.stack(images)[:, None].astype(np.float32)


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_trt_engines_agree_with_onnxruntime(tiny_package, tmp_path, precision):
    package = open_model(tiny_package)
    reference = backends.OrtBackend(package)
    engine = backends.TrtBackend(package, precision=precision, cache_dir=tmp_path)
    x = _batch()
    for graph in ("full", "focus"):
        expected, got = reference.run(graph, x), engine.run(graph, x)
        assert set(got) >= set(expected)
        for name, value in expected.items():
            np.testing.assert_allclose(got[name], value, atol=TOLERANCE[precision], err_msg=f"{graph}/{name}")
        for logits in ("diagnosis_logits", "blur_logits"):
            if logits in expected:
                np.testing.assert_array_equal(got[logits].argmax(1), expected[logits].argmax(1))

import os
import subprocess
import sys

import pytest


def run_ifrt(*args: str, check: bool = False, timeout: float = 300, **kwargs) -> subprocess.CompletedProcess:
    """Run the installed `ifrt` command line in a subprocess (as a user would)."""
    env = dict(os.environ, **kwargs.pop("env", {}))
    return subprocess.run([sys.executable, "-m", "ifrt", *args], capture_output=True, text=True,
                          timeout=timeout, check=check, env=env, **kwargs)


@pytest.fixture
def ifrt_cli():
    return run_ifrt


@pytest.fixture(scope="session")
def tiny_package(tmp_path_factory):
    """A complete model package from an untrained tiny DeepMT-ND: weights + config, full/focus ONNX in fp32
    and fp16 with sidecars, and export_report.json. Exported once per test run (about 30 s)."""
    torch = pytest.importorskip("torch")
    from ifrt.export import pipeline
    from ifrt.export.onnx_export import OnnxExportOptions
    from ifrt.train.model import build_model, model_config, save_model

    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("tiny_package")
    # Gated deblurring, a deeper refinement, the deconvolution bank without its in-focus filter and the blur-kind
    # head, as the default model has: their operators are in the graphs.
    model = build_model(model_config("tiny", "hier", class_names=["IgAN", "MN", "DN", "LN"], deblur_gate="quality",
                                     refine_width=6, refine_depth=3, deblur_bank=True, deblur_bank_in_focus=False,
                                     deblur_kind=True, class_prior=[0.4, 0.3, 0.2, 0.1]))
    with torch.no_grad():  # as trained: the parts that start at zero (the identity) are not, so every path counts
        for weight in model.parameters():
            if weight.ndim > 1 and not weight.any():
                weight.normal_(0, 0.1)
    save_model(model, root, extra={"train": {"epochs": 0}})
    pipeline.export_onnx(root, root, fp16=True, calibration_count=8, calibration_size=64,
                         options=OnnxExportOptions(example_size=64))
    return root

"""Backend parity: the same images through torch and onnxruntime, compared output by output."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .graphs import INPUT_NAME, graph_module


def onnx_outputs(path: str | Path, images: np.ndarray, batch: int = 4) -> dict[str, np.ndarray]:
    """Run an ONNX file with onnxruntime on CPU over `images` [N,1,H,W] float32, batch by batch (by the
    graph's own batch when it is static)."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    fixed = session.get_inputs()[0].shape[0]
    batch = fixed if isinstance(fixed, int) else batch
    names = [o.name for o in session.get_outputs()]
    chunks: dict[str, list[np.ndarray]] = {n: [] for n in names}
    for start in range(0, len(images), batch):
        for name, value in zip(names, session.run(names, {INPUT_NAME: images[start:start + batch]}), strict=True):
            chunks[name].append(value)
    return {n: np.concatenate(v) for n, v in chunks.items()}


def torch_outputs(model: torch.nn.Module, graph: str, images: np.ndarray, batch: int = 4) -> dict[str, np.ndarray]:
    module = graph_module(model, graph)
    chunks: dict[str, list[np.ndarray]] = {n: [] for n in module.output_names}
    with torch.no_grad():
        for start in range(0, len(images), batch):
            values = module(torch.from_numpy(images[start:start + batch]))
            for name, value in zip(module.output_names, values, strict=True):
                chunks[name].append(value.numpy())
    return {n: np.concatenate(v) for n, v in chunks.items()}


def psnr(reference: np.ndarray, test: np.ndarray, data_range: float = 1.0) -> float:
    mse = float(np.mean((reference.astype(np.float64) - test.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(data_range**2 / mse)


def compare(reference: dict[str, np.ndarray], test: dict[str, np.ndarray],
            sharp: np.ndarray | None = None) -> dict:
    """Max abs difference per output, argmax agreement of the logits, and the PSNR of `deblurred`: against
    the sharp references when given (the drift between backends), else of `test` against `reference`."""
    report: dict = {"max_abs_diff": {}, "argmax_agreement": {}}
    for name, ref in reference.items():
        report["max_abs_diff"][name] = float(np.abs(ref.astype(np.float64) - test[name]).max())
        if name.endswith("_logits"):
            report["argmax_agreement"][name] = float(np.mean(ref.argmax(1) == test[name].argmax(1)))
    if sharp is not None and "deblurred" in reference:
        ref_psnr = float(np.mean([psnr(s, d) for s, d in zip(sharp, reference["deblurred"], strict=True)]))
        test_psnr = float(np.mean([psnr(s, d) for s, d in zip(sharp, test["deblurred"], strict=True)]))
        report["deblurred_psnr"] = {"reference": ref_psnr, "test": test_psnr, "drift_db": abs(ref_psnr - test_psnr)}
    elif "deblurred" in reference:
        report["deblurred_psnr"] = {"test_vs_reference": float(np.mean(
            [psnr(r, t) for r, t in zip(reference["deblurred"], test["deblurred"], strict=True)]))}
    return report

"""`ifrt bench` prints its measurements as JSON, each against a baseline measured in the same run (the
numbers themselves are not asserted)."""

import json


def test_bench_native_prints_ratios_and_bandwidth_as_json(ifrt_cli):
    proc = ifrt_cli("bench", "native", "--size", "256", "--repeat", "2")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["frame"] == {"shape": [256, 256], "dtype": "uint16"}
    pre = report["preprocess"]
    assert pre["max_abs_diff_vs_numpy"] <= 1e-6  # the timed native output is the numpy result
    for key in ("native_ms", "numpy_opencv_ms", "speedup_vs_numpy_opencv", "fraction_of_memcpy"):
        assert pre[key] > 0, key
    assert report["memcpy_gbps"] > 0
    assert report["focus"]["native_over_opencv"] > 0


def test_bench_infer_measures_the_torch_baseline_whatever_backends_are_asked_for(ifrt_cli, tiny_package):
    import pytest

    pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    proc = ifrt_cli("bench", "infer", "--model", str(tiny_package), "--backends", "ort", "--sizes", "64",
                    "--batches", "1", "--repeat", "2")
    assert proc.returncode == 0, proc.stderr
    rows = {r["backend"]: r for r in json.loads(proc.stdout)["results"]}
    assert set(rows) == {"ort", "torch"}
    assert rows["torch"]["speedup_vs_torch"] == 1.0
    assert rows["ort"]["speedup_vs_torch"] == round(rows["torch"]["latency_ms"] / rows["ort"]["latency_ms"], 3)

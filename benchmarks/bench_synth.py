"""Synthetic database benchmark: generation speed, and the database's done-criteria measured at full size.

    python benchmarks/bench_synth.py [--patients 400] [--size 512] [--workers N] [--out DIR]

Prints one JSON object:
- generation: seconds and images/s to write the database (observed + sharp + blur map per image), and
  the CPU seconds it took, which give the wall time on an otherwise idle machine;
- degrade_ms: one degrade() call per frame size (training-time augmentation cost);
- intensity_lr_accuracy: logistic regression on a 64-bin histogram + mean/std/percentiles of the sharp
  references, trained on the train+val patients, scored on the test patients (4 classes; chance 0.25);
- laplacian_monotone: fraction of scenes whose variance of the Laplacian falls strictly with blur level,
  per blur kind (one scene and one camera seed per level series).
Needs scikit-learn (the dev extra) for the accuracy.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from ifrt.imageio import read_image
from ifrt.train.data.degrade import KINDS, DegradeConfig, degrade
from ifrt.train.data.manifest import read_manifest
from ifrt.train.data.synth import render_glomerulus, synthesize_database


def intensity_features(image: np.ndarray) -> np.ndarray:
    histogram = np.histogram(image, bins=64, range=(0.0, 1.0))[0] / image.size
    stats = [image.mean(), image.std(), *np.percentile(image, (1, 5, 25, 50, 75, 95, 99, 99.9))]
    return np.concatenate([histogram, stats])


def lr_accuracy(manifest: Path) -> dict:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rows = read_manifest(manifest)
    classes = sorted({r.diagnosis for r in rows})
    features = np.array([intensity_features(read_image(manifest.parent / r.sharp_path).astype(np.float32) / 65535)
                         for r in rows])
    labels = np.array([classes.index(r.diagnosis) for r in rows])
    test = np.array([r.split == "test" for r in rows])
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000))
    model.fit(features[~test], labels[~test])
    return {"accuracy": round(float(model.score(features[test], labels[test])), 4),
            "train_accuracy": round(float(model.score(features[~test], labels[~test])), 4),
            "test_images": int(test.sum()), "classes": classes}


def laplacian_monotone(size: int, scenes: int) -> dict:
    classes, stains = ("IgAN", "MN", "DN", "LN"), ("IgG", "IgA", "IgM", "C3", "C1q")
    cfg = DegradeConfig()
    result = {}
    sharp = [render_glomerulus(np.random.default_rng(5000 + i), classes[i % 4], stains[i % 5], size)
             for i in range(scenes)]
    for kind in KINDS:
        ok = 0
        for i, scene in enumerate(sharp):
            values = [cv2.Laplacian(degrade(scene, np.random.default_rng([7, i]), cfg, level=level, kind=kind).image,
                                    cv2.CV_32F).var() for level in range(len(cfg.sigmas))]
            ok += bool(np.all(np.diff(values) < 0))
        result[kind] = round(ok / scenes, 4)
    result["scenes"] = scenes
    return result


def degrade_ms(size: int, repeats: int = 20) -> dict:
    scene = render_glomerulus(np.random.default_rng(0), "LN", "IgG", size)
    rng = np.random.default_rng(0)
    out = {}
    for kind in KINDS:
        degrade(scene, rng, level=3, kind=kind)  # warm caches (defocus kernels)
        start = time.perf_counter()
        for _ in range(repeats):
            degrade(scene, rng, level=int(rng.integers(1, 5)), kind=kind)
        out[kind] = round((time.perf_counter() - start) / repeats * 1e3, 2)
    return out


def _cpu_seconds() -> float:
    """CPU time of this process and its finished children (the worker processes), user + system."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=400, help="patients (5 images each; default 400 = 2,000 images)")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--out", default=None, help="keep the database here (default: a temporary folder)")
    parser.add_argument("--scenes", type=int, default=100, help="scenes for the Laplacian criterion")
    args = parser.parse_args()

    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="ifrt-bench-synth-"))
    try:
        start, cpu_start = time.perf_counter(), _cpu_seconds()
        manifest = synthesize_database(out, patients=args.patients, size=args.size, workers=args.workers)
        seconds, cpu = time.perf_counter() - start, _cpu_seconds() - cpu_start
        workers = args.workers or os.cpu_count()
        images = len(read_manifest(manifest))
        report = {
            "generation": {"images": images, "size": args.size, "seconds": round(seconds, 1),
                           "images_per_s": round(images / seconds, 2), "workers": workers,
                           "cpu_seconds": round(cpu, 1), "cpu_ms_per_image": round(cpu / images * 1e3, 1),
                           # what the wall time would be with the CPUs to ourselves (this machine is shared)
                           "idle_machine_seconds_estimate": round(cpu / min(workers, os.cpu_count()), 1),
                           "cpus": os.cpu_count(), "load_average_1min": round(os.getloadavg()[0], 2),
                           "bytes": sum(p.stat().st_size for p in out.rglob("*") if p.is_file())},
            "degrade_ms": {str(s): degrade_ms(s) for s in (256, 512)},
            "intensity_lr_accuracy": lr_accuracy(manifest),
            "laplacian_monotone": laplacian_monotone(args.size, args.scenes),
        }
    finally:
        if not args.out:
            shutil.rmtree(out, ignore_errors=True)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

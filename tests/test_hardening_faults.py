"""Faults while `ifrt infer` writes results: a full disk (an injected ENOSPC) and a process killed
with SIGKILL mid-batch. Either way no partial file is left under a final name, results.jsonl holds
only whole lines, and a rerun completes the batch."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile
from _file_limits import file_size_limit

from ifrt import infer as infer_module
from ifrt.imageio import atomic_path
from ifrt.infer import LOCK, RESULTS, run_infer


@pytest.fixture(scope="module")
def session(tiny_package):
    import ifrt

    return ifrt.Session(tiny_package, backend="ort")


def make_images(folder: Path, count: int, size: int = 64) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    paths = []
    for i in range(count):
        path = folder / f"P{i:02d}_img.tif"
        tifffile.imwrite(path, (rng.random((size, size)) * 3000 + 200).astype(np.uint16))
        paths.append(path)
    return paths


def whole_lines(path: Path) -> list[dict]:
    """Every line of results.jsonl, each required to be complete JSON ending in a newline."""
    data = path.read_bytes()
    assert data == b"" or data.endswith(b"\n"), "results.jsonl ends in a torn line"
    return [json.loads(line) for line in data.decode().splitlines()]


def leftovers(out_dir: Path) -> list[str]:
    """Temporary files and partial writes left in the folder (the run lock file is part of the folder)."""
    return sorted(str(p.relative_to(out_dir)) for p in out_dir.rglob("*")
                  if (p.name.startswith(".") or p.suffix == ".tmp") and p.name != LOCK)


def statuses(out_dir: Path) -> dict[str, str]:
    return {r["source"]: r["status"] for r in whole_lines(out_dir / RESULTS)}


def enospc() -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_full_disk_while_writing_a_deblurred_image_leaves_no_partial_file(tmp_path, session, monkeypatch):
    sources = make_images(tmp_path / "src", 3)
    out = tmp_path / "out"
    real_write = infer_module.write_bytes_atomic
    calls = []

    def write_until_full(path, data):  # the second image fills the disk halfway through
        calls.append(path)
        if len(calls) == 2:
            with atomic_path(path) as tmp:
                tmp.write_bytes(bytes(data)[: len(data) // 2])
                raise enospc()
        return real_write(path, data)

    monkeypatch.setattr(infer_module, "write_bytes_atomic", write_until_full)
    with pytest.raises(OSError) as raised:
        run_infer(session, sources, out, deblur=True)
    assert raised.value.errno == errno.ENOSPC
    assert leftovers(out) == []
    assert sorted(p.name for p in (out / "deblurred").iterdir()) == ["src__P00_img.tif"]
    assert statuses(out) == {str(sources[0]): "ok"}

    monkeypatch.setattr(infer_module, "write_bytes_atomic", real_write)
    report = run_infer(session, sources, out, deblur=True)
    assert (report.done, report.skipped, report.failed) == (2, 1, [])
    assert statuses(out) == {str(s): "ok" for s in sources}
    assert len(list((out / "deblurred").iterdir())) == 3 and leftovers(out) == []


class _FillsUp:
    """A results.jsonl handle on a disk that fills up: the `allowed`-th write lands half and fails."""

    def __init__(self, handle, allowed: int):
        self._handle, self._left = handle, allowed

    def write(self, text: str) -> int:
        self._left -= 1
        if self._left == 0:
            self._handle.write(text[: len(text) // 2])
            self._handle.flush()
            raise enospc()
        return self._handle.write(text)

    def __getattr__(self, name):
        return getattr(self._handle, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._handle.close()


def test_full_disk_while_appending_a_record_leaves_whole_lines_and_a_rerun_completes(tmp_path, session, monkeypatch):
    sources = make_images(tmp_path / "src", 4)
    out = tmp_path / "out"

    def open_on_full_disk(path, mode="r", *args, **kwargs):
        handle = open(path, mode, *args, **kwargs)
        return _FillsUp(handle, allowed=3) if Path(path).name == RESULTS and "a" in mode else handle

    monkeypatch.setattr(infer_module, "open", open_on_full_disk, raising=False)
    with pytest.raises(OSError):
        run_infer(session, sources, out)
    monkeypatch.undo()
    assert not (out / RESULTS).read_bytes().endswith(b"\n")  # the torn third record is on disk

    report = run_infer(session, sources, out)
    assert (report.done, report.skipped, report.failed) == (2, 2, [])
    assert statuses(out) == {str(s): "ok" for s in sources}  # whole lines only: the fragment was cut
    assert leftovers(out) == []


def test_cli_reports_a_full_disk_and_exits_1(tmp_path, tiny_package, monkeypatch, capsys):
    from ifrt import cli

    sources = make_images(tmp_path / "src", 2)

    def full(*args, **kwargs):
        raise enospc()

    monkeypatch.setattr(infer_module, "write_summary", full)
    code = cli.main(["infer", str(sources[0].parent), "-o", str(tmp_path / "out"), "--model", str(tiny_package),
                     "--backend", "ort", "--quiet"])
    assert code == 1
    message = " ".join(capsys.readouterr().err.split())  # the console wraps long lines
    assert "No space left on device; the images finished so far are recorded" in message


def test_sigkill_during_a_batch_leaves_whole_lines_and_a_rerun_completes(tmp_path, tiny_package):
    sources = make_images(tmp_path / "src", 40, size=256)
    out = tmp_path / "out"
    command = [sys.executable, "-m", "ifrt", "infer", str(tmp_path / "src"), "-o", str(out), "--model",
               str(tiny_package), "--backend", "ort", "--deblur", "--overlay", "--quiet"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    results = out / RESULTS
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if results.is_file() and results.read_bytes().count(b"\n") >= 1:
            break
        time.sleep(0.005)
    assert process.poll() is None, "the batch ended before the first result appeared"
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)

    recorded = whole_lines(results)
    assert 1 <= len(recorded) < len(sources)
    for record in recorded:  # every recorded output is complete under its final name
        assert tifffile.imread(out / record["deblurred_path"]).shape == (256, 256)
    for tiff in (out / "deblurred").glob("[!.]*.tif"):
        assert tifffile.imread(tiff).dtype == np.uint16

    rerun = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    summary = " ".join(rerun.stderr.split())
    assert f"{len(sources) - len(recorded)} done, {len(recorded)} already done, 0 failed" in summary
    assert statuses(out) == {str(s): "ok" for s in sources}
    assert leftovers(out) == []
    assert len(list((out / "deblurred").iterdir())) == len(sources)


def test_a_deblurred_image_the_file_system_refuses_is_reported_by_the_systems_reason(tmp_path, tiny_package):
    """A real short write (not an injected error): the deblurred 256x256 uint16 TIFF (131 kB) is over the limit,
    the records and the other outputs are not."""
    make_images(tmp_path / "src", 1, size=256)
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-m", "ifrt", "infer", str(tmp_path / "src"), "-o", str(out), "--model",
                           str(tiny_package), "--backend", "ort", "--deblur", "--quiet"], capture_output=True,
                          text=True, timeout=300, preexec_fn=file_size_limit(100_000))
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == f"ifrt infer: cannot write results in {out}: File too large"
    assert leftovers(out) == [] and list((out / "deblurred").iterdir()) == []

"""`ifrt data synth` and `ifrt data split` from the command line, and the data tools' torch-free imports."""

import subprocess
import sys

from ifrt.train.data.manifest import ManifestRow, read_manifest, write_manifest


def test_synth_command_writes_a_dataset_that_passes_check(tmp_path, ifrt_cli):
    proc = ifrt_cli("data", "synth", str(tmp_path), "--patients", "2", "--size", "64", "--classes", "MN,LN",
                    "--stains", "IgG,C3", "--workers", "1")
    assert proc.returncode == 0, proc.stderr
    rows = read_manifest(tmp_path)
    assert len(rows) == 4 and {r.diagnosis for r in rows} == {"MN", "LN"}
    check = ifrt_cli("data", "check", str(tmp_path))
    assert check.returncode == 0, check.stdout + check.stderr


def test_synth_command_reports_an_unknown_stain_without_a_traceback(tmp_path, ifrt_cli):
    proc = ifrt_cli("data", "synth", str(tmp_path), "--patients", "1", "--stains", "IgG,PLA2R")
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: no synthetic pattern for stain(s) PLA2R")


def test_split_command_fills_splits_by_patient(tmp_path, ifrt_cli):
    rows = [ManifestRow(path=f"{p}_{k}.tif", patient_id=f"p{p}", diagnosis="MN" if p % 2 else "DN")
            for p in range(20) for k in range(2)]
    write_manifest(tmp_path / "manifest.csv", rows)
    proc = ifrt_cli("data", "split", str(tmp_path), "--by", "patient", "--fractions", "0.6,0.2,0.2", "--seed", "3")
    assert proc.returncode == 0, proc.stderr
    assert "train 12 patients, val 4 patients, test 4 patients" in proc.stdout
    split_of = {}
    for row in read_manifest(tmp_path):
        assert split_of.setdefault(row.patient_id, row.split) == row.split


def test_data_tools_run_without_importing_torch(tmp_path):
    write_manifest(tmp_path / "manifest.csv", [ManifestRow(path="x.tif", patient_id="p")])
    code = ("import sys; from ifrt.cli import main; "
            "import ifrt.train.data.synth, ifrt.train.data.degrade, ifrt.train.data.check, ifrt.train.data.preview; "
            f"main(['data', 'check', {str(tmp_path)!r}]); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout
    assert out.strip().splitlines()[-1] == "False"

"""manifest.csv: the dataset contract (empty means unknown, paths relative to the manifest)."""

import pytest

from ifrt.train.data.manifest import ManifestError, ManifestRow, read_manifest, resolve, write_manifest


def test_rows_round_trip_with_unknowns_as_empty_cells(tmp_path):
    rows = [ManifestRow(path="a/1.tif", patient_id="p1", stain="IgG", diagnosis="MN", blur_level=2,
                        sharp_path="s/1.tif", split="train", extra={"x_site": "lab A"}),
            ManifestRow(path="a/2.tif", patient_id="p2")]
    path = write_manifest(tmp_path / "manifest.csv", rows)
    assert path.read_text().splitlines() == [
        "path,patient_id,stain,diagnosis,blur_level,sharp_path,split,x_site",
        "a/1.tif,p1,IgG,MN,2,s/1.tif,train,lab A",
        "a/2.tif,p2,,,,,,",
    ]
    assert read_manifest(path) == rows[:1] + [ManifestRow(path="a/2.tif", patient_id="p2", extra={"x_site": ""})]


def test_empty_cells_read_as_none_not_a_guess(tmp_path):
    (tmp_path / "manifest.csv").write_text("path,patient_id,diagnosis,blur_level,split\nx.tif,p,,,\n")
    row = read_manifest(tmp_path)[0]
    assert (row.diagnosis, row.blur_level, row.split, row.stain, row.sharp_path) == (None, None, None, None, None)


def test_a_dataset_folder_reads_its_manifest_csv(tmp_path):
    write_manifest(tmp_path / "manifest.csv", [ManifestRow(path="x.tif", patient_id="p")])
    assert read_manifest(tmp_path)[0].path == "x.tif"


def test_non_integer_blur_level_names_the_line(tmp_path):
    (tmp_path / "m.csv").write_text("path,patient_id,blur_level\nx.tif,p,1\ny.tif,p,high\n")
    with pytest.raises(ManifestError, match=r"m.csv:3: blur_level 'high' is not an integer"):
        read_manifest(tmp_path / "m.csv")


def test_unknown_split_name_is_refused(tmp_path):
    (tmp_path / "m.csv").write_text("path,patient_id,split\nx.tif,p,training\n")
    with pytest.raises(ManifestError, match=r"split 'training' is not one of train, val, test"):
        read_manifest(tmp_path / "m.csv")


def test_missing_patient_column_is_refused(tmp_path):
    (tmp_path / "m.csv").write_text("path,diagnosis\nx.tif,MN\n")
    with pytest.raises(ManifestError, match=r"missing column\(s\) patient_id"):
        read_manifest(tmp_path / "m.csv")


def test_missing_manifest_says_how_to_make_one(tmp_path):
    with pytest.raises(ManifestError, match="ifrt data index"):
        read_manifest(tmp_path / "manifest.csv")


def test_paths_resolve_against_the_manifest_folder(tmp_path):
    assert resolve(tmp_path / "sub" / "manifest.csv", "img/a.tif") == tmp_path / "sub" / "img" / "a.tif"


def test_non_numeric_grade_names_the_file_line_and_column(tmp_path):
    (tmp_path / "m.csv").write_text("path,patient_id,grade\nx.tif,p,1.5\ny.tif,p,2+\n")
    with pytest.raises(ManifestError, match=rf"^{tmp_path / 'm.csv'}:3: column grade: '2\+' is not a number \(the "
                                            r"stain intensity grade, 0 = negative to 3 = 3\+; leave it empty if unknown\)$"):
        read_manifest(tmp_path / "m.csv")


def test_non_numeric_severity_is_refused_and_empty_numbers_stay_unknown(tmp_path):
    (tmp_path / "m.csv").write_text("path,patient_id,grade,severity\nx.tif,p,,\ny.tif,p,0,high\n")
    with pytest.raises(ManifestError, match=r"m.csv:3: column severity: 'high' is not a number"):
        read_manifest(tmp_path / "m.csv")


@pytest.mark.parametrize("command", [
    ["data", "check", "{db}"],
    ["train", "--data", "{db}", "--out", "{tmp}/run"],
    ["eval", "--model", "{tmp}/model", "--data", "{db}", "--out", "{tmp}/report"],
])
def test_every_command_reading_the_manifest_names_a_non_numeric_grade_the_same_way(tmp_path, capsys, command):
    from ifrt import cli

    db = tmp_path / "db"
    db.mkdir()
    (db / "manifest.csv").write_text("path,patient_id,diagnosis,sharp_path,split,grade\n"
                                     "a.tif,p1,MN,a.tif,test,2+\nb.tif,p2,MN,b.tif,val,0\n")
    code = cli.main([arg.format(db=db, tmp=tmp_path) for arg in command])
    err = capsys.readouterr()
    assert code in (1, 2)
    assert f"{db / 'manifest.csv'}:2: column grade: '2+' is not a number" in err.out + err.err

"""Datasets end to end: file and tabular datasets over a datastore, versions, and changed data
noticed instead of silently read."""

import os
import warnings

import pytest

from files import write_tree


@pytest.fixture
def datastore(ws, tmp_path):
    ds = ws.get_default_datastore()
    src = write_tree(tmp_path / "data", {
        "2026/jan/a.csv": "x,y\n1,2\n3,4\n",
        "2026/feb/b.csv": "x,y\n5,6\n",
        "2026/notes.txt": "not a csv",
    })
    ds.upload(src, target_path="sets/%s" % tmp_path.name, overwrite=True, show_progress=False)
    return ds, "sets/%s" % tmp_path.name


def test_file_dataset_versions_paths_and_download(ws, datastore, tmp_path):
    from azureml.core import Dataset
    ds, root = datastore
    files = Dataset.File.from_files(path=[(ds, root + "/2026/**/*.csv")])
    assert files.to_path() == ["/feb/b.csv", "/jan/a.csv"]
    registered = files.register(ws, "csvs-" + tmp_path.name, description="monthly", tags={"team": "birds"})
    assert registered.version == 1 and registered.tags == {"team": "birds"}
    again = Dataset.get_by_name(ws, "csvs-" + tmp_path.name)
    assert again.version == 1 and again.description == "monthly"
    local = again.download(str(tmp_path / "copy"))
    assert sorted(os.path.relpath(p, tmp_path / "copy") for p in local) == ["feb/b.csv", "jan/a.csv"]
    assert open(tmp_path / "copy" / "jan" / "a.csv").read() == "x,y\n1,2\n3,4\n"
    assert again.take(1).to_path() == ["/b.csv"] or again.take(1).to_path() == ["/feb/b.csv"]
    assert "csvs-" + tmp_path.name in Dataset.get_all(ws)
    same = files.register(ws, "csvs-" + tmp_path.name, create_new_version=True)
    assert same.version == 1, "the same files under the same definition are the same version"


def test_changed_data_warns_or_fails_and_a_new_version_fixes_it(ws, datastore, tmp_path):
    from kittiwake import Dataset, DatasetChangedError, DatasetChangedWarning
    ds, root = datastore
    name = "changing-" + tmp_path.name
    Dataset.File.from_files(path=[(ds, root + "/2026/jan/a.csv")]).register(ws, name)
    write_tree(tmp_path / "edit", {"a.csv": "x,y\n9,9\n"})
    ds.upload(str(tmp_path / "edit"), target_path=root + "/2026/jan", overwrite=True, show_progress=False)
    with pytest.warns(DatasetChangedWarning, match="changed .*2026/jan/a.csv"):
        Dataset.get_by_name(ws, name).download(str(tmp_path / "w"))
    with pytest.raises(DatasetChangedError, match="changed"):
        Dataset.get_by_name(ws, name, on_change="fail").download(str(tmp_path / "f"))
    newer = Dataset.File.from_files(path=[(ds, root + "/2026/jan/a.csv")]).register(
        ws, name, create_new_version=True)
    assert newer.version == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Dataset.get_by_name(ws, name, on_change="fail").download(str(tmp_path / "v2"))
    assert open(tmp_path / "v2" / "a.csv").read() == "x,y\n9,9\n"
    assert Dataset.get_by_name(ws, name, version=1).version == 1


def test_tabular_dataset_reads_rows(ws, datastore, tmp_path):
    from kittiwake import Dataset
    ds, root = datastore
    table = Dataset.Tabular.from_delimited_files(path=[(ds, root + "/2026/*/*.csv")])
    df = table.to_pandas_dataframe()
    assert sorted(df["x"].tolist()) == [1, 3, 5]
    assert len(table.take(2).to_pandas_dataframe()) == 2
    assert len(table.skip(2).to_pandas_dataframe()) == 1
    registered = table.register(ws, "table-" + tmp_path.name)
    assert type(Dataset.get_by_name(ws, "table-" + tmp_path.name)).__name__ == "TabularDataset"
    assert registered.version == 1


def test_bad_dataset_requests_are_refused_with_the_reason(ws, datastore, tmp_path):
    from kittiwake import Dataset, UserErrorException
    ds, root = datastore
    with pytest.raises(UserErrorException, match="matches no files"):
        Dataset.File.from_files(path=[(ds, root + "/nothing/**/*.parquet")])
    name = "taken-" + tmp_path.name
    files = Dataset.File.from_files(path=[(ds, root + "/2026/notes.txt")])
    files.register(ws, name)
    with pytest.raises(UserErrorException, match="exists"):
        files.register(ws, name)
    with pytest.raises(UserErrorException, match="has no version 7"):
        Dataset.get_by_name(ws, name, version=7)
    with pytest.raises(UserErrorException, match="is not registered"):
        Dataset.get_by_name(ws, "never-registered")
    with pytest.raises(UserErrorException, match="Invalid path"):
        Dataset.File.from_files(path=[(ds, "../escape/*.csv")])
    with pytest.raises(UserErrorException, match="tuples"):
        Dataset.File.from_files(path=["x.csv"])

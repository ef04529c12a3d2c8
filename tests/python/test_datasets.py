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
    profile = table.profile()
    assert profile["row_count"] == 3
    x = [c for c in profile["columns"] if c["name"] == "x"][0]
    assert (x["type"], x["min"], x["max"], x["mean"], x["nulls"]) == ("int", "1", "5", 3.0, 0)
    assert profile["preview"]["columns"] == ["x", "y"] and len(profile["preview"]["rows"]) == 3
    registered = table.register(ws, "table-" + tmp_path.name)
    assert Dataset.get_by_name(ws, "table-" + tmp_path.name).profile()["row_count"] == 3
    assert type(Dataset.get_by_name(ws, "table-" + tmp_path.name)).__name__ == "TabularDataset"
    assert registered.version == 1


def test_parquet_dataset_profiles_on_the_server_with_its_column_types(ws, datastore, tmp_path):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    from kittiwake import Dataset, UserErrorException
    ds, root = datastore
    folder = tmp_path / "pq"
    folder.mkdir()
    pd.DataFrame({
        "id": [3, 1, 2],
        "score": [0.5, None, 2.5],
        "bird": ["tern", "auk", "auk"],
        "seen": pd.to_datetime(["2026-01-02", "2026-01-01", "2026-03-04"]),
    }).to_parquet(folder / "part-0.parquet")
    pd.DataFrame({"id": [4], "score": [1.0], "bird": ["gull"],
                  "seen": pd.to_datetime(["2026-02-01"])}).to_parquet(folder / "part-1.parquet", compression="zstd")
    ds.upload(str(folder), target_path=root + "/pq", show_progress=False)
    table = Dataset.Tabular.from_parquet_files(path=[(ds, root + "/pq/*.parquet")])
    assert sorted(table.to_pandas_dataframe()["id"].tolist()) == [1, 2, 3, 4]
    profile = table.profile()
    assert profile["row_count"] == 4
    col = {c["name"]: c for c in profile["columns"]}
    assert (col["id"]["type"], col["id"]["min"], col["id"]["max"], col["id"]["mean"]) == ("int", "1", "4", 2.5)
    assert (col["score"]["type"], col["score"]["nulls"]) == ("float", 1)
    assert (col["bird"]["type"], col["bird"]["min"], col["bird"]["distinct_estimate"]) == ("string", "auk", 3)
    assert col["seen"]["type"] == "datetime" and col["seen"]["min"].startswith("2026-01-01")
    assert profile["preview"]["rows"][0][:3] == ["3", "0.5", "tern"]
    write_tree(tmp_path / "notpq", {"broken.parquet": "PAR1 but not really"})
    ds.upload(str(tmp_path / "notpq"), target_path=root + "/notpq", show_progress=False)
    with pytest.raises(UserErrorException, match="broken.parquet: not a readable Parquet file"):
        Dataset.Tabular.from_parquet_files(path=[(ds, root + "/notpq/*.parquet")]).profile()


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
    write_tree(tmp_path / "bad", {"ragged.csv": "a,b\n1,2\n3\n"})
    ds.upload(str(tmp_path / "bad"), target_path=root + "/bad", show_progress=False)
    with pytest.raises(UserErrorException, match="ragged.csv, line 3"):
        Dataset.Tabular.from_delimited_files(path=[(ds, root + "/bad/ragged.csv")]).profile()
    with pytest.raises(UserErrorException, match="tuples"):
        Dataset.File.from_files(path=["x.csv"])


def test_a_run_reads_a_tabular_dataset_writes_an_output_and_lineage_records_both(ws, datastore, tmp_path):
    from azureml.core import Dataset, Experiment, ScriptRunConfig
    from azureml.data import OutputFileDatasetConfig
    ds, root = datastore
    name = "monthly-" + tmp_path.name
    table = Dataset.Tabular.from_delimited_files(path=[(ds, root + "/2026/*/*.csv")]).register(ws, name)
    scripts = write_tree(tmp_path / "scripts", {"count.py": """
        import csv, os, sys
        from azureml.core import Run
        run = Run.get_context()
        folder = run.input_datasets["monthly"]
        assert sys.argv[2] == folder, (sys.argv, folder)
        assert os.environ["monthly"] == folder
        rows = 0
        for name in sorted(os.listdir(folder)):
            for sub in sorted(os.listdir(os.path.join(folder, name))):
                with open(os.path.join(folder, name, sub)) as f:
                    rows += len(list(csv.DictReader(f)))
        print("rows", rows)
        run.log("rows", rows)
        with open(os.path.join(sys.argv[4], "summary.txt"), "w") as f:
            f.write("rows=%d" % rows)
        """})
    summary = OutputFileDatasetConfig("summary").register_on_complete("summary-" + tmp_path.name)
    config = ScriptRunConfig(source_directory=scripts, script="count.py",
                             arguments=["--data", table.as_named_input("monthly").as_download(),
                                        "--out", summary])
    run = Experiment(ws, "dataset-runs").submit(config)
    details = run.wait_for_completion(raise_on_error=False)
    log = open(run.get_all_logs(str(tmp_path / "logs"))[0]).read()
    assert details["status"] == "Completed", log
    assert "rows 3" in log and "Input 'monthly': 2 file(s) of dataset %s version 1" % name in log
    assert run.get_metrics()["rows"] == 3
    assert details["inputDatasets"] == [{"dataset": {"name": name, "version": 1}, "name": "monthly"}]
    assert details["outputDatasets"] == [
        {"dataset": {"name": "summary-" + tmp_path.name, "version": 1}, "name": "summary"}]
    assert Dataset.get_by_name(ws, name).runs() == [{"run_id": run.id, "direction": "input", "name": "monthly"}]
    produced = Dataset.get_by_name(ws, "summary-" + tmp_path.name)
    assert produced.runs() == [{"run_id": run.id, "direction": "output", "name": "summary"}]
    assert produced.to_path() == ["/summary.txt"]
    produced.download(str(tmp_path / "summary"))
    assert open(tmp_path / "summary" / "summary.txt").read() == "rows=3"

-- Registered datasets (AzureML's; MLflow's dataset inputs are `datasets`): named, versioned references to files in datastores. `definition` says what was asked
-- for (datastore paths and globs, the file format); `fingerprint` lists the files it matched when
-- the version was registered (path, size, ETag, last change), so a later read can tell whether
-- the data under the version changed.
CREATE TABLE dataset_versions (
    name TEXT NOT NULL,
    version BIGINT NOT NULL,
    dataset_type TEXT NOT NULL,
    description TEXT NOT NULL,
    tags TEXT NOT NULL,
    definition TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    fingerprint_hash TEXT NOT NULL,
    file_count BIGINT NOT NULL,
    total_bytes BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (name, version)
) WITHOUT ROWID;

-- Which runs read (direction 'input') or wrote ('output') which dataset versions, under which
-- input or output name of the run.
CREATE TABLE dataset_lineage (
    run_id TEXT NOT NULL REFERENCES runs (run_id),
    dataset_name TEXT NOT NULL,
    dataset_version BIGINT NOT NULL,
    direction TEXT NOT NULL,
    io_name TEXT NOT NULL,
    PRIMARY KEY (run_id, direction, io_name)
) WITHOUT ROWID;
CREATE INDEX dataset_lineage_by_dataset ON dataset_lineage (dataset_name, dataset_version);

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

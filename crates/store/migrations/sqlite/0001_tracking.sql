-- Tracking: experiments, runs and what runs log. Timestamps are milliseconds since the epoch.
CREATE TABLE workspace_settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE experiments (
    experiment_id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    artifact_location TEXT NOT NULL,
    lifecycle_stage TEXT NOT NULL,
    creation_time BIGINT NOT NULL,
    last_update_time BIGINT NOT NULL
);
INSERT INTO experiments VALUES (0, 'Default', 'mlflow-artifacts:/0', 'active', 0, 0);

CREATE TABLE experiment_tags (
    experiment_id BIGINT NOT NULL REFERENCES experiments (experiment_id),
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (experiment_id, key)
) WITHOUT ROWID;

CREATE TABLE runs (
    run_id TEXT PRIMARY KEY,
    experiment_id BIGINT NOT NULL REFERENCES experiments (experiment_id),
    run_name TEXT NOT NULL,
    user_id TEXT NOT NULL,
    status TEXT NOT NULL,
    start_time BIGINT NOT NULL,
    end_time BIGINT,
    artifact_uri TEXT NOT NULL,
    lifecycle_stage TEXT NOT NULL
);
CREATE INDEX runs_by_experiment ON runs (experiment_id, lifecycle_stage, start_time DESC, run_id);

CREATE TABLE params (
    run_id TEXT NOT NULL REFERENCES runs (run_id),
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (run_id, key)
) WITHOUT ROWID;
CREATE INDEX params_by_key ON params (key, value);

CREATE TABLE run_tags (
    run_id TEXT NOT NULL REFERENCES runs (run_id),
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (run_id, key)
) WITHOUT ROWID;
CREATE INDEX run_tags_by_key ON run_tags (key, value);

-- AzureML run properties: like tags, but a key once set never changes.
CREATE TABLE run_properties (
    run_id TEXT NOT NULL REFERENCES runs (run_id),
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (run_id, key)
) WITHOUT ROWID;

-- The point that counts as a metric's current value, kept beside the history so that search and
-- run listings never read the history. Key/value tables are clustered on their primary key
-- (WITHOUT ROWID) so a run's value is one b-tree search away.
CREATE TABLE latest_metrics (
    run_id TEXT NOT NULL REFERENCES runs (run_id),
    key TEXT NOT NULL,
    value DOUBLE PRECISION NOT NULL,
    is_nan INTEGER NOT NULL,
    step BIGINT NOT NULL,
    timestamp BIGINT NOT NULL,
    PRIMARY KEY (run_id, key)
) WITHOUT ROWID;
-- Both directions, so a search ordered by a metric walks an index and stops at its page size.
CREATE INDEX latest_metrics_ascending ON latest_metrics (key, is_nan, value);
CREATE INDEX latest_metrics_descending ON latest_metrics (key, is_nan, value DESC);

-- Metric history in chunks: each row holds the points of one key from one logging call, packed as
-- little-endian (step i64, timestamp i64, value f64) triples, and that call's latest point, which
-- the trigger below folds into latest_metrics; so one INSERT both appends and updates, atomically.
CREATE TABLE metric_chunks (
    chunk_id INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL REFERENCES runs (run_id),
    key TEXT NOT NULL,
    points INTEGER NOT NULL,
    data BLOB NOT NULL,
    latest_step BIGINT NOT NULL,
    latest_timestamp BIGINT NOT NULL,
    latest_value DOUBLE PRECISION NOT NULL,
    latest_is_nan INTEGER NOT NULL
);
CREATE INDEX metric_chunks_by_key ON metric_chunks (run_id, key, chunk_id);

-- MLflow's rule for the current value: the greatest (step, timestamp, value), NaN below numbers.
CREATE TRIGGER metric_chunks_update_latest AFTER INSERT ON metric_chunks BEGIN
    INSERT INTO latest_metrics (run_id, key, value, is_nan, step, timestamp)
    VALUES (NEW.run_id, NEW.key, NEW.latest_value, NEW.latest_is_nan, NEW.latest_step, NEW.latest_timestamp)
    ON CONFLICT (run_id, key) DO UPDATE SET value = excluded.value, is_nan = excluded.is_nan,
        step = excluded.step, timestamp = excluded.timestamp
    WHERE excluded.step > latest_metrics.step
       OR (excluded.step = latest_metrics.step AND excluded.timestamp > latest_metrics.timestamp)
       OR (excluded.step = latest_metrics.step AND excluded.timestamp = latest_metrics.timestamp
           AND (latest_metrics.is_nan = 1 OR (excluded.is_nan = 0 AND excluded.value > latest_metrics.value)));
END;

CREATE TABLE rich_metrics (
    metric_id INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL REFERENCES runs (run_id),
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    value_json TEXT NOT NULL,
    description TEXT NOT NULL,
    timestamp BIGINT NOT NULL
);
CREATE INDEX rich_metrics_by_run ON rich_metrics (run_id, metric_id);

CREATE TABLE datasets (
    dataset_id INTEGER PRIMARY KEY,
    experiment_id BIGINT NOT NULL REFERENCES experiments (experiment_id),
    name TEXT NOT NULL,
    digest TEXT NOT NULL,
    source_type TEXT NOT NULL,
    source TEXT NOT NULL,
    dataset_schema TEXT,
    profile TEXT,
    UNIQUE (experiment_id, name, digest)
);

CREATE TABLE dataset_inputs (
    run_id TEXT NOT NULL REFERENCES runs (run_id),
    dataset_id BIGINT NOT NULL REFERENCES datasets (dataset_id),
    tags_json TEXT NOT NULL,
    PRIMARY KEY (run_id, dataset_id)
) WITHOUT ROWID;

CREATE TABLE logged_models (
    model_id TEXT PRIMARY KEY,
    experiment_id BIGINT NOT NULL REFERENCES experiments (experiment_id),
    name TEXT NOT NULL,
    artifact_location TEXT NOT NULL,
    creation_timestamp BIGINT NOT NULL,
    last_updated_timestamp BIGINT NOT NULL,
    status TEXT NOT NULL,
    status_message TEXT,
    model_type TEXT,
    source_run_id TEXT,
    lifecycle_stage TEXT NOT NULL
);
CREATE INDEX logged_models_by_experiment ON logged_models (experiment_id, creation_timestamp DESC);

CREATE TABLE logged_model_tags (
    model_id TEXT NOT NULL REFERENCES logged_models (model_id),
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (model_id, key)
) WITHOUT ROWID;

CREATE TABLE logged_model_params (
    model_id TEXT NOT NULL REFERENCES logged_models (model_id),
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (model_id, key)
) WITHOUT ROWID;

-- Runs' links to logged models: direction is 'input' or 'output'.
CREATE TABLE run_model_links (
    run_id TEXT NOT NULL REFERENCES runs (run_id),
    model_id TEXT NOT NULL,
    step BIGINT NOT NULL,
    direction TEXT NOT NULL,
    PRIMARY KEY (run_id, model_id, direction)
) WITHOUT ROWID;

-- API tokens: only a SHA-256 of each token is kept.
CREATE TABLE api_tokens (
    token_hash TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

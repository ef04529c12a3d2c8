-- Submitted jobs: source snapshots, environments, compute targets and the job state machine.

-- A snapshot is a list of files, each named by the SHA-256 of its content; the contents live in
-- the blob store under snapshots/blobs/<sha256>, shared by every snapshot that holds them.
CREATE TABLE snapshots (
    snapshot_id TEXT PRIMARY KEY,
    manifest TEXT NOT NULL,
    file_count BIGINT NOT NULL,
    total_bytes BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);

-- Registered environments; each registration of a changed definition is a new version.
CREATE TABLE environments (
    name TEXT NOT NULL,
    version BIGINT NOT NULL,
    definition TEXT NOT NULL,
    definition_hash TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (name, version)
) WITHOUT ROWID;

CREATE TABLE compute_targets (
    name TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    slots BIGINT NOT NULL,
    gpus TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

-- One row per submitted run. `status` is AzureML's (Queued … Completed), set at `status_at`; the
-- trigger below moves the run's MLflow status with it and records the history, in the same
-- statement. `agent` says where the job agent runs, in the compute backend's own words (for the
-- local backend: pid and process start time).
CREATE TABLE jobs (
    run_id TEXT PRIMARY KEY REFERENCES runs (run_id),
    status TEXT NOT NULL,
    status_at BIGINT NOT NULL,
    compute_target TEXT NOT NULL,
    definition TEXT NOT NULL,
    gpu_count BIGINT NOT NULL,
    gpus TEXT NOT NULL,
    agent TEXT,
    cancel_requested BIGINT NOT NULL,
    failure_reason TEXT,
    exit_code BIGINT,
    queued_at BIGINT NOT NULL,
    started_at BIGINT,
    ended_at BIGINT,
    heartbeat_at BIGINT,
    log_bytes BIGINT NOT NULL
);
CREATE INDEX jobs_by_status ON jobs (status, queued_at);

-- Each status a job passed through, with when.
CREATE TABLE job_status_history (
    run_id TEXT NOT NULL REFERENCES runs (run_id),
    status TEXT NOT NULL,
    at BIGINT NOT NULL,
    PRIMARY KEY (run_id, status)
) WITHOUT ROWID;

-- A job's status decides its run's MLflow status: Queued, Preparing and Starting are SCHEDULED,
-- Running and Finalizing RUNNING, then FINISHED, FAILED or KILLED.
CREATE TRIGGER jobs_status_moves_run AFTER UPDATE OF status ON jobs
WHEN NEW.status <> OLD.status
BEGIN
    UPDATE runs SET
        status = CASE NEW.status
            WHEN 'Running' THEN 'RUNNING'
            WHEN 'Finalizing' THEN 'RUNNING'
            WHEN 'Completed' THEN 'FINISHED'
            WHEN 'Failed' THEN 'FAILED'
            WHEN 'Canceled' THEN 'KILLED'
            ELSE 'SCHEDULED'
        END,
        end_time = COALESCE(NEW.ended_at, end_time)
    WHERE run_id = NEW.run_id;
    INSERT INTO job_status_history (run_id, status, at) VALUES (NEW.run_id, NEW.status, NEW.status_at)
        ON CONFLICT (run_id, status) DO NOTHING;
END;

-- A job's output (environment build and the script's stdout/stderr) in the order the agent sent
-- it; `offset` is the byte position of the chunk in the whole log, which makes a resent chunk
-- harmless.
CREATE TABLE job_logs (
    run_id TEXT NOT NULL REFERENCES runs (run_id),
    byte_offset BIGINT NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (run_id, byte_offset)
) WITHOUT ROWID;

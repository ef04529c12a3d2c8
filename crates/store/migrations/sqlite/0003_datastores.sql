-- Datastores: where data lives. `settings` holds what is not secret (bucket, endpoint, folder…);
-- `sealed_secrets` holds the credentials encrypted with a key kept outside the database (see the
-- data crate's secrets module), or is NULL when there are none.
CREATE TABLE datastores (
    name TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    settings TEXT NOT NULL,
    sealed_secrets BLOB,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

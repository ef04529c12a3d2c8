//! Registered datastores: their kind, settings and sealed credentials.

use kittiwake_domain::{Result, now_millis};
use sqlx::Row;

use crate::{Store, db_error};

/// A datastore as stored; `sealed_secrets` is only ever decrypted by the data service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredDatastore {
    pub name: String,
    pub kind: String,
    pub settings: String,
    pub sealed_secrets: Option<Vec<u8>>,
    pub created_at: i64,
}

fn from_row(row: &sqlx::any::AnyRow) -> Result<StoredDatastore> {
    Ok(StoredDatastore {
        name: row.try_get("name").map_err(db_error)?,
        kind: row.try_get("kind").map_err(db_error)?,
        settings: row.try_get("settings").map_err(db_error)?,
        sealed_secrets: row.try_get("sealed_secrets").map_err(db_error)?,
        created_at: row.try_get("created_at").map_err(db_error)?,
    })
}

impl Store {
    /// Creates a datastore; with `replace`, overwrites one of the same name. Returns whether a
    /// datastore was written (false: the name is taken and `replace` was not asked).
    pub async fn put_datastore(&self, d: &StoredDatastore, replace: bool) -> Result<bool> {
        let now = now_millis();
        let (_guard, mut tx) = self.write().await?;
        let conflict = if replace {
            "ON CONFLICT (name) DO UPDATE SET kind = excluded.kind, settings = excluded.settings, \
             sealed_secrets = excluded.sealed_secrets, updated_at = excluded.updated_at"
        } else {
            "ON CONFLICT (name) DO NOTHING"
        };
        let done = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO datastores (name, kind, settings, sealed_secrets, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $5) {conflict}"
        )))
        .bind(d.name.as_str())
        .bind(d.kind.as_str())
        .bind(d.settings.as_str())
        .bind(d.sealed_secrets.as_deref())
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(done.rows_affected() > 0)
    }

    pub async fn get_datastore(&self, name: &str) -> Result<Option<StoredDatastore>> {
        let row = sqlx::query(
            "SELECT name, kind, settings, sealed_secrets, created_at FROM datastores WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        row.as_ref().map(from_row).transpose()
    }

    pub async fn list_datastores(&self) -> Result<Vec<StoredDatastore>> {
        let rows = sqlx::query(
            "SELECT name, kind, settings, sealed_secrets, created_at FROM datastores ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        rows.iter().map(from_row).collect()
    }

    /// Replaces every datastore's sealed credentials in one transaction (a key rotation).
    pub async fn reseal_datastores(&self, sealed: &[(String, Vec<u8>)]) -> Result<()> {
        let (_guard, mut tx) = self.write().await?;
        for (name, secrets) in sealed {
            sqlx::query("UPDATE datastores SET sealed_secrets = $1 WHERE name = $2")
                .bind(secrets.as_slice())
                .bind(name.as_str())
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
        }
        tx.commit().await.map_err(db_error)
    }
}

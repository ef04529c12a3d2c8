//! Workspace-wide settings and API tokens.

use kittiwake_domain::{Millis, Result};

use crate::{Store, db_error};

/// An API token as stored: its hash, never the token itself.
#[derive(Debug, Clone)]
pub struct StoredToken {
    pub name: String,
    pub role: String,
}

impl Store {
    pub async fn setting(&self, key: &str) -> Result<Option<String>> {
        sqlx::query_scalar("SELECT value FROM workspace_settings WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)
    }

    pub async fn put_setting(&self, key: &str, value: &str) -> Result<()> {
        let (_guard, mut tx) = self.write().await?;
        sqlx::query("INSERT INTO workspace_settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value")
            .bind(key)
            .bind(value)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        tx.commit().await.map_err(db_error)
    }

    pub async fn insert_token(
        &self,
        token_hash: &str,
        name: &str,
        role: &str,
        now: Millis,
    ) -> Result<()> {
        let (_guard, mut tx) = self.write().await?;
        sqlx::query(
            "INSERT INTO api_tokens (token_hash, name, role, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(token_hash)
        .bind(name)
        .bind(role)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(db_error)
    }

    pub async fn delete_tokens_named(&self, name: &str) -> Result<()> {
        let (_guard, mut tx) = self.write().await?;
        sqlx::query("DELETE FROM api_tokens WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        tx.commit().await.map_err(db_error)
    }

    pub async fn find_token(&self, token_hash: &str) -> Result<Option<StoredToken>> {
        let row: Option<(String, String)> =
            sqlx::query_as("SELECT name, role FROM api_tokens WHERE token_hash = $1")
                .bind(token_hash)
                .fetch_optional(&self.pool)
                .await
                .map_err(db_error)?;
        Ok(row.map(|(name, role)| StoredToken { name, role }))
    }

    pub async fn count_tokens(&self) -> Result<i64> {
        sqlx::query_scalar("SELECT COUNT(*) FROM api_tokens")
            .fetch_one(&self.pool)
            .await
            .map_err(db_error)
    }
}

//! Who is calling and what they may do: API tokens, roles and the one authorization check.
//!
//! A token is 32 random bytes shown once; the store keeps only its SHA-256. Every request carries a
//! token, and the HTTP layer names the action it would perform (for example
//! `experiments/runs/write`); [`Auth::authorize`] is the single place that decides. Roles follow
//! AzureML's built-in ones: a reader may only read, a contributor may do anything but manage
//! access, an owner may do everything.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;

use kittiwake_domain::{Error, ErrorKind, Result, now_millis};
use kittiwake_store::Store;
use sha2::{Digest, Sha256};
use tokio::sync::RwLock;

pub const TOKEN_PREFIX: &str = "kw_";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Reader,
    Contributor,
    Owner,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Reader => "reader",
            Self::Contributor => "contributor",
            Self::Owner => "owner",
        }
    }

    fn allows(self, action: &str) -> bool {
        match self {
            Self::Owner => true,
            Self::Contributor => !action.starts_with("access/"),
            Self::Reader => action.ends_with("/read"),
        }
    }
}

impl FromStr for Role {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "reader" => Ok(Self::Reader),
            "contributor" => Ok(Self::Contributor),
            "owner" => Ok(Self::Owner),
            other => Err(Error::invalid(format!(
                "Unknown role '{other}': expected reader, contributor or owner"
            ))),
        }
    }
}

/// The authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub name: String,
    pub role: Role,
}

#[derive(Clone)]
pub struct Auth {
    store: Store,
    /// Tokens seen before, by hash, so that a request costs no database read.
    known: Arc<RwLock<HashMap<String, Principal>>>,
}

fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

impl Auth {
    pub fn new(store: Store) -> Self {
        Self {
            store,
            known: Arc::default(),
        }
    }

    /// Creates a token and returns it; this is the only time its text exists.
    pub async fn create_token(&self, name: &str, role: Role) -> Result<String> {
        let secret: [u8; 32] = rand::random();
        let token = format!("{TOKEN_PREFIX}{}", hex::encode(secret));
        self.store
            .insert_token(&hash(&token), name, role.as_str(), now_millis())
            .await?;
        Ok(token)
    }

    /// Revokes every token called `name` (a finished job's agent token, for one).
    pub async fn revoke_tokens_named(&self, name: &str) -> Result<()> {
        self.store.delete_tokens_named(name).await?;
        self.known.write().await.retain(|_, p| p.name != name);
        Ok(())
    }

    /// On a workspace's first start, creates its owner token; afterwards returns `None`.
    pub async fn bootstrap_admin(&self) -> Result<Option<String>> {
        if self.store.count_tokens().await? > 0 {
            return Ok(None);
        }
        self.create_token("admin", Role::Owner).await.map(Some)
    }

    pub async fn authenticate(&self, token: &str) -> Result<Principal> {
        let digest = hash(token);
        if let Some(p) = self.known.read().await.get(&digest) {
            return Ok(p.clone());
        }
        let stored = self.store.find_token(&digest).await?.ok_or_else(|| {
            Error::new(
                ErrorKind::Unauthenticated,
                "The API token is not valid for this workspace",
            )
        })?;
        let principal = Principal {
            name: stored.name,
            role: stored.role.parse()?,
        };
        self.known.write().await.insert(digest, principal.clone());
        Ok(principal)
    }

    pub fn authorize(&self, principal: &Principal, action: &str) -> Result<()> {
        if principal.role.allows(action) {
            Ok(())
        } else {
            Err(Error::new(
                ErrorKind::PermissionDenied,
                format!(
                    "'{}' ({}) may not perform '{action}'",
                    principal.name,
                    principal.role.as_str()
                ),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_scope_actions() {
        assert!(Role::Reader.allows("experiments/runs/read"));
        assert!(!Role::Reader.allows("experiments/runs/write"));
        assert!(Role::Contributor.allows("experiments/runs/write"));
        assert!(!Role::Contributor.allows("access/tokens/write"));
        assert!(Role::Owner.allows("access/tokens/write"));
    }

    #[tokio::test]
    async fn tokens_authenticate_by_hash_only() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_sqlite(&dir.path().join("db.sqlite"))
            .await
            .unwrap();
        let auth = Auth::new(store.clone());
        let token = auth.bootstrap_admin().await.unwrap().unwrap();
        assert!(auth.bootstrap_admin().await.unwrap().is_none());
        assert!(store.find_token(&token).await.unwrap().is_none());
        let p = auth.authenticate(&token).await.unwrap();
        assert_eq!(p.role, Role::Owner);
        let err = auth.authenticate("kw_nope").await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::Unauthenticated);
    }
}

//! Credentials sealed with a key that lives outside the database.
//!
//! The key is 32 random bytes in `secrets.key` in the data directory (mode 0600). A sealed value
//! is `kw1`, the key's id (8 bytes of its SHA-256), a random 24-byte nonce and the XChaCha20-Poly1305
//! ciphertext, so any key that sealed a value can be found again. Rotation writes a new key to
//! `secrets.key.new`, reseals everything in one transaction, then makes the new key current and
//! keeps the old one as `secrets.key.previous`; every key file present is loaded, so a rotation
//! interrupted at any point leaves every value readable.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use kittiwake_domain::{Error, Result};
use sha2::{Digest, Sha256};

const MAGIC: &[u8; 3] = b"kw1";
const KEY_FILE: &str = "secrets.key";
const NEW_KEY_FILE: &str = "secrets.key.new";
const PREVIOUS_KEY_FILE: &str = "secrets.key.previous";

struct Key {
    id: [u8; 8],
    cipher: XChaCha20Poly1305,
}

impl Key {
    fn from_hex(text: &str, file: &Path) -> Result<Self> {
        let bytes = hex::decode(text.trim())
            .ok()
            .filter(|b| b.len() == 32)
            .ok_or_else(|| {
                Error::internal(format!(
                    "{} does not hold a 32-byte hex key",
                    file.display()
                ))
            })?;
        let mut id = [0u8; 8];
        id.copy_from_slice(&Sha256::digest(&bytes)[..8]);
        let cipher = XChaCha20Poly1305::new_from_slice(&bytes)
            .map_err(|_| Error::internal("a secrets key has the wrong length"))?;
        Ok(Self { id, cipher })
    }
}

pub struct Secrets {
    dir: PathBuf,
    /// The current key first, then any others found beside it.
    keys: RwLock<Vec<Key>>,
    /// When the current key file was last changed, as loaded; a rotation by another process
    /// changes it, and this one then reloads before sealing anything.
    loaded: RwLock<Option<std::time::SystemTime>>,
}

fn modified(path: &Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn write_key_file(path: &Path) -> Result<()> {
    let key: [u8; 32] = rand::random();
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| Error::internal(format!("creating {}: {e}", path.display())))?;
    f.write_all(hex::encode(key).as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| Error::internal(format!("writing {}: {e}", path.display())))
}

impl Secrets {
    /// Loads the keys of a data directory, creating the key on first use.
    pub fn open(dir: &Path) -> Result<Self> {
        let path = dir.join(KEY_FILE);
        if !path.exists() {
            write_key_file(&path)?;
        }
        let secrets = Self {
            dir: dir.to_path_buf(),
            keys: RwLock::new(Vec::new()),
            loaded: RwLock::new(None),
        };
        secrets.reload()?;
        Ok(secrets)
    }

    fn reload(&self) -> Result<()> {
        if let Ok(mut loaded) = self.loaded.write() {
            *loaded = modified(&self.dir.join(KEY_FILE));
        }
        let mut keys = Vec::new();
        for name in [KEY_FILE, NEW_KEY_FILE, PREVIOUS_KEY_FILE] {
            let path = self.dir.join(name);
            match std::fs::read_to_string(&path) {
                Ok(text) => keys.push(Key::from_hex(&text, &path)?),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(Error::internal(format!("reading {}: {e}", path.display())));
                }
            }
        }
        if keys.is_empty() {
            return Err(Error::internal(format!(
                "no secrets key in {}",
                self.dir.display()
            )));
        }
        if let Ok(mut current) = self.keys.write() {
            *current = keys;
        }
        Ok(())
    }

    fn seal_with(key: &Key, plaintext: &[u8]) -> Result<Vec<u8>> {
        let nonce_bytes: [u8; 24] = rand::random();
        let nonce = XNonce::from(nonce_bytes);
        let ciphertext = key
            .cipher
            .encrypt(&nonce, plaintext)
            .map_err(|_| Error::internal("sealing a secret failed"))?;
        let mut out = Vec::with_capacity(3 + 8 + 24 + ciphertext.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&key.id);
        out.extend_from_slice(&nonce_bytes);
        out.extend_from_slice(&ciphertext);
        Ok(out)
    }

    /// Encrypts a value with the current key.
    pub fn seal(&self, plaintext: &[u8]) -> Result<Vec<u8>> {
        let current = modified(&self.dir.join(KEY_FILE));
        if self.loaded.read().map(|l| *l != current).unwrap_or(true) {
            self.reload()?;
        }
        let keys = self
            .keys
            .read()
            .map_err(|_| Error::internal("the secrets keys are unavailable"))?;
        Self::seal_with(&keys[0], plaintext)
    }

    fn try_unseal(&self, sealed: &[u8]) -> Option<Result<Vec<u8>>> {
        let keys = self.keys.read().ok()?;
        let id = &sealed[3..11];
        let key = keys.iter().find(|k| k.id == id)?;
        let nonce = XNonce::try_from(&sealed[11..35]).ok()?;
        Some(key.cipher.decrypt(&nonce, &sealed[35..]).map_err(|_| {
            Error::internal("a sealed secret does not open: it was changed, or its key was")
        }))
    }

    /// Decrypts a value sealed with any key of this data directory.
    pub fn unseal(&self, sealed: &[u8]) -> Result<Vec<u8>> {
        if sealed.len() < 35 + 16 || &sealed[..3] != MAGIC {
            return Err(Error::internal("a sealed secret is malformed"));
        }
        if let Some(result) = self.try_unseal(sealed) {
            return result;
        }
        // Sealed by a key rotated in after this process loaded its keys.
        self.reload()?;
        self.try_unseal(sealed).unwrap_or_else(|| {
            Err(Error::internal(format!(
                "a sealed secret needs a key that is not in {} (was the key file replaced?)",
                self.dir.display()
            )))
        })
    }

    /// Rotates the key: `reseal` receives a function that reseals a value with the new key and
    /// must store every resealed value (in one transaction) before returning.
    pub async fn rotate<F, Fut>(&self, reseal: F) -> Result<()>
    where
        F: FnOnce(Box<dyn Fn(&[u8]) -> Result<Vec<u8>> + Send + Sync + '_>) -> Fut,
        Fut: std::future::Future<Output = Result<()>>,
    {
        let new_path = self.dir.join(NEW_KEY_FILE);
        if !new_path.exists() {
            write_key_file(&new_path)?;
        }
        let new_key = Key::from_hex(
            &std::fs::read_to_string(&new_path)
                .map_err(|e| Error::internal(format!("reading {}: {e}", new_path.display())))?,
            &new_path,
        )?;
        let reseal_one = move |sealed: &[u8]| -> Result<Vec<u8>> {
            let plain = self.unseal(sealed)?;
            Self::seal_with(&new_key, &plain)
        };
        reseal(Box::new(reseal_one)).await?;
        let current = self.dir.join(KEY_FILE);
        let previous = self.dir.join(PREVIOUS_KEY_FILE);
        std::fs::rename(&current, &previous)
            .and_then(|()| std::fs::rename(&new_path, &current))
            .map_err(|e| Error::internal(format!("installing the new key: {e}")))?;
        self.reload()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sealed_values_open_before_and_after_a_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let secrets = Secrets::open(dir.path()).unwrap();
        let sealed = secrets.seal(b"account-key-123").unwrap();
        assert!(!sealed.windows(15).any(|w| w == b"account-key-123"));
        assert_eq!(secrets.unseal(&sealed).unwrap(), b"account-key-123");

        let mut tampered = sealed.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert!(secrets.unseal(&tampered).is_err());

        let resealed = std::sync::Mutex::new(Vec::new());
        secrets
            .rotate(|reseal| {
                let value = reseal(&sealed);
                async {
                    resealed.lock().unwrap().push(value?);
                    Ok(())
                }
            })
            .await
            .unwrap();
        let resealed = resealed.into_inner().unwrap().remove(0);
        assert_ne!(resealed[3..11], sealed[3..11], "the new key has a new id");
        assert_eq!(secrets.unseal(&resealed).unwrap(), b"account-key-123");
        // Another process that loaded its keys before the rotation still opens the new value.
        let reopened = Secrets::open(dir.path()).unwrap();
        assert_eq!(reopened.unseal(&resealed).unwrap(), b"account-key-123");
        let mode = std::fs::metadata(dir.path().join(KEY_FILE)).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(mode.permissions().mode() & 0o777, 0o600);
    }
}

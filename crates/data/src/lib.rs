//! Data: datastores (where data lives) and, on top of them, datasets (named, versioned, and
//! fingerprinted references to files in them).
//!
//! Every workspace has `workspaceblobstore`, a folder of its own blob store; more datastores name a
//! local folder, an S3-compatible bucket or an Azure Blob container, all reached through the blob
//! crate (`object_store`). A datastore is checked when it is registered, so wrong credentials or
//! an unreachable endpoint are reported then, not at first use. Credentials are sealed
//! ([`secrets`]) before they reach the database, and no answer of this crate carries them.

mod datasets;
mod datastores;
pub mod profile;
pub mod secrets;

pub use datasets::{DataPathSpec, DatasetDefinition, DatasetVersion, FileEntry};
pub use datastores::{DEFAULT_DATASTORE, Data, DatastoreKind, DatastoreView, LocalFolder};

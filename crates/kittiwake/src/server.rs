//! `kittiwake server`: opens the workspace's stores, makes sure an owner token exists, writes the
//! workspace config file and serves the HTTP API until told to stop.

use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use axum::serve::ListenerExt;
use clap::Args;
use kittiwake_api::{AppState, Limits, WorkspaceInfo};
use kittiwake_auth::Auth;
use kittiwake_blob::BlobStore;
use kittiwake_compute::{LocalBackend, detect_gpus};
use kittiwake_data::Data;
use kittiwake_data::secrets::Secrets;
use kittiwake_jobs::Jobs;
use kittiwake_store::Store;
use kittiwake_tracking::Tracking;

use crate::config::{self, WorkspaceConfig};

#[derive(Args)]
pub struct ServerArgs {
    /// Where metadata (SQLite) and artifacts live.
    #[arg(long, env = "KITTIWAKE_DATA_DIR", default_value = ".kittiwake")]
    data_dir: PathBuf,
    /// Address to listen on; the default keeps the workspace private to this machine.
    #[arg(long, env = "KITTIWAKE_HOST", default_value = "127.0.0.1")]
    host: String,
    /// Port to listen on (0 picks a free one).
    #[arg(long, env = "KITTIWAKE_PORT", default_value_t = 7700)]
    port: u16,
    /// Folder that receives `.azureml/config.json` for `Workspace.from_config()`.
    #[arg(long, env = "KITTIWAKE_CONFIG_DIR", default_value = ".")]
    config_dir: PathBuf,
    /// The workspace's name, set on first start.
    #[arg(long, env = "KITTIWAKE_WORKSPACE", default_value = "kittiwake")]
    workspace: String,
    /// How many jobs the `local` compute target runs at once (default: the machine's cores).
    #[arg(long, env = "KITTIWAKE_LOCAL_SLOTS")]
    local_slots: Option<u32>,
    /// GPU indices the `local` target hands out, one job each, e.g. `0,1` (default: those
    /// `nvidia-smi` reports; none without it).
    #[arg(long, env = "KITTIWAKE_LOCAL_GPUS", value_delimiter = ',')]
    local_gpus: Option<Vec<u32>>,
}

pub const TOKEN_FILE: &str = "admin.token";

/// Opens the metadata and blob stores of a data directory, creating them on first use.
pub async fn open_stores(data_dir: &Path) -> Result<(Store, BlobStore)> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating data directory {}", data_dir.display()))?;
    let store = Store::open_sqlite(&data_dir.join("metadata.sqlite"))
        .await
        .context("opening the metadata database")?;
    let blob =
        BlobStore::local(&data_dir.join("artifacts")).context("opening the artifact folder")?;
    Ok((store, blob))
}

/// Writes a secret readable only by its owner.
pub fn write_secret(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    Ok(())
}

async fn workspace_identity(store: &Store, default_name: &str) -> Result<WorkspaceInfo> {
    let name = match store.setting("workspace_name").await? {
        Some(n) => n,
        None => {
            store.put_setting("workspace_name", default_name).await?;
            default_name.to_string()
        }
    };
    let id = match store.setting("workspace_id").await? {
        Some(id) => id,
        None => {
            let id = format!("{:032x}", rand::random::<u128>());
            store.put_setting("workspace_id", &id).await?;
            id
        }
    };
    Ok(WorkspaceInfo { name, id })
}

pub async fn run(args: ServerArgs) -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("KITTIWAKE_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    // nvidia-smi can take a second or more to answer: it runs while the stores open.
    let given_gpus = args.local_gpus.clone();
    let gpus = tokio::spawn(async move {
        match given_gpus {
            Some(gpus) => gpus,
            None => detect_gpus().await,
        }
    });
    let (store, blob) = open_stores(&args.data_dir).await?;
    let data_dir = args.data_dir.canonicalize()?;
    let workspace = workspace_identity(&store, &args.workspace).await?;
    let auth = Auth::new(store.clone());
    let token_file = data_dir.join(TOKEN_FILE);
    if let Some(token) = auth.bootstrap_admin().await? {
        write_secret(&token_file, &token)?;
    }
    let addr: SocketAddr = format!("{}:{}", args.host, args.port)
        .parse()
        .with_context(|| {
            format!(
                "'{}:{}' is not an address to listen on",
                args.host, args.port
            )
        })?;
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| {
        format!("cannot listen on {addr}; is another server using the port? (--port)")
    })?;
    let bound = listener.local_addr()?;
    let url = format!("http://{bound}");
    let config_path = config::write(
        &args.config_dir,
        &WorkspaceConfig {
            subscription_id: "local".into(),
            resource_group: "kittiwake".into(),
            workspace_name: workspace.name.clone(),
            kittiwake_url: Some(url.clone()),
            token_file: Some(token_file.clone()),
        },
    )?;
    let tracking = Tracking::new(store.clone(), blob.clone());
    let data = Data::new(
        store.clone(),
        blob.clone(),
        Secrets::open(&data_dir).context("opening the secrets key")?,
    );
    data.ensure_default().await?;
    let exe = std::env::current_exe().context("finding the kittiwake binary for job agents")?;
    let backend = LocalBackend::new(exe, data_dir.join("jobs"), data_dir.join("cache"));
    let jobs = Jobs::new(
        store,
        blob,
        tracking.clone(),
        auth.clone(),
        data.clone(),
        Arc::new(backend),
    );
    let slots = match args.local_slots {
        Some(n) => n,
        None => std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
    };
    let gpus = gpus.await.context("detecting GPUs")?;
    jobs.ensure_local_target(slots.max(1), gpus).await?;
    jobs.register_curated().await?;
    jobs.set_server_url(&url);
    tokio::spawn(jobs.clone().run_scheduler());
    let state = AppState {
        tracking,
        jobs,
        data,
        auth,
        limits: Limits::default(),
        workspace,
    };
    let config_path = config_path.canonicalize().unwrap_or(config_path);
    let banner = format!(
        "Kittiwake workspace '{name}' listening on {url}\n  \
         data:        {data}\n  \
         config:      {config}  (Workspace.from_config() finds it from this folder down)\n  \
         admin token: {token}\n  \
         mlflow:      export MLFLOW_TRACKING_URI={url} MLFLOW_TRACKING_TOKEN=$(cat {token})\n",
        name = state.workspace.name,
        data = data_dir.display(),
        config = config_path.display(),
        token = token_file.display(),
    );
    let banner = if token_file.exists() {
        banner
    } else {
        format!(
            "{banner}  note:        {} is missing; make a new owner token with \
             `kittiwake token create --name admin --role owner --data-dir {}`\n",
            token_file.display(),
            data_dir.display()
        )
    };
    // A closed stdout (a supervisor that stopped reading) must not take the server down.
    let _ = std::io::Write::write_all(&mut std::io::stdout(), banner.as_bytes());
    let app = kittiwake_api::router(state);
    // Answers go out as soon as they are written: without TCP_NODELAY the last segment of a
    // response can wait for the client's delayed ACK.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("the server stopped with an error")
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = ctrl_c.await;
            return;
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = term.recv() => {},
    }
}

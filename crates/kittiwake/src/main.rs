//! `kittiwake`: one binary for the workspace server and the command line that talks to it.

mod client;
mod commands;
mod config;
mod data;
mod jobs;
mod server;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "kittiwake",
    version,
    about = "A self-hosted machine-learning workspace"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the workspace server (metadata in SQLite, artifacts in a local folder).
    Server(server::ServerArgs),
    /// Manage API tokens of a local workspace (works on the data directory, server running or not).
    Token {
        #[command(subcommand)]
        command: commands::TokenCommand,
        /// The workspace's data directory.
        #[arg(
            long,
            env = "KITTIWAKE_DATA_DIR",
            default_value = ".kittiwake",
            global = true
        )]
        data_dir: PathBuf,
    },
    /// The key that seals datastore credentials (works on the data directory).
    Secrets {
        #[command(subcommand)]
        command: commands::SecretsCommand,
        /// The workspace's data directory.
        #[arg(
            long,
            env = "KITTIWAKE_DATA_DIR",
            default_value = ".kittiwake",
            global = true
        )]
        data_dir: PathBuf,
    },
    /// Run one submitted job (started by a compute backend; not for people to call).
    #[command(hide = true)]
    Exec {
        /// The workspace server the job belongs to.
        #[arg(long)]
        server: String,
        #[arg(long)]
        run_id: String,
        /// A fresh folder to run the job in.
        #[arg(long)]
        work_dir: PathBuf,
        /// Environments, snapshot files and the SDK, shared by the jobs of this machine.
        #[arg(long)]
        cache_dir: PathBuf,
        /// The run's token.
        #[arg(long, env = "KITTIWAKE_RUN_TOKEN", hide_env_values = true)]
        token: String,
    },
    /// List experiments.
    Experiment {
        #[command(subcommand)]
        command: commands::ExperimentCommand,
        #[command(flatten)]
        conn: client::Connection,
    },
    /// Submit scripts to run on a compute target.
    Job {
        #[command(subcommand)]
        command: jobs::JobCommand,
        #[command(flatten)]
        conn: client::Connection,
    },
    /// Environments: list, show, build.
    Env {
        #[command(subcommand)]
        command: jobs::EnvCommand,
        #[command(flatten)]
        conn: client::Connection,
    },
    /// Datastores: list them, upload and download files.
    Datastore {
        #[command(subcommand)]
        command: data::DatastoreCommand,
        #[command(flatten)]
        conn: client::Connection,
    },
    /// Datasets: list, show, profile, and the runs that used them.
    Dataset {
        #[command(subcommand)]
        command: data::DatasetCommand,
        #[command(flatten)]
        conn: client::Connection,
    },
    /// Compute targets.
    Compute {
        #[command(subcommand)]
        command: jobs::ComputeCommand,
        #[command(flatten)]
        conn: client::Connection,
    },
    /// Inspect runs: list, show, metrics, artifacts, logs; upload and download files; cancel.
    Run {
        #[command(subcommand)]
        command: commands::RunCommand,
        #[command(flatten)]
        conn: client::Connection,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: could not start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Exec {
                server,
                run_id,
                work_dir,
                cache_dir,
                token,
            } => {
                let code = kittiwake_agent::exec(kittiwake_agent::ExecArgs {
                    server,
                    run_id,
                    token,
                    work_dir,
                    cache_dir,
                })
                .await;
                return Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)));
            }
            Command::Server(args) => server::run(args).await,
            Command::Token { command, data_dir } => commands::token(command, &data_dir).await,
            Command::Secrets { command, data_dir } => commands::secrets(command, &data_dir).await,
            Command::Experiment { command, conn } => commands::experiment(command, conn).await,
            Command::Run { command, conn } => commands::run(command, conn).await,
            Command::Job { command, conn } => jobs::job(command, conn).await,
            Command::Env { command, conn } => jobs::env(command, conn).await,
            Command::Compute { command, conn } => jobs::compute(command, conn).await,
            Command::Datastore { command, conn } => data::datastore(command, conn).await,
            Command::Dataset { command, conn } => data::dataset(command, conn).await,
        }
        .map(|()| ExitCode::SUCCESS)
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

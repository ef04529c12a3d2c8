//! `kittiwake`: one binary for the workspace server and the command line that talks to it.

mod client;
mod commands;
mod config;
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
    /// List experiments.
    Experiment {
        #[command(subcommand)]
        command: commands::ExperimentCommand,
        #[command(flatten)]
        conn: client::Connection,
    },
    /// Inspect runs: list, show, metrics, artifacts; upload and download files.
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
            Command::Server(args) => server::run(args).await,
            Command::Token { command, data_dir } => commands::token(command, &data_dir).await,
            Command::Experiment { command, conn } => commands::experiment(command, conn).await,
            Command::Run { command, conn } => commands::run(command, conn).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

//! The `switchyard` command line: parse arguments, set up logging, run the chosen command.

use clap::{Parser, Subcommand};

mod cli;

#[derive(Debug, Parser)]
#[command(
    name = "switchyard",
    version,
    about = "A conference-room controller for FreeSWITCH"
)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Event Socket tools.
    Esl {
        #[command(subcommand)]
        command: cli::esl::EslCommand,
    },
    /// Run a FreeSWITCH simulator that speaks the Event Socket (for the lab and for tests).
    Sim(cli::sim::SimArgs),
    /// Run the controller: the REST API over the media nodes of a configuration file.
    Serve(cli::serve::ServeArgs),
    /// Everything in one process: simulated nodes, the memory store (or Redis) and the API.
    Lab(cli::lab::LabArgs),
    /// Webhook tools for receivers: verify a signature, make a secret.
    Webhook {
        #[command(subcommand)]
        command: cli::webhook::WebhookCommand,
    },
    /// Print the SHA-256 of an API key, for `key_sha256` in the configuration.
    HashKey {
        /// The key.
        key: String,
    },
    /// Print the OpenAPI 3.1 document of the REST API (what `openapi.json` holds).
    Openapi,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let result = match args.command {
        Command::Esl { command } => cli::esl::run(command).await,
        Command::Sim(args) => cli::sim::run(args).await,
        Command::Serve(args) => cli::serve::run(args).await,
        Command::Lab(args) => cli::lab::run(args).await,
        Command::Webhook { command } => cli::webhook::run(command),
        Command::HashKey { key } => {
            cli::serve::hash_key(&key);
            Ok(())
        }
        Command::Openapi => cli::serve::openapi(),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("switchyard: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

//! The `switchyard` command line: parse arguments, set up logging, run the chosen command.

use clap::{Parser, Subcommand};
use switchyard::server::logging::{self, LogFormat};

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
    /// Configuration tools.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Print the SHA-256 of an API key, for `key_sha256` in the configuration.
    HashKey {
        /// The key.
        key: String,
    },
    /// Print the OpenAPI 3.1 document of the REST API (what `openapi.json` holds).
    Openapi,
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Validate a configuration file and, with `--against` (the file in force), print what a
    /// reload (SIGHUP) would change; fails on an invalid file or a change only a restart
    /// applies.
    Check {
        /// The configuration to check.
        file: String,
        /// The configuration in force to compare with.
        #[arg(long)]
        against: Option<String>,
    },
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    switchyard::heap::no_huge_pages();
    let args = Args::parse();
    // `serve` and `lab` install the logger themselves, in the format they are asked for
    // (`serve` once it has read its configuration); the other commands log as text.
    let asked = match &args.command {
        Command::Serve(a) => a.log_format(),
        Command::Lab(a) => a.log_format(),
        _ => {
            logging::init(LogFormat::Text);
            None
        }
    };
    let result = match args.command {
        Command::Esl { command } => cli::esl::run(command).await,
        Command::Sim(args) => cli::sim::run(args).await,
        Command::Serve(args) => cli::serve::run(args).await,
        Command::Lab(args) => cli::lab::run(args).await,
        Command::Webhook { command } => cli::webhook::run(command),
        Command::HashKey { key } => cli::serve::hash_key(&key),
        Command::Openapi => cli::serve::openapi(),
        Command::Config {
            command: ConfigCommand::Check { file, against },
        } => cli::serve::config_check(&file, against.as_deref()).await,
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // A command that failed before installing its logger (a configuration that does not
            // load) still reports in the format asked for on the command line.
            logging::init(asked.unwrap_or_default());
            if logging::installed() == Some(LogFormat::Json) {
                tracing::error!(error = format!("{e:#}"), "switchyard stopped");
            } else {
                eprintln!("switchyard: {e:#}");
            }
            std::process::ExitCode::FAILURE
        }
    }
}

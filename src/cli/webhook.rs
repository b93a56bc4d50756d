//! `switchyard webhook …`: tools for receivers. `verify` checks a received message's Standard
//! Webhooks signature exactly as a receiver should (the raw body bytes, the three headers, a
//! 5-minute timestamp tolerance); `secret` makes a new signing secret.

use std::io::Read;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use switchyard::webhook::sign::{Secret, verify};

#[derive(Debug, Subcommand)]
pub enum WebhookCommand {
    /// Verify a received webhook: exit 0 and print `ok` if its signature is valid.
    Verify(VerifyArgs),
    /// Print a new signing secret (`whsec_` + 32 random bytes, base64).
    Secret,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The app's webhook secret(s), `whsec_…`, space-separated during a rotation.
    #[arg(long, env = "SWITCHYARD_WEBHOOK_SECRET", hide_env_values = true)]
    secret: String,
    /// The `webhook-id` header.
    #[arg(long)]
    id: String,
    /// The `webhook-timestamp` header.
    #[arg(long)]
    timestamp: String,
    /// The `webhook-signature` header.
    #[arg(long)]
    signature: String,
    /// The raw body, from a file or `-` (standard input, the default).
    #[arg(default_value = "-")]
    body: String,
    /// Accept any timestamp (to check a message saved earlier).
    #[arg(long)]
    ignore_time: bool,
}

pub fn run(command: WebhookCommand) -> anyhow::Result<()> {
    match command {
        WebhookCommand::Secret => super::out(&format!("{}\n", Secret::generate())),
        WebhookCommand::Verify(args) => {
            let secrets = args
                .secret
                .split_whitespace()
                .map(Secret::parse)
                .collect::<Result<Vec<_>, _>>()
                .context("invalid secret")?;
            let mut body = Vec::new();
            if args.body == "-" {
                std::io::stdin().read_to_end(&mut body)?;
            } else {
                body = std::fs::read(&args.body)
                    .with_context(|| format!("cannot read {}", args.body))?;
            }
            let now = if args.ignore_time {
                args.timestamp.trim().parse().unwrap_or(0)
            } else {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs() as i64)
                    .unwrap_or(0)
            };
            match verify(
                &secrets,
                &args.id,
                &args.timestamp,
                &args.signature,
                &body,
                now,
            ) {
                Ok(()) => super::out("ok\n"),
                Err(e) => bail!("not verified: {e}"),
            }
        }
    }
}

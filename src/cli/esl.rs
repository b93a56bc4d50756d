//! `switchyard esl decode` and `switchyard esl tap`: read FreeSWITCH's Event Socket as JSON lines.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use futures_util::StreamExt;
use tokio::io::AsyncRead;
use tokio_util::codec::FramedRead;

use switchyard::esl::{
    Client, ClientConfig, EslCodec, EventFormat, EventName, EventSet, Limits, Password, inspect,
};

#[derive(Debug, Subcommand)]
pub enum EslCommand {
    /// Decode a byte stream received from FreeSWITCH: one JSON object per frame, one per line.
    Decode {
        /// A file of raw bytes, or `-` (the default) for standard input.
        #[arg(default_value = "-")]
        input: String,
        /// Largest frame accepted, in bytes.
        #[arg(long, default_value_t = switchyard::esl::DEFAULT_MAX_FRAME)]
        max_frame: usize,
    },
    /// Connect to a live node, subscribe, and print its events as `decode` does.
    Tap {
        #[arg(long, default_value = "127.0.0.1:8021")]
        addr: String,
        #[arg(long, env = "SWITCHYARD_ESL_PASSWORD", hide_env_values = true)]
        password: String,
        /// Comma-separated event names; `CUSTOM:<subclass>` adds a subclass. Default: ALL.
        #[arg(long, value_delimiter = ',')]
        events: Vec<String>,
        /// Ask FreeSWITCH for JSON events instead of plain.
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(command: EslCommand) -> anyhow::Result<()> {
    match command {
        EslCommand::Decode { input, max_frame } => {
            let limits = Limits {
                max_frame,
                ..Limits::default()
            };
            if input == "-" {
                decode(tokio::io::stdin(), limits).await
            } else {
                let path = PathBuf::from(&input);
                let file = tokio::fs::File::open(&path)
                    .await
                    .with_context(|| format!("cannot open {}", path.display()))?;
                decode(file, limits).await
            }
        }
        EslCommand::Tap {
            addr,
            password,
            events,
            json,
        } => tap(&addr, &password, &events, json).await,
    }
}

fn print_line(value: &serde_json::Value) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, value)?;
    out.write_all(b"\n")?;
    Ok(())
}

async fn decode(input: impl AsyncRead + Unpin, limits: Limits) -> anyhow::Result<()> {
    let mut frames = FramedRead::with_capacity(input, EslCodec::new(limits), 64 * 1024);
    let mut count = 0usize;
    while let Some(frame) = frames.next().await {
        let frame = frame.with_context(|| format!("after {count} frames"))?;
        print_line(&inspect::frame_json(&frame))?;
        count += 1;
    }
    Ok(())
}

fn event_set(words: &[String]) -> anyhow::Result<EventSet> {
    if words.is_empty() {
        return Ok(EventSet::all());
    }
    let mut set = EventSet::new();
    for word in words {
        set = match word.strip_prefix("CUSTOM:") {
            Some(subclass) => set.subclass(subclass)?,
            None => set.name(EventName::parse(&word.to_ascii_uppercase())),
        };
    }
    Ok(set)
}

async fn tap(addr: &str, password: &str, events: &[String], json: bool) -> anyhow::Result<()> {
    let password = Password::new(password)?;
    let (client, mut stream) = Client::connect(addr, &password, ClientConfig::default()).await?;
    let format = if json {
        EventFormat::Json
    } else {
        EventFormat::Plain
    };
    client.subscribe(format, event_set(events)?).await?;
    tracing::info!(%addr, "subscribed; printing events (Ctrl-C to stop)");
    loop {
        tokio::select! {
            event = stream.recv() => match event {
                Some(event) => print_line(&inspect::event_json(&event))?,
                None => break,
            },
            _ = tokio::signal::ctrl_c() => {
                // Best effort: the process exits either way.
                let _ = client.exit().await;
                return Ok(());
            }
        }
    }
    let reason = client.closed().await;
    anyhow::bail!("connection closed: {reason}")
}

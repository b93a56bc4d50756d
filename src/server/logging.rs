//! Where log lines go and how they look: human-readable text (the default) or one JSON object
//! per line for log shippers (`--log-format json`, or `[log] format = "json"` in the config).
//! Both go to standard error, filtered by `RUST_LOG` (default `info`).
//!
//! A JSON line carries the event's fields under `fields` (its text as `fields.message`), and the
//! spans it happened in: the innermost as `span`, all of them, outermost first, as `spans`. An
//! API request's span is `request`, with `request_id`, `method` and `route`:
//!
//! ```text
//! {"timestamp":"…","level":"INFO","fields":{"message":"request","status":201,"duration_ms":3},
//!  "target":"switchyard::api::request_id","span":{"method":"POST","request_id":"…",
//!  "route":"/api/v1/conferences","name":"request"},"spans":[…]}
//! ```

use std::str::FromStr;
use std::sync::OnceLock;

use serde::Deserialize;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::util::SubscriberInitExt;

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One human-readable line per event (tracing's default format).
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

impl LogFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }
    }
}

impl FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<LogFormat, String> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!(
                "unknown log format {other:?}: expected \"text\" or \"json\""
            )),
        }
    }
}

impl std::fmt::Display for LogFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The format of the process's logger, once [`init`] has set it.
static INSTALLED: OnceLock<LogFormat> = OnceLock::new();

/// A subscriber writing `format` lines to `writer`, filtered by `filter`. [`init`] installs
/// one writing to standard error; tests use it with a buffer.
pub fn subscriber<W>(
    format: LogFormat,
    filter: EnvFilter,
    writer: W,
) -> Box<dyn tracing::Subscriber + Send + Sync>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    match format {
        LogFormat::Text => Box::new(builder.finish()),
        LogFormat::Json => Box::new(
            builder
                .json()
                .with_current_span(true)
                .with_span_list(true)
                .finish(),
        ),
    }
}

/// Installs the process's logger (standard error, `RUST_LOG` or `info`). The first call wins;
/// later ones change nothing.
pub fn init(format: LogFormat) {
    if INSTALLED.set(format).is_err() {
        return;
    }
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Also forwards the `log` records of dependencies. Fails only when another logger is
    // already installed; that one then stays.
    let _ = subscriber(format, filter, std::io::stderr).try_init();
}

/// The format [`init`] installed, if it was called.
pub fn installed() -> Option<LogFormat> {
    INSTALLED.get().copied()
}

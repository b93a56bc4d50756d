//! The `switchyard` binary's subcommands (`esl decode`, `webhook`, `config check`, `serve`'s
//! `/metrics`) and the logs it writes: the JSON log format, request ids in the logs, the
//! dead-letter log line; and the commands and links of the docs (`docs.rs`). The two log-capture
//! modules install one process-wide `debug` subscriber, so they stay in this binary.
//!
//! One test binary per subject (CI links few binaries); each module was a file of its own.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../common/mod.rs"]
mod common;
#[path = "../log_capture/mod.rs"]
mod log_capture;
#[path = "../webhook_support/mod.rs"]
mod webhook_support;

mod config_errors;
mod dead_letter_log;
mod docs;
mod esl_decode;
mod heap;
mod log_format;
mod metrics;
mod output;
mod recordings;
mod reload;
mod request_id;
mod webhook;

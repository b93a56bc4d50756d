//! Webhook delivery: signing, retries and ordering against a real receiver, end to end in the
//! lab, and delivery that resumes after a controller restart.
//!
//! One test binary per subject (CI links few binaries); each module was a file of its own.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../common/mod.rs"]
mod common;
#[path = "../webhook_support/mod.rs"]
mod webhook_support;

mod delivery;
mod delivery_log;
mod lab;
mod restart;

//! The simulator (`switchyard sim`) through our ESL client: its behaviour, its protocol, and its
//! conformance to the facts recorded from real FreeSWITCH.
//!
//! One test binary per subject (CI links few binaries); each module was a file of its own.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../common/mod.rs"]
mod common;

mod behaviour;
mod conformance;
mod protocol;

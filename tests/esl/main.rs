//! The Event Socket wire layer: the client against scripted fake nodes, event parsing, real byte
//! captures of FreeSWITCH, and malformed frames.
//!
//! One test binary per subject (CI links few binaries); each module was a file of its own.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod captures;
mod client;
mod events;
mod malformed;

//! The conference domain without I/O: the rules of seeds 000–003 as pure functions and
//! properties, the bridge between domain and node commands, and the conference resource end to
//! end against the simulator.
//!
//! One test binary per subject (CI links few binaries); each module was a file of its own.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../common/mod.rs"]
mod common;

mod bridge;
mod resource;
mod rules;

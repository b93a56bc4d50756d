//! The store: one conformance suite for the memory store, Redis and Redis Cluster; the room cache
//! and its invalidation; Sentinel failovers; the outbox bell on single Redis and Cluster; the S3
//! object store recordings go to (against a real Garage).
//!
//! One test binary per subject (CI links few binaries); each module was a file of its own.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../common/mod.rs"]
mod common;
#[path = "../webhook_support/mod.rs"]
mod webhook_support;

mod conformance;
mod objects;
mod outbox_bell;
mod outbox_bell_cluster;
mod room_cache;
mod room_record;
mod sentinel;

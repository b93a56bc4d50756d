//! Controller fleets: several `serve` processes (or stores) sharing nodes through leases on a
//! real Redis or Sentinel; handovers, hot standbys, store failovers under traffic, stale writes,
//! and a node's state brought back to the store after lost connections and restarts.
//!
//! One test binary per subject (CI links few binaries); each module was a file of its own.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../common/mod.rs"]
mod common;
#[path = "../webhook_support/mod.rs"]
mod webhook_support;

mod cached_reads;
mod forward;
mod hung_node;
mod nodes;
mod paused_leader;
mod paused_master;
mod paused_owner;
mod slow_store;
mod stale_writes;
mod standby;
mod sync;
mod upgrade;

//! Helpers shared by integration tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod api;
pub mod channels_db;
pub mod diff;
pub mod freeswitch;
pub mod garage;
pub mod marks;
pub mod openapi;
pub mod ports;
pub mod proxy;
pub mod redis_cluster;
pub mod redis_monitor;
pub mod redis_sentinel;
pub mod redis_server;
pub mod scenario;
pub mod serve;
pub mod sipp;
pub mod ws_server;

//! The REST API through the router, in process, against the simulator (the lab) and a real
//! Redis: rooms, sessions, switches, announcements, moderators, isolation between apps, strict
//! bodies, the event feed, teardown; the OpenAPI document against the code and every answer, and
//! Schemathesis fuzzing the running lab.
//!
//! One test binary per subject (CI links few binaries); each module was a file of its own.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../common/mod.rs"]
mod common;

mod announce;
mod coach;
mod conferences;
mod dialout;
mod drain;
mod edge;
mod events;
mod isolation;
mod lifetime;
mod moderators;
mod moving;
mod on_redis;
mod openapi;
mod openapi_answers;
mod quotas;
mod schemathesis;
mod sessions;
mod strict;
mod switches;
mod talking;
mod teardown;

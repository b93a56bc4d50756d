//! Switchyard: a conference-room controller for FreeSWITCH.
//!
//! Layers (see DESIGN.md), bottom up:
//! - [`esl`]: the Event Socket wire (codec, events, commands, client); knows bytes, not rooms.
//! - [`conference`]: the pure domain (rooms, members, sessions, `apply`, snapshot reconcile).
//! - [`store`]: where state lives (memory, Redis) with atomic room writes and the webhook outbox.
//! - [`node`]: one supervisor per FreeSWITCH node (connect, resync, apply events, effects), the pool.
//! - [`rooms`]: the room service the API calls (ownership, state checks, cooldowns, node commands).
//! - [`api`]: the axum REST API; [`server`]: `serve` and `lab` wiring and configuration.
//! - [`webhook`]: signing and the outbox dispatcher.
//! - [`objects`]: the S3-compatible bucket recordings go to (presigned URLs, checked reads).
//! - [`sim`]: the FreeSWITCH simulator, a separate peer that only speaks ESL.
//! - [`telemetry`]: the Prometheus metrics every layer records and `GET /metrics` renders.
//! - [`tally`]: bounded places per key (the per-app shares and quotas).

pub mod api;
pub mod conference;
pub mod esl;
pub mod heap;
pub mod node;
pub mod objects;
pub mod rooms;
pub mod server;
pub mod sim;
pub mod store;
pub mod streams;
pub mod tally;
pub mod telemetry;
pub mod ui;
pub mod webhook;

//! Switchyard: a conference-room controller for FreeSWITCH.
//!
//! Layers (see DESIGN.md): `esl` is the Event Socket wire layer.

pub mod api;
pub mod conference;
pub mod esl;
pub mod node;
pub mod rooms;
pub mod server;
pub mod sim;
pub mod store;
pub mod webhook;

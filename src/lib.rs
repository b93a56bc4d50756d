//! Switchyard: a conference-room controller for FreeSWITCH.
//!
//! Layers (see DESIGN.md): `esl` is the Event Socket wire layer.

pub mod conference;
pub mod store;
pub mod esl;
pub mod sim;
